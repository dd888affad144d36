/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_BUF_H
#define KIMA_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A growable byte buffer with a hard cap: every append that would take it past
 * `max` bytes fails with -E2BIG and leaves it unchanged. The contents are kept
 * NUL-terminated (one byte past `len`, not counted), so text can be used as a
 * C string. */
struct kbuf {
    uint8_t *data;
    size_t len;
    size_t alloc;
    size_t max;
};

#define KBUF_INIT(m) \
    { .data = NULL, .len = 0, .alloc = 0, .max = (m) }

void kbuf_init(struct kbuf *b, size_t max);
/* Frees the storage; the buffer can be used again afterwards. NULL is fine. */
void kbuf_free(struct kbuf *b);
/* Forgets the contents, keeps the storage. */
void kbuf_reset(struct kbuf *b);
/* Ensure room for `n` more bytes. 0, -E2BIG or -ENOMEM. */
int kbuf_reserve(struct kbuf *b, size_t n);
int kbuf_append(struct kbuf *b, const void *p, size_t n);
int kbuf_putc(struct kbuf *b, char c);
int kbuf_puts(struct kbuf *b, const char *s);
int kbuf_printf(struct kbuf *b, const char *fmt, ...) _printf_(2, 3);
/* Drop the first `n` bytes (n <= len), moving the rest to the front. */
void kbuf_consume(struct kbuf *b, size_t n);
/* Hand the storage to the caller (free() it); the buffer is left empty. The
 * result is NUL-terminated; it is NULL only when nothing was ever appended. */
uint8_t *kbuf_steal(struct kbuf *b, size_t *ret_len);

static inline void kbuf_freep(struct kbuf *b) {
    kbuf_free(b);
}
#define _cleanup_kbuf_ _cleanup_(kbuf_freep)

#endif
