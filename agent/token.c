/* SPDX-License-Identifier: Apache-2.0 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"

/* Blanks a token file may have around the token (a trailing newline). */
#define TOKEN_FILE_SLACK 1024

static bool blank(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool token_char(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int agent_token_parse(const uint8_t *buf, size_t len, char **ret, char *err, size_t errsz) {
    size_t start = 0, end = len, i;
    char *t;

    while (start < end && blank(buf[start])) {
        start++;
    }
    while (end > start && blank(buf[end - 1])) {
        end--;
    }
    if (start == end) {
        snprintf(err, errsz, "the file holds no token (it is empty or blank)");
        return -EINVAL;
    }
    if (end - start > AGENT_TOKEN_MAX) {
        snprintf(err, errsz, "the token has %zu bytes, more than the %u a token may have",
                 end - start, AGENT_TOKEN_MAX);
        return -E2BIG;
    }
    for (i = start; i < end && token_char(buf[i]); i++) {
    }
    while (i < end && buf[i] == '=') {
        i++;
    }
    if (i != end) {
        snprintf(err, errsz, "byte %zu of the token (0x%02x) is not one a bearer token has",
                 i - start, buf[i]);
        return -EBADMSG;
    }
    t = malloc(end - start + 1);
    if (!t) {
        return -ENOMEM;
    }
    memcpy(t, buf + start, end - start);
    t[end - start] = 0;
    *ret = t;
    return 0;
}

void agent_token_init(struct agent_token *t, const char *path) {
    *t = (struct agent_token){.path = path};
}

void agent_token_free(struct agent_token *t) {
    if (!t) {
        return;
    }
    if (t->value) {
        explicit_bzero(t->value, strlen(t->value));
        free(t->value);
    }
    t->value = NULL;
}

static bool same_file(const struct agent_token *t, const struct stat *st) {
    return t->dev == st->st_dev && t->ino == st->st_ino && t->size == st->st_size &&
           t->mtime.tv_sec == st->st_mtim.tv_sec && t->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Read the file again into t. 0 or a negative errno, logged. */
static int reread(struct agent_token *t, int64_t now_ms) {
    _cleanup_close_ int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ uint8_t *data = NULL;
    char err[160];
    char *value = NULL;
    struct stat st;
    size_t len = 0;
    int r;

    if (fd < 0 || fstat(fd, &st) < 0) {
        r = -errno;
        log_error("--token-file %s: %s", t->path, strerror(-r));
        return r;
    }
    r = read_fd_capped(fd, AGENT_TOKEN_MAX + TOKEN_FILE_SLACK, &data, &len);
    if (r == -EFBIG) {
        log_error("--token-file %s: more than %u bytes: not a token", t->path,
                  AGENT_TOKEN_MAX + TOKEN_FILE_SLACK);
        return -E2BIG;
    }
    if (r < 0) {
        log_error("--token-file %s: %s", t->path, strerror(-r));
        return r;
    }
    r = agent_token_parse(data, len, &value, err, sizeof(err));
    explicit_bzero(data, len);
    if (r < 0) {
        log_error("--token-file %s: %s", t->path, r == -ENOMEM ? strerror(ENOMEM) : err);
        return r;
    }
    if (t->value && strcmp(t->value, value) != 0) {
        log_info("--token-file %s: a new token (%zu bytes)", t->path, strlen(value));
    }
    agent_token_free(t);
    t->value = value;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->size = st.st_size;
    t->mtime = st.st_mtim;
    t->read_ms = now_ms;
    return 0;
}

int agent_token_get(struct agent_token *t, int64_t now_ms, const char **ret) {
    struct stat st;
    bool due = !t->value || now_ms - t->read_ms >= AGENT_TOKEN_REREAD_MS ||
               stat(t->path, &st) < 0 || !same_file(t, &st);
    int r;

    if (due) {
        r = reread(t, now_ms);
        if (r < 0) {
            /* Read again next time, whatever the file says then. */
            agent_token_free(t);
            return r;
        }
    }
    *ret = t->value;
    return 0;
}
