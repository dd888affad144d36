/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "json-util.h"

static void test_parse_caps(void **state) {
    char err[200];
    json_t *j = NULL;
    char wide[4096];
    size_t o = 0;
    (void)state;

    assert_int_equal(json_parse_bounded("{\"a\":[1,2,3]}", 13, 4, 16, &j, err, sizeof(err)), 0);
    json_decref(j);
    /* Depth and width are refused before jansson allocates anything. */
    assert_int_equal(json_parse_bounded("[[[1]]]", 7, 2, 16, &j, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "nested 3 deep"));
    wide[o++] = '[';
    for (int i = 0; i < 1000; i++) {
        o += (size_t)snprintf(wide + o, sizeof(wide) - o, "%s0", i ? "," : "");
    }
    wide[o++] = ']';
    assert_int_equal(json_parse_bounded(wide, o, 4, 999, &j, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "more than 999"));
    assert_int_equal(json_parse_bounded(wide, o, 4, 1001, &j, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(j), 1000);
    json_decref(j);
    /* Commas and brackets inside strings do not count. */
    assert_int_equal(json_parse_bounded("[\",,,,[[[[\"]", 12, 1, 2, &j, err, sizeof(err)), 0);
    json_decref(j);
    /* Duplicate keys are refused. */
    assert_int_equal(json_parse_bounded("{\"a\":1,\"a\":2}", 13, 4, 16, &j, err, sizeof(err)),
                     -EBADMSG);
}

static void check_string(const void *in, size_t len, size_t cap, const char *want) {
    json_t *j = json_string_untrusted(in, len, cap);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), want);
    assert_true(json_string_length(j) <= (cap < 32 ? 32 : cap));
    json_decref(j);
}

static void test_string_untrusted(void **state) {
    (void)state;
    check_string("/usr/bin/upfd", 13, 4096, "/usr/bin/upfd");
    /* Valid UTF-8 is kept; invalid bytes and controls become \xNN. */
    check_string("/opt/\xc3\xa9t\xc3\xa9", 10, 4096, "/opt/\xc3\xa9t\xc3\xa9");
    check_string("/tmp/\xff\xfe", 7, 4096, "/tmp/\\xff\\xfe");
    check_string("/a\nb", 4, 4096, "/a\\x0ab");
    check_string("a\0b", 3, 4096, "a\\x00b");
    /* Overlong, surrogate and truncated sequences are not UTF-8. */
    check_string("\xc0\xaf", 2, 4096, "\\xc0\\xaf");
    check_string("\xed\xa0\x80", 3, 4096, "\\xed\\xa0\\x80");
    check_string("x\xe2\x82", 3, 4096, "x\\xe2\\x82");
    /* Long input is cut between whole characters and names its length. */
    {
        char big[200];
        memset(big, 'a', sizeof(big));
        big[40] = (char)0xff;
        json_t *j = json_string_untrusted(big, sizeof(big), 64);
        const char *s = json_string_value(j);
        assert_true(strlen(s) <= 64);
        assert_non_null(strstr(s, "...[200 bytes]"));
        assert_null(strstr(s, "\\xf..."));
        json_decref(j);
    }
    /* Exactly at the cap: no tail. */
    check_string("0123456789012345678901234567890123456789", 40, 40,
                 "0123456789012345678901234567890123456789");
}

/* A body fed in pieces is judged as it would be whole, whatever the cut:
 * an escape at the end of one piece still hides the quote in the next. */
static void test_scan_pieces(void **state) {
    static const char doc[] = "{\"a\\\",[\":[1,2,{\"b\":[3]}],\"c\":\"x\\\\\",\"d\":[4,5]}";
    size_t len = strlen(doc);
    struct json_scan whole, cut;
    char err[200];
    (void)state;

    json_scan_init(&whole);
    json_scan_feed(&whole, doc, len);
    assert_int_equal(whole.max_depth, 4);
    assert_int_equal(whole.depth, 0);
    for (size_t at = 0; at <= len; at++) {
        json_scan_init(&cut);
        json_scan_feed(&cut, doc, at);
        json_scan_feed(&cut, doc + at, len - at);
        assert_int_equal(cut.values, whole.values);
        assert_int_equal(cut.max_depth, whole.max_depth);
        assert_false(cut.in_string);
    }
    assert_int_equal(json_scan_check(&whole, 4, whole.values, err, sizeof(err)), 0);
    assert_int_equal(json_scan_check(&whole, 3, whole.values, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "nested 4 deep, more than 3"));
    assert_int_equal(json_scan_check(&whole, 4, whole.values - 1, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "more than"));
    assert_non_null(strstr(err, "values"));
    /* A wide array is over the cap as soon as its cap-th comma arrives. */
    json_scan_init(&cut);
    json_scan_feed(&cut, "[", 1);
    for (int i = 0; i < 17; i++) {
        assert_int_equal(json_scan_check(&cut, 4, 18, err, sizeof(err)), 0);
        json_scan_feed(&cut, "0,", 2);
    }
    assert_int_equal(json_scan_check(&cut, 4, 18, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "more than 18 values"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_caps),
            cmocka_unit_test(test_string_untrusted),
            cmocka_unit_test(test_scan_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
