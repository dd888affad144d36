/* SPDX-License-Identifier: Apache-2.0 */
#include "base64.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t len) {
    return (len + 2) / 3 * 4;
}

size_t base64_decoded_max(size_t len) {
    return len / 4 * 3;
}

size_t base64_encode(const void *data, size_t len, char *out) {
    const uint8_t *p = data;
    size_t o = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int base64_decode(const char *s, size_t len, uint8_t *out, size_t outsz) {
    size_t o = 0;

    if (len % 4) {
        return -EINVAL;
    }
    if (len / 4 * 3 > INT_MAX) {
        return -E2BIG;
    }
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        bool last = i + 4 == len;

        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=') {
                /* Padding only at the end of the last group, one or two. */
                if (!last || k < 2) {
                    return -EINVAL;
                }
                v[k] = 0;
                pad++;
            } else {
                if (pad) {
                    return -EINVAL;
                }
                v[k] = b64_value(s[i + k]);
                if (v[k] < 0) {
                    return -EINVAL;
                }
            }
        }
        uint32_t w =
                (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t n = 3 - (size_t)pad;
        /* Non-canonical encodings (stray low bits before the padding) are refused. */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) {
            return -EINVAL;
        }
        if (o + n > outsz) {
            return -E2BIG;
        }
        out[o++] = (uint8_t)(w >> 16);
        if (n > 1) {
            out[o++] = (uint8_t)(w >> 8);
        }
        if (n > 2) {
            out[o++] = (uint8_t)w;
        }
    }
    return (int)o;
}
