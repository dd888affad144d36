/* SPDX-License-Identifier: Apache-2.0 */
#include "parse.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

int parse_u64_n(const char *s, size_t len, uint64_t *ret) {
    uint64_t v = 0;

    if (!s || !ret || len == 0) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') {
            return -EINVAL;
        }
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -ERANGE;
        }
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

int parse_u64(const char *s, uint64_t *ret) {
    if (!s) {
        return -EINVAL;
    }
    return parse_u64_n(s, strlen(s), ret);
}

int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
    uint64_t v;
    int r = parse_u64(s, &v);

    if (r < 0) {
        return r;
    }
    if (v < min || v > max) {
        return -ERANGE;
    }
    *ret = v;
    return 0;
}

int parse_u32(const char *s, uint32_t *ret) {
    uint64_t v;
    int r = parse_u64_range(s, 0, UINT32_MAX, &v);

    if (r < 0) {
        return r;
    }
    *ret = (uint32_t)v;
    return 0;
}

int parse_int(const char *s, int *ret) {
    uint64_t v;
    bool neg;
    int r;

    if (!s || !ret) {
        return -EINVAL;
    }
    neg = s[0] == '-';
    r = parse_u64(s + neg, &v);
    if (r < 0) {
        return r;
    }
    if (neg ? v > (uint64_t)INT_MAX + 1 : v > INT_MAX) {
        return -ERANGE;
    }
    *ret = neg ? (int)(-(int64_t)v) : (int)v;
    return 0;
}

int parse_duration_ms(const char *s, uint64_t *ret_ms) {
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    size_t len, digits = 0;
    uint64_t v;
    int r;

    if (!s || !ret_ms) {
        return -EINVAL;
    }
    len = strlen(s);
    while (digits < len && s[digits] >= '0' && s[digits] <= '9') {
        digits++;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s + digits, units[i].suffix) != 0) {
            continue;
        }
        r = parse_u64_n(s, digits, &v);
        if (r < 0) {
            return r;
        }
        if (v > UINT64_MAX / units[i].ms) {
            return -ERANGE;
        }
        *ret_ms = v * units[i].ms;
        return 0;
    }
    return -EINVAL;
}
