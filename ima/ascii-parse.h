/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_ASCII_PARSE_H
#define KIMA_IMA_ASCII_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "list.h"

/* Read the ASCII list (ascii_runtime_measurements, keylime-style inputs) back
 * into entries. Each line is rebuilt into the binary entry it was printed from
 * and then goes through the binary parser, so both forms get the same checks
 * and the template digest can be verified. Only templates whose every field
 * kima knows can be read back. The ASCII form is ambiguous for names holding
 * a newline; verification should use the binary list. */

/* Most bytes of one ASCII line accepted. */
#define IMA_ASCII_LINE_MAX (2 * IMA_TEMPLATE_DATA_MAX + 1024)

struct ima_ascii_parser {
    struct kbuf storage; /* the current entry in binary form */
    uint64_t index;      /* index of the next entry */
    uint32_t digest_len; /* the width of the first line; all must agree */
    struct ima_error err;
};

void ima_ascii_parser_init(struct ima_ascii_parser *p);
/* Frees the storage; NULL is fine. */
void ima_ascii_parser_free(struct ima_ascii_parser *p);

/* Parse one line (without its "\n"), found at byte `offset` of the input.
 * *ret_entry points into the parser's storage until the next call. Returns 0,
 * or -EBADMSG / -E2BIG with p->err set ("entry N at byte offset O: ..."). */
int ima_ascii_parse_line(struct ima_ascii_parser *p, const char *line, size_t len, uint64_t offset,
                         struct ima_entry *ret_entry);

/* Convert a whole ASCII list to the binary list in `out` (appended). Empty
 * lines are refused; a missing final newline is accepted. On failure
 * *ret_err (if given) says where. */
int ima_ascii_to_binary(const char *text, size_t len, struct kbuf *out, uint32_t *ret_digest_len,
                        struct ima_error *ret_err);

#endif
