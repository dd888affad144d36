/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "hex.h"

static void test_roundtrip(void **state) {
    uint8_t in[256], out[256];
    char hex[513];
    (void)state;

    for (int i = 0; i < 256; i++) {
        in[i] = (uint8_t)i;
    }
    hex_encode(in, sizeof(in), hex);
    assert_int_equal(strlen(hex), 512);
    assert_memory_equal(hex, "000102", 6);
    assert_string_equal(hex + 506, "fdfeff");
    assert_int_equal(hex_decode(hex, 512, out, sizeof(out)), 256);
    assert_memory_equal(in, out, 256);
}

static void test_upper_case_and_errors(void **state) {
    uint8_t out[4];
    (void)state;

    assert_int_equal(hex_decode("DEADbeef", 8, out, 4), 4);
    assert_int_equal(out[0], 0xde);
    assert_int_equal(out[3], 0xef);
    assert_int_equal(hex_decode("abc", 3, out, 4), -EINVAL);
    assert_int_equal(hex_decode("zz", 2, out, 4), -EINVAL);
    assert_int_equal(hex_decode("0x", 2, out, 4), -EINVAL);
    assert_int_equal(hex_decode(" 0", 2, out, 4), -EINVAL);
    assert_int_equal(hex_decode("0011223344", 10, out, 4), -E2BIG);
    assert_int_equal(hex_decode("", 0, out, 4), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_roundtrip),
            cmocka_unit_test(test_upper_case_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
