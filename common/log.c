/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_LOGFMT;
static FILE *log_stream;

/* Longest message kept; longer ones are cut with "...". */
#define LOG_MSG_MAX 4096

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "error",
        [LOG_LEVEL_WARN] = "warn",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_level(enum log_level level) {
    log_level = level;
}

enum log_level log_get_level(void) {
    return log_level;
}

void log_set_format(enum log_format format) {
    log_format = format;
}

void log_set_stream(FILE *stream) {
    log_stream = stream;
}

int log_level_from_string(const char *s, enum log_level *ret_level) {
    if (!s || !ret_level) {
        return -EINVAL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *ret_level = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_format_from_string(const char *s, enum log_format *ret_format) {
    if (!s || !ret_format) {
        return -EINVAL;
    }
    if (strcmp(s, "logfmt") == 0) {
        *ret_format = LOG_FORMAT_LOGFMT;
    } else if (strcmp(s, "json") == 0) {
        *ret_format = LOG_FORMAT_JSON;
    } else {
        return -EINVAL;
    }
    return 0;
}

int log_setup(const char *level, const char *format) {
    enum log_level l = log_level;
    enum log_format f = log_format;

    if ((level && log_level_from_string(level, &l) < 0) ||
        (format && log_format_from_string(format, &f) < 0)) {
        return -EINVAL;
    }
    log_level = l;
    log_format = f;
    return 0;
}

char *log_escape(const void *s, size_t len, char *out, size_t outsz) {
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *p = s;
    size_t o = 0;

    if (outsz == 0) {
        return out;
    }
    for (size_t i = 0; i < len; i++) {
        char tmp[4];
        size_t n;
        unsigned char c = p[i];

        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hexd[c >> 4];
            tmp[3] = hexd[c & 0xf];
            n = 4;
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        /* Keep room for "..." and the NUL in case this is not the last byte. */
        if (o + n + (i + 1 < len ? 4 : 1) > outsz) {
            if (o + 4 <= outsz) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}

void log_msgv(enum log_level level, const char *fmt, va_list ap) {
    char msg[LOG_MSG_MAX], esc[LOG_MSG_MAX * 6 + 4], stamp[64];
    struct timespec ts;
    struct tm tm;
    FILE *f = log_stream ? log_stream : stderr;
    int n;

    if (level > log_level) {
        return;
    }
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) {
        snprintf(msg, sizeof(msg), "(unformattable log message)");
        n = (int)strlen(msg);
    } else if ((size_t)n >= sizeof(msg)) {
        memcpy(msg + sizeof(msg) - 4, "...", 4);
        n = (int)sizeof(msg) - 1;
    }
    /* The message may carry untrusted text: JSON and logfmt both take the
     * same escaping (\" \\ \xNN is not JSON, so JSON gets \u00NN below). */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    if (log_format == LOG_FORMAT_JSON) {
        size_t o = 0;
        for (int i = 0; i < n && o + 7 < sizeof(esc); i++) {
            unsigned char c = (unsigned char)msg[i];
            if (c == '"' || c == '\\') {
                esc[o++] = '\\';
                esc[o++] = (char)c;
            } else if (c < 0x20 || c >= 0x7f) {
                o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\u%04x", c);
            } else {
                esc[o++] = (char)c;
            }
        }
        esc[o] = '\0';
        fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", stamp, level_names[level],
                esc);
    } else {
        log_escape(msg, (size_t)n, esc, sizeof(esc));
        fprintf(f, "time=%s level=%s msg=\"%s\"\n", stamp, level_names[level], esc);
    }
    fflush(f);
}

void log_msg(enum log_level level, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    log_msgv(level, fmt, ap);
    va_end(ap);
}
