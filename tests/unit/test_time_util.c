/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <time.h>

#include "time-util.h"

static void test_wall_is_the_epoch_in_ms(void **state) {
    int64_t before = (int64_t)time(NULL) * 1000, ms = time_wall_ms(),
            after = (int64_t)time(NULL) * 1000;
    (void)state;

    assert_true(ms >= before);
    assert_true(ms < after + 1000);
}

static void test_mono_advances_with_sleep(void **state) {
    struct timespec d = {0, 20 * 1000000};
    int64_t t0 = time_mono_ms(), t1;
    (void)state;

    assert_true(time_mono_ms() >= t0);
    assert_int_equal(nanosleep(&d, NULL), 0);
    t1 = time_mono_ms();
    /* 20 ms slept; whole milliseconds on both ends can lose one. */
    assert_true(t1 - t0 >= 19);
    assert_true(t1 - t0 < 10000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_wall_is_the_epoch_in_ms),
            cmocka_unit_test(test_mono_advances_with_sleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
