/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: a registry's WWW-Authenticate header value, as
 * reg_challenge_parse() reads it (the bytes up to the first NUL, at most
 * 8 KiB, as curl hands a header over). What must hold whatever the bytes:
 * 0 or -EBADMSG; on 0 a known scheme, and realm, service and scope
 * NUL-terminated within their arrays and free of CR, LF and NUL (they go
 * into a URL and a request). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image-registry-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
    if (!ok) {
        abort();
    }
}

static void check_field(const char *f, size_t size) {
    size_t n = strnlen(f, size);

    check(n < size);
    check(strcspn(f, "\r\n") == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char value[8193];
    struct reg_challenge c;
    int rc;

    if (size >= sizeof(value)) {
        size = sizeof(value) - 1;
    }
    memcpy(value, data, size);
    value[size] = 0;
    memset(&c, 0x5a, sizeof(c));
    rc = reg_challenge_parse(value, &c);
    check(rc == 0 || rc == -EBADMSG);
    if (rc == 0) {
        check(c.scheme == REG_SCHEME_BEARER || c.scheme == REG_SCHEME_BASIC);
        check_field(c.realm, sizeof(c.realm));
        check_field(c.service, sizeof(c.service));
        check_field(c.scope, sizeof(c.scope));
    }
    return 0;
}
