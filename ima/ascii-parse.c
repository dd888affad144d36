/* SPDX-License-Identifier: Apache-2.0 */
#include "ascii-parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "parse.h"

/* Binary entry size bound: header, digest, name, data length, data. */
#define STORAGE_MAX (4 + IMA_DIGEST_MAX + 4 + IMA_TEMPLATE_NAME_MAX + 4 + IMA_TEMPLATE_DATA_MAX)

void ima_ascii_parser_init(struct ima_ascii_parser *p) {
    memset(p, 0, sizeof(*p));
    kbuf_init(&p->storage, STORAGE_MAX);
}

void ima_ascii_parser_free(struct ima_ascii_parser *p) {
    if (p) {
        kbuf_free(&p->storage);
    }
}

__attribute__((format(printf, 4, 5))) static int fail(struct ima_ascii_parser *p, int code,
                                                      uint64_t offset, const char *fmt, ...) {
    va_list ap;

    p->err.code = code;
    p->err.index = p->index;
    p->err.offset = offset;
    va_start(ap, fmt);
    vsnprintf(p->err.msg, sizeof(p->err.msg), fmt, ap);
    va_end(ap);
    return code;
}

static int put_le32(struct kbuf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

    return kbuf_append(b, le, 4);
}

static int put_hex(struct kbuf *b, const char *s, size_t len) {
    int r = kbuf_reserve(b, len / 2);

    if (r < 0) {
        return r;
    }
    r = hex_decode(s, len, b->data + b->len, len / 2);
    if (r < 0) {
        return r;
    }
    b->len += (size_t)r;
    return 0;
}

/* Append one field's binary value (without its length prefix) for its ASCII token. */
static int put_field(struct kbuf *b, enum ima_field_id id, bool legacy, const char *tok, size_t len,
                     const char **ret_why) {
    const char *colon;
    uint64_t v;
    int r;

    switch (ima_field_fmt(id)) {
    case IMA_FMT_DIGEST:
    case IMA_FMT_HEX:
        r = put_hex(b, tok, len);
        *ret_why = "is not hex";
        return r;
    case IMA_FMT_DIGEST_WITH_ALGO:
    case IMA_FMT_DIGEST_WITH_TYPE_ALGO:
        if (len == 0) {
            return 0;
        }
        colon = memrchr(tok, ':', len);
        if (!colon) {
            *ret_why = "has no algorithm prefix";
            return -EINVAL;
        }
        r = kbuf_append(b, tok, (size_t)(colon - tok) + 1);
        if (r == 0) {
            r = kbuf_putc(b, 0);
        }
        if (r == 0) {
            r = put_hex(b, colon + 1, len - (size_t)(colon - tok) - 1);
        }
        *ret_why = "digest is not hex";
        return r;
    case IMA_FMT_STRING:
        r = kbuf_append(b, tok, len);
        /* The kernel writes strings with their NUL; only an absent xattr
         * list is an empty field. The `ima` template's n has no NUL. */
        if (r == 0 && !legacy && (len > 0 || id != IMA_FIELD_XATTRNAMES)) {
            r = kbuf_putc(b, 0);
        }
        *ret_why = "is too long";
        return r;
    case IMA_FMT_UINT: {
        size_t width = id == IMA_FIELD_IMODE ? 2 : 4;
        uint8_t le[4];
        if (len == 0) {
            return 0;
        }
        *ret_why = "is not an unsigned number of its width";
        if (parse_u64_n(tok, len, &v) < 0 || v >> (8 * width)) {
            return -EINVAL;
        }
        for (size_t i = 0; i < width; i++) {
            le[i] = (uint8_t)(v >> (8 * i));
        }
        return kbuf_append(b, le, width);
    }
    }
    *ret_why = "has an unknown format";
    return -EINVAL;
}

int ima_ascii_parse_line(struct ima_ascii_parser *p, const char *line, size_t len, uint64_t offset,
                         struct ima_entry *ret_entry) {
    struct kbuf *b = &p->storage;
    struct ima_template t;
    struct ima_parser bp;
    const char *tok[2 + IMA_FIELDS_MAX + 1], *end = line + len, *s = line, *why = "";
    size_t toklen[2 + IMA_FIELDS_MAX + 1], ntok = 0, hexlen, data_start = 0;
    uint64_t pcr;
    int r;

    if (len > IMA_ASCII_LINE_MAX) {
        return fail(p, -E2BIG, offset, "line of %zu bytes exceeds %d", len, IMA_ASCII_LINE_MAX);
    }
    /* "%2d ": PCRs below 10 have a leading space. */
    if (s < end && *s == ' ') {
        s++;
    }
    /* Split on single spaces: empty fields are empty tokens. */
    for (;;) {
        const char *sp = memchr(s, ' ', (size_t)(end - s));
        if (ntok == sizeof(tok) / sizeof(tok[0])) {
            return fail(p, -EBADMSG, offset, "line has more than %zu space-separated parts",
                        sizeof(tok) / sizeof(tok[0]));
        }
        tok[ntok] = s;
        toklen[ntok] = sp ? (size_t)(sp - s) : (size_t)(end - s);
        ntok++;
        if (!sp) {
            break;
        }
        s = sp + 1;
    }
    if (ntok < 3) {
        return fail(p, -EBADMSG, offset, "line has %zu space-separated parts, needs at least 3",
                    ntok);
    }
    if (parse_u64_n(tok[0], toklen[0], &pcr) < 0 || pcr >= IMA_PCR_COUNT) {
        return fail(p, -EBADMSG, offset, "PCR index is not a number in 0-%d", IMA_PCR_COUNT - 1);
    }
    hexlen = toklen[1];
    if (hexlen != 40 && hexlen != 64 && hexlen != 96 && hexlen != 128) {
        return fail(p, -EBADMSG, offset, "template digest has %zu hex digits, not 40/64/96/128",
                    hexlen);
    }
    if (p->digest_len && hexlen / 2 != p->digest_len) {
        return fail(p, -EBADMSG, offset, "template digest width %zu differs from the list's %u",
                    hexlen / 2, p->digest_len);
    }
    if (toklen[2] == 0 || toklen[2] > IMA_TEMPLATE_NAME_MAX) {
        return fail(p, -EBADMSG, offset, "template name is empty or longer than %d",
                    IMA_TEMPLATE_NAME_MAX);
    }
    ima_template_resolve(tok[2], toklen[2], &t);
    if (!t.known) {
        return fail(p, -EBADMSG, offset,
                    "template %.*s is not known, its ASCII form cannot be read back",
                    (int)(toklen[2] > 64 ? 64 : toklen[2]), tok[2]);
    }
    if (ntok != 3 + (size_t)t.nfields) {
        return fail(p, -EBADMSG, offset, "template %.*s has %u fields, the line has %zu",
                    (int)toklen[2], tok[2], t.nfields, ntok - 3);
    }

    kbuf_reset(b);
    r = put_le32(b, (uint32_t)pcr);
    if (r == 0) {
        r = put_hex(b, tok[1], hexlen);
    }
    if (r < 0) {
        return fail(p, -EBADMSG, offset, "template digest is not hex");
    }
    r = put_le32(b, (uint32_t)toklen[2]);
    if (r == 0) {
        r = kbuf_append(b, tok[2], toklen[2]);
    }
    if (!t.legacy && r == 0) {
        data_start = b->len;
        r = put_le32(b, 0); /* the data length, set below */
    }
    for (unsigned i = 0; i < t.nfields && r == 0; i++) {
        size_t at = b->len;
        /* The `ima` template's d has no length prefix. */
        bool prefixed = !(t.legacy && i == 0);
        if (prefixed) {
            r = put_le32(b, 0);
        }
        if (r == 0) {
            r = put_field(b, (enum ima_field_id)t.fields[i], t.legacy, tok[3 + i], toklen[3 + i],
                          &why);
        }
        if (r < 0) {
            return fail(p, r == -E2BIG ? -E2BIG : -EBADMSG, offset, "field %u (%s) %s", i,
                        ima_field_name(t.fields[i]), why);
        }
        if (prefixed) {
            uint32_t flen = (uint32_t)(b->len - at - 4);
            memcpy(b->data + at,
                   (uint8_t[4]){(uint8_t)flen, (uint8_t)(flen >> 8), (uint8_t)(flen >> 16),
                                (uint8_t)(flen >> 24)},
                   4);
        }
    }
    if (r < 0) {
        return fail(p, -E2BIG, offset, "entry is too large");
    }
    if (!t.legacy) {
        uint32_t dlen = (uint32_t)(b->len - data_start - 4);
        memcpy(b->data + data_start,
               (uint8_t[4]){(uint8_t)dlen, (uint8_t)(dlen >> 8), (uint8_t)(dlen >> 16),
                            (uint8_t)(dlen >> 24)},
               4);
    }

    /* The rebuilt entry gets every check of the binary parser. */
    ima_parser_init(&bp, (uint32_t)(hexlen / 2));
    ima_parser_seek(&bp, p->index, offset);
    r = ima_parser_next(&bp, b->data, b->len, ret_entry);
    if (r < 0) {
        p->err = bp.err;
        if (r == -EAGAIN) {
            p->err.code = r = -EBADMSG;
        }
        return r;
    }
    if ((size_t)r != b->len) {
        return fail(p, -EBADMSG, offset, "line holds more than one entry");
    }
    p->digest_len = (uint32_t)(hexlen / 2);
    p->index++;
    return 0;
}

int ima_ascii_to_binary(const char *text, size_t len, struct kbuf *out, uint32_t *ret_digest_len,
                        struct ima_error *ret_err) {
    struct ima_ascii_parser p;
    struct ima_entry e;
    size_t off = 0;
    int r = 0;

    ima_ascii_parser_init(&p);
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t llen = nl ? (size_t)(nl - (text + off)) : len - off;

        r = ima_ascii_parse_line(&p, text + off, llen, off, &e);
        if (r < 0) {
            break;
        }
        r = kbuf_append(out, p.storage.data, p.storage.len);
        if (r < 0) {
            p.err.code = r;
            p.err.index = e.index;
            p.err.offset = off;
            snprintf(p.err.msg, sizeof(p.err.msg), "binary list exceeds its size cap");
            break;
        }
        off += llen + (nl ? 1 : 0);
    }
    if (r < 0 && ret_err) {
        *ret_err = p.err;
    }
    if (r == 0 && ret_digest_len) {
        *ret_digest_len = p.digest_len ? p.digest_len : 20;
    }
    ima_ascii_parser_free(&p);
    return r;
}
