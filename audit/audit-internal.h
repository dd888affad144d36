/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AUDIT_AUDIT_INTERNAL_H
#define KIMA_AUDIT_AUDIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* What the audit log's writer (audit.c) and reader (audit-verify.c) share:
 * the line format and the signed messages. */

/* Lowercase hex SHA-256 of `len` bytes. */
void audit_sha256_hex(const void *data, size_t len, char out[65]);

/* Split a line (without its newline) into the body that was hashed (the
 * line up to `,"hash":` with "}" appended, NUL-terminated in `body`) and the
 * stated hash. Returns the body's length, or -EBADMSG. */
int audit_split_line(const char *line, size_t len, char *body, size_t bodysz, char hash[65]);

/* The signed messages; `out` must hold 256 bytes. Returns the length. */
#define AUDIT_MSG_MAX 256
size_t audit_checkpoint_message(uint64_t seq, const char *prev, char out[AUDIT_MSG_MAX]);
/* The v2 message: the v1 one, then the replica and the key fingerprint. */
size_t audit_checkpoint_message_v2(uint64_t seq, const char *prev, const char *replica,
                                   const char *key_fp, char out[AUDIT_MSG_MAX]);
size_t audit_head_message(uint64_t seq, const char *hash, const char *time,
                          char out[AUDIT_MSG_MAX]);

#endif
