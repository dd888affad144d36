/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_ASCII_H
#define KIMA_IMA_ASCII_H

#include "buf.h"
#include "list.h"

/* Render entries exactly as the kernel's ascii_runtime_measurements does
 * (ima_fs.c ima_ascii_measurements_show; docs/formats.md section 4):
 *   "%2d " pcr, hex template digest, " " name, then " " + each field, "\n".
 * Strings are written raw, as the kernel does: a name holding a newline or
 * non-UTF-8 bytes is reproduced as is, so print the result only where such
 * bytes are harmless, and verify from the binary list. */

/* Append one field's ASCII form. 0 or -E2BIG (buffer cap). */
int ima_field_format_ascii(const struct ima_field *f, bool legacy, struct kbuf *out);

/* Append the entry's line, newline included. 0 or -E2BIG. */
int ima_entry_format_ascii(const struct ima_entry *e, struct kbuf *out);

#endif
