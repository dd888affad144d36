/* SPDX-License-Identifier: Apache-2.0 */
/* The local image sources, on images built here: an OCI layout directory,
 * the same as an oci-archive, and a docker-archive (legacy layer.tar
 * links). Blobs are served and verify; a blob whose content does not match
 * its digest fails naming it; compressed archives and ambiguous
 * references are refused. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "generate.h"
#include "image-sources.h"
#include "tmpdir.h"

struct member {
    const char *name;
    const char *data; /* NULL: a symbolic link to `link` */
    const char *link;
    size_t len; /* 0: strlen(data) */
};

/* A tar of `members` at `path`, gzip-compressed when asked. */
static void write_tar(const char *path, const struct member *m, size_t n, bool gzip) {
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();

    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (gzip) {
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        size_t len = m[i].data ? (m[i].len ? m[i].len : strlen(m[i].data)) : 0;
        archive_entry_clear(e);
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_filetype(e, m[i].data ? AE_IFREG : AE_IFLNK);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        if (!m[i].data) {
            archive_entry_set_symlink(e, m[i].link);
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (len) {
            assert_int_equal(archive_write_data(a, m[i].data, len), (la_ssize_t)len);
        }
    }
    archive_entry_free(e);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static char *slurp_path(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 20);

    assert_non_null(f);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static char *fmt(const char *f, ...) {
    char *s = NULL;
    va_list ap;

    va_start(ap, f);
    assert_true(vasprintf(&s, f, ap) > 0);
    va_end(ap);
    return s;
}

/* The image every test reads: one layer (a tar of usr/bin/hello), its
 * config and manifest, as blobs. */
struct image {
    char dir[512];
    char *layer, *config, *manifest;
    size_t layer_len;
    char ld[IMG_DIGEST_MAX], cd[IMG_DIGEST_MAX], md[IMG_DIGEST_MAX];
};

static void image_make(struct image *im) {
    char p[700];
    const struct member files[] = {{"usr/bin/hello", "#!/bin/sh\necho hi\n", NULL, 0}};

    assert_int_equal(test_tmpdir_new("image-sources", im->dir, sizeof(im->dir)), 0);
    snprintf(p, sizeof(p), "%s/layer.tar", im->dir);
    write_tar(p, files, 1, false);
    im->layer = slurp_path(p, &im->layer_len);
    img_digest_of(im->layer, im->layer_len, NULL, im->ld);
    im->config = fmt("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                     "\"layers\",\"diff_ids\":[\"%s\"]}}",
                     im->ld);
    img_digest_of(im->config, strlen(im->config), NULL, im->cd);
    im->manifest = fmt("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest."
                       "v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config."
                       "v1+json\",\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
                       "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":"
                       "%zu}]}",
                       im->cd, strlen(im->config), im->ld, im->layer_len);
    img_digest_of(im->manifest, strlen(im->manifest), NULL, im->md);
}

static void image_free(struct image *im) {
    test_tmpdir_free(im->dir);
    free(im->layer);
    free(im->config);
    free(im->manifest);
}

static char *index_json(const struct image *im, const char *ref2) {
    return fmt("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image."
               "manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{\"org."
               "opencontainers.image.ref.name\":\"v1\"}}%s%s%s]}",
               im->md, strlen(im->manifest), ref2 ? ",{\"digest\":\"" : "", ref2 ? ref2 : "",
               ref2 ? "\",\"size\":1}" : "");
}

#define LAYOUT "{\"imageLayoutVersion\":\"1.0.0\"}"

/* The layout as tar members (blob names from the digests). */
static size_t layout_members(const struct image *im, struct member *m, char names[3][100],
                             const char *index) {
    snprintf(names[0], 100, "blobs/sha256/%s", im->ld + 7);
    snprintf(names[1], 100, "blobs/sha256/%s", im->cd + 7);
    snprintf(names[2], 100, "blobs/sha256/%s", im->md + 7);
    m[0] = (struct member){"oci-layout", LAYOUT, NULL, 0};
    m[1] = (struct member){"index.json", index, NULL, 0};
    m[2] = (struct member){names[0], im->layer, NULL, im->layer_len};
    m[3] = (struct member){names[1], im->config, NULL, 0};
    m[4] = (struct member){names[2], im->manifest, NULL, 0};
    return 5;
}

static void layout_dir(const struct image *im, const char *dir, const char *index) {
    struct member m[5];
    char names[3][100], p[1200];
    size_t n = layout_members(im, m, names, index);

    snprintf(p, sizeof(p), "%s/blobs", dir);
    assert_int_equal(mkdir(dir, 0755) == 0 || errno == EEXIST, 1);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/blobs/sha256", dir);
    mkdir(p, 0755);
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, m[i].name);
        write_file(p, m[i].data, m[i].len ? m[i].len : strlen(m[i].data));
    }
}

/* Read a blob through img_stream_verified; returns its length or the
 * error, with the message in err. */
static int read_blob(struct img_source *s, const char *digest, int64_t size, struct kbuf *out,
                     struct img_error *err) {
    struct img_stream *raw = NULL, *v = NULL;
    int r = s->ops->blob(s, digest, size, &raw, err);

    if (r < 0) {
        return r;
    }
    assert_int_equal(img_stream_verified(raw, digest, size, &v), 0);
    return img_stream_slurp(v, 1 << 20, out, err);
}

/* What every source must do with the image: resolve it, serve its blobs. */
static void check_source(struct img_source *s, const char *ref, const struct image *im) {
    struct img_limits l;
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);

    img_limits_default(&l);
    assert_int_equal(img_resolve(s, ref, NULL, &l, &img, &err), 0);
    assert_string_equal(img->manifest_digest, im->md);
    assert_string_equal(img->config.digest, im->cd);
    assert_int_equal(img->nlayers, 1);
    assert_string_equal(img->layers[0].digest, im->ld);
    assert_int_equal(read_blob(s, im->ld, (int64_t)im->layer_len, &b, &err), 0);
    assert_int_equal(b.len, im->layer_len);
    assert_memory_equal(b.data, im->layer, im->layer_len);
    img_image_free(img);
}

static void test_oci_dir(void **state) {
    struct image im;
    struct img_source_config cfg = {0};
    struct img_source *s = NULL;
    struct img_error err = {{0}};
    char dir[600], p[1200], *ix;
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);

    (void)state;
    image_make(&im);
    img_limits_default(&cfg.limits);
    ix = index_json(&im, NULL);
    snprintf(dir, sizeof(dir), "%s/layout", im.dir);
    layout_dir(&im, dir, ix);
    assert_int_equal(img_oci_open(dir, "oci:layout", &cfg, &s, &err), 0);
    check_source(s, "v1", &im);
    check_source(s, NULL, &im);
    check_source(s, im.md, &im);
    /* A tag that is not there: the error lists what is. */
    struct img_image *img = NULL;
    assert_int_equal(img_resolve(s, "v2", NULL, &cfg.limits, &img, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no image \"v2\" (it has: v1)"));
    /* A layer blob whose content is not what its digest says. */
    snprintf(p, sizeof(p), "%s/blobs/sha256/%s", dir, im.ld + 7);
    im.layer[im.layer_len - 1] ^= 1;
    write_file(p, im.layer, im.layer_len);
    err.msg[0] = 0;
    assert_int_equal(read_blob(s, im.ld, (int64_t)im.layer_len, &b, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "content does not match its digest"));
    assert_non_null(strstr(err.msg, im.ld));
    img_source_free(s);
    free(ix);
    image_free(&im);
}

static void test_oci_dir_errors(void **state) {
    struct image im;
    struct img_source_config cfg = {0};
    struct img_source *s = NULL;
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    char dir[600], p[1200], *ix;
    struct gen_config gc = {0};
    struct gen *g = NULL;
    struct gen_spec sp;
    char why[200];

    (void)state;
    image_make(&im);
    img_limits_default(&cfg.limits);
    /* Not a layout. */
    assert_int_equal(img_oci_open(im.dir, "oci:x", &cfg, &s, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "oci:x: not an OCI image layout"));
    /* Two images and no reference. */
    ix = index_json(&im, im.cd);
    snprintf(dir, sizeof(dir), "%s/layout", im.dir);
    layout_dir(&im, dir, ix);
    err.msg[0] = 0;
    assert_int_equal(img_oci_open(dir, "oci:layout", &cfg, &s, &err), 0);
    assert_int_equal(img_resolve(s, NULL, NULL, &cfg.limits, &img, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "more than one image (v1, sha256:"));
    img_source_free(s);
    /* A config that does not match its digest, through the generator: the
     * error names the source and the config. */
    snprintf(p, sizeof(p), "%s/blobs/sha256/%s", dir, im.cd + 7);
    im.config[3] ^= 1;
    write_file(p, im.config, strlen(im.config));
    img_options_default(&gc.img);
    gc.source.limits = gc.img.limits;
    snprintf(p, sizeof(p), "oci:%s:v1", dir);
    assert_int_equal(gen_spec_parse(p, &sp, why, sizeof(why)), 0);
    assert_int_equal(gen_new(&gc, &g), 0);
    err.msg[0] = 0;
    assert_int_equal(gen_add(g, &sp, &err), -EBADMSG);
    assert_true(strncmp(err.msg, p, strlen(p)) == 0);
    assert_non_null(strstr(err.msg, "config sha256:"));
    assert_non_null(strstr(err.msg, "content does not match its digest"));
    gen_free(g);
    free(ix);
    image_free(&im);
}

static void test_oci_archive(void **state) {
    struct image im;
    struct img_source_config cfg = {0};
    struct img_source *s = NULL;
    struct img_error err = {{0}};
    struct member m[5];
    char names[3][100], p[700], *ix;

    (void)state;
    image_make(&im);
    img_limits_default(&cfg.limits);
    ix = index_json(&im, NULL);
    snprintf(p, sizeof(p), "%s/a.tar", im.dir);
    write_tar(p, m, layout_members(&im, m, names, ix), false);
    assert_int_equal(img_oci_archive_open(p, "oci-archive:a.tar", &cfg, &s, &err), 0);
    check_source(s, "v1", &im);
    img_source_free(s);
    /* Compressed: refused, saying so. */
    write_tar(p, m, 5, true);
    assert_int_equal(img_oci_archive_open(p, "oci-archive:a.tar", &cfg, &s, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "compressed (gzip)"));
    /* A blob listed twice. */
    m[4] = m[3];
    err.msg[0] = 0;
    write_tar(p, m, 5, false);
    assert_int_equal(img_oci_archive_open(p, "oci-archive:a.tar", &cfg, &s, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "is there twice"));
    /* A tampered layer. */
    layout_members(&im, m, names, ix);
    im.layer[100] ^= 1;
    write_tar(p, m, 5, false);
    err.msg[0] = 0;
    assert_int_equal(img_oci_archive_open(p, "oci-archive:a.tar", &cfg, &s, &err), 0);
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);
    assert_int_equal(read_blob(s, im.ld, (int64_t)im.layer_len, &b, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "content does not match its digest "));
    img_source_free(s);
    free(ix);
    image_free(&im);
}

/* docker save's legacy form: <id>/layer.tar linking to ../<hex>.tar. */
static void docker_tar(const struct image *im, const char *path, const char *config_name,
                       const char *tags) {
    char cname[100], lname[100], mj[600];
    struct member m[4];

    snprintf(cname, sizeof(cname), "%s.json", im->cd + 7);
    snprintf(lname, sizeof(lname), "%s.tar", im->ld + 7);
    snprintf(mj, sizeof(mj),
             "[{\"Config\":\"%s\",\"RepoTags\":[%s],\"Layers\":[\"abc/layer.tar\"]}]",
             config_name ? config_name : cname, tags);
    m[0] = (struct member){"manifest.json", mj, NULL, 0};
    m[1] = (struct member){config_name ? config_name : cname, im->config, NULL, 0};
    m[2] = (struct member){lname, im->layer, NULL, im->layer_len};
    m[3] = (struct member){"abc/layer.tar", NULL, "../", 0};
    char link[120];
    snprintf(link, sizeof(link), "../%s", lname);
    m[3].link = link;
    write_tar(path, m, 4, false);
}

static void test_docker_archive(void **state) {
    struct image im;
    struct img_source_config cfg = {0};
    struct img_source *s = NULL;
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    char p[700], name[64];
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);

    (void)state;
    image_make(&im);
    img_limits_default(&cfg.limits);
    snprintf(p, sizeof(p), "%s/d.tar", im.dir);
    docker_tar(&im, p, NULL, "\"registry.example/demo/app:1.0\"");
    assert_int_equal(img_docker_archive_open(p, NULL, "docker-archive:d.tar", &cfg, &s, &img, name,
                                             sizeof(name), &err),
                     0);
    assert_string_equal(name, "app");
    assert_string_equal(img->manifest_digest, "");
    assert_string_equal(img->config.digest, im.cd);
    assert_int_equal(img->nlayers, 1);
    assert_string_equal(img->layers[0].digest, im.ld); /* the diff_id */
    assert_int_equal(read_blob(s, im.ld, img->layers[0].size, &b, &err), 0);
    assert_memory_equal(b.data, im.layer, im.layer_len);
    img_image_free(img);
    img_source_free(s);
    /* By tag; a tag that is not there. */
    assert_int_equal(img_docker_archive_open(p, "registry.example/demo/app:1.0", "d", &cfg, &s,
                                             &img, name, sizeof(name), &err),
                     0);
    img_image_free(img);
    img_source_free(s);
    assert_int_equal(
            img_docker_archive_open(p, "other:1", "d", &cfg, &s, &img, name, sizeof(name), &err),
            -ENOENT);
    /* The config's name claims another digest. */
    char fake[100];
    snprintf(fake, sizeof(fake), "%064d.json", 0);
    docker_tar(&im, p, fake, "");
    err.msg[0] = 0;
    assert_int_equal(img_docker_archive_open(p, NULL, "docker-archive:d.tar", &cfg, &s, &img, name,
                                             sizeof(name), &err),
                     -EBADMSG);
    assert_non_null(strstr(err.msg, "docker-archive:d.tar: config"));
    assert_non_null(strstr(err.msg, "does not match its digest"));
    /* A layer that is not its diff_id. */
    im.layer[100] ^= 1;
    docker_tar(&im, p, NULL, "");
    err.msg[0] = 0;
    assert_int_equal(
            img_docker_archive_open(p, NULL, "d", &cfg, &s, &img, name, sizeof(name), &err), 0);
    assert_int_equal(read_blob(s, img->layers[0].digest, img->layers[0].size, &b, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "content does not match its digest"));
    img_image_free(img);
    img_source_free(s);
    image_free(&im);
}

static void test_spec_parse(void **state) {
    struct gen_spec sp;
    char why[300];

    (void)state;
    assert_int_equal(
            gen_spec_parse("docker://reg.example:5000/a/b/app:1.2@sha256:"
                           "1111111111111111111111111111111111111111111111111111111111111111",
                           &sp, why, sizeof(why)),
            0);
    assert_int_equal(sp.kind, GEN_REGISTRY);
    assert_string_equal(sp.host, "reg.example:5000");
    assert_string_equal(sp.repo, "a/b/app");
    assert_true(strncmp(sp.ref, "sha256:1111", 11) == 0);
    assert_string_equal(sp.name, "app");
    assert_int_equal(gen_spec_parse("docker://127.0.0.1:5000/demo/app", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.ref, "latest");
    assert_int_equal(gen_spec_parse("docker://nginx:1.25", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.host, "docker.io");
    assert_string_equal(sp.repo, "nginx");
    assert_string_equal(sp.ref, "1.25");
    assert_int_equal(gen_spec_parse("docker://localhost/x", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.host, "localhost");
    assert_int_equal(gen_spec_parse("docker://h.io/App", &sp, why, sizeof(why)), -EINVAL);
    assert_int_equal(gen_spec_parse("docker://h.io/app@sha256:12", &sp, why, sizeof(why)), -EINVAL);
    assert_int_equal(gen_spec_parse("docker://h.io/app:", &sp, why, sizeof(why)), -EINVAL);
    assert_int_equal(gen_spec_parse("oci:/tmp/l:v1", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.path, "/tmp/l");
    assert_string_equal(sp.ref, "v1");
    assert_string_equal(sp.name, "l");
    assert_int_equal(gen_spec_parse("oci-archive:/x/app.tar", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.name, "app");
    assert_string_equal(sp.ref, "");
    assert_int_equal(gen_spec_parse("docker-archive:d.tar:demo/app:1", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.ref, "demo/app:1");
    assert_int_equal(gen_spec_parse("deb:/c/bash_5.2-1_amd64.deb", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.name, "bash");
    assert_int_equal(gen_spec_parse("rootfs:/srv/root/", &sp, why, sizeof(why)), 0);
    assert_string_equal(sp.name, "root");
    assert_int_equal(gen_spec_parse("oci:", &sp, why, sizeof(why)), -EINVAL);
    assert_int_equal(gen_spec_parse("/just/a/dir", &sp, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "starts with oci:"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_oci_dir),     cmocka_unit_test(test_oci_dir_errors),
            cmocka_unit_test(test_oci_archive), cmocka_unit_test(test_docker_archive),
            cmocka_unit_test(test_spec_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
