/* SPDX-License-Identifier: Apache-2.0 */
#include "http-parse.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define CONTENT_LENGTH_MAX (1LL << 40)

static const char *find_crlf(const char *p, const char *end) {
    for (; p + 1 < end; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            return p;
        }
    }
    return NULL;
}

static bool token_is(const char *v, size_t n, const char *want) {
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

static int bad(const char **why, const char *reason) {
    if (why) {
        *why = reason;
    }
    return -EBADMSG;
}

int http_parse_head(const char *buf, size_t len, struct http_response *ret, const char **why) {
    size_t scan = len < HTTP_HEADERS_MAX ? len : HTTP_HEADERS_MAX;
    const char *end = NULL, *p, *eol;
    struct http_response r = {.content_length = -1};
    bool have_te = false;

    for (size_t i = 0; i + 3 < scan; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 2; /* the last header line's CRLF */
            break;
        }
    }
    if (!end) {
        return len >= HTTP_HEADERS_MAX ? bad(why, "response headers over 16 KiB") : 0;
    }
    /* Status line: HTTP/1.x SP 3DIGIT SP reason */
    eol = find_crlf(buf, end + 2);
    if (eol - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
        buf[11] < '0' || buf[11] > '9' || (eol - buf > 12 && buf[12] != ' ')) {
        return bad(why, "not an HTTP/1.x status line");
    }
    r.status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    r.keep_alive = buf[7] == '1';
    for (p = eol + 2; p < end; p = eol + 2) {
        const char *colon, *v, *ve;
        size_t nlen;

        eol = find_crlf(p, end + 2);
        if (*p == ' ' || *p == '\t') {
            return bad(why, "folded header line");
        }
        colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) {
            return bad(why, "header line without a name and a colon");
        }
        nlen = (size_t)(colon - p);
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
        }
        for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--) {
        }
        for (const char *c = p; c < eol; c++) {
            if ((unsigned char)*c < 0x20 && *c != '\t') {
                return bad(why, "control character in a header");
            }
        }
        if (token_is(p, nlen, "Content-Length")) {
            long long n = 0;
            if (v == ve) {
                return bad(why, "empty Content-Length");
            }
            for (const char *c = v; c < ve; c++) {
                if (*c < '0' || *c > '9' || n > CONTENT_LENGTH_MAX / 10) {
                    return bad(why, "Content-Length is not a number in range");
                }
                n = n * 10 + (*c - '0');
            }
            if (r.content_length >= 0 && r.content_length != n) {
                return bad(why, "two different Content-Length headers");
            }
            r.content_length = n;
        } else if (token_is(p, nlen, "Transfer-Encoding")) {
            if (have_te || !token_is(v, (size_t)(ve - v), "chunked")) {
                return bad(why, "a Transfer-Encoding other than chunked");
            }
            have_te = true;
            r.chunked = true;
        } else if (token_is(p, nlen, "Connection")) {
            if (token_is(v, (size_t)(ve - v), "close")) {
                r.keep_alive = false;
            } else if (token_is(v, (size_t)(ve - v), "keep-alive")) {
                r.keep_alive = true;
            }
        }
    }
    if (r.chunked && r.content_length >= 0) {
        return bad(why, "both Content-Length and Transfer-Encoding");
    }
    r.header_len = (size_t)(end + 2 - buf);
    *ret = r;
    return 1;
}

/* One pass over the chunks; copies the data to out when out is not NULL. */
static int dechunk_pass(const char *buf, size_t len, size_t max, char *out, size_t *ret_len,
                        size_t *ret_used, const char **why) {
    const char *p = buf, *end = buf + len;
    size_t total = 0;

    for (;;) {
        const char *eol = find_crlf(p, end);
        unsigned long long size = 0;
        const char *c = p;
        int digits = 0;

        if (!eol) {
            return (size_t)(end - p) > 1024 ? bad(why, "chunk size line over 1 KiB") : 0;
        }
        for (; c < eol && digits <= 15; c++, digits++) {
            int d = *c >= '0' && *c <= '9'   ? *c - '0'
                    : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10
                    : *c >= 'A' && *c <= 'F' ? *c - 'A' + 10
                                             : -1;
            if (d < 0) {
                break;
            }
            size = size * 16 + (unsigned)d;
        }
        if (digits == 0 || digits > 15 || (c < eol && *c != ';' && *c != ' ' && *c != '\t')) {
            return bad(why, "bad chunk size");
        }
        p = eol + 2;
        if (size == 0) {
            /* Trailers, then an empty line. */
            for (;;) {
                eol = find_crlf(p, end);
                if (!eol) {
                    return (size_t)(end - p) > 4096 ? bad(why, "trailers over 4 KiB") : 0;
                }
                if (eol == p) {
                    *ret_len = total;
                    *ret_used = (size_t)(eol + 2 - buf);
                    return 1;
                }
                p = eol + 2;
            }
        }
        if (size > max || total + size > max) {
            if (why) {
                *why = "response body too big";
            }
            return -E2BIG;
        }
        if ((size_t)(end - p) < size + 2) {
            return 0;
        }
        if (p[size] != '\r' || p[size + 1] != '\n') {
            return bad(why, "chunk data not followed by CRLF");
        }
        if (out) {
            memmove(out + total, p, size);
        }
        total += size;
        p += size + 2;
    }
}

int http_dechunk(char *buf, size_t len, size_t max, size_t *ret_len, size_t *ret_used,
                 const char **why) {
    size_t n, used;
    int r = dechunk_pass(buf, len, max, NULL, &n, &used, why);

    if (r == 1) {
        /* Output never overtakes input: decode in place. */
        dechunk_pass(buf, len, max, buf, ret_len, ret_used, why);
    }
    return r;
}
