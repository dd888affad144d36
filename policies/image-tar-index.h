/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_IMAGE_TAR_INDEX_H
#define KIMA_POLICIES_IMAGE_TAR_INDEX_H

/* The members of an uncompressed tar file (an oci-archive or a
 * docker-archive), indexed once so that each can be served as a region of
 * the file (img_stream_fd) without unpacking anything. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "image.h"

struct tar_member {
    char *name; /* normalised: no "./" in front */
    char *link; /* a symbolic link's target, or NULL for a regular file */
    off_t offset, size;
};

struct tar_index {
    int fd;
    size_t n;
    struct tar_member *v; /* sorted by name */
};

/* Index the regular files and symbolic links of the tar at `path`; `what` names it in errors
 * ("oci-archive:x.tar"). A compressed file, a member name over
 * limits.max_path, more members than limits.max_entries, a name twice or a
 * sparse member is an error. On success *ret owns the open file. */
int tar_index_open(const char *path, const char *what, const struct img_limits *l,
                   struct tar_index *ret, struct img_error *err);
void tar_index_close(struct tar_index *t);

/* The regular file of that name, or NULL. Symbolic links among the
 * members (docker save's "<id>/layer.tar -> ../<hex>.tar") are followed,
 * at most 8, never above the archive's root. */
const struct tar_member *tar_index_find(const struct tar_index *t, const char *name);

/* A whole member of at most `max` bytes into `out`. */
int tar_index_slurp(const struct tar_index *t, const char *name, size_t max, struct kbuf *out,
                    struct img_error *err);

#endif
