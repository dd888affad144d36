/* SPDX-License-Identifier: Apache-2.0 */
#include "list-reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ascii-parse.h"
#include "fileio.h"

/* Read until the buffer holds at least `want` unparsed bytes or EOF. */
static int fill(struct list_reader *lr, size_t want) {
    if (lr->pos > 0) {
        kbuf_consume(&lr->buf, lr->pos);
        lr->pos = 0;
    }
    while (!lr->eof && lr->buf.len < want) {
        size_t room = LIST_READER_CHUNK;
        int r;
        long n;

        if (room > lr->buf.max - lr->buf.len) {
            room = lr->buf.max - lr->buf.len;
        }
        if (room == 0) {
            return -E2BIG;
        }
        r = kbuf_reserve(&lr->buf, room);
        if (r < 0) {
            return r;
        }
        n = read_full(lr->fd, lr->buf.data + lr->buf.len, room);
        if (n < 0) {
            return (int)n;
        }
        lr->buf.len += (size_t)n;
        if ((size_t)n < room) {
            lr->eof = true;
        }
    }
    return 0;
}

int list_reader_open(struct list_reader *lr, const char *path, uint32_t digest_len, bool ascii,
                     char *errbuf, size_t errsz) {
    int r;

    memset(lr, 0, sizeof(*lr));
    lr->fd = -1;
    lr->ascii = ascii;
    kbuf_init(&lr->buf, ascii ? LIST_READER_ASCII_MAX * 2 : LIST_READER_MAX);
    if (strcmp(path, "-") == 0) {
        lr->fd = STDIN_FILENO;
    } else {
        lr->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (lr->fd < 0) {
            r = -errno;
            snprintf(errbuf, errsz, "cannot open: %s", strerror(-r));
            return r;
        }
    }

    if (ascii) {
        _cleanup_free_ uint8_t *text = NULL;
        struct ima_error err;
        size_t len;
        uint32_t width;

        r = read_fd_capped(lr->fd, LIST_READER_ASCII_MAX, &text, &len);
        if (r < 0) {
            snprintf(errbuf, errsz, "cannot read: %s", strerror(-r));
            return r;
        }
        lr->eof = true;
        r = ima_ascii_to_binary((const char *)text, len, &lr->buf, &width, &err);
        if (r < 0) {
            char msg[256];
            snprintf(errbuf, errsz, "%s", ima_error_format(&err, msg, sizeof(msg)));
            return r;
        }
        if (digest_len && digest_len != width) {
            snprintf(errbuf, errsz, "ASCII list has %u-byte template digests, not %u", width,
                     digest_len);
            return -EBADMSG;
        }
        digest_len = width;
    }

    if (!digest_len) {
        digest_len = ima_list_digest_len_from_filename(path);
    }
    if (!digest_len) {
        r = fill(lr, LIST_READER_MAX);
        if (r < 0) {
            snprintf(errbuf, errsz, "cannot read: %s", strerror(-r));
            return r;
        }
        struct ima_error err;
        r = ima_list_detect_digest_len(lr->buf.data, lr->buf.len, &digest_len, &err);
        if (r < 0) {
            char msg[256];
            snprintf(errbuf, errsz, "%s", ima_error_format(&err, msg, sizeof(msg)));
            return -EBADMSG;
        }
    }
    r = ima_parser_init(&lr->parser, digest_len);
    if (r < 0) {
        snprintf(errbuf, errsz, "invalid digest size %u", digest_len);
        return r;
    }
    return 0;
}

int list_reader_next(struct list_reader *lr, struct ima_entry *ret_entry) {
    for (;;) {
        size_t avail = lr->buf.len - lr->pos;
        int n, r;

        if (avail == 0) {
            r = fill(lr, LIST_READER_CHUNK);
            if (r < 0) {
                return r;
            }
            if (lr->buf.len == 0) {
                return 0;
            }
            continue;
        }
        n = ima_parser_next(&lr->parser, lr->buf.data + lr->pos, avail, ret_entry);
        if (n > 0) {
            lr->pos += (size_t)n;
            return 1;
        }
        if (n != -EAGAIN) {
            return n;
        }
        if (lr->eof) {
            /* The parser's message says how many bytes were there and what
             * was missing; make the code a hard error. */
            char tmp[sizeof(lr->parser.err.msg) + 32];
            snprintf(tmp, sizeof(tmp), "list ends inside an entry (%s)", lr->parser.err.msg);
            snprintf(lr->parser.err.msg, sizeof(lr->parser.err.msg), "%.*s",
                     (int)sizeof(lr->parser.err.msg) - 1, tmp);
            lr->parser.err.code = -EBADMSG;
            return -EBADMSG;
        }
        r = fill(lr, avail + LIST_READER_CHUNK);
        if (r < 0) {
            return r;
        }
    }
}

void list_reader_close(struct list_reader *lr) {
    if (lr->fd > STDIN_FILENO) {
        close(lr->fd);
    }
    lr->fd = -1;
    kbuf_free(&lr->buf);
}
