/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <limits.h>

#include "parse.h"

static void test_u64(void **state) {
    uint64_t v = 7;
    (void)state;

    assert_int_equal(parse_u64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
    assert_int_equal(parse_u64("", &v), -EINVAL);
    assert_int_equal(parse_u64(" 1", &v), -EINVAL);
    assert_int_equal(parse_u64("1 ", &v), -EINVAL);
    assert_int_equal(parse_u64("-1", &v), -EINVAL);
    assert_int_equal(parse_u64("+1", &v), -EINVAL);
    assert_int_equal(parse_u64("0x10", &v), -EINVAL);
    assert_int_equal(parse_u64(NULL, &v), -EINVAL);
    assert_int_equal(v, 7); /* untouched on failure */
    assert_int_equal(parse_u64_n("123abc", 3, &v), 0);
    assert_int_equal(v, 123);
}

static void test_u32_int_range(void **state) {
    uint32_t u = 0;
    uint64_t r = 0;
    int i = 0;
    (void)state;

    assert_int_equal(parse_u32("4294967295", &u), 0);
    assert_true(u == UINT32_MAX);
    assert_int_equal(parse_u32("4294967296", &u), -ERANGE);
    assert_int_equal(parse_int("-2147483648", &i), 0);
    assert_int_equal(i, INT_MIN);
    assert_int_equal(parse_int("2147483647", &i), 0);
    assert_int_equal(i, INT_MAX);
    assert_int_equal(parse_int("2147483648", &i), -ERANGE);
    assert_int_equal(parse_int("-2147483649", &i), -ERANGE);
    assert_int_equal(parse_int("-", &i), -EINVAL);
    assert_int_equal(parse_u64_range("5", 1, 10, &r), 0);
    assert_int_equal(r, 5);
    assert_int_equal(parse_u64_range("11", 1, 10, &r), -ERANGE);
    assert_int_equal(parse_u64_range("0", 1, 10, &r), -ERANGE);
}

static void test_duration(void **state) {
    uint64_t ms = 0;
    (void)state;

    assert_int_equal(parse_duration_ms("200ms", &ms), 0);
    assert_int_equal(ms, 200);
    assert_int_equal(parse_duration_ms("2s", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(parse_duration_ms("3m", &ms), 0);
    assert_int_equal(ms, 180000);
    assert_int_equal(parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(parse_duration_ms("2", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("s", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("2x", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("99999999999999999999h", &ms), -ERANGE);
    assert_int_equal(parse_duration_ms("9999999999999999h", &ms), -ERANGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_u64),
            cmocka_unit_test(test_u32_int_range),
            cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
