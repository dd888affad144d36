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

/* A line's space-separated parts: PCR, template digest, template name, then
 * one per field. */
#define PARTS_MAX (2 + IMA_FIELDS_MAX + 1)

struct line_parts {
    const char *tok[PARTS_MAX];
    size_t len[PARTS_MAX];
    size_t n;
};

/* Split on single spaces, so that empty fields are empty parts, after the
 * leading space "%2d " gives PCRs below 10. -E2BIG past PARTS_MAX parts. */
static int split_line(const char *line, size_t len, struct line_parts *ret) {
    const char *end = line + len, *s = line;

    if (s < end && *s == ' ') {
        s++;
    }
    ret->n = 0;
    for (;;) {
        const char *sp = memchr(s, ' ', (size_t)(end - s));
        if (ret->n == PARTS_MAX) {
            return -E2BIG;
        }
        ret->tok[ret->n] = s;
        ret->len[ret->n] = sp ? (size_t)(sp - s) : (size_t)(end - s);
        ret->n++;
        if (!sp) {
            return 0;
        }
        s = sp + 1;
    }
}

/* The PCR, the template digest's width and the template, whose every field
 * must be known and present. */
static int check_parts(struct ima_ascii_parser *p, const struct line_parts *lp, uint64_t offset,
                       uint64_t *ret_pcr, struct ima_template *ret_t) {
    size_t hexlen;

    if (lp->n < 3) {
        return fail(p, -EBADMSG, offset, "line has %zu space-separated parts, needs at least 3",
                    lp->n);
    }
    if (parse_u64_n(lp->tok[0], lp->len[0], ret_pcr) < 0 || *ret_pcr >= IMA_PCR_COUNT) {
        return fail(p, -EBADMSG, offset, "PCR index is not a number in 0-%d", IMA_PCR_COUNT - 1);
    }
    hexlen = lp->len[1];
    if (hexlen != 40 && hexlen != 64 && hexlen != 96 && hexlen != 128) {
        return fail(p, -EBADMSG, offset, "template digest has %zu hex digits, not 40/64/96/128",
                    hexlen);
    }
    if (p->digest_len && hexlen / 2 != p->digest_len) {
        return fail(p, -EBADMSG, offset, "template digest width %zu differs from the list's %u",
                    hexlen / 2, p->digest_len);
    }
    if (lp->len[2] == 0 || lp->len[2] > IMA_TEMPLATE_NAME_MAX) {
        return fail(p, -EBADMSG, offset, "template name is empty or longer than %d",
                    IMA_TEMPLATE_NAME_MAX);
    }
    ima_template_resolve(lp->tok[2], lp->len[2], ret_t);
    if (!ret_t->known) {
        return fail(p, -EBADMSG, offset,
                    "template %.*s is not known, its ASCII form cannot be read back",
                    (int)(lp->len[2] > 64 ? 64 : lp->len[2]), lp->tok[2]);
    }
    if (lp->n != 3 + (size_t)ret_t->nfields) {
        return fail(p, -EBADMSG, offset, "template %.*s has %u fields, the line has %zu",
                    (int)lp->len[2], lp->tok[2], ret_t->nfields, lp->n - 3);
    }
    return 0;
}

static void set_le32(uint8_t *at, uint32_t v) {
    memcpy(at, (uint8_t[4]){(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)},
           4);
}

/* Append each field, with its length prefix but for the `ima` template's d. */
static int put_fields(struct ima_ascii_parser *p, const struct line_parts *lp,
                      const struct ima_template *t, uint64_t offset) {
    struct kbuf *b = &p->storage;
    const char *why = "";
    int r = 0;

    for (unsigned i = 0; i < t->nfields; i++) {
        size_t at = b->len;
        bool prefixed = !(t->legacy && i == 0);
        if (prefixed) {
            r = put_le32(b, 0);
        }
        if (r == 0) {
            r = put_field(b, (enum ima_field_id)t->fields[i], t->legacy, lp->tok[3 + i],
                          lp->len[3 + i], &why);
        }
        if (r < 0) {
            return fail(p, r == -E2BIG ? -E2BIG : -EBADMSG, offset, "field %u (%s) %s", i,
                        ima_field_name(t->fields[i]), why);
        }
        if (prefixed) {
            set_le32(b->data + at, (uint32_t)(b->len - at - 4));
        }
    }
    return 0;
}

/* Rebuild in p->storage the binary entry the line was printed from. */
static int rebuild_entry(struct ima_ascii_parser *p, const struct line_parts *lp,
                         const struct ima_template *t, uint64_t pcr, uint64_t offset) {
    struct kbuf *b = &p->storage;
    size_t data_start = 0;
    int r;

    kbuf_reset(b);
    r = put_le32(b, (uint32_t)pcr);
    if (r == 0) {
        r = put_hex(b, lp->tok[1], lp->len[1]);
    }
    if (r < 0) {
        return fail(p, -EBADMSG, offset, "template digest is not hex");
    }
    r = put_le32(b, (uint32_t)lp->len[2]);
    if (r == 0) {
        r = kbuf_append(b, lp->tok[2], lp->len[2]);
    }
    if (!t->legacy && r == 0) {
        data_start = b->len;
        r = put_le32(b, 0); /* the data length, set below */
    }
    if (r < 0) {
        return fail(p, -E2BIG, offset, "entry is too large");
    }
    if ((r = put_fields(p, lp, t, offset)) < 0) {
        return r;
    }
    if (!t->legacy) {
        set_le32(b->data + data_start, (uint32_t)(b->len - data_start - 4));
    }
    return 0;
}

/* The rebuilt entry gets every check of the binary parser. */
static int reparse(struct ima_ascii_parser *p, uint32_t digest_len, uint64_t offset,
                   struct ima_entry *ret_entry) {
    struct ima_parser bp;
    int r;

    ima_parser_init(&bp, digest_len);
    ima_parser_seek(&bp, p->index, offset);
    r = ima_parser_next(&bp, p->storage.data, p->storage.len, ret_entry);
    if (r < 0) {
        p->err = bp.err;
        if (r == -EAGAIN) {
            p->err.code = r = -EBADMSG;
        }
        return r;
    }
    if ((size_t)r != p->storage.len) {
        return fail(p, -EBADMSG, offset, "line holds more than one entry");
    }
    return 0;
}

int ima_ascii_parse_line(struct ima_ascii_parser *p, const char *line, size_t len, uint64_t offset,
                         struct ima_entry *ret_entry) {
    struct line_parts lp;
    struct ima_template t;
    uint32_t digest_len;
    uint64_t pcr;
    int r;

    if (len > IMA_ASCII_LINE_MAX) {
        return fail(p, -E2BIG, offset, "line of %zu bytes exceeds %d", len, IMA_ASCII_LINE_MAX);
    }
    if (split_line(line, len, &lp) < 0) {
        return fail(p, -EBADMSG, offset, "line has more than %d space-separated parts", PARTS_MAX);
    }
    if ((r = check_parts(p, &lp, offset, &pcr, &t)) < 0 ||
        (r = rebuild_entry(p, &lp, &t, pcr, offset)) < 0) {
        return r;
    }
    digest_len = (uint32_t)(lp.len[1] / 2);
    if ((r = reparse(p, digest_len, offset, ret_entry)) < 0) {
        return r;
    }
    p->digest_len = digest_len;
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
