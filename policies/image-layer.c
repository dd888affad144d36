/* SPDX-License-Identifier: Apache-2.0 */
/* Reading layers: each a tar stream (uncompressed, gzip, zstd or xz) read
 * once, front to back, through libarchive's callbacks: nothing is unpacked
 * to disk and no layer is held in memory, only its entry list. The files
 * that are selected go to the hashing pool (image-hash.c) in chunks.
 *
 * Several layers are read at once (one libarchive reader each); the caps
 * on entries and bytes count all of them together, and the first layer to
 * fail stops the others. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image-internal.h"

#define READ_BUF     (128u << 10)
#define IMG_PEEK_MAX (64u << 10)

/* ---- layers ---- */

int img_layer_new(const char *label, enum hash_alg hash, struct img_layer **ret) {
    struct img_layer *l = calloc(1, sizeof(*l));

    if (!l || !(l->label = strdup(label ? label : "layer"))) {
        free(l);
        return -ENOMEM;
    }
    l->hash = hash;
    *ret = l;
    return 0;
}

void img_layer_free(struct img_layer *l) {
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n_entries; i++) {
        free(l->entries[i]);
    }
    free(l->entries);
    free(l->label);
    free(l);
}

int img_layer_add(struct img_layer *l, enum img_entry_type type, const char *path, const char *link,
                  uint32_t mode, struct img_entry **ret) {
    size_t plen = strlen(path), llen = link ? strlen(link) : 0;
    struct img_entry *e;

    if (l->n_entries == l->alloc_entries) {
        size_t na = l->alloc_entries ? 2 * l->alloc_entries : 64;
        struct img_entry **ne = realloc(l->entries, na * sizeof(*ne));
        if (!ne) {
            return -ENOMEM;
        }
        l->entries = ne;
        l->alloc_entries = na;
    }
    e = calloc(1, sizeof(*e) + plen + 1 + llen + 1);
    if (!e) {
        return -ENOMEM;
    }
    e->path = (char *)(e + 1);
    memcpy(e->path, path, plen + 1);
    e->link = e->path + plen + 1;
    if (link) {
        memcpy(e->link, link, llen + 1);
    }
    e->type = (uint8_t)type;
    e->mode = mode;
    l->entries[l->n_entries++] = e;
    if (ret) {
        *ret = e;
    }
    return 0;
}

/* ---- paths ---- */

int img_path_normalise(const char *in, size_t max, char *out, size_t size, const char **why) {
    size_t n = 0, inlen = strlen(in);
    const char *p = in;

    if (inlen > max) {
        *why = "longer than the path cap";
        return -E2BIG;
    }
    if (in[0] == '/') {
        *why = "absolute path";
        return -EBADMSG;
    }
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == 2 && p[0] == '.' && p[1] == '.') {
            *why = "\"..\" in the path";
            return -EBADMSG;
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (n + len + 2 > size) {
                *why = "longer than the path cap";
                return -E2BIG;
            }
            if (n > 0) {
                out[n++] = '/';
            }
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
        while (*p == '/') {
            p++;
        }
    }
    out[n] = 0;
    return 0;
}

const char *img_quote(const char *s, char *buf, size_t size) {
    static const char hexd[] = "0123456789abcdef";
    size_t n = 0, i;

    for (i = 0; s[i] && i < 200 && n + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hexd[c >> 4];
            buf[n++] = hexd[c & 15];
        } else {
            buf[n++] = (char)c;
        }
    }
    if (s[i] && n + 4 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

/* ---- caps ---- */

/* Add `n` to `counter` unless that passes `cap`; saturating, so that
 * counters shared by threads never wrap. */
static bool charge_capped(_Atomic uint64_t *counter, uint64_t n, uint64_t cap) {
    uint64_t old = atomic_fetch_add(counter, n > cap ? cap + 1 : n);

    return n <= cap && old <= cap - n;
}

int img_run_charge(struct img_run *run, const char *entry, uint64_t bytes, uint64_t meta,
                   struct img_error *err) {
    const struct img_limits *lim = &run->o->limits;
    uint64_t entries = atomic_fetch_add(&run->entries, 1) + 1;
    char q[IMG_QUOTE_MAX];

    img_quote(entry ? entry : "", q, sizeof(q));
    if (entries > lim->max_entries) {
        return img_error_set(err, -E2BIG,
                             "entry \"%s\": more than %llu entries in all layers together "
                             "(raise the cap with --max-entries)",
                             q, (unsigned long long)lim->max_entries);
    }
    if (!charge_capped(&run->bytes, bytes, lim->max_bytes)) {
        return img_error_set(err, -E2BIG,
                             "entry \"%s\": more than %llu uncompressed bytes in all layers "
                             "together (raise the cap with --max-bytes)",
                             q, (unsigned long long)lim->max_bytes);
    }
    /* Paths and link targets stay in memory until the tree is built: an
     * empty file with a long path costs nothing against max_bytes. The
     * cause first: the entry is often nothing but a long path. */
    meta = meta > UINT64_MAX - IMG_META_ENTRY_COST ? UINT64_MAX : meta + IMG_META_ENTRY_COST;
    if (!charge_capped(&run->meta, meta, lim->max_meta_bytes)) {
        return img_error_set(err, -E2BIG,
                             "more than %llu bytes of entry paths and link targets in memory "
                             "in all layers together (raise the cap with --max-meta-bytes), "
                             "reached at entry \"%s\"",
                             (unsigned long long)lim->max_meta_bytes, q);
    }
    return 0;
}

unsigned img_threads(const struct img_options *o) {
    long n;

    if (o->threads > 0) {
        return o->threads > 256 ? 256 : o->threads;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

/* ---- one layer ---- */

struct reader {
    struct img_run *run;
    struct img_stream *s;
    int stream_rc; /* the stream's own failure, its sentence in s->err */
    uint8_t buf[READ_BUF];
};

static ssize_t reader_read(struct archive *a, void *ctx, const void **ret) {
    struct reader *r = ctx;
    ssize_t k;

    if (atomic_load(&r->run->stop)) {
        r->stream_rc = -ECANCELED;
        archive_set_error(a, ECANCELED, "stopped: another layer failed");
        return -1;
    }
    k = r->s->read(r->s, r->buf, sizeof(r->buf));
    if (k < 0) {
        r->stream_rc = (int)k;
        archive_set_error(a, EIO, "%s", r->s->err);
        return -1;
    }
    *ret = r->buf;
    return k;
}

/* The error of a failed libarchive call: the stream's when the stream
 * failed (a digest mismatch, a read error), libarchive's otherwise. */
static int archive_fail(struct reader *r, struct archive *a, const char *entry,
                        struct img_error *err) {
    char q[IMG_QUOTE_MAX];
    const char *what = r->stream_rc < 0 ? r->s->err : archive_error_string(a);
    int rc = r->stream_rc < 0 ? r->stream_rc : -EBADMSG;

    if (!what || !what[0]) {
        what = "unreadable";
    }
    if (entry) {
        return img_error_set(err, rc, "entry \"%s\": %s", img_quote(entry, q, sizeof(q)), what);
    }
    return img_error_set(err, rc, "%s", what);
}

static int archive_new_tar(struct reader *r, struct archive **ret, struct img_error *err) {
    struct archive *a = archive_read_new();

    if (!a) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    /* Only native decompressors (ARCHIVE_OK): ARCHIVE_WARN would mean an
     * external program, which a library must not start. */
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_filter_none(a) != ARCHIVE_OK ||
        archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        archive_read_support_filter_xz(a) != ARCHIVE_OK) {
        archive_read_free(a);
        return img_error_set(err, -ENOTSUP, "libarchive lacks tar, gzip, zstd or xz support");
    }
    if (archive_read_open2(a, r, NULL, reader_read, NULL, NULL) != ARCHIVE_OK) {
        int rc = archive_fail(r, a, NULL, err);
        archive_read_free(a);
        return rc;
    }
    *ret = a;
    return 0;
}

/* Fill a chunk from the entry's data; 0 at its end, or the error. */
static int fill_chunk(struct archive *a, struct img_chunk *c) {
    while (c->len < c->size) {
        la_ssize_t k = archive_read_data(a, c->data + c->len, c->size - c->len);
        if (k < 0) {
            return -EBADMSG;
        }
        if (k == 0) {
            break;
        }
        c->len += (size_t)k;
    }
    return 0;
}

static size_t chunk_size(uint64_t remaining) {
    if (remaining == 0) {
        return 1; /* a last read that should find the end */
    }
    return remaining > IMG_CHUNK_MAX ? IMG_CHUNK_MAX : (size_t)remaining;
}

static bool is_elf(const struct img_chunk *c) {
    return c->len >= 4 && memcmp(c->data, "\177ELF", 4) == 0;
}

/* A regular file's content: hashed when selected; without an execute bit
 * (and without --all) the first chunk decides (ELF or not). */
static int read_file(struct reader *r, struct archive *a, struct img_entry *e, uint64_t size,
                     bool selected) {
    struct img_hash_pool *pool = r->run->pool;
    struct img_hash_job *job = NULL;
    struct img_chunk *c = NULL;
    uint64_t done = 0;
    size_t first;
    int rc;

    /* Small when only the magic decides: most files that are not chosen are skipped. */
    first = chunk_size(size);
    if (!selected && first > IMG_PEEK_MAX) {
        first = IMG_PEEK_MAX;
    }
    if ((rc = img_chunk_get(pool, first, &c)) < 0) {
        return rc;
    }
    if ((rc = fill_chunk(a, c)) == 0) {
        e->measured = (e->mode & 0111) != 0 || is_elf(c);
    }
    if (rc < 0 || (!selected && !is_elf(c))) {
        img_chunk_put(pool, c);
        return rc;
    }
    e->selected = true;
    if ((rc = img_hash_begin(pool, r->run->o->hash, e, &job)) < 0) {
        img_chunk_put(pool, c);
        return rc;
    }
    while (c) {
        bool full = c->len == c->size;
        done += c->len;
        img_hash_add(pool, job, c);
        c = NULL;
        if (!full || (rc = img_chunk_get(pool, chunk_size(size - done), &c)) < 0 ||
            (rc = fill_chunk(a, c)) < 0) {
            break;
        }
        if (c->len == 0) {
            img_chunk_put(pool, c);
            c = NULL;
        }
    }
    img_chunk_put(pool, c);
    img_hash_end(pool, job);
    return rc;
}

/* A ".wh." name: a whiteout, an opaque marker, or (".wh..wh.*", aufs's
 * own bookkeeping) nothing. 1 when the entry was such a name. */
static int add_whiteout(struct img_layer *l, const char *path, const char **why) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char *target;
    int rc;

    if (strncmp(base, ".wh.", 4) != 0) {
        return 0;
    }
    if (strcmp(base, ".wh..wh..opq") == 0) {
        if (!(target = strndup(path, dirlen))) {
            return -ENOMEM;
        }
        rc = img_layer_add(l, IMG_ENTRY_OPAQUE, target, NULL, 0, NULL);
        free(target);
        return rc < 0 ? rc : 1;
    }
    if (strncmp(base, ".wh..wh.", 8) == 0) {
        return 1;
    }
    if (base[4] == 0 || strcmp(base + 4, ".") == 0 || strcmp(base + 4, "..") == 0) {
        *why = "a whiteout that names no file";
        return -EBADMSG;
    }
    if (asprintf(&target, "%.*s%s%s", (int)dirlen, path, slash ? "/" : "", base + 4) < 0) {
        return -ENOMEM;
    }
    rc = img_layer_add(l, IMG_ENTRY_WHITEOUT, target, NULL, 0, NULL);
    free(target);
    return rc < 0 ? rc : 1;
}

/* The entry's kind from its header; IMG_ENTRY_FILE with *skip for what is
 * skipped. -EBADMSG for a type kima does not know. */
static int entry_type(struct archive_entry *ae, bool *skip, enum img_entry_type *ret) {
    *skip = false;
    if (archive_entry_hardlink(ae)) {
        *ret = IMG_ENTRY_HARDLINK;
        return 0;
    }
    switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
        *ret = IMG_ENTRY_FILE;
        return 0;
    case AE_IFDIR:
        *ret = IMG_ENTRY_DIR;
        return 0;
    case AE_IFLNK:
        *ret = IMG_ENTRY_SYMLINK;
        return 0;
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
    case AE_IFSOCK:
        *ret = IMG_ENTRY_FILE;
        *skip = true;
        return 0;
    default:
        return -EBADMSG;
    }
}

/* The link of a hard link (normalised like a path) or of a symbolic link
 * (as written, resolved later inside the root) into `out`. */
static int entry_link(struct archive_entry *ae, enum img_entry_type type, size_t max, char *out,
                      size_t size, const char **why) {
    const char *link;

    if (type == IMG_ENTRY_HARDLINK) {
        link = archive_entry_hardlink(ae);
        if (img_path_normalise(link, max, out, size, why) < 0) {
            *why = strcmp(*why, "absolute path") == 0 ? "hard link to an absolute path"
                   : strstr(*why, "..")               ? "hard link with \"..\" in its target"
                                                      : "hard link target longer than the path cap "
                                                        "(raise the cap with --max-path)";
            return -EBADMSG;
        }
        if (!out[0]) {
            *why = "a hard link to the root";
            return -EBADMSG;
        }
        return 0;
    }
    link = archive_entry_symlink(ae);
    if (!link || !link[0]) {
        *why = "a symbolic link without a target";
        return -EBADMSG;
    }
    if (strlen(link) > max || strlen(link) >= size) {
        *why = "link target longer than the path cap (raise the cap with --max-path)";
        return -EBADMSG;
    }
    memcpy(out, link, strlen(link) + 1);
    return 0;
}

struct entry_bufs {
    char path[IMG_QUOTE_MAX];
    char link[IMG_QUOTE_MAX];
};

static int read_entry_record(struct reader *r, struct archive *a, struct archive_entry *ae,
                             struct img_layer *l, const char *raw, char *path, char *link,
                             struct img_error *err) {
    size_t max = r->run->o->limits.max_path, size = max + 2;
    uint32_t mode = (uint32_t)archive_entry_perm(ae);
    enum img_entry_type type;
    struct img_entry *e;
    const char *why = NULL;
    char q[IMG_QUOTE_MAX];
    bool skip;
    int rc;

    if ((rc = img_path_normalise(raw, max, path, size, &why)) == -E2BIG) {
        return img_error_set(err, rc,
                             "entry \"%s\": path longer than %zu bytes (raise the cap with "
                             "--max-path)",
                             img_quote(raw, q, sizeof(q)), max);
    }
    if (rc < 0) {
        goto bad;
    }
    if (entry_type(ae, &skip, &type) < 0) {
        why = "an entry type kima does not know";
        goto bad;
    }
    if (skip) {
        l->skipped++;
        return 0;
    }
    if ((rc = add_whiteout(l, path, &why)) != 0) {
        if (rc < 0 && !why) {
            return img_error_set(err, rc, "out of memory");
        }
        if (rc < 0) {
            goto bad;
        }
        return 0;
    }
    if (!path[0]) {
        if (type == IMG_ENTRY_DIR) {
            return 0; /* the root itself */
        }
        why = "the root is not a directory";
        goto bad;
    }
    if ((type == IMG_ENTRY_HARDLINK || type == IMG_ENTRY_SYMLINK) &&
        entry_link(ae, type, max, link, size, &why) < 0) {
        goto bad;
    }
    if ((rc = img_layer_add(l, type, path, type >= IMG_ENTRY_SYMLINK ? link : NULL, mode, &e)) <
        0) {
        return img_error_set(err, rc, "out of memory");
    }
    if (type != IMG_ENTRY_FILE) {
        return 0;
    }
    rc = read_file(r, a, e, (uint64_t)archive_entry_size(ae),
                   r->run->o->select == IMG_SELECT_ALL || (mode & 0111) != 0);
    return rc < 0 ? archive_fail(r, a, raw, err) : 0;
bad:
    return img_error_set(err, rc < 0 ? rc : -EBADMSG, "entry \"%s\": %s",
                         img_quote(raw, q, sizeof(q)), why);
}

/* The bytes of path and link target the entry may keep in memory (as
 * written: normalising only shortens them). */
static uint64_t entry_meta(struct archive_entry *ae, const char *raw) {
    const char *link = archive_entry_hardlink(ae);

    if (!link) {
        link = archive_entry_symlink(ae);
    }
    return (uint64_t)strlen(raw) + (link ? strlen(link) : 0);
}

static int read_entry(struct reader *r, struct archive *a, struct archive_entry *ae,
                      struct img_layer *l, char *path, char *link, struct img_error *err) {
    const char *raw = archive_entry_pathname(ae);
    int64_t size = archive_entry_size(ae);
    int rc;

    if (!raw) {
        raw = archive_entry_pathname_utf8(ae);
    }
    if (!raw || !raw[0]) {
        return img_error_set(err, -EBADMSG, "an entry without a path");
    }
    if ((rc = img_run_charge(r->run, raw, size > 0 ? (uint64_t)size : 0, entry_meta(ae, raw),
                             err)) < 0) {
        return rc;
    }
    return read_entry_record(r, a, ae, l, raw, path, link, err);
}

/* Read to the stream's real end, past the end-of-archive blocks and any
 * padding, so that a verified stream checks the digest. */
static int drain(struct reader *r, struct img_error *err) {
    ssize_t k;

    while ((k = r->s->read(r->s, r->buf, sizeof(r->buf))) > 0) {
        if (atomic_load(&r->run->stop)) {
            return -ECANCELED;
        }
    }
    if (k < 0) {
        return img_error_set(err, (int)k, "%s", r->s->err);
    }
    return 0;
}

static int read_entries(struct reader *r, struct archive *a, struct img_layer *l,
                        struct img_error *err) {
    size_t size = r->run->o->limits.max_path + 2;
    _cleanup_free_ char *path = malloc(size), *link = malloc(size), *last = NULL;
    struct archive_entry *ae;
    char q[IMG_QUOTE_MAX];
    int rc;

    if (!path || !link) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    for (;;) {
        rc = archive_read_next_header(a, &ae);
        if (rc == ARCHIVE_EOF) {
            return 0;
        }
        if (rc < ARCHIVE_WARN) {
            rc = archive_fail(r, a, NULL, err);
            if (last) {
                img_error_prefix(err, "after entry \"%s\"", img_quote(last, q, sizeof(q)));
            }
            return rc;
        }
        if ((rc = read_entry(r, a, ae, l, path, link, err)) < 0) {
            return rc;
        }
        free(last);
        last = strdup(archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "");
    }
}

int img_layer_read_stream(struct img_run *run, struct img_stream *s, struct img_layer *l,
                          struct img_error *err) {
    struct reader *r = calloc(1, sizeof(*r));
    struct archive *a = NULL;
    int rc;

    if (!r) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    r->run = run;
    r->s = s;
    rc = archive_new_tar(r, &a, err);
    if (rc == 0) {
        rc = read_entries(r, a, l, err);
    }
    if (rc == 0) {
        rc = drain(r, err);
    }
    if (rc < 0 && r->stream_rc == -ECANCELED) {
        rc = -ECANCELED;
    }
    archive_read_free(a);
    free(r);
    return rc;
}

/* ---- several layers at once ---- */

struct layers_read {
    struct img_run run;
    size_t n;
    img_open_fn open;
    void *ctx;
    const char *const *labels;
    struct img_layer **layers;
    struct img_error *errs;
    int *rcs;
    _Atomic size_t next;
};

static void read_one(struct layers_read *lr, size_t i) {
    struct img_stream *s = NULL;
    char label[64];
    const char *name = lr->labels && lr->labels[i] ? lr->labels[i] : NULL;
    int rc;

    if (!name) {
        snprintf(label, sizeof(label), "layer %zu/%zu", i + 1, lr->n);
        name = label;
    }
    rc = img_layer_new(name, lr->run.o->hash, &lr->layers[i]);
    if (rc < 0) {
        rc = img_error_set(&lr->errs[i], rc, "out of memory");
    } else if ((rc = lr->open(lr->ctx, i, &s, &lr->errs[i])) < 0) {
        img_error_set(&lr->errs[i], rc, "cannot be opened");
    } else {
        rc = img_layer_read_stream(&lr->run, s, lr->layers[i], &lr->errs[i]);
        img_stream_close(s);
    }
    if (rc < 0) {
        lr->rcs[i] = rc;
        atomic_store(&lr->run.stop, true);
    }
}

static void *reader_main(void *arg) {
    struct layers_read *lr = arg;
    size_t i;

    while ((i = atomic_fetch_add(&lr->next, 1)) < lr->n && !atomic_load(&lr->run.stop)) {
        read_one(lr, i);
    }
    return NULL;
}

/* Readers on threads (the first one on the caller's); all are joined. */
static int run_readers(struct layers_read *lr, unsigned n_readers) {
    pthread_t *t = calloc(n_readers, sizeof(*t));
    unsigned started = 0;

    if (!t) {
        return -ENOMEM;
    }
    while (started + 1 < n_readers && pthread_create(&t[started], NULL, reader_main, lr) == 0) {
        started++;
    }
    reader_main(lr);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
    }
    free(t);
    return 0;
}

/* The error of the first layer that failed by itself (not stopped by another). */
static int pick_error(struct layers_read *lr, struct img_error *err) {
    size_t pick = lr->n;

    for (size_t i = 0; i < lr->n; i++) {
        if (lr->rcs[i] < 0 && (pick == lr->n || lr->rcs[pick] == -ECANCELED)) {
            if (pick == lr->n || lr->rcs[i] != -ECANCELED) {
                pick = i;
            }
        }
    }
    if (pick == lr->n) {
        return 0;
    }
    if (err) {
        *err = lr->errs[pick];
        img_error_prefix(err, "%s", lr->layers[pick] ? lr->layers[pick]->label : "layer");
    }
    return lr->rcs[pick];
}

static int layers_read_all(struct layers_read *lr, struct img_error *err) {
    unsigned threads = img_threads(lr->run.o);
    unsigned readers = lr->n < threads ? (unsigned)lr->n : threads;
    int rc, rc_hash;

    rc = img_hash_pool_new(threads > 1 ? threads : 0, IMG_HASH_BUDGET, &lr->run.pool);
    if (rc < 0) {
        return img_error_set(err, rc, "cannot start the hashing threads");
    }
    rc = run_readers(lr, readers);
    rc_hash = img_hash_pool_wait(lr->run.pool);
    img_hash_pool_free(lr->run.pool);
    lr->run.pool = NULL;
    if (rc < 0) {
        return img_error_set(err, rc, "out of memory");
    }
    if ((rc = pick_error(lr, err)) < 0) {
        return rc;
    }
    return rc_hash < 0 ? img_error_set(err, rc_hash, "hashing failed") : 0;
}

int img_layers_read(size_t n, img_open_fn open, void *ctx, const char *const *labels,
                    const struct img_options *o, struct img_layer **ret, struct img_error *err) {
    struct layers_read lr = {.n = n, .open = open, .ctx = ctx, .labels = labels};
    int rc = -ENOMEM;

    if (!open || !o || (n > 0 && !ret) || !hash_alg_evp_md(o->hash)) {
        return img_error_set(err, -EINVAL, "invalid arguments");
    }
    if (n > o->limits.max_layers) {
        return img_error_set(err, -E2BIG, "%zu layers, more than the cap of %u", n,
                             o->limits.max_layers);
    }
    if (n == 0) {
        return 0;
    }
    lr.run.o = o;
    lr.layers = calloc(n + 1, sizeof(*lr.layers));
    lr.errs = calloc(n + 1, sizeof(*lr.errs));
    lr.rcs = calloc(n + 1, sizeof(*lr.rcs));
    if (lr.layers && lr.errs && lr.rcs) {
        rc = layers_read_all(&lr, err);
    } else {
        img_error_set(err, rc, "out of memory");
    }
    for (size_t i = 0; i < n && lr.layers; i++) {
        if (rc == 0) {
            ret[i] = lr.layers[i];
        } else {
            img_layer_free(lr.layers[i]);
        }
    }
    free(lr.layers);
    free(lr.errs);
    free(lr.rcs);
    return rc;
}
