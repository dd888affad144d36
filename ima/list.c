/* SPDX-License-Identifier: Apache-2.0 */
#include "list.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "verify.h"

static inline uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ima_parser_init(struct ima_parser *p, uint32_t digest_len) {
    enum ima_hash_alg alg;

    if (!p || ima_hash_from_size(digest_len, &alg) < 0) {
        return -EINVAL;
    }
    memset(p, 0, sizeof(*p));
    p->digest_len = digest_len;
    p->max_entries = IMA_ENTRIES_MAX_DEFAULT;
    return 0;
}

void ima_parser_seek(struct ima_parser *p, uint64_t index, uint64_t offset) {
    p->index = index;
    p->offset = offset;
}

__attribute__((format(printf, 3, 4))) static int fail(struct ima_parser *p, int code,
                                                      const char *fmt, ...) {
    va_list ap;

    p->err.code = code;
    p->err.index = p->index;
    p->err.offset = p->offset;
    va_start(ap, fmt);
    vsnprintf(p->err.msg, sizeof(p->err.msg), fmt, ap);
    va_end(ap);
    return code;
}

char *ima_error_format(const struct ima_error *err, char *out, size_t outsz) {
    snprintf(out, outsz, "entry %" PRIu64 " at byte offset %" PRIu64 ": %s", err->index,
             err->offset, err->msg);
    return out;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static int resolve_template(struct ima_parser *p, const char *name, uint32_t len) {
    if (p->cache_len == len && memcmp(p->cache_name, name, len) == 0) {
        return 0;
    }
    for (uint32_t i = 0; i < len; i++) {
        /* Template names are identifiers; anything else would make the
         * ASCII list ambiguous. */
        if (name[i] <= 0x20 || name[i] >= 0x7f) {
            return fail(p, -EBADMSG, "template name has a byte 0x%02x that is not printable",
                        (unsigned char)name[i]);
        }
    }
    ima_template_resolve(name, len, &p->cache);
    memcpy(p->cache_name, name, len);
    p->cache_len = len;
    return 0;
}

static int need(struct ima_parser *p, size_t len, size_t want, const char *what) {
    if (len >= want) {
        return 0;
    }
    return fail(p, -EAGAIN, "incomplete entry: %zu bytes present, %s needs %zu", len, what, want);
}

/* The header: u32 pcr | digest | u32 name_len | name. Fills the entry's
 * PCR, digest and name, resolves its template into p->cache and sets *ret_pos
 * past the name. */
static inline int parse_header(struct ima_parser *p, const uint8_t *buf, size_t len,
                               struct ima_entry *e, size_t *ret_pos) {
    size_t pos, dlen = p->digest_len;
    uint32_t name_len;
    int r;

    if ((r = need(p, len, 4 + dlen + 4, "the header")) < 0) {
        return r;
    }
    e->pcr = get_le32(buf);
    if (e->pcr >= IMA_PCR_COUNT) {
        return fail(p, -EBADMSG, "PCR index %" PRIu32 " is out of range 0-%d", e->pcr,
                    IMA_PCR_COUNT - 1);
    }
    e->digest = buf + 4;
    e->digest_len = (uint32_t)dlen;
    name_len = get_le32(buf + 4 + dlen);
    if (name_len == 0) {
        return fail(p, -EBADMSG, "template name is empty");
    }
    if (name_len > IMA_TEMPLATE_NAME_MAX) {
        return fail(p, -E2BIG, "template name length %" PRIu32 " exceeds %d", name_len,
                    IMA_TEMPLATE_NAME_MAX);
    }
    pos = 4 + dlen + 4;
    if ((r = need(p, len, pos + name_len, "the template name")) < 0) {
        return r;
    }
    e->name = (const char *)buf + pos;
    e->name_len = name_len;
    if ((r = resolve_template(p, e->name, name_len)) < 0) {
        return r;
    }
    e->legacy = p->cache.legacy;
    e->known = p->cache.known;
    *ret_pos = pos + name_len;
    return 0;
}

/* The `ima` template's data, which has no length of its own:
 * d[20] | u32 n_len | n. Moves *pos past it. */
static inline int parse_legacy_data(struct ima_parser *p, const uint8_t *buf, size_t len,
                                    struct ima_entry *e, size_t *pos) {
    size_t at = *pos;
    uint32_t n_len;
    int r;

    if ((r = need(p, len, at + 24, "the ima template's d and name length")) < 0) {
        return r;
    }
    n_len = get_le32(buf + at + 20);
    if (n_len > IMA_EVENT_NAME_MAX) {
        return fail(p, -E2BIG, "event name length %" PRIu32 " exceeds %d", n_len,
                    IMA_EVENT_NAME_MAX);
    }
    if ((r = need(p, len, at + 24 + n_len, "the event name")) < 0) {
        return r;
    }
    e->data = buf + at;
    e->data_len = 24 + n_len;
    e->nfields = 2;
    e->fields[0] = (struct ima_field){.id = IMA_FIELD_D, .len = 20, .data = buf + at};
    e->fields[1] = (struct ima_field){.id = IMA_FIELD_N, .len = n_len, .data = buf + at + 24};
    *pos = at + 24 + n_len;
    return 0;
}

/* Cut e->data into its (u32 len | bytes) fields, named by the template when
 * it is known: a known template's data holds exactly its fields. */
static inline int split_fields(struct ima_parser *p, struct ima_entry *e) {
    const struct ima_template *t = &p->cache;
    size_t fpos = 0, end = e->data_len;
    unsigned nf = 0;

    while (fpos < end) {
        uint32_t flen;
        if (nf == IMA_FIELDS_MAX || (t->known && nf == t->nfields)) {
            return fail(p, -EBADMSG, "template data has more than %u fields (%zu bytes left over)",
                        t->known ? t->nfields : IMA_FIELDS_MAX, end - fpos);
        }
        if (end - fpos < 4) {
            return fail(p, -EBADMSG, "field %u length runs past the template data", nf);
        }
        flen = get_le32(e->data + fpos);
        if (flen > end - fpos - 4) {
            return fail(p, -EBADMSG,
                        "field %u (%s) length %" PRIu32 " runs past the template data (%zu left)",
                        nf, t->known ? ima_field_name(t->fields[nf]) : "?", flen, end - fpos - 4);
        }
        e->fields[nf].id = t->known ? t->fields[nf] : IMA_FIELD_UNKNOWN;
        e->fields[nf].len = flen;
        e->fields[nf].data = e->data + fpos + 4;
        nf++;
        fpos += 4 + (size_t)flen;
    }
    if (t->known && nf != t->nfields) {
        return fail(p, -EBADMSG, "template %.*s needs %u fields, the data holds %u",
                    (int)e->name_len, e->name, t->nfields, nf);
    }
    e->nfields = (uint8_t)nf;
    return 0;
}

/* Every other template's data: u32 data_len | (u32 len | bytes)... Moves
 * *pos past it. */
static inline int parse_template_data(struct ima_parser *p, const uint8_t *buf, size_t len,
                                      struct ima_entry *e, size_t *pos) {
    size_t at = *pos;
    uint32_t data_len;
    int r;

    if ((r = need(p, len, at + 4, "the template data length")) < 0) {
        return r;
    }
    data_len = get_le32(buf + at);
    if (data_len > IMA_TEMPLATE_DATA_MAX) {
        return fail(p, -E2BIG, "template data length %" PRIu32 " exceeds %u", data_len,
                    IMA_TEMPLATE_DATA_MAX);
    }
    at += 4;
    if ((r = need(p, len, at + data_len, "the template data")) < 0) {
        return r;
    }
    e->data = buf + at;
    e->data_len = data_len;
    if ((r = split_fields(p, e)) < 0) {
        return r;
    }
    *pos = at + data_len;
    return 0;
}

/* Each field whose id is known holds a value of its kind. */
static inline int validate_fields(struct ima_parser *p, const struct ima_entry *e) {
    const char *why;

    for (unsigned i = 0; i < e->nfields; i++) {
        if (e->fields[i].id != IMA_FIELD_UNKNOWN &&
            ima_field_validate(&e->fields[i], e->legacy, &why) < 0) {
            return fail(p, -EBADMSG, "field %u (%s): %s", i, ima_field_name(e->fields[i].id), why);
        }
    }
    return 0;
}

int ima_parser_next(struct ima_parser *p, const uint8_t *buf, size_t len,
                    struct ima_entry *ret_entry) {
    struct ima_entry *e = ret_entry;
    size_t pos = 0;
    int r;

    if (!buf && len) {
        return -EINVAL;
    }
    if (p->index >= p->max_entries) {
        return fail(p, -E2BIG, "list has more than %" PRIu64 " entries", p->max_entries);
    }
    if ((r = parse_header(p, buf, len, e, &pos)) < 0) {
        return r;
    }
    r = e->legacy ? parse_legacy_data(p, buf, len, e, &pos)
                  : parse_template_data(p, buf, len, e, &pos);
    if (r < 0 || (r = validate_fields(p, e)) < 0) {
        return r;
    }
    e->violation = all_zero(e->digest, e->digest_len);
    e->index = p->index;
    e->offset = p->offset;
    e->size = (uint32_t)pos;
    p->index++;
    p->offset += pos;
    return (int)pos;
}

long ima_parser_skip_to(struct ima_parser *p, const uint8_t *buf, size_t len, uint64_t index) {
    struct ima_entry e;
    size_t off = 0;

    if (!p || index < p->index) {
        return -EINVAL;
    }
    while (p->index < index) {
        int n = ima_parser_next(p, buf + off, len - off, &e);
        if (n < 0) {
            return n;
        }
        off += (size_t)n;
    }
    return (long)off;
}

const struct ima_field *ima_entry_field(const struct ima_entry *e, enum ima_field_id id) {
    for (unsigned i = 0; i < e->nfields; i++) {
        if (e->fields[i].id == id) {
            return &e->fields[i];
        }
    }
    return NULL;
}

/* Parse and verify the whole buffer at one width. Returns true when it fits;
 * otherwise *ret_entries is how many entries did and *ret_err why it stopped. */
static bool width_fits(const uint8_t *buf, size_t len, uint32_t width, uint64_t *ret_entries,
                       struct ima_error *ret_err) {
    struct ima_parser p;
    struct ima_entry e;
    size_t off = 0;

    ima_parser_init(&p, width);
    *ret_entries = 0;
    while (off < len) {
        int n = ima_parser_next(&p, buf + off, len - off, &e);
        if (n == -EAGAIN && p.index > 0) {
            return true;
        }
        if (n < 0) {
            *ret_err = p.err;
            return false;
        }
        if (ima_entry_verify_digest(&e) != 0) {
            ret_err->code = -EBADMSG;
            ret_err->index = e.index;
            ret_err->offset = e.offset;
            snprintf(ret_err->msg, sizeof(ret_err->msg),
                     "template digest does not match the template data");
            return false;
        }
        off += (size_t)n;
        *ret_entries = p.index;
    }
    return true;
}

int ima_list_detect_digest_len(const uint8_t *buf, size_t len, uint32_t *ret_digest_len,
                               struct ima_error *ret_err) {
    static const uint32_t widths[] = {20, 32, 48, 64};
    struct ima_error best = {0}, err;
    uint64_t best_entries = 0, entries;
    uint32_t best_width = 0;

    if (!ret_digest_len || (!buf && len)) {
        return -EINVAL;
    }
    if (len == 0) {
        *ret_digest_len = 20;
        return 0;
    }
    for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
        if (width_fits(buf, len, widths[i], &entries, &err)) {
            *ret_digest_len = widths[i];
            return 0;
        }
        if (!best_width || entries > best_entries) {
            best = err;
            best_entries = entries;
            best_width = widths[i];
        }
    }
    if (ret_err) {
        *ret_err = best;
        snprintf(ret_err->msg, sizeof(ret_err->msg), "with %u-byte template digests: %.*s",
                 best_width, (int)sizeof(best.msg) - 40, best.msg);
    }
    return -EBADMSG;
}

uint32_t ima_list_digest_len_from_filename(const char *path) {
    static const struct {
        const char *suffix;
        uint32_t len;
    } suffixes[] = {{"_sha1", 20}, {"_sha256", 32}, {"_sha384", 48}, {"_sha512", 64}};
    size_t plen;

    if (!path) {
        return 0;
    }
    plen = strlen(path);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t slen = strlen(suffixes[i].suffix);
        if (plen > slen && strcmp(path + plen - slen, suffixes[i].suffix) == 0) {
            return suffixes[i].len;
        }
    }
    return 0;
}
