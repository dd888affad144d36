/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_IMAGE_SOURCES_H
#define KIMA_POLICIES_IMAGE_SOURCES_H

/* Image sources on the local disk: an OCI image layout directory
 * (`oci:DIR`), a tar of one (`oci-archive:FILE`) and a `docker save`
 * tarball (`docker-archive:FILE`). Each returns an img_source (image.h);
 * free it with img_source_free(). */

#include <stddef.h>

#include "image-resolve.h"
#include "image.h"

/* An OCI image layout directory: its index.json names the images (by the
 * annotation org.opencontainers.image.ref.name, or by digest); blobs are
 * blobs/<alg>/<hex>. manifest(NULL) is its only image. `what` names the
 * source in errors. -ENOENT/-ENOTDIR/-EACCES when it cannot be opened,
 * -EBADMSG when it is not a layout. */
int img_oci_open(const char *dir, const char *what, const struct img_source_config *cfg,
                 struct img_source **ret, struct img_error *err);

/* The same layout as an uncompressed tar (skopeo's and podman's
 * oci-archive), read in place: each blob is a region of the file. A
 * compressed archive is refused. */
int img_oci_archive_open(const char *file, const char *what, const struct img_source_config *cfg,
                         struct img_source **ret, struct img_error *err);

/* A docker-archive (`docker save`, skopeo's docker-archive): manifest.json
 * names each image's config and layers (legacy "<id>/layer.tar" or
 * "blobs/sha256/<hex>"); the layers are uncompressed, so each is served
 * under, and checked against, its config's diff_id. `ref` (NULL: the only
 * image) picks an image by one of its RepoTags. On success *ret is the
 * source, *ret_image the image (no index or manifest digest: a
 * docker-archive has none) and `name` (name_size bytes) the last component
 * of its first RepoTag's repository ("" without one). */
int img_docker_archive_open(const char *file, const char *ref, const char *what,
                            const struct img_source_config *cfg, struct img_source **ret,
                            struct img_image **ret_image, char *name, size_t name_size,
                            struct img_error *err);

#endif
