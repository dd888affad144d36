/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: img_resolve() over a source that serves fuzzed
 * documents. The input is up to four documents separated by "\n---\n":
 * the first is what the reference names (an index or a manifest), the
 * others are served by digest. So that the fuzzer gets past the digest
 * checks, "@D1@" .. "@D3@" in a document become the sha256 digest of
 * document 1 .. 3 (after their own substitutions) and "@S1@" .. "@S3@"
 * their sizes. What must hold whatever the bytes: a refusal carries a
 * sentence and returns no image; an image has 1 to max_layers valid layer
 * digests and a valid config digest. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image-resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOCS    4
#define DOC_MAX 65536

struct fuzz_source {
    struct img_source src;
    char doc[DOCS][DOC_MAX];
    size_t len[DOCS], n;
    char digest[DOCS][IMG_DIGEST_MAX];
};

static void check(bool ok) {
    if (!ok) {
        abort();
    }
}

static int fs_find(struct fuzz_source *f, const char *digest) {
    for (size_t i = 1; i < f->n; i++) {
        if (strcmp(f->digest[i], digest) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int fs_manifest(struct img_source *s, const char *ref, struct kbuf *body, char *media_type,
                       size_t mtsz, char *digest, size_t dsz, struct img_error *err) {
    struct fuzz_source *f = (struct fuzz_source *)s;
    int i = ref && img_digest_valid(ref) ? fs_find(f, ref) : 0;

    if (i < 0) {
        return img_error_set(err, -ENOENT, "no such manifest");
    }
    snprintf(media_type, mtsz, "%s", "");
    snprintf(digest, dsz, "%s", f->digest[i]);
    return kbuf_append(body, f->doc[i], f->len[i]);
}

struct mem_stream {
    struct img_stream s;
    const char *data;
    size_t size, pos;
};

static ssize_t mem_read(struct img_stream *s, void *buf, size_t n) {
    struct mem_stream *m = (struct mem_stream *)s;

    if (n > m->size - m->pos) {
        n = m->size - m->pos;
    }
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void mem_close(struct img_stream *s) {
    free(s);
}

static int fs_blob(struct img_source *s, const char *digest, int64_t size, struct img_stream **ret,
                   struct img_error *err) {
    struct fuzz_source *f = (struct fuzz_source *)s;
    int i = fs_find(f, digest);
    struct mem_stream *m;

    (void)size;
    if (i < 0) {
        return img_error_set(err, -ENOENT, "no such blob");
    }
    if (!(m = calloc(1, sizeof(*m)))) {
        return -ENOMEM;
    }
    m->s.read = mem_read;
    m->s.close = mem_close;
    m->data = f->doc[i];
    m->size = f->len[i];
    *ret = &m->s;
    return 0;
}

static void fs_free(struct img_source *s) {
    (void)s;
}

static const struct img_source_ops fs_ops = {fs_manifest, fs_blob, fs_free};

/* Document i with its placeholders replaced by later documents' digests
 * and sizes (capped at DOC_MAX). */
static void substitute(struct fuzz_source *f, size_t i, const char *in, size_t len) {
    size_t o = 0;

    for (size_t k = 0; k < len && o < DOC_MAX - 1;) {
        size_t j;
        if (len - k >= 4 && in[k] == '@' && in[k + 3] == '@' &&
            (in[k + 1] == 'D' || in[k + 1] == 'S') && in[k + 2] >= '1' && in[k + 2] <= '3' &&
            (j = (size_t)(in[k + 2] - '0')) > i && j < f->n) {
            char v[IMG_DIGEST_MAX];
            int n = in[k + 1] == 'D' ? snprintf(v, sizeof(v), "%s", f->digest[j])
                                     : snprintf(v, sizeof(v), "%zu", f->len[j]);
            if (n > 0 && o + (size_t)n < DOC_MAX) {
                memcpy(f->doc[i] + o, v, (size_t)n);
                o += (size_t)n;
            }
            k += 4;
            continue;
        }
        f->doc[i][o++] = in[k++];
    }
    f->len[i] = o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct fuzz_source f;
    const char *parts[DOCS];
    size_t lens[DOCS];
    const char *p = (const char *)data, *end = p + size;
    struct img_limits l;
    struct img_image *img = NULL;
    struct img_error err = {{0}};
    int rc;

    memset(&f, 0, sizeof(f));
    f.src.ops = &fs_ops;
    snprintf(f.src.name, sizeof(f.src.name), "fuzz");
    while (f.n < DOCS) {
        const char *sep = memmem(p, (size_t)(end - p), "\n---\n", 5);
        parts[f.n] = p;
        lens[f.n] = sep ? (size_t)(sep - p) : (size_t)(end - p);
        f.n++;
        if (!sep) {
            break;
        }
        p = sep + 5;
    }
    for (size_t i = f.n; i-- > 0;) {
        substitute(&f, i, parts[i], lens[i]);
        img_digest_of(f.doc[i], f.len[i], NULL, f.digest[i]);
    }
    img_limits_default(&l);
    l.max_manifest = DOC_MAX;
    l.max_layers = 64;
    rc = img_resolve(&f.src, NULL, NULL, &l, &img, &err);
    if (getenv("KIMA_FUZZ_VERBOSE")) { /* to see where a seed goes */
        fprintf(stderr, "%d %s\n", rc, rc < 0 ? err.msg : "resolved");
    }
    if (rc < 0) {
        check(!img && err.msg[0] != 0);
        return 0;
    }
    check(img && img_digest_valid(img->config.digest));
    check(img->nlayers <= l.max_layers);
    for (size_t i = 0; i < img->nlayers; i++) {
        check(img_digest_valid(img->layers[i].digest));
    }
    img_image_free(img);
    return 0;
}
