/* SPDX-License-Identifier: Apache-2.0 */
#include "ascii.h"

#include <inttypes.h>
#include <string.h>

#include "hex.h"

static int append_hex(struct kbuf *out, const uint8_t *p, size_t n) {
    int r = kbuf_reserve(out, 2 * n);

    if (r < 0) {
        return r;
    }
    hex_encode(p, n, (char *)out->data + out->len);
    out->len += 2 * n;
    return 0;
}

int ima_field_format_ascii(const struct ima_field *f, bool legacy, struct kbuf *out) {
    const uint8_t *nul;

    switch (ima_field_fmt(f->id)) {
    case IMA_FMT_DIGEST:
    case IMA_FMT_HEX:
        return append_hex(out, f->data, f->len);
    case IMA_FMT_DIGEST_WITH_ALGO:
    case IMA_FMT_DIGEST_WITH_TYPE_ALGO: {
        int r;
        if (f->len == 0) {
            return 0;
        }
        /* The prefix as a C string ("sha256:"), then the digest after its NUL. */
        nul = memchr(f->data, 0, f->len);
        if (!nul) {
            return append_hex(out, f->data, f->len);
        }
        r = kbuf_append(out, f->data, (size_t)(nul - f->data));
        if (r < 0) {
            return r;
        }
        return append_hex(out, nul + 1, f->len - (size_t)(nul - f->data) - 1);
    }
    case IMA_FMT_STRING:
        if (legacy) {
            return kbuf_append(out, f->data, f->len);
        }
        /* %s: up to the first NUL. */
        nul = memchr(f->data, 0, f->len);
        return kbuf_append(out, f->data, nul ? (size_t)(nul - f->data) : f->len);
    case IMA_FMT_UINT:
        if (f->len != 1 && f->len != 2 && f->len != 4 && f->len != 8) {
            return 0;
        }
        return kbuf_printf(out, "%" PRIu64, ima_field_uint(f));
    }
    return 0;
}

int ima_entry_format_ascii(const struct ima_entry *e, struct kbuf *out) {
    int r;

    r = kbuf_printf(out, "%2u ", (unsigned)e->pcr);
    if (r < 0) {
        return r;
    }
    r = append_hex(out, e->digest, e->digest_len);
    if (r < 0) {
        return r;
    }
    r = kbuf_putc(out, ' ');
    if (r < 0) {
        return r;
    }
    r = kbuf_append(out, e->name, e->name_len);
    if (r < 0) {
        return r;
    }
    for (unsigned i = 0; i < e->nfields; i++) {
        r = kbuf_putc(out, ' ');
        if (r < 0) {
            return r;
        }
        r = ima_field_format_ascii(&e->fields[i], e->legacy, out);
        if (r < 0) {
            return r;
        }
    }
    return kbuf_putc(out, '\n');
}
