/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_IMAGE_H
#define KIMA_POLICIES_IMAGE_H

/* Container images and file systems read for golden policies: the types
 * shared by the layer reader (image-layer.c, image-tree.c), the image
 * sources (image-oci.c, image-archive.c, image-registry.c) and the
 * generator (generate.c).
 *
 * Everything here is untrusted input: every size is capped (struct
 * img_limits), every blob is checked against its digest before it is
 * believed, and every error is a sentence that names the image, the layer
 * and the entry. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "hash-alg.h"
#include "macro.h"

/* ---- errors ---- */

#define IMG_ERROR_MAX 1024

struct img_error {
    char msg[IMG_ERROR_MAX];
};

/* Set the message, unless one is set already (the first error is the
 * cause; later ones are its consequences). Returns `rc` so that
 * `return img_error_set(err, -EBADMSG, "...")` reads naturally. */
int img_error_set(struct img_error *err, int rc, const char *fmt, ...) _printf_(3, 4);
/* Put "<context>: " in front of the message (the image, then the layer),
 * unless the message starts with that context already. */
void img_error_prefix(struct img_error *err, const char *fmt, ...) _printf_(2, 3);

/* ---- limits ---- */

struct img_limits {
    uint64_t max_bytes;      /* uncompressed bytes of all layers together */
    uint64_t max_entries;    /* tar entries of all layers together */
    uint64_t max_meta_bytes; /* entry metadata in memory: paths, link targets and
                              * IMG_META_ENTRY_COST an entry, of all layers
                              * together; and, on its own, the file tree's nodes */
    uint64_t max_walk;       /* path components walked resolving the entries' parent
                              * directories and the links on the way, per image */
    size_t max_path;         /* bytes of an entry's path or link target */
    size_t max_manifest;     /* bytes of a manifest, index, config or auth file */
    unsigned max_json_depth; /* nesting of those JSON documents */
    unsigned max_layers;     /* layers of one image */
    unsigned timeout_s;      /* a registry that sends nothing for this long */
};

/* What an entry costs in memory beside its path and link target. */
#define IMG_META_ENTRY_COST 64

/* 64 GiB, 2,000,000 entries, 128 MiB of entry metadata, 128,000,000
 * components walked (64 an entry at the entry cap), 4,096-byte paths,
 * 4 MiB manifests, depth 32, 256 layers, 60 s. */
void img_limits_default(struct img_limits *l);

/* ---- options ---- */

enum img_select {
    IMG_SELECT_MEASURED, /* regular files that are ELF or have an execute bit */
    IMG_SELECT_ALL,      /* every regular file */
};

struct img_options {
    enum hash_alg hash; /* of the file digests: sha256 (default) .. sha512, sha1 */
    enum img_select select;
    unsigned threads; /* 0: one per online CPU */
    struct img_limits limits;
};

void img_options_default(struct img_options *o);

/* ---- streams ---- */

/* A stream of bytes read once, front to back: a file, a region of an
 * archive, a registry response. read() returns the bytes read, 0 at the
 * end, or a negative errno with a sentence in `err`. close() frees it. */
struct img_stream {
    ssize_t (*read)(struct img_stream *s, void *buf, size_t n);
    void (*close)(struct img_stream *s);
    char err[512];
};

static inline void img_stream_close(struct img_stream *s) {
    if (s) {
        s->close(s);
    }
}

/* The `len` bytes of an open file from `offset` (len < 0: to the end of the
 * file), read with pread so that several streams share one descriptor. The
 * descriptor stays the caller's and must outlive the stream. */
int img_stream_fd(int fd, off_t offset, off_t len, struct img_stream **ret);

/* A stream that passes `inner` through and checks it: at its end, the bytes
 * must number `size` (-1: any) and hash to `digest` ("sha256:<hex>" or
 * "sha512:<hex>"); otherwise its last read fails with -EBADMSG ("content
 * does not match its digest ..." or "... bytes, not the N its descriptor
 * gives"). More bytes than `size` fail as soon as they arrive. Takes
 * `inner` (closed with it, also on error). -EINVAL for a digest that is not
 * one of those two shapes. */
int img_stream_verified(struct img_stream *inner, const char *digest, int64_t size,
                        struct img_stream **ret);

/* Read a whole stream of at most `max` bytes into `out` (-EFBIG past it)
 * and close it. Errors carry the stream's sentence into `err`. */
int img_stream_slurp(struct img_stream *s, size_t max, struct kbuf *out, struct img_error *err);

/* True for "sha256:" followed by 64 lowercase hex digits, or "sha512:" by
 * 128: the digests kima takes from manifests and registries. */
bool img_digest_valid(const char *digest);

/* ---- layers and file systems (image-layer.c, image-tree.c) ---- */

/* The entries of one layer, read once and hashed. */
struct img_layer;

/* Opens layer i for img_layers_read(); called from its worker threads, at
 * most o->threads at a time, so it must be thread-safe. The stream it
 * returns should already be an img_stream_verified() one. */
typedef int (*img_open_fn)(void *ctx, size_t i, struct img_stream **ret, struct img_error *err);

/* Read `n` layers (tar: uncompressed, gzip, zstd or xz, detected from the
 * bytes), several at once and hashing on every core, each to its end (so
 * that a verified stream checks its digest). labels[i] names layer i in
 * errors ("layer 2/5 sha256:1a2b..."). On success ret[0..n-1] are set; on
 * error nothing is, and err says "<label>: entry \"<path>\": <what>". */
int img_layers_read(size_t n, img_open_fn open, void *ctx, const char *const *labels,
                    const struct img_options *o, struct img_layer **ret, struct img_error *err);
void img_layer_free(struct img_layer *l);

/* The data.tar.* of a Debian package (an ar archive), as one layer. */
int img_deb_read(const char *path, const struct img_options *o, struct img_layer **ret,
                 struct img_error *err);

/* A file system: layers applied in order (whiteouts, opaque directories,
 * hard links, symbolic links resolved inside the root). */
struct img_tree;

int img_tree_new(struct img_tree **ret);
void img_tree_free(struct img_tree *t);
/* Apply a layer on top of what is there. */
int img_tree_apply(struct img_tree *t, const struct img_layer *l, const struct img_options *o,
                   struct img_error *err);
/* Add a directory's files as they are (rootfs:DIR), without following
 * symbolic links out of it or crossing into other file systems. */
int img_tree_add_dir(struct img_tree *t, const char *dir, const struct img_options *o,
                     struct img_error *err);

/* The selected regular files, in byte order of their paths: each path as
 * the kernel logs it (absolute, directory links inside the image
 * resolved; every name of a hard-linked file), the digest in lowercase
 * hex, and whether the default selection (IMG_SELECT_MEASURED: ELF or an
 * execute bit) takes it, also when the read selected all. The callback's
 * negative return stops the walk and is returned. */
typedef int (*img_file_fn)(void *ctx, const char *path, const char *hex, bool measured);
int img_tree_files(const struct img_tree *t, img_file_fn fn, void *ctx);

/* ---- image sources (image-oci.c, image-archive.c, image-registry.c) ---- */

struct img_source;

struct img_source_ops {
    /* The manifest or index named `ref` (a tag, or "sha256:<hex>"; NULL:
     * the source's only or default one): its bytes (at most
     * limits.max_manifest), its media type ("" when the source does not
     * say) and the digest of its bytes. When `ref` is a digest, the bytes
     * are checked against it. */
    int (*manifest)(struct img_source *s, const char *ref, struct kbuf *body, char *media_type,
                    size_t media_type_size, char *digest, size_t digest_size,
                    struct img_error *err);
    /* A blob (config or layer) by digest; `size` from its descriptor, -1
     * unknown. Thread-safe. The stream is not yet checked: callers wrap it
     * in img_stream_verified(). */
    int (*blob)(struct img_source *s, const char *digest, int64_t size, struct img_stream **ret,
                struct img_error *err);
    void (*free)(struct img_source *s);
};

struct img_source {
    const struct img_source_ops *ops;
    char name[512]; /* the source as the user wrote it, for errors */
};

struct img_source_config {
    const char *authfile; /* containers auth.json / docker config.json, or NULL */
    const char *cacert;   /* PEM bundle for registries, or NULL: the system's */
    bool insecure;        /* registries over plain http, and redirects to it */
    const char *platform; /* "os/arch[/variant]"; NULL: linux/amd64 */
    struct img_limits limits;
};

/* docker://HOST[:PORT]/REPO: the OCI distribution API over libcurl
 * (image-registry.c). */
int img_registry_open(const char *host, const char *repo, const struct img_source_config *cfg,
                      struct img_source **ret, struct img_error *err);

static inline void img_source_free(struct img_source *s) {
    if (s) {
        s->ops->free(s);
    }
}

#endif
