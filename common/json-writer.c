/* SPDX-License-Identifier: Apache-2.0 */
#include "json-writer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

void jw_init(struct json_writer *w, struct kbuf *out) {
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->first[0] = true;
}

int jw_error(const struct json_writer *w) {
    return w->err;
}

static void jw_fail(struct json_writer *w, int r) {
    if (!w->err) {
        w->err = r;
    }
}

static void jw_raw(struct json_writer *w, const char *s, size_t len) {
    int r;

    if (w->err) {
        return;
    }
    r = kbuf_append(w->out, s, len);
    if (r < 0) {
        jw_fail(w, r);
    }
}

/* Called before every value: a comma between siblings, and a key must come
 * first inside an object. */
static bool jw_value_prefix(struct json_writer *w) {
    if (w->err) {
        return false;
    }
    if (w->in_object[w->depth]) {
        if (!w->key_pending) {
            jw_fail(w, -EINVAL);
            return false;
        }
        w->key_pending = false;
        return true;
    }
    if (!w->first[w->depth]) {
        jw_raw(w, ",", 1);
    }
    w->first[w->depth] = false;
    return !w->err;
}

static void jw_open(struct json_writer *w, char c, bool object) {
    if (!jw_value_prefix(w)) {
        return;
    }
    if (w->depth >= JW_DEPTH_MAX) {
        jw_fail(w, -E2BIG);
        return;
    }
    jw_raw(w, &c, 1);
    w->depth++;
    w->first[w->depth] = true;
    w->in_object[w->depth] = object;
}

static void jw_close(struct json_writer *w, char c, bool object) {
    if (w->err) {
        return;
    }
    if (w->depth == 0 || w->in_object[w->depth] != object || w->key_pending) {
        jw_fail(w, -EINVAL);
        return;
    }
    w->depth--;
    jw_raw(w, &c, 1);
}

void jw_object_begin(struct json_writer *w) {
    jw_open(w, '{', true);
}

void jw_object_end(struct json_writer *w) {
    jw_close(w, '}', true);
}

void jw_array_begin(struct json_writer *w) {
    jw_open(w, '[', false);
}

void jw_array_end(struct json_writer *w) {
    jw_close(w, ']', false);
}

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 if it is not one
 * (overlong forms, surrogates and values above U+10FFFF are not). */
static size_t utf8_seq_len(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

int json_escape_append(struct kbuf *out, const void *s, size_t len) {
    static const char hexd[] = "0123456789abcdef";
    const uint8_t *p = s;
    size_t i = 0;
    int r;

    while (i < len) {
        size_t run = i;
        /* Copy runs of plain printable ASCII in one go. */
        while (run < len && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\') {
            run++;
        }
        if (run > i) {
            r = kbuf_append(out, p + i, run - i);
            if (r < 0) {
                return r;
            }
            i = run;
            continue;
        }
        uint8_t c = p[i];
        char esc[7];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            n = 2;
        } else if (c >= 0x80 && (n = utf8_seq_len(p + i, len - i)) > 0) {
            r = kbuf_append(out, p + i, n);
            if (r < 0) {
                return r;
            }
            i += n;
            continue;
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hexd[c >> 4];
            esc[5] = hexd[c & 0xf];
            n = 6;
        }
        r = kbuf_append(out, esc, n);
        if (r < 0) {
            return r;
        }
        i++;
    }
    return 0;
}

static void jw_quoted(struct json_writer *w, const void *s, size_t len) {
    int r;

    jw_raw(w, "\"", 1);
    if (w->err) {
        return;
    }
    r = json_escape_append(w->out, s, len);
    if (r < 0) {
        jw_fail(w, r);
        return;
    }
    jw_raw(w, "\"", 1);
}

void jw_key(struct json_writer *w, const char *key) {
    if (w->err) {
        return;
    }
    if (!w->in_object[w->depth] || w->key_pending) {
        jw_fail(w, -EINVAL);
        return;
    }
    if (!w->first[w->depth]) {
        jw_raw(w, ",", 1);
    }
    w->first[w->depth] = false;
    jw_quoted(w, key, strlen(key));
    jw_raw(w, ":", 1);
    w->key_pending = true;
}

void jw_string_n(struct json_writer *w, const void *s, size_t len) {
    if (jw_value_prefix(w)) {
        jw_quoted(w, s, len);
    }
}

void jw_string(struct json_writer *w, const char *s) {
    if (!s) {
        jw_null(w);
        return;
    }
    jw_string_n(w, s, strlen(s));
}

void jw_hex(struct json_writer *w, const void *data, size_t len) {
    int r;

    if (!jw_value_prefix(w)) {
        return;
    }
    jw_raw(w, "\"", 1);
    if (w->err) {
        return;
    }
    r = kbuf_reserve(w->out, 2 * len + 1);
    if (r < 0) {
        jw_fail(w, r);
        return;
    }
    hex_encode(data, len, (char *)w->out->data + w->out->len);
    w->out->len += 2 * len;
    jw_raw(w, "\"", 1);
}

void jw_uint(struct json_writer *w, uint64_t v) {
    char tmp[24];
    int n;

    if (!jw_value_prefix(w)) {
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    jw_raw(w, tmp, (size_t)n);
}

void jw_int(struct json_writer *w, int64_t v) {
    char tmp[24];
    int n;

    if (!jw_value_prefix(w)) {
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    jw_raw(w, tmp, (size_t)n);
}

void jw_bool(struct json_writer *w, bool v) {
    if (jw_value_prefix(w)) {
        jw_raw(w, v ? "true" : "false", v ? 4 : 5);
    }
}

void jw_null(struct json_writer *w) {
    if (jw_value_prefix(w)) {
        jw_raw(w, "null", 4);
    }
}
