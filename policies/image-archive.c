/* SPDX-License-Identifier: Apache-2.0 */
/* docker-archive: the tarball `docker save` and skopeo write. Its
 * manifest.json is not a registry manifest: it names, per image, the config
 * and the layer members, which are uncompressed tars whose digests are the
 * config's rootfs.diff_ids. So every layer is checked against its diff_id,
 * and the config against its digest (its name says it). */
#include "image-sources.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "image-tar-index.h"
#include "json-util.h"

#define DOCKER_MANIFEST_VALUES_MAX 100000

struct docker_layer {
    char diff_id[IMG_DIGEST_MAX];
    const char *member; /* into the archive's manifest.json, kept while the source lives */
};

struct docker_source {
    struct img_source base;
    struct img_limits limits;
    struct tar_index tar;
    json_t *manifest; /* manifest.json, owning the member names */
    char config_digest[IMG_DIGEST_MAX];
    const char *config_member;
    size_t nlayers;
    struct docker_layer *layers;
};

static int docker_manifest(struct img_source *s, const char *ref, struct kbuf *body,
                           char *media_type, size_t media_type_size, char *digest,
                           size_t digest_size, struct img_error *err) {
    (void)ref, (void)body, (void)media_type, (void)media_type_size, (void)digest, (void)digest_size;
    return img_error_set(err, -EOPNOTSUPP, "%s: a docker-archive has no registry manifest",
                         s->name);
}

static int docker_blob(struct img_source *s, const char *digest, int64_t size,
                       struct img_stream **ret, struct img_error *err) {
    struct docker_source *d = (struct docker_source *)s;
    const char *member = NULL;
    const struct tar_member *m;
    int r;

    if (digest && strcmp(digest, d->config_digest) == 0) {
        member = d->config_member;
    }
    for (size_t i = 0; !member && digest && i < d->nlayers; i++) {
        if (strcmp(digest, d->layers[i].diff_id) == 0) {
            member = d->layers[i].member;
        }
    }
    if (!member || !(m = tar_index_find(&d->tar, member))) {
        return img_error_set(err, -EBADMSG, "blob %.140s: not in the archive",
                             digest ? digest : "(none)");
    }
    if (size >= 0 && m->size != size) {
        return img_error_set(err, -EBADMSG, "blob %s: %lld bytes, not %lld", digest,
                             (long long)m->size, (long long)size);
    }
    r = img_stream_fd(d->tar.fd, m->offset, m->size, ret);
    return r < 0 ? img_error_set(err, r, "out of memory") : 0;
}

static void docker_free(struct img_source *s) {
    struct docker_source *d = (struct docker_source *)s;

    tar_index_close(&d->tar);
    json_decref(d->manifest);
    free(d->layers);
    free(d);
}

static const struct img_source_ops docker_ops = {
        .manifest = docker_manifest,
        .blob = docker_blob,
        .free = docker_free,
};

DEFINE_CLEANUP_FUNC(struct img_source, img_source_free)
DEFINE_CLEANUP_FUNC(struct img_image, img_image_free)

static bool has_tag(const json_t *entry, const char *ref) {
    json_t *tags = json_object_get(entry, "RepoTags"), *t;
    size_t i;

    json_array_foreach(tags, i, t) {
        if (json_is_string(t) && strcmp(json_string_value(t), ref) == 0) {
            return true;
        }
    }
    return false;
}

/* The image of manifest.json that `ref` names by a RepoTag; NULL: the only
 * one. */
static int choose_image(const json_t *manifest, const char *ref, const json_t **ret,
                        struct img_error *err) {
    const json_t *found = NULL;
    json_t *e;
    size_t i;

    if (!json_is_array(manifest) || json_array_size(manifest) == 0 ||
        json_array_size(manifest) > IMG_INDEX_MAX) {
        return img_error_set(err, -EBADMSG, "manifest.json: not an array of 1 to %d images",
                             IMG_INDEX_MAX);
    }
    json_array_foreach(manifest, i, e) {
        if (!ref || has_tag(e, ref)) {
            if (found) {
                return img_error_set(err, -EBADMSG,
                                     "manifest.json: more than one image%s%s; "
                                     "name one with docker-archive:FILE:REPO:TAG",
                                     ref ? " is tagged " : "", ref ? ref : "");
            }
            found = e;
        }
    }
    if (!found) {
        return img_error_set(err, -ENOENT, "manifest.json: no image tagged \"%.200s\"", ref);
    }
    *ret = found;
    return 0;
}

/* A member name from manifest.json: a string of at most max_path bytes. */
static const char *member_name(const json_t *v, const struct img_limits *l) {
    const char *s = json_string_value(v);

    return s && s[0] && strlen(s) <= l->max_path ? s : NULL;
}

/* "<64 hex>.json" (legacy) or "blobs/sha256/<64 hex>": the digest the
 * config's name claims, or "" when the name claims none. */
static void claimed_digest(const char *member, char out[IMG_DIGEST_MAX]) {
    const char *base = strrchr(member, '/');
    size_t n;

    base = base ? base + 1 : member;
    n = strspn(base, "0123456789abcdef");
    out[0] = 0;
    if (n == 64 && (base[64] == 0 || strcmp(base + 64, ".json") == 0)) {
        snprintf(out, IMG_DIGEST_MAX, "sha256:%.64s", base);
    }
}

static int read_config(struct docker_source *d, const json_t *entry, struct img_image *img,
                       char (*diff_ids)[IMG_DIGEST_MAX], struct img_error *err) {
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(d->limits.max_manifest + 1);
    char claimed[IMG_DIGEST_MAX];
    int r;

    d->config_member = member_name(json_object_get(entry, "Config"), &d->limits);
    if (!d->config_member) {
        return img_error_set(err, -EBADMSG, "manifest.json: \"Config\" is not a member name");
    }
    if ((r = tar_index_slurp(&d->tar, d->config_member, d->limits.max_manifest, &body, err)) < 0) {
        return r == -ENOENT ? -EBADMSG : r;
    }
    img_digest_of(body.data, body.len, NULL, d->config_digest);
    claimed_digest(d->config_member, claimed);
    if (claimed[0] && strcmp(claimed, d->config_digest) != 0) {
        return img_error_set(err, -EBADMSG,
                             "config \"%.200s\": content does not match its digest "
                             "%s (it hashes to %s)",
                             d->config_member, claimed, d->config_digest);
    }
    snprintf(img->config.digest, sizeof(img->config.digest), "%s", d->config_digest);
    img->config.size = (int64_t)body.len;
    r = img_config_check(body.data, body.len, d->nlayers, &d->limits, img->platform,
                         sizeof(img->platform), diff_ids, err);
    if (r < 0) {
        img_error_prefix(err, "config \"%.200s\"", d->config_member);
    }
    return r;
}

/* Layers[i] and diff_ids[i] paired: the member to serve under each diff_id. */
static int pair_layers(struct docker_source *d, const json_t *layers,
                       char (*diff_ids)[IMG_DIGEST_MAX], struct img_image *img,
                       struct img_error *err) {
    size_t i;
    json_t *v;

    json_array_foreach(layers, i, v) {
        const char *member = member_name(v, &d->limits);
        const struct tar_member *m = member ? tar_index_find(&d->tar, member) : NULL;
        if (!m) {
            return img_error_set(err, -EBADMSG,
                                 "manifest.json: Layers[%zu] is not a member of "
                                 "the archive",
                                 i);
        }
        d->layers[i].member = member;
        snprintf(d->layers[i].diff_id, IMG_DIGEST_MAX, "%s", diff_ids[i]);
        img->layers[i] = (struct img_blob_ref){.size = m->size};
        snprintf(img->layers[i].digest, IMG_DIGEST_MAX, "%s", diff_ids[i]);
    }
    img->nlayers = d->nlayers;
    return 0;
}

static int read_image(struct docker_source *d, const json_t *entry, struct img_image *img,
                      struct img_error *err) {
    json_t *layers = json_object_get(entry, "Layers");
    _cleanup_free_ char(*diff_ids)[IMG_DIGEST_MAX] = NULL;
    int r;

    if (!json_is_array(layers)) {
        return img_error_set(err, -EBADMSG, "manifest.json: \"Layers\" is not an array");
    }
    if (json_array_size(layers) > d->limits.max_layers) {
        return img_error_set(err, -E2BIG, "manifest.json: %zu layers, more than the %u allowed",
                             json_array_size(layers), d->limits.max_layers);
    }
    d->nlayers = json_array_size(layers);
    diff_ids = calloc(d->nlayers + 1, sizeof(*diff_ids));
    d->layers = calloc(d->nlayers + 1, sizeof(*d->layers));
    img->layers = calloc(d->nlayers + 1, sizeof(*img->layers));
    if (!diff_ids || !d->layers || !img->layers) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    if ((r = read_config(d, entry, img, diff_ids, err)) < 0) {
        return r;
    }
    return pair_layers(d, layers, diff_ids, img, err);
}

/* The last component of the first RepoTag's repository. */
static void repo_name(const json_t *entry, char *out, size_t outsz) {
    const char *tag = json_string_value(json_array_get(json_object_get(entry, "RepoTags"), 0));
    const char *slash, *colon;

    out[0] = 0;
    if (!tag) {
        return;
    }
    slash = strrchr(tag, '/');
    slash = slash ? slash + 1 : tag;
    colon = strchr(slash, ':');
    snprintf(out, outsz, "%.*s", (int)(colon ? colon - slash : (long)strlen(slash)), slash);
}

static int parse_manifest_json(struct docker_source *d, struct img_error *err) {
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(d->limits.max_manifest + 1);
    char why[256];
    int r;

    r = tar_index_slurp(&d->tar, "manifest.json", d->limits.max_manifest, &body, err);
    if (r < 0) {
        return r == -ENOENT ? img_error_set(err, -EBADMSG, "not a docker-archive") : r;
    }
    r = json_parse_bounded((const char *)body.data, body.len, (int)d->limits.max_json_depth,
                           DOCKER_MANIFEST_VALUES_MAX, &d->manifest, why, sizeof(why));
    return r < 0 ? img_error_set(err, r, "manifest.json: %s", why) : 0;
}

int img_docker_archive_open(const char *file, const char *ref, const char *what,
                            const struct img_source_config *cfg, struct img_source **ret,
                            struct img_image **ret_image, char *name, size_t name_size,
                            struct img_error *err) {
    _cleanup_(img_source_freep) struct img_source *src = NULL;
    _cleanup_(img_image_freep) struct img_image *img = calloc(1, sizeof(*img));
    struct docker_source *d = calloc(1, sizeof(*d));
    const json_t *entry = NULL;
    int r;

    if (!d || !img) {
        free(d);
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    d->base.ops = &docker_ops;
    snprintf(d->base.name, sizeof(d->base.name), "%s", what);
    d->limits = cfg->limits;
    d->tar.fd = -1;
    src = &d->base;
    if ((r = tar_index_open(file, what, &cfg->limits, &d->tar, err)) < 0) {
        return r;
    }
    if ((r = parse_manifest_json(d, err)) < 0 ||
        (r = choose_image(d->manifest, ref, &entry, err)) < 0 ||
        (r = read_image(d, entry, img, err)) < 0) {
        img_error_prefix(err, "%s", what);
        return r;
    }
    repo_name(entry, name, name_size);
    *ret = TAKE_PTR(src);
    *ret_image = TAKE_PTR(img);
    return 0;
}
