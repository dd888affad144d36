/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: bytes read as one image layer (tar, plain or gzip,
 * zstd, xz) by img_layers_read(), then applied on a tree twice (the layer
 * on top of itself) and listed. What must hold whatever the bytes: a
 * refusal carries a sentence naming the layer and sets no layer; a listing
 * is absolute paths in strictly increasing byte order, each with a
 * lowercase sha256 hex digest. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "image-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem_stream {
    struct img_stream s;
    const uint8_t *data;
    size_t size, pos;
};

static void check(bool ok) {
    if (!ok) {
        abort();
    }
}

static ssize_t mem_read(struct img_stream *s, void *buf, size_t n) {
    struct mem_stream *m = (struct mem_stream *)s;

    /* Odd read sizes, to reach libarchive's buffer boundaries. */
    if (n > 1000) {
        n = 1000;
    }
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

struct input {
    const uint8_t *data;
    size_t size;
};

static int open_mem(void *ctx, size_t i, struct img_stream **ret, struct img_error *err) {
    struct input *in = ctx;
    struct mem_stream *m = calloc(1, sizeof(*m));

    (void)i;
    if (!m) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    m->s.read = mem_read;
    m->s.close = mem_close;
    m->data = in->data;
    m->size = in->size;
    *ret = &m->s;
    return 0;
}

struct listing {
    char last[4200];
    unsigned n;
};

static int check_file(void *ctx, const char *path, const char *hex, bool measured) {
    (void)measured;
    struct listing *ls = ctx;

    check(path[0] == '/' && strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64);
    check(ls->n == 0 || strcmp(ls->last, path) < 0);
    check(strlen(path) < sizeof(ls->last));
    snprintf(ls->last, sizeof(ls->last), "%s", path);
    ls->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const labels[] = {"layer 1/1"};
    struct input in = {data, size};
    struct img_layer *l = NULL;
    struct img_tree *t = NULL;
    struct listing ls = {.n = 0};
    struct img_options o;
    struct img_error err = {{0}};
    int rc;

    img_options_default(&o);
    o.threads = 1;
    o.select = IMG_SELECT_ALL;
    o.limits.max_bytes = 64u << 20;
    o.limits.max_entries = 10000;
    o.limits.max_meta_bytes = 16u << 20;
    o.limits.max_walk = 64 * 10000;
    rc = img_layers_read(1, open_mem, &in, labels, &o, &l, &err);
    if (rc < 0) {
        check(!l && strncmp(err.msg, "layer 1/1: ", 11) == 0);
        return 0;
    }
    check(l && err.msg[0] == 0);
    check(img_tree_new(&t) == 0);
    for (int i = 0; i < 2; i++) {
        memset(&err, 0, sizeof(err));
        if (img_tree_apply(t, l, &o, &err) < 0) {
            check(strncmp(err.msg, "layer 1/1: ", 11) == 0);
            break;
        }
    }
    check(img_tree_files(t, check_file, &ls) == 0);
    img_tree_free(t);
    img_layer_free(l);
    return 0;
}
