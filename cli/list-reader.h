/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_CLI_LIST_READER_H
#define KIMA_CLI_LIST_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "list.h"

/* Streams a measurement list from a file in bounded chunks, so memory does
 * not grow with the list. An ASCII list is converted to binary first (whole,
 * since ASCII lists are a debugging input). */

/* How much of the list is read at once, and the most buffered at a time
 * (room for the largest entry the parser accepts). */
#define LIST_READER_CHUNK (1u << 20)
#define LIST_READER_MAX   (4u << 20)
/* Most bytes of an ASCII list read. */
#define LIST_READER_ASCII_MAX (256u << 20)

struct list_reader {
    int fd;
    bool eof;
    bool ascii;
    size_t pos; /* parse position in buf */
    struct kbuf buf;
    struct ima_parser parser;
    char path_desc[64];
};

/* Open `path` ("-" for stdin). digest_len 0 means: from the file name's
 * _shaNNN suffix, else detected on the first LIST_READER_MAX bytes (the whole
 * list when it is smaller) as ima_list_detect_digest_len() does. On failure
 * returns a negative errno and writes a message into errbuf. */
int list_reader_open(struct list_reader *lr, const char *path, uint32_t digest_len, bool ascii,
                     char *errbuf, size_t errsz);

/* The next entry (valid until the next call): 1, 0 at the end of the list,
 * or a negative errno with lr->parser.err saying where and what. A list that
 * ends inside an entry is an error (-EBADMSG). */
int list_reader_next(struct list_reader *lr, struct ima_entry *ret_entry);

void list_reader_close(struct list_reader *lr);

#endif
