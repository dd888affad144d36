/* SPDX-License-Identifier: Apache-2.0 */
#include "json-util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "hex.h"

void json_scan_init(struct json_scan *s) {
    memset(s, 0, sizeof(*s));
    s->values = 1;
}

/* Counts separators and containers, strings skipped; a backslash may end one
 * chunk and escape the first byte of the next. */
void json_scan_feed(struct json_scan *s, const char *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (s->in_string) {
            if (s->escaped) {
                s->escaped = false;
            } else if (c == '\\') {
                s->escaped = true;
            } else if (c == '"') {
                s->in_string = false;
            }
        } else if (c == '"') {
            s->in_string = true;
        } else if (c == '[' || c == '{') {
            s->values++;
            if (++s->depth > s->max_depth) {
                s->max_depth = s->depth;
            }
        } else if (c == ']' || c == '}') {
            s->depth--;
        } else if (c == ',') {
            s->values++;
        }
    }
}

int json_scan_check(const struct json_scan *s, int max_depth, size_t max_values, char *err,
                    size_t errsz) {
    if (s->max_depth > max_depth) {
        snprintf(err, errsz, "JSON nested %d deep, more than %d", s->max_depth, max_depth);
        return -EBADMSG;
    }
    if (s->values > max_values) {
        snprintf(err, errsz,
                 "JSON holds more than %zu values (arrays and objects are capped by count)",
                 max_values);
        return -E2BIG;
    }
    return 0;
}

int json_parse_bounded(const char *buf, size_t len, int max_depth, size_t max_values, json_t **ret,
                       char *err, size_t errsz) {
    struct json_scan scan;
    json_error_t jerr;
    json_t *v;
    int r;

    /* jansson would otherwise recurse up to its own limit of 2048 and
     * allocate every value before we could count them. */
    json_scan_init(&scan);
    json_scan_feed(&scan, buf, len);
    r = json_scan_check(&scan, max_depth, max_values, err, errsz);
    if (r < 0) {
        return r;
    }
    v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        snprintf(err, errsz, "invalid JSON at line %d column %d: %.80s", jerr.line, jerr.column,
                 jerr.text);
        return -EBADMSG;
    }
    *ret = v;
    return 0;
}

static json_t *field(const json_t *obj, const char *key, const char *what, char *err, size_t errsz,
                     int *r) {
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    if (!v || json_is_null(v)) {
        snprintf(err, errsz, "\"%s\" is missing (%s expected)", key, what);
        *r = -ENOENT;
        return NULL;
    }
    *r = 0;
    return v;
}

int json_get_string(const json_t *obj, const char *key, size_t max_len, const char **ret, char *err,
                    size_t errsz) {
    int r;
    json_t *v = field(obj, key, "a string", err, errsz, &r);

    if (!v) {
        return r;
    }
    if (!json_is_string(v)) {
        snprintf(err, errsz, "\"%s\" is not a string", key);
        return -EBADMSG;
    }
    if (json_string_length(v) > max_len || strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errsz, "\"%s\" is longer than %zu bytes or holds a NUL", key, max_len);
        return -EBADMSG;
    }
    *ret = json_string_value(v);
    return 0;
}

int json_get_u64(const json_t *obj, const char *key, uint64_t max, uint64_t *ret, char *err,
                 size_t errsz) {
    int r;
    json_t *v = field(obj, key, "an integer", err, errsz, &r);

    if (!v) {
        return r;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        snprintf(err, errsz, "\"%s\" is not an integer in 0-%" PRIu64, key, max);
        return -EBADMSG;
    }
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

int json_get_base64(const json_t *obj, const char *key, size_t max_bytes, uint8_t **ret,
                    size_t *ret_len, char *err, size_t errsz) {
    const char *s;
    uint8_t *buf;
    size_t len;
    int r, n;

    r = json_get_string(obj, key, SIZE_MAX, &s, err, errsz);
    if (r < 0) {
        return r;
    }
    len = strlen(s);
    if (len > base64_encoded_len(max_bytes)) {
        snprintf(err, errsz, "\"%s\" holds more than %zu bytes", key, max_bytes);
        return -E2BIG;
    }
    buf = malloc(base64_decoded_max(len) + 1);
    if (!buf) {
        return -ENOMEM;
    }
    n = base64_decode(s, len, buf, base64_decoded_max(len));
    if (n < 0) {
        free(buf);
        snprintf(err, errsz, "\"%s\" is not valid base64", key);
        return -EBADMSG;
    }
    if ((size_t)n > max_bytes) {
        free(buf);
        snprintf(err, errsz, "\"%s\" holds more than %zu bytes", key, max_bytes);
        return -E2BIG;
    }
    *ret = buf;
    *ret_len = (size_t)n;
    return 0;
}

int json_get_hex(const json_t *obj, const char *key, uint8_t *out, size_t len, char *err,
                 size_t errsz) {
    const char *s;
    int r = json_get_string(obj, key, 2 * len, &s, err, errsz);

    if (r < 0) {
        return r;
    }
    if (strlen(s) != 2 * len || hex_decode(s, 2 * len, out, len) != (int)len) {
        snprintf(err, errsz, "\"%s\" is not %zu bytes of hex", key, len);
        return -EBADMSG;
    }
    return 0;
}

json_t *json_base64(const void *data, size_t len) {
    char *s = malloc(base64_encoded_len(len) + 1);
    json_t *j;

    if (!s) {
        return NULL;
    }
    base64_encode(data, len, s);
    j = json_string(s);
    free(s);
    return j;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 (overlongs,
 * surrogates and code points past U+10FFFF are invalid, as jansson holds). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned cp;
    size_t len;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0;
    }
    return len;
}

json_t *json_string_untrusted(const void *s, size_t len, size_t cap) {
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *p = s;
    char tail[48];
    size_t o = 0, i = 0, tlen;
    char *out;
    json_t *j;

    if (cap < 32) {
        cap = 32;
    }
    out = malloc(cap + 1);
    if (!out) {
        return NULL;
    }
    /* Room for the tail only when the whole text does not fit. */
    tlen = 0;
    for (size_t k = 0, n; k < len; k += n ? n : 1) {
        n = utf8_seq(p + k, len - k);
        tlen += n == 0 || p[k] < 0x20 || p[k] == 0x7f ? 4 : n;
    }
    tlen = tlen <= cap ? 0 : (size_t)snprintf(tail, sizeof(tail), "...[%zu bytes]", len);
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        size_t need = n == 0 || p[i] < 0x20 || p[i] == 0x7f ? 4 : n;
        if (o + need + tlen > cap) {
            /* Every piece left room for the tail, so this cut falls
             * between whole characters and escapes. */
            memcpy(out + o, tail, tlen);
            o += tlen;
            break;
        }
        if (need == 4 && n != 4) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hexd[p[i] >> 4];
            out[o++] = hexd[p[i] & 0xf];
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    j = json_stringn(out, o);
    free(out);
    return j;
}
