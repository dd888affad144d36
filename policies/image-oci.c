/* SPDX-License-Identifier: Apache-2.0 */
/* OCI image layouts: a directory (oci:DIR) or a tar of one
 * (oci-archive:FILE). Both read index.json to find an image and serve
 * blobs/<alg>/<hex>; they differ only in where a named file's bytes are. */
#include "image-sources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "image-tar-index.h"
#include "json-util.h"

#define REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"
/* JSON values of index.json: a layout of a thousand images is far below. */
#define OCI_INDEX_VALUES_MAX 100000

struct oci_source {
    struct img_source base;
    struct img_limits limits;
    int dirfd;            /* oci:DIR, or -1 */
    struct tar_index tar; /* oci-archive:FILE (tar.fd >= 0) */
};

/* ---- a stream that owns its descriptor ---- */

struct owned_stream {
    struct img_stream s;
    struct img_stream *inner;
    int fd;
};

static ssize_t owned_read(struct img_stream *s, void *buf, size_t n) {
    struct owned_stream *o = (struct owned_stream *)s;
    ssize_t k = o->inner->read(o->inner, buf, n);

    if (k < 0) {
        snprintf(s->err, sizeof(s->err), "%s", o->inner->err);
    }
    return k;
}

static void owned_close(struct img_stream *s) {
    struct owned_stream *o = (struct owned_stream *)s;

    img_stream_close(o->inner);
    close(o->fd);
    free(o);
}

/* ---- files of the layout ---- */

/* The file `name` of the layout (a fixed name or blobs/<alg>/<hex>, never
 * anything from the input): its size and a stream of it. */
static int open_file(struct oci_source *o, const char *name, int64_t *ret_size,
                     struct img_stream **ret, struct img_error *err) {
    struct owned_stream *w;
    struct stat st;
    int r, fd;

    if (o->dirfd < 0) {
        const struct tar_member *m = tar_index_find(&o->tar, name);
        if (!m) {
            return img_error_set(err, -ENOENT, "the archive has no %s", name);
        }
        *ret_size = m->size;
        r = img_stream_fd(o->tar.fd, m->offset, m->size, ret);
        return r < 0 ? img_error_set(err, r, "out of memory") : 0;
    }
    fd = openat(o->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = fd < 0 ? -errno : -EBADMSG;
        if (fd >= 0) {
            close(fd);
        }
        return img_error_set(err, r, "%s: %s", name,
                             r == -EBADMSG ? "not a regular file" : strerror(-r));
    }
    if (!(w = calloc(1, sizeof(*w))) || img_stream_fd(fd, 0, st.st_size, &w->inner) < 0) {
        free(w);
        close(fd);
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    w->s.read = owned_read;
    w->s.close = owned_close;
    w->fd = fd;
    *ret_size = st.st_size;
    *ret = &w->s;
    return 0;
}

static int slurp_file(struct oci_source *o, const char *name, struct kbuf *out,
                      struct img_error *err) {
    struct img_stream *s = NULL;
    int64_t size = 0;
    int r;

    if ((r = open_file(o, name, &size, &s, err)) < 0) {
        return r;
    }
    if ((uint64_t)size > o->limits.max_manifest) {
        img_stream_close(s);
        return img_error_set(err, -E2BIG,
                             "%s: %lld bytes, more than the %zu allowed "
                             "(--max-manifest)",
                             name, (long long)size, o->limits.max_manifest);
    }
    r = img_stream_slurp(s, o->limits.max_manifest, out, err);
    if (r < 0) {
        img_error_prefix(err, "%s", name);
    }
    return r;
}

static int blob_name(const char *digest, char *out, size_t outsz) {
    const char *colon;

    if (!img_digest_valid(digest)) {
        return -EINVAL;
    }
    colon = strchr(digest, ':');
    snprintf(out, outsz, "blobs/%.*s/%s", (int)(colon - digest), digest, colon + 1);
    return 0;
}

static int oci_blob(struct img_source *s, const char *digest, int64_t size, struct img_stream **ret,
                    struct img_error *err) {
    struct oci_source *o = (struct oci_source *)s;
    char name[200];
    int64_t have = 0;
    int r;

    if (blob_name(digest, name, sizeof(name)) < 0) {
        return img_error_set(err, -EBADMSG, "blob \"%.140s\": not a digest", digest);
    }
    if ((r = open_file(o, name, &have, ret, err)) < 0) {
        return r == -ENOENT ? img_error_set(err, -EBADMSG, "blob %s is missing", digest) : r;
    }
    if (size >= 0 && have != size) {
        img_stream_close(*ret);
        return img_error_set(err, -EBADMSG,
                             "blob %s: %lld bytes, not the %lld its descriptor "
                             "gives",
                             digest, (long long)have, (long long)size);
    }
    return 0;
}

/* ---- index.json ---- */

/* "a, b, c": the images index.json names, for the error that asks for one. */
static void list_refs(const json_t *manifests, char *out, size_t outsz) {
    size_t i, n = 0;
    json_t *m;

    out[0] = 0;
    json_array_foreach(manifests, i, m) {
        const char *name = json_string_value(
                json_object_get(json_object_get(m, "annotations"), REF_NAME_ANNOTATION));
        const char *d = json_string_value(json_object_get(m, "digest"));
        if (n + 1 < outsz) {
            n += (size_t)snprintf(out + n, outsz - n, "%s%.140s", n ? ", " : "",
                                  name ? name
                                  : d  ? d
                                       : "?");
        }
    }
}

/* The entry of index.json that `ref` names: by ref.name annotation or by
 * digest; NULL: the only one. */
static int find_entry(const json_t *index, const char *ref, const json_t **ret,
                      struct img_error *err) {
    json_t *manifests = json_object_get(index, "manifests"), *m, *found = NULL;
    char names[600];
    size_t i;

    if (!json_is_array(manifests) || json_array_size(manifests) > IMG_INDEX_MAX) {
        return img_error_set(err, -EBADMSG,
                             "index.json: \"manifests\" is not an array of at most "
                             "%d entries",
                             IMG_INDEX_MAX);
    }
    json_array_foreach(manifests, i, m) {
        const char *name = json_string_value(
                json_object_get(json_object_get(m, "annotations"), REF_NAME_ANNOTATION));
        const char *d = json_string_value(json_object_get(m, "digest"));
        bool hit = !ref || (name && strcmp(name, ref) == 0) || (d && strcmp(d, ref) == 0);
        if (hit && found) {
            list_refs(manifests, names, sizeof(names));
            return img_error_set(err, -EBADMSG, "%s%s%s names more than one image (%s)",
                                 ref ? "\"" : "", ref ? ref : "the layout", ref ? "\"" : "", names);
        }
        found = hit ? m : found;
    }
    if (!found) {
        list_refs(manifests, names, sizeof(names));
        return img_error_set(err, -ENOENT, "no image \"%.200s\" (it has: %s)", ref ? ref : "",
                             names[0] ? names : "none");
    }
    *ret = found;
    return 0;
}

static int read_index(struct oci_source *o, json_t **ret, struct img_error *err) {
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(o->limits.max_manifest + 1);
    struct img_error e = {{0}};
    char why[256];
    int r;

    if ((r = slurp_file(o, "index.json", &body, &e)) < 0) {
        return r == -ENOENT ? img_error_set(err, -EBADMSG, "not an OCI image layout: no index.json")
                            : img_error_set(err, r, "%s", e.msg);
    }
    r = json_parse_bounded((const char *)body.data, body.len, (int)o->limits.max_json_depth,
                           OCI_INDEX_VALUES_MAX, ret, why, sizeof(why));
    if (r < 0) {
        return img_error_set(err, r, "index.json: %s", why);
    }
    if (!json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        return img_error_set(err, -EBADMSG, "index.json: not a JSON object");
    }
    return 0;
}

static int oci_manifest(struct img_source *s, const char *ref, struct kbuf *body, char *media_type,
                        size_t media_type_size, char *digest, size_t digest_size,
                        struct img_error *err) {
    struct oci_source *o = (struct oci_source *)s;
    _cleanup_json_ json_t *index = NULL;
    const json_t *entry = NULL;
    struct img_error ferr = {{0}};
    struct img_stream *raw = NULL, *v = NULL;
    const char *d = ref, *mt = "";
    int64_t size = -1;
    int r;

    if ((r = read_index(o, &index, err)) < 0) {
        return r;
    }
    /* A digest index.json does not name is still a blob of the layout. */
    r = find_entry(index, ref, &entry, &ferr);
    if (r < 0 && !(r == -ENOENT && ref && img_digest_valid(ref))) {
        return img_error_set(err, r, "%s", ferr.msg);
    }
    if (entry) {
        json_t *js = json_object_get(entry, "size");
        d = json_string_value(json_object_get(entry, "digest"));
        mt = json_string_value(json_object_get(entry, "mediaType"));
        mt = mt ? mt : "";
        size = json_is_integer(js) ? json_integer_value(js) : -2;
        if (!img_digest_valid(d) || size < 0) {
            return img_error_set(err, -EBADMSG,
                                 "index.json: the entry for %.100s has no valid "
                                 "digest and size",
                                 ref ? ref : "the image");
        }
    }
    if ((size >= 0 && (uint64_t)size > o->limits.max_manifest)) {
        return img_error_set(err, -E2BIG,
                             "manifest %s: %lld bytes, more than the %zu allowed "
                             "(--max-manifest)",
                             d, (long long)size, o->limits.max_manifest);
    }
    if ((r = oci_blob(s, d, size, &raw, err)) < 0 ||
        (r = img_stream_verified(raw, d, size, &v)) < 0 ||
        (r = img_stream_slurp(v, o->limits.max_manifest, body, err)) < 0) {
        img_error_prefix(err, "manifest %s", d);
        return r;
    }
    snprintf(media_type, media_type_size, "%s", mt);
    snprintf(digest, digest_size, "%s", d);
    return 0;
}

static void oci_free(struct img_source *s) {
    struct oci_source *o = (struct oci_source *)s;

    if (o->dirfd >= 0) {
        close(o->dirfd);
    }
    tar_index_close(&o->tar);
    free(o);
}

static const struct img_source_ops oci_ops = {
        .manifest = oci_manifest,
        .blob = oci_blob,
        .free = oci_free,
};

/* The oci-layout file: {"imageLayoutVersion": "1.x.y"}. */
static int check_layout(struct oci_source *o, struct img_error *err) {
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(4097);
    struct img_error e = {{0}};
    _cleanup_json_ json_t *j = NULL;
    const char *v;
    char why[256];
    int r;

    if ((r = slurp_file(o, "oci-layout", &body, &e)) < 0) {
        return r == -ENOENT
                       ? img_error_set(err, -EBADMSG, "not an OCI image layout: no oci-layout file")
                       : img_error_set(err, r, "%s", e.msg);
    }
    if (json_parse_bounded((const char *)body.data, body.len, 4, 64, &j, why, sizeof(why)) < 0 ||
        !(v = json_string_value(json_object_get(j, "imageLayoutVersion"))) ||
        strncmp(v, "1.", 2) != 0) {
        return img_error_set(err, -EBADMSG, "oci-layout: not {\"imageLayoutVersion\": \"1.x\"}");
    }
    return 0;
}

static int oci_new(const char *what, const struct img_source_config *cfg, struct oci_source **ret,
                   struct img_error *err) {
    struct oci_source *o = calloc(1, sizeof(*o));

    if (!o) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    o->base.ops = &oci_ops;
    snprintf(o->base.name, sizeof(o->base.name), "%s", what);
    o->limits = cfg->limits;
    o->dirfd = -1;
    o->tar.fd = -1;
    *ret = o;
    return 0;
}

int img_oci_open(const char *dir, const char *what, const struct img_source_config *cfg,
                 struct img_source **ret, struct img_error *err) {
    struct oci_source *o = NULL;
    int r;

    if ((r = oci_new(what, cfg, &o, err)) < 0) {
        return r;
    }
    o->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (o->dirfd < 0) {
        r = -errno;
        oci_free(&o->base);
        return img_error_set(err, r, "%s: cannot open the directory: %s", what, strerror(-r));
    }
    if ((r = check_layout(o, err)) < 0) {
        img_error_prefix(err, "%s", what);
        oci_free(&o->base);
        return r;
    }
    *ret = &o->base;
    return 0;
}

int img_oci_archive_open(const char *file, const char *what, const struct img_source_config *cfg,
                         struct img_source **ret, struct img_error *err) {
    struct oci_source *o = NULL;
    int r;

    if ((r = oci_new(what, cfg, &o, err)) < 0) {
        return r;
    }
    if ((r = tar_index_open(file, what, &cfg->limits, &o->tar, err)) < 0) {
        oci_free(&o->base);
        return r;
    }
    if ((r = check_layout(o, err)) < 0) {
        img_error_prefix(err, "%s", what);
        oci_free(&o->base);
        return r;
    }
    *ret = &o->base;
    return 0;
}
