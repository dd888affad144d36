/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the agent's HTTP response reader (headers, then a
 * chunked body), fed in two pieces as a socket would. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct http_response r;
    const char *why = NULL;
    char *copy;
    size_t len, used;
    int k;

    if (http_parse_head((const char *)data, size / 2, &r, &why) < 0 && !why) {
        abort();
    }
    k = http_parse_head((const char *)data, size, &r, &why);
    if (k < 0 && !why) {
        abort();
    }
    if (k != 1) {
        return 0;
    }
    if (r.header_len > size || r.status < 100 || r.status > 599) {
        abort();
    }
    copy = malloc(size - r.header_len + 1);
    if (!copy) {
        return 0;
    }
    memcpy(copy, data + r.header_len, size - r.header_len);
    if (http_dechunk(copy, size - r.header_len, 4096, &len, &used, &why) == 1 &&
        (len > 4096 || used > size - r.header_len || len > used)) {
        abort();
    }
    free(copy);
    return 0;
}
