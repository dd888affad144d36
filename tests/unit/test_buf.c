/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "buf.h"

static void test_append_and_terminate(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1024);
    (void)state;

    assert_int_equal(kbuf_append(&b, "abc", 3), 0);
    assert_int_equal(kbuf_putc(&b, 'd'), 0);
    assert_int_equal(kbuf_printf(&b, "-%d-", 42), 0);
    assert_int_equal(b.len, 8);
    assert_string_equal((char *)b.data, "abcd-42-");
    assert_int_equal(b.data[b.len], 0);
}

static void test_cap_is_hard(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(8);
    (void)state;

    assert_int_equal(kbuf_append(&b, "12345678", 8), 0);
    assert_int_equal(kbuf_putc(&b, 'x'), -E2BIG);
    assert_int_equal(kbuf_printf(&b, "%s", "y"), -E2BIG);
    /* A failed append leaves the contents alone. */
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "12345678", 8);
    /* An overflowing size is refused, not wrapped. */
    assert_int_equal(kbuf_reserve(&b, SIZE_MAX), -E2BIG);
}

static void test_consume_reset_steal(void **state) {
    struct kbuf b = KBUF_INIT(100);
    uint8_t *p;
    size_t len;
    (void)state;

    assert_int_equal(kbuf_puts(&b, "hello world"), 0);
    kbuf_consume(&b, 6);
    assert_string_equal((char *)b.data, "world");
    kbuf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_int_equal(kbuf_puts(&b, "x"), 0);
    p = kbuf_steal(&b, &len);
    assert_int_equal(len, 1);
    assert_string_equal((char *)p, "x");
    assert_null(b.data);
    free(p);
    kbuf_free(NULL);
}

static void test_growth_many(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);
    (void)state;

    for (int i = 0; i < 100000; i++) {
        assert_int_equal(kbuf_putc(&b, (char)('a' + i % 26)), 0);
    }
    assert_int_equal(b.len, 100000);
    assert_int_equal(b.data[99999], 'a' + 99999 % 26);
    assert_true(b.alloc <= (1 << 20) + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_append_and_terminate),
            cmocka_unit_test(test_cap_is_hard),
            cmocka_unit_test(test_consume_reset_steal),
            cmocka_unit_test(test_growth_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
