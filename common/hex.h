/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_HEX_H
#define KIMA_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Lowercase hex of `len` bytes into `out`, which must hold 2 * len + 1 bytes.
 * Returns `out`. */
char *hex_encode(const void *data, size_t len, char *out);

/* Decode exactly `len` hex characters (upper or lower case, no separators)
 * into `out` (room for `outsz` bytes). Returns the number of bytes written,
 * -EINVAL for an odd length or a non-hex character, -E2BIG if it does not fit.
 * `out` is unspecified on failure. */
int hex_decode(const char *s, size_t len, uint8_t *out, size_t outsz);

/* Value of one hex digit, or -1. */
int hex_digit(char c);

#endif
