/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_IMAGE_INTERNAL_H
#define KIMA_POLICIES_IMAGE_INTERNAL_H

/* What the layer reader (image-layer.c, image-deb.c, image-dir.c), the
 * hashing pool (image-hash.c) and the tree (image-tree.c) share, and the
 * unit tests look into. Not part of the image interface. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* ---- layers ---- */

enum img_entry_type {
    IMG_ENTRY_FILE,     /* a regular file */
    IMG_ENTRY_DIR,      /* a directory */
    IMG_ENTRY_SYMLINK,  /* link = its target, as written */
    IMG_ENTRY_HARDLINK, /* link = the normalised path of the file it names */
    IMG_ENTRY_WHITEOUT, /* path = what it removes from the lower layers */
    IMG_ENTRY_OPAQUE,   /* path = the directory whose lower contents it hides ("" = root) */
};

/* One allocation: the struct, then path, then link. The digest is written
 * by a hashing worker once the file's last chunk is hashed, so an entry
 * never moves while its layer is read. */
struct img_entry {
    char *path; /* normalised: relative, no "", "." or ".." components */
    char *link; /* "" when not a link */
    uint32_t mode;
    uint8_t type; /* enum img_entry_type */
    bool selected;
    bool measured; /* ELF or an execute bit: what the default selection takes */
    uint8_t digest_len;
    uint8_t digest[HASH_ALG_DIGEST_MAX];
};

struct img_layer {
    char *label;
    enum hash_alg hash;
    struct img_entry **entries;
    size_t n_entries, alloc_entries;
    uint64_t skipped; /* device nodes, FIFOs, sockets */
};

/* A new empty layer; caller frees with img_layer_free(). */
int img_layer_new(const char *label, enum hash_alg hash, struct img_layer **ret);
/* Append an entry (copies path and link); its pointer stays valid for the
 * layer's life. */
int img_layer_add(struct img_layer *l, enum img_entry_type type, const char *path, const char *link,
                  uint32_t mode, struct img_entry **ret);

/* Normalise an entry path into `out` (`size` bytes): strip leading "./",
 * drop "." components, collapse "//" and a trailing "/". -EBADMSG with a
 * sentence in `why` for an absolute path or a ".." component, -E2BIG when
 * longer than `max`. "" is the root. */
int img_path_normalise(const char *in, size_t max, char *out, size_t size, const char **why);

/* `s` quoted for an error sentence: non-printable bytes, '"' and '\\'
 * escaped, at most about 200 bytes of it. Returns `buf`. */
const char *img_quote(const char *s, char *buf, size_t size);
#define IMG_QUOTE_MAX 840

/* ---- one read: the caps shared by every layer, the stop flag ---- */

struct img_hash_pool;

struct img_run {
    const struct img_options *o;
    struct img_hash_pool *pool;
    _Atomic uint64_t bytes, entries, meta;
    atomic_bool stop; /* a layer failed: the others stop early */
};

/* Count one more entry (named `entry` in errors), `bytes` more bytes of
 * content and `meta` bytes of path and link target (plus
 * IMG_META_ENTRY_COST) against the caps: max_entries, max_bytes,
 * max_meta_bytes. -E2BIG with a sentence naming the entry, the cap and its
 * flag. */
int img_run_charge(struct img_run *run, const char *entry, uint64_t bytes, uint64_t meta,
                   struct img_error *err);

/* Read one tar layer (uncompressed, gzip, zstd or xz, detected from the
 * bytes) from `s` into `l`, then `s` to its end. Does not take `s`.
 * -ECANCELED when it stopped because run->stop was set. */
int img_layer_read_stream(struct img_run *run, struct img_stream *s, struct img_layer *l,
                          struct img_error *err);

/* One per online CPU for 0. */
unsigned img_threads(const struct img_options *o);

/* ---- the hashing pool (image-hash.c) ---- */

/* Files hashed by `workers` threads (0: in the caller, as chunks arrive),
 * chunks of one file in order, with at most `budget` bytes buffered. */
int img_hash_pool_new(unsigned workers, size_t budget, struct img_hash_pool **ret);
/* Waits for every file, then frees. NULL is fine. */
void img_hash_pool_free(struct img_hash_pool *p);
/* Wait until every file begun is hashed; -EIO when hashing failed. */
int img_hash_pool_wait(struct img_hash_pool *p);

struct img_hash_job;
struct img_chunk {
    struct img_chunk *next;
    size_t len, size;
    uint8_t data[];
};

/* A file whose digest goes to e->digest (e must outlive the pool's wait). */
int img_hash_begin(struct img_hash_pool *p, enum hash_alg alg, struct img_entry *e,
                   struct img_hash_job **ret);
/* A buffer of `size` bytes, counted against the budget (waits for room). */
int img_chunk_get(struct img_hash_pool *p, size_t size, struct img_chunk **ret);
void img_chunk_put(struct img_hash_pool *p, struct img_chunk *c);
/* Hand c->len bytes of the file's content over (takes c). */
void img_hash_add(struct img_hash_pool *p, struct img_hash_job *j, struct img_chunk *c);
/* No more content: the digest is written once the chunks are hashed. */
void img_hash_end(struct img_hash_pool *p, struct img_hash_job *j);

#define IMG_CHUNK_MAX    (1u << 20)
#define IMG_HASH_BUDGET  (64u << 20)
#define IMG_SYMLINKS_MAX 40

#endif
