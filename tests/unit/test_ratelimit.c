/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include "ratelimit.h"

static void test_burst_then_count(void **state) {
    struct ratelimit rl = RATELIMIT_INIT(1000, 3);
    uint64_t held = 99;
    (void)state;

    for (int i = 0; i < 3; i++) {
        assert_true(ratelimit_allow(&rl, 10 + i, &held));
        assert_int_equal(held, 0);
    }
    for (int i = 0; i < 500; i++) {
        assert_false(ratelimit_allow(&rl, 20 + i, &held));
    }
    /* Still the first window: nothing to report yet. */
    assert_int_equal(ratelimit_flush(&rl, 1009), 0);
    /* The first event of the next window reports what was held back. */
    assert_true(ratelimit_allow(&rl, 1010, &held));
    assert_int_equal(held, 500);
    assert_true(ratelimit_allow(&rl, 1011, &held));
    assert_int_equal(held, 0);
}

static void test_flush(void **state) {
    struct ratelimit rl = RATELIMIT_INIT(1000, 1);
    uint64_t held;
    (void)state;

    assert_int_equal(ratelimit_flush(&rl, 0), 0);
    assert_true(ratelimit_allow(&rl, 0, &held));
    assert_false(ratelimit_allow(&rl, 1, &held));
    assert_false(ratelimit_allow(&rl, 2, &held));
    assert_int_equal(ratelimit_flush(&rl, 999), 0);
    assert_int_equal(ratelimit_flush(&rl, 1000), 2);
    /* Reported once. */
    assert_int_equal(ratelimit_flush(&rl, 5000), 0);
    assert_true(ratelimit_allow(&rl, 5001, &held));
    assert_int_equal(held, 0);
}

/* A clock that goes back (it should not, but it is the caller's) opens a new
 * window rather than silencing everything until it catches up. */
static void test_clock_back(void **state) {
    struct ratelimit rl = RATELIMIT_INIT(1000, 1);
    uint64_t held;
    (void)state;

    assert_true(ratelimit_allow(&rl, 100000, &held));
    assert_false(ratelimit_allow(&rl, 100001, &held));
    assert_true(ratelimit_allow(&rl, 5, &held));
    assert_int_equal(held, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_burst_then_count),
            cmocka_unit_test(test_flush),
            cmocka_unit_test(test_clock_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
