/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "json-writer.h"

static void test_nesting_and_commas(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(4096);
    struct json_writer w;
    (void)state;

    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, "a");
    jw_uint(&w, 1);
    jw_key(&w, "b");
    jw_array_begin(&w);
    jw_int(&w, -2);
    jw_bool(&w, true);
    jw_null(&w);
    jw_hex(&w, "\x01\xab", 2);
    jw_array_end(&w);
    jw_key(&w, "c");
    jw_object_begin(&w);
    jw_object_end(&w);
    jw_object_end(&w);
    assert_int_equal(jw_error(&w), 0);
    assert_string_equal((char *)b.data, "{\"a\":1,\"b\":[-2,true,null,\"01ab\"],\"c\":{}}");
}

static void test_string_escaping(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(4096);
    struct json_writer w;
    (void)state;

    jw_init(&w, &b);
    jw_array_begin(&w);
    jw_string(&w, "q\"b\\\n\t\x01");
    jw_string(&w, "caf\xc3\xa9");                /* valid UTF-8 kept */
    jw_string_n(&w, "\xc3(\xff\xed\xa0\x80", 6); /* invalid bytes escaped */
    jw_string_n(&w, "a\0b", 3);                  /* NUL inside */
    jw_array_end(&w);
    assert_int_equal(jw_error(&w), 0);
    assert_string_equal((char *)b.data, "[\"q\\\"b\\\\\\n\\t\\u0001\",\"caf\xc3\xa9\","
                                        "\"\\u00c3(\\u00ff\\u00ed\\u00a0\\u0080\",\"a\\u0000b\"]");
}

static void test_misuse_is_sticky(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(4096);
    struct json_writer w;
    (void)state;

    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_uint(&w, 1); /* a value where a key is due */
    assert_int_equal(jw_error(&w), -EINVAL);
    jw_key(&w, "x");
    assert_int_equal(jw_error(&w), -EINVAL);

    jw_init(&w, &b);
    for (int i = 0; i < JW_DEPTH_MAX + 1; i++) {
        jw_array_begin(&w);
    }
    assert_int_equal(jw_error(&w), -E2BIG);
}

static void test_buffer_cap(void **state) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(8);
    struct json_writer w;
    (void)state;

    jw_init(&w, &b);
    jw_string(&w, "longer than eight");
    assert_int_equal(jw_error(&w), -E2BIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nesting_and_commas),
            cmocka_unit_test(test_string_escaping),
            cmocka_unit_test(test_misuse_is_sticky),
            cmocka_unit_test(test_buffer_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
