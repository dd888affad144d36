/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_GENERATE_H
#define KIMA_POLICIES_GENERATE_H

/* The policy generator behind `kimactl policy generate`: SOURCEs (images,
 * directories, Debian packages) read into one golden policy, the union of
 * their files' digests, pinned to the images' digests. */

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "image-resolve.h"
#include "image.h"

/* Digests in match.images at most (the verifier's POLICY_IMAGES_MAX). */
#define GEN_IMAGES_MAX 64
/* Bytes of a policy's name (the verifier's cap). */
#define GEN_NAME_MAX 253

enum gen_kind {
    GEN_OCI,            /* oci:DIR[:REF] */
    GEN_OCI_ARCHIVE,    /* oci-archive:FILE[:REF] */
    GEN_DOCKER_ARCHIVE, /* docker-archive:FILE[:REPO:TAG] */
    GEN_REGISTRY,       /* docker://HOST[:PORT]/REPO[:TAG|@DIGEST] */
    GEN_ROOTFS,         /* rootfs:DIR */
    GEN_DEB,            /* deb:FILE */
};

struct gen_spec {
    enum gen_kind kind;
    char text[4200];             /* as the user wrote it, for errors */
    char path[4096];             /* DIR or FILE */
    char ref[256];               /* tag, digest, REPO:TAG or "" (the default) */
    char host[256];              /* GEN_REGISTRY */
    char repo[256];              /* GEN_REGISTRY */
    char name[GEN_NAME_MAX + 1]; /* the default policy name this source gives */
};

/* Parse one SOURCE. 0, or -EINVAL with a sentence in err. Pure. */
int gen_spec_parse(const char *text, struct gen_spec *ret, char *err, size_t errsz);

struct gen_config {
    struct img_options img;          /* hash, select, threads, limits */
    struct img_source_config source; /* registry settings and platform (limits: img's) */
    /* Filters on the final path (POSIX extended regexes, borrowed). With
     * includes, the files the selection keeps and every regular file an
     * include matches are kept; an exclude drops a file either way. */
    const regex_t *includes, *excludes;
    size_t nincludes, nexcludes;
};

struct gen;

/* Free with gen_free(); `cfg` is borrowed and must outlive it. */
int gen_new(const struct gen_config *cfg, struct gen **ret);
void gen_free(struct gen *g);

/* Read one source and add its files (and an image's digests: the index's,
 * the manifest's and the config's, as the kubelet may report any) to the
 * policy. On error nothing of it is added... except what an earlier pass
 * added; callers drop the generator on error. err names the source, the
 * layer and the entry. */
int gen_add(struct gen *g, const struct gen_spec *spec, struct img_error *err);

size_t gen_file_count(const struct gen *g);

/* Files left out because their path is not UTF-8 (a JSON policy cannot
 * hold it; a measurement of such a file does not pass): how many, and the
 * first GEN_SKIPPED_SHOWN of them quoted for a warning (NULL past those). */
#define GEN_SKIPPED_SHOWN 8
size_t gen_skipped_count(const struct gen *g);
const char *gen_skipped_path(const struct gen *g, size_t i);

struct gen_meta {
    const char *name;     /* NULL: the first source's name */
    bool node;            /* a NodePolicy (no match) */
    const char *ns;       /* PodPolicy: match.namespace, or NULL */
    const json_t *labels; /* PodPolicy: match.podLabels (an object of strings), or NULL */
};

/* The policy: JSON with sorted keys, two-space indent and a final newline,
 * every digest list sorted and without duplicates. *ret is the caller's
 * (free()). -EINVAL (a PodPolicy with no namespace and no label),
 * -E2BIG (more image digests than a policy takes), -ENOMEM. */
int gen_policy_text(const struct gen *g, const struct gen_meta *m, char **ret,
                    struct img_error *err);

/* Write `len` bytes to `path` atomically: a temporary file in the same
 * directory, fsync, rename, fsync of the directory. On error neither the
 * file nor a temporary one is left behind. 0 or a negative errno with err. */
int gen_write_atomic(const char *path, const void *buf, size_t len, struct img_error *err);

#endif
