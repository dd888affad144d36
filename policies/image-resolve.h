/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_IMAGE_RESOLVE_H
#define KIMA_POLICIES_IMAGE_RESOLVE_H

/* From a reference to the blobs of one image: an index (OCI image index or
 * Docker manifest list) is resolved to the manifest of one platform, the
 * manifest (OCI or Docker v2 schema 2) to its config and layers, the config
 * to its diff_ids. Every document is capped (limits.max_manifest bytes,
 * limits.max_json_depth nesting, limits.max_layers layers) and checked
 * against the digest that named it. Docker schema 1 is refused. */

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* "sha512:" and 128 hex digits, and the NUL. */
#define IMG_DIGEST_MAX 136
/* Entries of one index. */
#define IMG_INDEX_MAX 1024
/* Indexes inside indexes, followed at most this deep. */
#define IMG_INDEX_DEPTH_MAX 4

struct img_blob_ref {
    char digest[IMG_DIGEST_MAX];
    int64_t size; /* -1: unknown */
};

/* One image, resolved. */
struct img_image {
    char index_digest[IMG_DIGEST_MAX];    /* the outermost index, "" if none */
    char manifest_digest[IMG_DIGEST_MAX]; /* "" when the source has none (docker-archive) */
    struct img_blob_ref config;           /* its digest is the image ID */
    char platform[128];                   /* "os/arch[/variant]" from the config, or "" */
    size_t nlayers;
    struct img_blob_ref *layers; /* the blobs to read, lowest first */
};

void img_image_free(struct img_image *img);

/* Resolve `ref` (NULL: the source's default) of `s`. `platform`
 * ("os/arch[/variant]", NULL: linux/amd64) chooses from an index; given
 * explicitly, it must also agree with the config of a plain manifest. On
 * success *ret is a new image (free with img_image_free()); on failure a
 * negative errno (-EBADMSG malformed or a digest that does not match,
 * -E2BIG over a cap, -ENOENT no such platform) and err says why. */
int img_resolve(struct img_source *s, const char *ref, const char *platform,
                const struct img_limits *l, struct img_image **ret, struct img_error *err);

/* Check an image config's bytes: a JSON object (within the caps) whose
 * rootfs.diff_ids holds exactly `nlayers` valid digests. When `ret_platform`
 * is given, "os/arch[/variant]" of the config goes there ("" if it names
 * none). When `diff_ids` is given, the diff_ids are copied to it
 * (`nlayers` entries). 0 or -EBADMSG/-E2BIG with err set. */
int img_config_check(const void *buf, size_t len, size_t nlayers, const struct img_limits *l,
                     char *ret_platform, size_t platform_size, char (*diff_ids)[IMG_DIGEST_MAX],
                     struct img_error *err);

/* "os/arch[/variant]" into its parts (each at most 63 bytes, [a-z0-9_.-]).
 * 0 or -EINVAL. */
int img_platform_parse(const char *s, char os[64], char arch[64], char variant[64]);

/* The sha256 of `len` bytes as "sha256:<hex>" (out: IMG_DIGEST_MAX bytes),
 * or with the algorithm `like` names ("sha512:..."; NULL: sha256). */
void img_digest_of(const void *buf, size_t len, const char *like, char *out);

#endif
