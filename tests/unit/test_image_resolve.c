/* SPDX-License-Identifier: Apache-2.0 */
/* img_resolve against an in-memory source: OCI and Docker media types,
 * platform choice, and every way an index, manifest or config can be
 * malformed, oversized, too deep, of schema 1 or not match its digest. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image-resolve.h"

/* ---- an in-memory source ---- */

#define DOCS_MAX 16

struct fake {
    struct img_source base;
    size_t n;
    const char *key[DOCS_MAX]; /* a tag, or the digest it is served under */
    char *body[DOCS_MAX];
    const char *mt[DOCS_MAX];
    bool blob[DOCS_MAX];
};

struct mem_stream {
    struct img_stream s;
    const char *p;
    size_t left;
};

static ssize_t mem_read(struct img_stream *s, void *buf, size_t n) {
    struct mem_stream *m = (struct mem_stream *)s;

    n = n < m->left ? n : m->left;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return (ssize_t)n;
}

static void mem_close(struct img_stream *s) {
    free(s);
}

static int find(struct fake *f, const char *key, bool blob) {
    for (size_t i = 0; i < f->n; i++) {
        if (f->blob[i] == blob && strcmp(f->key[i], key ? key : "latest") == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int fake_manifest(struct img_source *s, const char *ref, struct kbuf *body, char *mt,
                         size_t mtsz, char *digest, size_t dsz, struct img_error *err) {
    struct fake *f = (struct fake *)s;
    int i = find(f, ref, false);

    if (i < 0) {
        return img_error_set(err, -ENOENT, "no manifest %s", ref ? ref : "latest");
    }
    snprintf(mt, mtsz, "%s", f->mt[i] ? f->mt[i] : "");
    digest[0] = 0;
    (void)dsz;
    return kbuf_append(body, f->body[i], strlen(f->body[i]));
}

static int fake_blob(struct img_source *s, const char *digest, int64_t size,
                     struct img_stream **ret, struct img_error *err) {
    struct fake *f = (struct fake *)s;
    int i = find(f, digest, true);
    struct mem_stream *m;

    (void)size;
    if (i < 0) {
        return img_error_set(err, -ENOENT, "no blob %s", digest);
    }
    m = calloc(1, sizeof(*m));
    m->s.read = mem_read;
    m->s.close = mem_close;
    m->p = f->body[i];
    m->left = strlen(f->body[i]);
    *ret = &m->s;
    return 0;
}

static void fake_free(struct img_source *s) {
    struct fake *f = (struct fake *)s;

    for (size_t i = 0; i < f->n; i++) {
        free(f->body[i]);
    }
    free(f);
}

static const struct img_source_ops fake_ops = {fake_manifest, fake_blob, fake_free};

static struct fake *fake_new(void) {
    struct fake *f = calloc(1, sizeof(*f));

    f->base.ops = &fake_ops;
    return f;
}

/* Add a document; `key` NULL: served under its own digest, which goes to
 * `digest` (IMG_DIGEST_MAX bytes, may be NULL). */
static void add(struct fake *f, bool blob, const char *key, const char *mt, const char *body,
                char *digest) {
    static char keys[DOCS_MAX * 4][IMG_DIGEST_MAX];
    static size_t nkeys;
    char d[IMG_DIGEST_MAX];

    img_digest_of(body, strlen(body), NULL, d);
    if (digest) {
        snprintf(digest, IMG_DIGEST_MAX, "%s", d);
    }
    snprintf(keys[nkeys % (DOCS_MAX * 4)], IMG_DIGEST_MAX, "%s", key ? key : d);
    f->key[f->n] = keys[nkeys++ % (DOCS_MAX * 4)];
    f->body[f->n] = strdup(body);
    f->mt[f->n] = mt;
    f->blob[f->n] = blob;
    f->n++;
}

static char *fmt(const char *f, ...) {
    char *s = NULL;
    va_list ap;

    va_start(ap, f);
    assert_true(vasprintf(&s, f, ap) > 0);
    va_end(ap);
    return s;
}

#define OCI_MANIFEST  "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX     "application/vnd.oci.image.index.v1+json"
#define DOCKER_MANI   "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_LIST   "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCI_CONFIG    "application/vnd.oci.image.config.v1+json"
#define DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define OCI_LAYER     "application/vnd.oci.image.layer.v1.tar+gzip"
#define DOCKER_LAYER  "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define D1            "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2            "sha256:2222222222222222222222222222222222222222222222222222222222222222"

/* A config for an image of `n` layers (diff_ids D1, D2...). */
static char *config(const char *arch, int n) {
    return fmt("{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
               "\"diff_ids\":[%s%s%s]}}",
               arch, n > 0 ? "\"" D1 "\"" : "", n > 1 ? ",\"" D2 "\"" : "", "");
}

/* A manifest of a config and two layers. */
static char *manifest(const char *mt, const char *config_mt, const char *cfg_digest,
                      size_t cfg_size, const char *layer_mt) {
    return fmt("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
               "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
               "\"%s\",\"size\":10},{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":20}]}",
               mt, config_mt, cfg_digest, cfg_size, layer_mt, D1, layer_mt, D2);
}

/* A source with one image: config (arch) + manifest under `tag`. */
static struct fake *one_image(const char *tag, const char *mani_mt, const char *cfg_mt,
                              const char *layer_mt, char *mdigest) {
    struct fake *f = fake_new();
    char cd[IMG_DIGEST_MAX];
    char *c = config("amd64", 2), *m;

    add(f, true, NULL, NULL, c, cd);
    m = manifest(mani_mt, cfg_mt, cd, strlen(c), layer_mt);
    add(f, false, tag, mani_mt, m, mdigest);
    add(f, false, NULL, mani_mt, m, NULL);
    free(c);
    free(m);
    return f;
}

static void limits(struct img_limits *l) {
    img_limits_default(l);
}

static void test_oci_manifest(void **state) {
    char md[IMG_DIGEST_MAX];
    struct fake *f = one_image("v1", OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, md);
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;

    (void)state;
    limits(&l);
    assert_int_equal(img_resolve(&f->base, "v1", NULL, &l, &img, &err), 0);
    assert_string_equal(img->manifest_digest, md);
    assert_string_equal(img->index_digest, "");
    assert_true(img_digest_valid(img->config.digest));
    assert_int_equal(img->nlayers, 2);
    assert_string_equal(img->layers[0].digest, D1);
    assert_int_equal(img->layers[1].size, 20);
    assert_string_equal(img->platform, "linux/amd64");
    img_image_free(img);
    img_source_free(&f->base);
}

static void test_docker_manifest(void **state) {
    char md[IMG_DIGEST_MAX];
    struct fake *f = one_image("latest", DOCKER_MANI, DOCKER_CONFIG, DOCKER_LAYER, md);
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;

    (void)state;
    limits(&l);
    assert_int_equal(img_resolve(&f->base, NULL, NULL, &l, &img, &err), 0);
    assert_string_equal(img->manifest_digest, md);
    assert_int_equal(img->nlayers, 2);
    img_image_free(img);
    img_source_free(&f->base);
}

/* An index of amd64 and arm64/v8 images under "multi". */
static struct fake *multi(const char *index_mt, const char *mani_mt, char *amd, char *arm,
                          char *idx) {
    struct fake *f = fake_new();
    char cd[IMG_DIGEST_MAX], cd2[IMG_DIGEST_MAX];
    char *c1 = config("amd64", 2), *c2 = config("arm64", 2), *m1, *m2, *ix;

    add(f, true, NULL, NULL, c1, cd);
    add(f, true, NULL, NULL, c2, cd2);
    m1 = manifest(mani_mt, OCI_CONFIG, cd, strlen(c1), OCI_LAYER);
    m2 = manifest(mani_mt, OCI_CONFIG, cd2, strlen(c2), OCI_LAYER);
    add(f, false, NULL, mani_mt, m1, amd);
    add(f, false, NULL, mani_mt, m2, arm);
    ix = fmt("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\","
             "\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\","
             "\"architecture\":\"amd64\"}}]}",
             index_mt, mani_mt, arm, strlen(m2), mani_mt, amd, strlen(m1));
    add(f, false, "multi", index_mt, ix, idx);
    free(c1), free(c2), free(m1), free(m2), free(ix);
    return f;
}

static void test_index_platforms(void **state) {
    char amd[IMG_DIGEST_MAX], arm[IMG_DIGEST_MAX], idx[IMG_DIGEST_MAX];
    struct fake *f = multi(OCI_INDEX, OCI_MANIFEST, amd, arm, idx);
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;

    (void)state;
    limits(&l);
    assert_int_equal(img_resolve(&f->base, "multi", NULL, &l, &img, &err), 0);
    assert_string_equal(img->index_digest, idx);
    assert_string_equal(img->manifest_digest, amd);
    assert_string_equal(img->platform, "linux/amd64");
    img_image_free(img);
    assert_int_equal(img_resolve(&f->base, "multi", "linux/arm64/v8", &l, &img, &err), 0);
    assert_string_equal(img->manifest_digest, arm);
    assert_string_equal(img->platform, "linux/arm64");
    img_image_free(img);
    assert_int_equal(img_resolve(&f->base, "multi", "linux/arm64", &l, &img, &err), 0);
    assert_string_equal(img->manifest_digest, arm);
    img_image_free(img);
    /* None fits: the error lists what there is. */
    assert_int_equal(img_resolve(&f->base, "multi", "linux/s390x", &l, &img, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no manifest for platform linux/s390x"));
    assert_non_null(strstr(err.msg, "linux/arm64/v8, linux/amd64"));
    img_source_free(&f->base);
}

static void test_docker_list(void **state) {
    char amd[IMG_DIGEST_MAX], arm[IMG_DIGEST_MAX], idx[IMG_DIGEST_MAX];
    struct fake *f = multi(DOCKER_LIST, DOCKER_MANI, amd, arm, idx);
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;

    (void)state;
    limits(&l);
    assert_int_equal(img_resolve(&f->base, "multi", "linux/amd64", &l, &img, &err), 0);
    assert_string_equal(img->index_digest, idx);
    assert_string_equal(img->manifest_digest, amd);
    img_image_free(img);
    img_source_free(&f->base);
}

/* Resolve "bad" of a source holding just that document (and a valid
 * config for it); the error must be `want` and say `says`. */
static void expect_fail(const char *mt, const char *body, int want, const char *says) {
    struct fake *f = fake_new();
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;
    int r;

    limits(&l);
    l.max_json_depth = 8;
    l.max_layers = 4;
    add(f, false, "bad", mt, body, NULL);
    r = img_resolve(&f->base, "bad", NULL, &l, &img, &err);
    if (r != want || !strstr(err.msg, says)) {
        fail_msg("got %d \"%s\", want %d \"%s\"", r, err.msg, want, says);
    }
    assert_null(img);
    img_source_free(&f->base);
}

static void test_malformed(void **state) {
    char big[8192];
    char deep[200] = "";

    (void)state;
    expect_fail(OCI_MANIFEST, "{\"schemaVersion\":2,", -EBADMSG, "manifest sha256:");
    expect_fail(OCI_MANIFEST, "[1,2]", -EBADMSG, "not a JSON object");
    expect_fail("", "{\"schemaVersion\":2}", -EBADMSG, "neither an image index nor a manifest");
    expect_fail(OCI_MANIFEST, "{\"schemaVersion\":3,\"config\":{}}", -EBADMSG,
                "\"schemaVersion\" is not 2");
    /* Deeper than max_json_depth (8 here). */
    snprintf(deep, sizeof(deep), "{\"schemaVersion\":2,\"config\":%s%s}", "[[[[[[[[[[",
             "]]]]]]]]]]");
    expect_fail(OCI_MANIFEST, deep, -EBADMSG, "deep");
    /* Schema 1, by media type and by schemaVersion. */
    expect_fail("application/vnd.docker.distribution.manifest.v1+prettyjws",
                "{\"schemaVersion\":1,\"fsLayers\":[]}", -EBADMSG, "schema 1");
    expect_fail("", "{\"schemaVersion\":1,\"fsLayers\":[]}", -EBADMSG, "schema 1");
    /* The source's type and the document's disagree. */
    expect_fail(OCI_INDEX, "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\"}", -EBADMSG,
                "its source says");
    (void)big;
}

static void test_huge(void **state) {
    struct fake *f = fake_new();
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;
    char *body = calloc(1, 10000);

    (void)state;
    limits(&l);
    l.max_manifest = 4096;
    memset(body, ' ', 9999);
    memcpy(body, "{\"schemaVersion\":2}", 19);
    add(f, false, "big", OCI_MANIFEST, body, NULL);
    assert_int_equal(img_resolve(&f->base, "big", NULL, &l, &img, &err), -E2BIG);
    assert_non_null(strstr(err.msg, "--max-manifest"));
    free(body);
    img_source_free(&f->base);
}

static void test_bad_descriptors(void **state) {
    char *m;

    (void)state;
    m = manifest(OCI_MANIFEST, OCI_CONFIG, "sha256:abc", 10, OCI_LAYER);
    expect_fail(OCI_MANIFEST, m, -EBADMSG, "config: \"digest\" is not");
    free(m);
    m = manifest(OCI_MANIFEST, OCI_CONFIG, D1, 10,
                 "application/vnd.oci.image.layer.v1.tar+gzip+encrypted");
    expect_fail(OCI_MANIFEST, m, -EBADMSG, "is not a tar layer");
    free(m);
    m = manifest(OCI_MANIFEST, "application/vnd.cncf.helm.config.v1+json", D1, 10, OCI_LAYER);
    expect_fail(OCI_MANIFEST, m, -EBADMSG, "not a container image");
    free(m);
    expect_fail(OCI_MANIFEST,
                "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
                "\",\"size\":-1},\"layers\":[]}",
                -EBADMSG, "\"size\" is not a number >= 0");
    expect_fail(OCI_MANIFEST,
                "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_CONFIG "\",\"digest\":\"" D1
                "\",\"size\":1},\"layers\":[{},{},{},{},{}]}",
                -E2BIG, "5 layers, more than the 4 allowed");
    expect_fail(OCI_INDEX,
                "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:zz\",\"size\":1}]}",
                -EBADMSG, "manifests[0]: \"digest\" is not");
}

/* The index names a manifest by digest, the source serves other bytes
 * under it. */
static void test_wrong_manifest_digest(void **state) {
    struct fake *f = fake_new();
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;
    char *ix = fmt("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
                   "\"size\":5,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
                   OCI_MANIFEST, D1);

    (void)state;
    limits(&l);
    add(f, false, "x", OCI_INDEX, ix, NULL);
    add(f, false, D1, OCI_MANIFEST, "{\"schemaVersion\":2}", NULL);
    assert_int_equal(img_resolve(&f->base, "x", NULL, &l, &img, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "manifest " D1 ": content does not match its digest"));
    free(ix);
    img_source_free(&f->base);
}

static void test_wrong_config_digest(void **state) {
    struct fake *f = fake_new();
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;
    char *c = config("amd64", 2);
    char *m = manifest(OCI_MANIFEST, OCI_CONFIG, D2, strlen(c), OCI_LAYER);

    (void)state;
    limits(&l);
    add(f, true, D2, NULL, c, NULL); /* served as D2, hashes to something else */
    add(f, false, "t", OCI_MANIFEST, m, NULL);
    assert_int_equal(img_resolve(&f->base, "t", NULL, &l, &img, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "config " D2));
    assert_non_null(strstr(err.msg, "does not match its digest"));
    free(c), free(m);
    img_source_free(&f->base);
}

static void test_diff_ids_count(void **state) {
    struct fake *f = fake_new();
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    struct img_limits l;
    char cd[IMG_DIGEST_MAX];
    char *c = config("amd64", 1), *m;

    (void)state;
    limits(&l);
    add(f, true, NULL, NULL, c, cd);
    m = manifest(OCI_MANIFEST, OCI_CONFIG, cd, strlen(c), OCI_LAYER);
    add(f, false, "t", OCI_MANIFEST, m, NULL);
    assert_int_equal(img_resolve(&f->base, "t", NULL, &l, &img, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "1 rootfs.diff_ids for 2 layers"));
    /* An explicit platform must agree with a plain manifest's config. */
    free(c), free(m);
    img_source_free(&f->base);
    f = one_image("t", OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, cd);
    err.msg[0] = 0;
    assert_int_equal(img_resolve(&f->base, "t", "linux/arm64", &l, &img, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "the image is for linux/amd64"));
    img_source_free(&f->base);
}

static void test_platform_parse(void **state) {
    char os[64], arch[64], variant[64];

    (void)state;
    assert_int_equal(img_platform_parse("linux/arm64/v8", os, arch, variant), 0);
    assert_string_equal(os, "linux");
    assert_string_equal(arch, "arm64");
    assert_string_equal(variant, "v8");
    assert_int_equal(img_platform_parse("linux/amd64", os, arch, variant), 0);
    assert_string_equal(variant, "");
    assert_int_equal(img_platform_parse("linux", os, arch, variant), -EINVAL);
    assert_int_equal(img_platform_parse("linux//x", os, arch, variant), -EINVAL);
    assert_int_equal(img_platform_parse("Linux/amd64", os, arch, variant), -EINVAL);
    assert_int_equal(img_platform_parse("linux/amd64/v1/x", os, arch, variant), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_oci_manifest),
            cmocka_unit_test(test_docker_manifest),
            cmocka_unit_test(test_index_platforms),
            cmocka_unit_test(test_docker_list),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_huge),
            cmocka_unit_test(test_bad_descriptors),
            cmocka_unit_test(test_wrong_manifest_digest),
            cmocka_unit_test(test_wrong_config_digest),
            cmocka_unit_test(test_diff_ids_count),
            cmocka_unit_test(test_platform_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
