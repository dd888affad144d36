/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_JSON_UTIL_H
#define KIMA_COMMON_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "macro.h"

/* Reading untrusted JSON with jansson, bounded: nesting depth is checked
 * before parsing, duplicate keys are refused, and every accessor takes a cap.
 * Errors carry a message that names the field. jansson's own error codes
 * are converted here and nowhere else. */

#define JSON_DEPTH_MAX 16

/* jansson provides json_decrefp() for the cleanup attribute. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Parse `len` bytes holding exactly one JSON value, nested at most
 * `max_depth` deep and holding at most `max_values` values (arrays, objects
 * and scalars all count; a parsed value costs jansson tens of bytes, so a
 * wide array of one-byte numbers would otherwise cost ~40x its text). Both
 * are checked by a scan before jansson allocates anything. 0, or -EBADMSG
 * (-E2BIG over max_values) with a reason in err (caller's buffer). */
int json_parse_bounded(const char *buf, size_t len, int max_depth, size_t max_values, json_t **ret,
                       char *err, size_t errsz);

/* The scan json_parse_bounded makes, fed piece by piece: a body can be
 * refused for its depth or width while it arrives, before it is buffered
 * whole. Values counted are an upper bound (separators and containers). */
struct json_scan {
    size_t values;
    int depth, max_depth;
    bool in_string, escaped;
};
void json_scan_init(struct json_scan *s);
void json_scan_feed(struct json_scan *s, const char *buf, size_t len);
/* 0, or -EBADMSG (too deep) / -E2BIG (too many values) with the reason in
 * err, the same as json_parse_bounded's. */
int json_scan_check(const struct json_scan *s, int max_depth, size_t max_values, char *err,
                    size_t errsz);

/* Field accessors on an object. Each returns 0, -ENOENT when the key is
 * absent, or -EBADMSG when it has the wrong type or breaks the cap, with a
 * message naming the key in err. */
int json_get_string(const json_t *obj, const char *key, size_t max_len, const char **ret, char *err,
                    size_t errsz);
int json_get_u64(const json_t *obj, const char *key, uint64_t max, uint64_t *ret, char *err,
                 size_t errsz);
/* A base64 string decoded into a new buffer (caller frees) of at most
 * `max_bytes` bytes; -E2BIG when it holds more. */
int json_get_base64(const json_t *obj, const char *key, size_t max_bytes, uint8_t **ret,
                    size_t *ret_len, char *err, size_t errsz);
/* A new JSON string holding the base64 of `len` bytes (NULL without memory). */
json_t *json_base64(const void *data, size_t len);

/* A JSON string for untrusted bytes (a path from an IMA list, say) that
 * always encodes: valid UTF-8 is kept, any other byte and control
 * characters become the text \xNN, and the result is cut to at most `cap`
 * bytes of text with "...[N bytes]" naming the original length. Never NULL
 * unless out of memory. */
json_t *json_string_untrusted(const void *s, size_t len, size_t cap);

/* A hex string decoded into out (exactly `len` bytes). */
int json_get_hex(const json_t *obj, const char *key, uint8_t *out, size_t len, char *err,
                 size_t errsz);

#endif
