/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_PARSE_H
#define KIMA_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Whole-string decimal integer parsing. No leading or trailing space, no
 * sign on unsigned values, no empty string, no overflow: anything else is
 * -EINVAL (not a number) or -ERANGE (out of range). The output is untouched
 * on failure. */
int parse_u64(const char *s, uint64_t *ret);
int parse_u32(const char *s, uint32_t *ret);
int parse_int(const char *s, int *ret);
/* Within [min, max] inclusive, else -ERANGE. */
int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* The same on the first `len` bytes of a buffer that need not be a C string. */
int parse_u64_n(const char *s, size_t len, uint64_t *ret);

/* A duration: a number with a unit suffix ms, s, m or h ("200ms", "2s").
 * Returns milliseconds. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);

#endif
