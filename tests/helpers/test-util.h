/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_TEST_UTIL_H
#define KIMA_TESTS_TEST_UTIL_H

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "fileio.h"
#include "macro.h"
#include "tmpdir.h"

/* Read tests/fixtures/<rel> (the folder comes from $KIMA_FIXTURES, set by
 * meson). Fails the test when missing. Caller frees. */
static inline uint8_t *read_fixture(const char *rel, size_t *ret_len) {
    const char *dir = getenv("KIMA_FIXTURES");
    char path[4096];
    uint8_t *data = NULL;
    int r;

    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    r = read_file_capped(path, 64u << 20, &data, ret_len);
    if (r < 0) {
        fail_msg("cannot read fixture %s: %d", path, r);
    }
    return data;
}

#endif
