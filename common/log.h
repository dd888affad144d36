/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_LOG_H
#define KIMA_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

/* One event per line on stderr (or the stream given to log_set_stream()), as
 * logfmt (`time=... level=... msg="..."`) or as a JSON object. The message is
 * escaped in both formats, so untrusted strings formatted into it cannot forge
 * a line or a field. */

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

enum log_format {
    LOG_FORMAT_LOGFMT = 0,
    LOG_FORMAT_JSON = 1,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_format(enum log_format format);
/* The stream is borrowed; NULL restores stderr. */
void log_set_stream(FILE *stream);

/* Parse "error", "warn", "info", "debug" / "logfmt", "json". 0 or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *ret_level);
int log_format_from_string(const char *s, enum log_format *ret_format);

/* Apply --log-level / --log-format values (either may be NULL). 0, or
 * -EINVAL when one is not a known name (nothing is changed then). */
int log_setup(const char *level, const char *format);

void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);
void log_msgv(enum log_level level, const char *fmt, va_list ap) _printf_(2, 0);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Escape `len` bytes of untrusted text into `out` (always NUL-terminated when
 * outsz > 0) as the inside of a double-quoted string: `"` and `\` are
 * backslash-escaped, control bytes and bytes >= 0x7f become \xNN. Output that
 * does not fit is cut at a whole escape and ends in "...". Returns `out`. */
char *log_escape(const void *s, size_t len, char *out, size_t outsz);

#endif
