/* SPDX-License-Identifier: Apache-2.0 */
/* The shared parts of image reading: error sentences, default limits and
 * options, and the two streams every source builds on (a file region, a
 * digest check). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hex.h"
#include "image.h"

int img_error_set(struct img_error *err, int rc, const char *fmt, ...) {
    va_list ap;

    if (err && err->msg[0] == 0) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return rc;
}

void img_error_prefix(struct img_error *err, const char *fmt, ...) {
    char old[IMG_ERROR_MAX];
    size_t n;
    va_list ap;

    if (!err) {
        return;
    }
    memcpy(old, err->msg, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    /* A sentence that names its context already (a registry's errors start
     * with the image) does not get it twice. */
    if (n > 0 && strncmp(old, err->msg, n) == 0 && old[n] == ':') {
        memcpy(err->msg, old, sizeof(old));
        return;
    }
    if (n < sizeof(err->msg) - 1) {
        snprintf(err->msg + n, sizeof(err->msg) - n, ": %.*s", (int)(sizeof(err->msg) - n - 3),
                 old[0] ? old : "failed");
    }
}

void img_limits_default(struct img_limits *l) {
    *l = (struct img_limits){
            .max_bytes = UINT64_C(64) << 30,
            .max_entries = 2000000,
            .max_meta_bytes = UINT64_C(128) << 20,
            .max_walk = UINT64_C(64) * 2000000,
            .max_path = 4096,
            .max_manifest = 4u << 20,
            .max_json_depth = 32,
            .max_layers = 256,
            .timeout_s = 60,
    };
}

void img_options_default(struct img_options *o) {
    *o = (struct img_options){.hash = HASH_ALG_SHA256, .select = IMG_SELECT_MEASURED};
    img_limits_default(&o->limits);
}

bool img_digest_valid(const char *digest) {
    size_t hexlen;
    const char *hex;

    if (!digest) {
        return false;
    }
    if (strncmp(digest, "sha256:", 7) == 0) {
        hex = digest + 7;
        hexlen = 64;
    } else if (strncmp(digest, "sha512:", 7) == 0) {
        hex = digest + 7;
        hexlen = 128;
    } else {
        return false;
    }
    if (strlen(hex) != hexlen) {
        return false;
    }
    for (size_t i = 0; i < hexlen; i++) {
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* ---- a region of a file ---- */

struct fd_stream {
    struct img_stream s;
    int fd;
    off_t pos, end; /* end < 0: to the end of the file */
};

static ssize_t fd_read(struct img_stream *s, void *buf, size_t n) {
    struct fd_stream *f = (struct fd_stream *)s;
    ssize_t k;

    if (f->end >= 0) {
        if (f->pos >= f->end) {
            return 0;
        }
        if ((off_t)n > f->end - f->pos) {
            n = (size_t)(f->end - f->pos);
        }
    }
    do {
        k = pread(f->fd, buf, n, f->pos);
    } while (k < 0 && errno == EINTR);
    if (k < 0) {
        int e = errno;
        snprintf(s->err, sizeof(s->err), "read at offset %lld: %s", (long long)f->pos, strerror(e));
        return -e;
    }
    if (k == 0 && f->end >= 0) {
        snprintf(s->err, sizeof(s->err),
                 "the file ends at offset %lld, before the %lld bytes it should hold",
                 (long long)f->pos, (long long)f->end);
        return -EBADMSG;
    }
    f->pos += k;
    return k;
}

static void fd_close(struct img_stream *s) {
    free(s);
}

int img_stream_fd(int fd, off_t offset, off_t len, struct img_stream **ret) {
    struct fd_stream *f = calloc(1, sizeof(*f));

    if (!f) {
        return -ENOMEM;
    }
    f->s.read = fd_read;
    f->s.close = fd_close;
    f->fd = fd;
    f->pos = offset;
    f->end = len < 0 ? -1 : offset + len;
    *ret = &f->s;
    return 0;
}

/* ---- a digest check ---- */

struct verified_stream {
    struct img_stream s;
    struct img_stream *inner;
    EVP_MD_CTX *md;
    char digest[160];
    int64_t size, seen;
    bool done;
};

static ssize_t verified_end(struct verified_stream *v) {
    uint8_t md[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned mdlen = 0;
    const char *want = strchr(v->digest, ':') + 1;

    if (v->size >= 0 && v->seen != v->size) {
        snprintf(v->s.err, sizeof(v->s.err), "%lld bytes, not the %lld bytes its descriptor gives",
                 (long long)v->seen, (long long)v->size);
        return -EBADMSG;
    }
    if (EVP_DigestFinal_ex(v->md, md, &mdlen) != 1) {
        snprintf(v->s.err, sizeof(v->s.err), "hashing failed");
        return -EIO;
    }
    hex_encode(md, mdlen, hex);
    if (strcmp(hex, want) != 0) {
        snprintf(v->s.err, sizeof(v->s.err),
                 "content does not match its digest %s (it hashes to %.*s:%s)", v->digest,
                 (int)(want - 1 - v->digest), v->digest, hex);
        return -EBADMSG;
    }
    v->done = true;
    return 0;
}

static ssize_t verified_read(struct img_stream *s, void *buf, size_t n) {
    struct verified_stream *v = (struct verified_stream *)s;
    ssize_t k;

    if (v->done) {
        return 0;
    }
    k = v->inner->read(v->inner, buf, n);
    if (k < 0) {
        snprintf(s->err, sizeof(s->err), "%s", v->inner->err);
        return k;
    }
    if (k == 0) {
        return verified_end(v);
    }
    v->seen += k;
    if (v->size >= 0 && v->seen > v->size) {
        snprintf(s->err, sizeof(s->err), "more than the %lld bytes its descriptor gives",
                 (long long)v->size);
        return -EBADMSG;
    }
    if (EVP_DigestUpdate(v->md, buf, (size_t)k) != 1) {
        snprintf(s->err, sizeof(s->err), "hashing failed");
        return -EIO;
    }
    return k;
}

static void verified_close(struct img_stream *s) {
    struct verified_stream *v = (struct verified_stream *)s;

    img_stream_close(v->inner);
    EVP_MD_CTX_free(v->md);
    free(v);
}

int img_stream_verified(struct img_stream *inner, const char *digest, int64_t size,
                        struct img_stream **ret) {
    struct verified_stream *v;
    const EVP_MD *md;

    if (!img_digest_valid(digest)) {
        img_stream_close(inner);
        return -EINVAL;
    }
    md = strncmp(digest, "sha512:", 7) == 0 ? EVP_sha512() : EVP_sha256();
    v = calloc(1, sizeof(*v));
    if (!v || !(v->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(v->md, md, NULL) != 1) {
        if (v) {
            EVP_MD_CTX_free(v->md);
        }
        free(v);
        img_stream_close(inner);
        return -ENOMEM;
    }
    v->s.read = verified_read;
    v->s.close = verified_close;
    v->inner = inner;
    v->size = size;
    snprintf(v->digest, sizeof(v->digest), "%s", digest);
    *ret = &v->s;
    return 0;
}

int img_stream_slurp(struct img_stream *s, size_t max, struct kbuf *out, struct img_error *err) {
    uint8_t chunk[16384];
    ssize_t k;
    int r = 0;

    while ((k = s->read(s, chunk, sizeof(chunk))) > 0) {
        if (out->len + (size_t)k > max) {
            r = img_error_set(err, -EFBIG, "more than %zu bytes", max);
            break;
        }
        if ((r = kbuf_append(out, chunk, (size_t)k)) < 0) {
            img_error_set(err, r, "out of memory");
            break;
        }
    }
    if (k < 0) {
        r = img_error_set(err, (int)k, "%s", s->err);
    }
    img_stream_close(s);
    return r;
}
