/* SPDX-License-Identifier: Apache-2.0 */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kbuf_init(struct kbuf *b, size_t max) {
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void kbuf_free(struct kbuf *b) {
    if (!b) {
        return;
    }
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void kbuf_reset(struct kbuf *b) {
    b->len = 0;
    if (b->data) {
        b->data[0] = 0;
    }
}

int kbuf_reserve(struct kbuf *b, size_t n) {
    size_t need, nalloc;
    uint8_t *p;

    if (n > b->max || b->len > b->max - n) {
        return -E2BIG;
    }
    need = b->len + n + 1; /* + the terminating NUL */
    if (need <= b->alloc) {
        return 0;
    }
    nalloc = b->alloc ? b->alloc : 64;
    while (nalloc < need) {
        nalloc = nalloc > SIZE_MAX / 2 ? need : nalloc * 2;
    }
    /* Never allocate much beyond what the cap can use. */
    if (nalloc > b->max + 1) {
        nalloc = b->max + 1;
    }
    p = realloc(b->data, nalloc);
    if (!p) {
        return -ENOMEM;
    }
    b->data = p;
    b->alloc = nalloc;
    return 0;
}

int kbuf_append(struct kbuf *b, const void *p, size_t n) {
    int r = kbuf_reserve(b, n);

    if (r < 0) {
        return r;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int kbuf_putc(struct kbuf *b, char c) {
    return kbuf_append(b, &c, 1);
}

int kbuf_puts(struct kbuf *b, const char *s) {
    return kbuf_append(b, s, strlen(s));
}

int kbuf_printf(struct kbuf *b, const char *fmt, ...) {
    va_list ap;
    int n, r;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -EINVAL;
    }
    r = kbuf_reserve(b, (size_t)n);
    if (r < 0) {
        return r;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void kbuf_consume(struct kbuf *b, size_t n) {
    if (n >= b->len) {
        kbuf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}

uint8_t *kbuf_steal(struct kbuf *b, size_t *ret_len) {
    uint8_t *p = b->data;

    if (ret_len) {
        *ret_len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
