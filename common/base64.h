/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_BASE64_H
#define KIMA_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Standard base64 (RFC 4648 section 4) with '=' padding, no line breaks. */

/* Characters base64_encode() writes for `len` bytes, without the NUL. */
size_t base64_encoded_len(size_t len);
/* Most bytes that `len` characters of base64 can decode to. */
size_t base64_decoded_max(size_t len);

/* Encode into `out`, which must hold base64_encoded_len(len) + 1 bytes.
 * Returns the number of characters written (the NUL not counted). */
size_t base64_encode(const void *data, size_t len, char *out);

/* Strict decode of `len` characters: the length must be a multiple of 4, only
 * the alphabet and trailing padding are accepted, and the unused bits of the
 * last group must be zero (one encoding per value). Returns bytes written, or
 * -EINVAL (names nothing; the caller says what it was decoding) or -E2BIG when
 * `outsz` is too small. */
int base64_decode(const char *s, size_t len, uint8_t *out, size_t outsz);

#endif
