/* SPDX-License-Identifier: Apache-2.0 */
/* Index -> manifest -> config: the documents between a reference and the
 * layers of one image, each bounded and checked against its digest. */
#include "image-resolve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "hex.h"
#include "json-util.h"

/* JSON values of one document: far more than any real manifest or config
 * holds (a config's history is a few values a layer), far less than a
 * 4 MiB document of one-byte numbers would cost in jansson's memory. */
#define IMG_JSON_VALUES_MAX 200000

#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_V1       "application/vnd.docker.distribution.manifest.v1+json"
#define MT_DOCKER_V1_JWS   "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"

enum doc_kind {
    DOC_UNKNOWN,
    DOC_INDEX,
    DOC_MANIFEST,
    DOC_SCHEMA1,
};

/* The layer types whose bytes are a tar, plain or compressed (the reader
 * tells the compression from the bytes). Anything else (encrypted layers,
 * artifacts) is not a file system kima can read. */
static const char *const layer_types[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

void img_image_free(struct img_image *img) {
    if (img) {
        free(img->layers);
        free(img);
    }
}

DEFINE_CLEANUP_FUNC(struct img_image, img_image_free)

void img_digest_of(const void *buf, size_t len, const char *like, char *out) {
    bool sha512 = like && strncmp(like, "sha512:", 7) == 0;
    uint8_t md[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned mdlen = 0;

    if (!EVP_Digest(buf, len, md, &mdlen, sha512 ? EVP_sha512() : EVP_sha256(), NULL)) {
        mdlen = 0; /* an empty digest matches nothing */
    }
    hex_encode(md, mdlen, hex);
    snprintf(out, IMG_DIGEST_MAX, "%s:%s", sha512 ? "sha512" : "sha256", hex);
}

static bool platform_word(const char *s, size_t n) {
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

int img_platform_parse(const char *s, char os[64], char arch[64], char variant[64]) {
    const char *a, *v;

    if (!s || !(a = strchr(s, '/'))) {
        return -EINVAL;
    }
    v = strchr(a + 1, '/');
    if (!platform_word(s, (size_t)(a - s)) ||
        !platform_word(a + 1, v ? (size_t)(v - a - 1) : strlen(a + 1)) ||
        (v && !platform_word(v + 1, strlen(v + 1)))) {
        return -EINVAL;
    }
    snprintf(os, 64, "%.*s", (int)(a - s), s);
    snprintf(arch, 64, "%.*s", (int)(v ? v - a - 1 : (long)strlen(a + 1)), a + 1);
    snprintf(variant, 64, "%s", v ? v + 1 : "");
    return 0;
}

/* ---- documents ---- */

static int parse_json(const void *buf, size_t len, const struct img_limits *l, const char *what,
                      json_t **ret, struct img_error *err) {
    char why[256];
    int r;

    if (len > l->max_manifest) {
        return img_error_set(err, -E2BIG,
                             "%s: %zu bytes, more than the %zu allowed (--max-manifest)", what, len,
                             l->max_manifest);
    }
    r = json_parse_bounded(buf, len, (int)l->max_json_depth, IMG_JSON_VALUES_MAX, ret, why,
                           sizeof(why));
    if (r < 0) {
        return img_error_set(err, r, "%s: %s", what, why);
    }
    if (!json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        return img_error_set(err, -EBADMSG, "%s: not a JSON object", what);
    }
    return 0;
}

/* The media type without parameters ("; charset=utf-8") and blanks. */
static void bare_media_type(const char *in, char *out, size_t outsz) {
    size_t n = strcspn(in, "; \t");

    snprintf(out, outsz, "%.*s", (int)n, in);
}

static enum doc_kind kind_of_type(const char *mt) {
    if (strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0) {
        return DOC_INDEX;
    }
    if (strcmp(mt, MT_OCI_MANIFEST) == 0 || strcmp(mt, MT_DOCKER_MANIFEST) == 0) {
        return DOC_MANIFEST;
    }
    if (strcmp(mt, MT_DOCKER_V1) == 0 || strcmp(mt, MT_DOCKER_V1_JWS) == 0) {
        return DOC_SCHEMA1;
    }
    return DOC_UNKNOWN;
}

/* What a document is: by the type its source gives, its own mediaType,
 * its schemaVersion and its shape. The source's type and the document's
 * must not disagree (one document read as two things is how confusion
 * attacks start). */
static int classify(const json_t *j, const char *source_type, const char *what, enum doc_kind *ret,
                    struct img_error *err) {
    char st[256];
    const char *own = json_string_value(json_object_get(j, "mediaType"));
    json_t *sv = json_object_get(j, "schemaVersion");
    enum doc_kind ks, ko;

    bare_media_type(source_type ? source_type : "", st, sizeof(st));
    ks = kind_of_type(st);
    ko = own ? kind_of_type(own) : DOC_UNKNOWN;
    if (ks == DOC_SCHEMA1 || ko == DOC_SCHEMA1 ||
        (json_is_integer(sv) && json_integer_value(sv) == 1)) {
        return img_error_set(err, -EBADMSG,
                             "%s: a Docker schema 1 manifest, which kima does not read (copy the "
                             "image again with a current client to get schema 2)",
                             what);
    }
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        return img_error_set(err, -EBADMSG, "%s: \"schemaVersion\" is not 2", what);
    }
    if (own && ko == DOC_UNKNOWN) {
        return img_error_set(err, -EBADMSG,
                             "%s: media type \"%.100s\" is not an image index or "
                             "manifest kima reads",
                             what, own);
    }
    if (ks != DOC_UNKNOWN && ko != DOC_UNKNOWN && ks != ko) {
        return img_error_set(err, -EBADMSG, "%s: its source says %.100s but it says %.100s", what,
                             st, own);
    }
    *ret = ks != DOC_UNKNOWN ? ks : ko;
    if (*ret == DOC_UNKNOWN) {
        bool m = json_object_get(j, "manifests"), c = json_object_get(j, "config");
        *ret = m && !c ? DOC_INDEX : c && !m ? DOC_MANIFEST : DOC_UNKNOWN;
    }
    if (*ret == DOC_UNKNOWN) {
        return img_error_set(err, -EBADMSG, "%s: neither an image index nor a manifest", what);
    }
    return 0;
}

/* A descriptor: a valid digest and a size >= 0. */
static int parse_descriptor(const json_t *d, const char *what, struct img_blob_ref *ret,
                            const char **ret_media_type, struct img_error *err) {
    const char *digest = json_string_value(json_object_get(d, "digest"));
    json_t *size = json_object_get(d, "size");

    if (!json_is_object(d)) {
        return img_error_set(err, -EBADMSG, "%s: not an object", what);
    }
    if (!img_digest_valid(digest)) {
        return img_error_set(err, -EBADMSG,
                             "%s: \"digest\" is not sha256:<64 hex> or sha512:<128 hex>", what);
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
        return img_error_set(err, -EBADMSG, "%s: \"size\" is not a number >= 0", what);
    }
    snprintf(ret->digest, sizeof(ret->digest), "%s", digest);
    ret->size = json_integer_value(size);
    if (ret_media_type) {
        *ret_media_type = json_string_value(json_object_get(d, "mediaType"));
    }
    return 0;
}

/* ---- indexes ---- */

struct want_platform {
    char os[64], arch[64], variant[64];
};

static bool platform_fits(const json_t *p, const struct want_platform *w) {
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    const char *variant = json_string_value(json_object_get(p, "variant"));

    if (!os || !arch || strcmp(os, w->os) != 0 || strcmp(arch, w->arch) != 0) {
        return false;
    }
    return w->variant[0] == 0 || (variant && strcmp(variant, w->variant) == 0);
}

/* "linux/amd64, linux/arm64/v8" into `out`, for the error that lists what
 * an index offers. */
static void list_platforms(const json_t *manifests, char *out, size_t outsz) {
    size_t i, n = 0;
    json_t *m;

    out[0] = 0;
    json_array_foreach(manifests, i, m) {
        json_t *p = json_object_get(m, "platform");
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *arch = json_string_value(json_object_get(p, "architecture"));
        const char *variant = json_string_value(json_object_get(p, "variant"));
        if (n + 1 >= outsz) {
            break;
        }
        n += (size_t)snprintf(out + n, outsz - n, "%s%.32s/%.32s%s%.32s", n ? ", " : "",
                              os ? os : "?", arch ? arch : "?", variant ? "/" : "",
                              variant ? variant : "");
    }
    if (out[0] == 0) {
        snprintf(out, outsz, "none");
    }
}

/* The entry of the index for the platform; the first that fits. */
static int choose_entry(const json_t *index, const struct want_platform *w, const char *what,
                        struct img_blob_ref *ret, const char **ret_type, struct img_error *err) {
    json_t *manifests = json_object_get(index, "manifests"), *m;
    char label[160], present[512];
    size_t i;
    int r;

    if (!json_is_array(manifests)) {
        return img_error_set(err, -EBADMSG, "%s: \"manifests\" is not an array", what);
    }
    if (json_array_size(manifests) > IMG_INDEX_MAX) {
        return img_error_set(err, -E2BIG, "%s: more than %d manifests", what, IMG_INDEX_MAX);
    }
    json_array_foreach(manifests, i, m) {
        snprintf(label, sizeof(label), "%.100s: manifests[%zu]", what, i);
        if ((r = parse_descriptor(m, label, ret, ret_type, err)) < 0) {
            return r;
        }
    }
    json_array_foreach(manifests, i, m) {
        if (platform_fits(json_object_get(m, "platform"), w)) {
            snprintf(label, sizeof(label), "%.100s: manifests[%zu]", what, i);
            return parse_descriptor(m, label, ret, ret_type, err);
        }
    }
    list_platforms(manifests, present, sizeof(present));
    return img_error_set(err, -ENOENT,
                         "%s: no manifest for platform %s/%s%s%s (it has: %s; choose one with "
                         "--platform)",
                         what, w->os, w->arch, w->variant[0] ? "/" : "", w->variant, present);
}

/* ---- manifests and configs ---- */

static bool is_layer_type(const char *mt) {
    for (size_t i = 0; mt && i < ARRAY_SIZE(layer_types); i++) {
        if (strcmp(mt, layer_types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int parse_layers(const json_t *manifest, const struct img_limits *l, const char *what,
                        struct img_image *img, struct img_error *err) {
    json_t *layers = json_object_get(manifest, "layers"), *d;
    char label[200];
    size_t i;
    int r;

    if (!json_is_array(layers)) {
        return img_error_set(err, -EBADMSG, "%s: \"layers\" is not an array", what);
    }
    if (json_array_size(layers) > l->max_layers) {
        return img_error_set(err, -E2BIG, "%s: %zu layers, more than the %u allowed", what,
                             json_array_size(layers), l->max_layers);
    }
    img->layers = calloc(json_array_size(layers) + 1, sizeof(*img->layers));
    if (!img->layers) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    json_array_foreach(layers, i, d) {
        const char *mt = NULL;
        snprintf(label, sizeof(label), "%.100s: layers[%zu]", what, i);
        if ((r = parse_descriptor(d, label, &img->layers[i], &mt, err)) < 0) {
            return r;
        }
        if (!is_layer_type(mt)) {
            return img_error_set(err, -EBADMSG, "%s: media type \"%.100s\" is not a tar layer",
                                 label, mt ? mt : "(none)");
        }
        img->nlayers++;
    }
    return 0;
}

static int parse_manifest(const json_t *m, const struct img_limits *l, const char *what,
                          struct img_image *img, struct img_error *err) {
    char label[200];
    const char *mt = NULL;
    int r;

    snprintf(label, sizeof(label), "%.100s: config", what);
    if ((r = parse_descriptor(json_object_get(m, "config"), label, &img->config, &mt, err)) < 0) {
        return r;
    }
    if (!mt || (strcmp(mt, MT_OCI_CONFIG) != 0 && strcmp(mt, MT_DOCKER_CONFIG) != 0)) {
        return img_error_set(err, -EBADMSG,
                             "%s: media type \"%.100s\" is not an image config: not a container "
                             "image",
                             label, mt ? mt : "(none)");
    }
    if ((size_t)img->config.size > l->max_manifest) {
        return img_error_set(err, -E2BIG,
                             "%s: %lld bytes, more than the %zu allowed (--max-manifest)", label,
                             (long long)img->config.size, l->max_manifest);
    }
    return parse_layers(m, l, what, img, err);
}

static int config_diff_ids(const json_t *cfg, size_t nlayers, char (*diff_ids)[IMG_DIGEST_MAX],
                           struct img_error *err) {
    json_t *rootfs = json_object_get(cfg, "rootfs");
    json_t *ids = json_object_get(rootfs, "diff_ids"), *d;
    size_t i;

    if (!json_is_array(ids)) {
        return img_error_set(err, -EBADMSG, "config: \"rootfs.diff_ids\" is not an array");
    }
    if (json_array_size(ids) != nlayers) {
        return img_error_set(err, -EBADMSG,
                             "config: %zu rootfs.diff_ids for %zu layers (they must be equal)",
                             json_array_size(ids), nlayers);
    }
    json_array_foreach(ids, i, d) {
        if (!img_digest_valid(json_string_value(d))) {
            return img_error_set(err, -EBADMSG, "config: rootfs.diff_ids[%zu] is not a digest", i);
        }
        if (diff_ids) {
            snprintf(diff_ids[i], IMG_DIGEST_MAX, "%s", json_string_value(d));
        }
    }
    return 0;
}

int img_config_check(const void *buf, size_t len, size_t nlayers, const struct img_limits *l,
                     char *ret_platform, size_t platform_size, char (*diff_ids)[IMG_DIGEST_MAX],
                     struct img_error *err) {
    _cleanup_json_ json_t *cfg = NULL;
    const char *os, *arch, *variant;
    int r;

    if ((r = parse_json(buf, len, l, "config", &cfg, err)) < 0) {
        return r;
    }
    if ((r = config_diff_ids(cfg, nlayers, diff_ids, err)) < 0) {
        return r;
    }
    os = json_string_value(json_object_get(cfg, "os"));
    arch = json_string_value(json_object_get(cfg, "architecture"));
    variant = json_string_value(json_object_get(cfg, "variant"));
    if (ret_platform) {
        snprintf(ret_platform, platform_size, "%.60s%s%.60s%s%.60s", os ? os : "",
                 os && arch ? "/" : "", os && arch ? arch : "", os && arch && variant ? "/" : "",
                 os && arch && variant ? variant : "");
    }
    return 0;
}

/* ---- fetching ---- */

/* A manifest or index by reference, its bytes checked against the digest
 * (and size) that named it, whatever the source checked. */
static int fetch_doc(struct img_source *s, const char *ref, int64_t size,
                     const struct img_limits *l, struct kbuf *body, char *mt, size_t mtsz,
                     char digest[IMG_DIGEST_MAX], struct img_error *err) {
    char computed[IMG_DIGEST_MAX];
    int r;

    kbuf_reset(body);
    r = s->ops->manifest(s, ref, body, mt, mtsz, digest, IMG_DIGEST_MAX, err);
    if (r < 0) {
        return img_error_set(err, r, "manifest %.80s: %s", ref ? ref : "(default)",
                             r == -E2BIG || r == -EFBIG ? "larger than --max-manifest allows"
                                                        : "cannot be read");
    }
    if (body->len > l->max_manifest) {
        return img_error_set(err, -E2BIG, "manifest %.80s: more than %zu bytes (--max-manifest)",
                             ref ? ref : "(default)", l->max_manifest);
    }
    img_digest_of(body->data, body->len, ref && img_digest_valid(ref) ? ref : digest, computed);
    if (ref && img_digest_valid(ref) && strcmp(computed, ref) != 0) {
        return img_error_set(err, -EBADMSG,
                             "manifest %s: content does not match its digest (it hashes to %s)",
                             ref, computed);
    }
    if (size >= 0 && (int64_t)body->len != size) {
        return img_error_set(err, -EBADMSG,
                             "manifest %s: %zu bytes, not the %lld its descriptor gives", ref,
                             body->len, (long long)size);
    }
    if (digest[0] && strcmp(digest, computed) != 0) {
        return img_error_set(err, -EBADMSG,
                             "manifest %.80s: the source says its digest is %s but "
                             "it hashes to %s",
                             ref ? ref : "(default)", digest, computed);
    }
    snprintf(digest, IMG_DIGEST_MAX, "%s", computed);
    return 0;
}

static int fetch_config(struct img_source *s, const struct img_limits *l, const char *platform,
                        struct img_image *img, struct img_error *err) {
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(l->max_manifest + 1);
    struct img_stream *raw = NULL, *v = NULL;
    struct want_platform w;
    int r;

    if ((r = s->ops->blob(s, img->config.digest, img->config.size, &raw, err)) < 0) {
        img_error_prefix(err, "config %s", img->config.digest);
        return r;
    }
    if ((r = img_stream_verified(raw, img->config.digest, img->config.size, &v)) < 0) {
        return img_error_set(err, r, "config %s: cannot check it", img->config.digest);
    }
    if ((r = img_stream_slurp(v, l->max_manifest, &body, err)) < 0 ||
        (r = img_config_check(body.data, body.len, img->nlayers, l, img->platform,
                              sizeof(img->platform), NULL, err)) < 0) {
        img_error_prefix(err, "config %s", img->config.digest);
        return r;
    }
    if (platform && img_platform_parse(platform, w.os, w.arch, w.variant) == 0 &&
        img->index_digest[0] == 0) {
        char want[200];
        snprintf(want, sizeof(want), "%s/%s%s%s", w.os, w.arch, w.variant[0] ? "/" : "", w.variant);
        if (strncmp(img->platform, want, strlen(want)) != 0) {
            return img_error_set(err, -ENOENT, "the image is for %s, not the %s asked for",
                                 img->platform[0] ? img->platform : "no named platform", want);
        }
    }
    return 0;
}

int img_resolve(struct img_source *s, const char *ref, const char *platform,
                const struct img_limits *l, struct img_image **ret, struct img_error *err) {
    _cleanup_(img_image_freep) struct img_image *img = calloc(1, sizeof(*img));
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(l->max_manifest + 1);
    struct img_blob_ref next = {.size = -1};
    struct want_platform w;
    char mt[256], digest[IMG_DIGEST_MAX], what[200];
    const char *cur = ref;
    int r;

    if (!img) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    if (img_platform_parse(platform ? platform : "linux/amd64", w.os, w.arch, w.variant) < 0) {
        return img_error_set(err, -EINVAL, "--platform takes os/arch[/variant]");
    }
    for (unsigned depth = 0;; depth++) {
        _cleanup_json_ json_t *doc = NULL;
        enum doc_kind kind = DOC_UNKNOWN;
        mt[0] = digest[0] = 0;
        if ((r = fetch_doc(s, cur, next.size, l, &body, mt, sizeof(mt), digest, err)) < 0) {
            return r;
        }
        snprintf(what, sizeof(what), "manifest %s", digest);
        if ((r = parse_json(body.data, body.len, l, what, &doc, err)) < 0 ||
            (r = classify(doc, mt, what, &kind, err)) < 0) {
            return r;
        }
        if (kind == DOC_MANIFEST) {
            snprintf(img->manifest_digest, sizeof(img->manifest_digest), "%s", digest);
            if ((r = parse_manifest(doc, l, what, img, err)) < 0) {
                return r;
            }
            break;
        }
        snprintf(what, sizeof(what), "index %s", digest);
        if (depth == IMG_INDEX_DEPTH_MAX) {
            return img_error_set(err, -E2BIG, "%s: indexes nested more than %d deep", what,
                                 IMG_INDEX_DEPTH_MAX);
        }
        if (depth == 0) {
            snprintf(img->index_digest, sizeof(img->index_digest), "%s", digest);
        }
        if ((r = choose_entry(doc, &w, what, &next, NULL, err)) < 0) {
            return r;
        }
        if ((uint64_t)next.size > l->max_manifest) {
            return img_error_set(err, -E2BIG,
                                 "%s: manifest %s of %lld bytes, more than the %zu "
                                 "allowed (--max-manifest)",
                                 what, next.digest, (long long)next.size, l->max_manifest);
        }
        cur = next.digest;
    }
    if ((r = fetch_config(s, l, platform, img, err)) < 0) {
        return r;
    }
    *ret = TAKE_PTR(img);
    return 0;
}
