/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_JSON_WRITER_H
#define KIMA_COMMON_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A streaming JSON writer into a bounded buffer, for output that may be too
 * large to build as a tree (a million-entry measurement list). Commas and
 * nesting are tracked here; the first failure (buffer cap, nesting deeper than
 * JW_DEPTH_MAX, a value where a key is due) is sticky and reported by
 * jw_error(), so callers check once at the end or before flushing.
 *
 * Strings are untrusted bytes: valid UTF-8 is copied, `"` `\` and control
 * characters are escaped, and every byte that is not part of a well-formed
 * UTF-8 sequence is written as \u00XX with that byte's value. */

#define JW_DEPTH_MAX 32

struct json_writer {
    struct kbuf *out;
    int depth;
    bool first[JW_DEPTH_MAX + 1];
    bool in_object[JW_DEPTH_MAX + 1];
    bool key_pending;
    int err;
};

/* `out` is borrowed and must outlive the writer. */
void jw_init(struct json_writer *w, struct kbuf *out);
/* 0, or the first negative errno hit. */
int jw_error(const struct json_writer *w);

void jw_object_begin(struct json_writer *w);
void jw_object_end(struct json_writer *w);
void jw_array_begin(struct json_writer *w);
void jw_array_end(struct json_writer *w);
void jw_key(struct json_writer *w, const char *key);
void jw_string(struct json_writer *w, const char *s);
void jw_string_n(struct json_writer *w, const void *s, size_t len);
/* A byte string written as a lowercase hex JSON string. */
void jw_hex(struct json_writer *w, const void *data, size_t len);
void jw_uint(struct json_writer *w, uint64_t v);
void jw_int(struct json_writer *w, int64_t v);
void jw_bool(struct json_writer *w, bool v);
void jw_null(struct json_writer *w);

/* Append the escaped form of `len` bytes (without quotes) to `out`. */
int json_escape_append(struct kbuf *out, const void *s, size_t len);

#endif
