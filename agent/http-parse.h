/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_HTTP_PARSE_H
#define KIMA_AGENT_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* The agent's HTTP/1.1 response reader, apart from the socket so it can be
 * tested and fuzzed: it is fed what arrives and says when a whole response
 * is there. Everything is bounded; anything malformed is an error with a
 * reason, never a guess. */

#define HTTP_HEADERS_MAX (16 * 1024)

struct http_response {
    int status;               /* 100-599 */
    bool keep_alive;          /* the server keeps the connection open */
    bool chunked;             /* Transfer-Encoding: chunked */
    long long content_length; /* -1: none given */
    size_t header_len;        /* bytes of the status line and headers, CRLFCRLF included */
};

/* Parse the status line and headers at the start of buf. Returns 1 with *ret
 * filled when they are complete, 0 when more bytes are needed, -EBADMSG
 * (with a reason in why) when they are malformed or over HTTP_HEADERS_MAX. */
int http_parse_head(const char *buf, size_t len, struct http_response *ret, const char **why);

/* Decode a chunked body in place (buf holds what followed the headers).
 * Returns 1 when the last chunk and trailers are there (*ret_len: the
 * decoded length, *ret_used: the bytes consumed), 0 when more bytes are
 * needed, -EBADMSG when malformed, -E2BIG when the body exceeds max. buf is
 * only changed on 1. */
int http_dechunk(char *buf, size_t len, size_t max, size_t *ret_len, size_t *ret_used,
                 const char **why);

#endif
