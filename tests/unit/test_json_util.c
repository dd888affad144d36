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

static json_t *obj(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
    if (!j) {
        fail_msg("test JSON %s: %s", text, e.text);
    }
    return j;
}

/* The error message names the key. */
static void err_names(const char *err, const char *key, const char *what) {
    if (!strstr(err, key) || !strstr(err, what)) {
        fail_msg("\"%s\" does not name %s with \"%s\"", err, key, what);
    }
}

static void test_get_string(void **state) {
    json_auto_t *o = obj("{\"s\":\"abc\",\"n\":1,\"z\":null,\"e\":\"\",\"nul\":\"a\\u0000b\"}");
    const char *v = NULL;
    char err[200];
    (void)state;

    assert_int_equal(json_get_string(o, "s", 3, &v, err, sizeof(err)), 0);
    assert_string_equal(v, "abc");
    assert_int_equal(json_get_string(o, "e", 0, &v, err, sizeof(err)), 0);
    assert_string_equal(v, "");
    /* Over the cap by one byte. */
    v = NULL;
    assert_int_equal(json_get_string(o, "s", 2, &v, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"s\"", "longer than 2 bytes");
    assert_null(v);
    /* A NUL inside would cut the string short where C reads it. */
    assert_int_equal(json_get_string(o, "nul", 100, &v, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"nul\"", "NUL");
    assert_int_equal(json_get_string(o, "n", 100, &v, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"n\"", "not a string");
    /* Absent and null are the same: missing. */
    assert_int_equal(json_get_string(o, "x", 100, &v, err, sizeof(err)), -ENOENT);
    err_names(err, "\"x\"", "missing");
    assert_int_equal(json_get_string(o, "z", 100, &v, err, sizeof(err)), -ENOENT);
    err_names(err, "\"z\"", "missing");
    /* Not an object at all. */
    {
        json_auto_t *arr = json_array();
        assert_int_equal(json_get_string(arr, "s", 100, &v, err, sizeof(err)), -ENOENT);
        assert_int_equal(json_get_string(NULL, "s", 100, &v, err, sizeof(err)), -ENOENT);
    }
    /* A short error buffer is cut, never overrun. */
    {
        char tiny[8];
        memset(tiny, 'x', sizeof(tiny));
        assert_int_equal(json_get_string(o, "n", 100, &v, tiny, sizeof(tiny)), -EBADMSG);
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    }
}

static void test_get_u64(void **state) {
    json_auto_t *o = obj("{\"zero\":0,\"ten\":10,\"neg\":-1,\"big\":9223372036854775807,"
                         "\"real\":1.5,\"str\":\"5\",\"bool\":true,\"z\":null}");
    uint64_t v = 77;
    char err[200];
    (void)state;

    assert_int_equal(json_get_u64(o, "zero", 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 0);
    assert_int_equal(json_get_u64(o, "ten", 10, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 10);
    assert_int_equal(json_get_u64(o, "big", UINT64_MAX, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 9223372036854775807ull);
    /* Over the cap by one; negative; not an integer: untouched. */
    v = 77;
    assert_int_equal(json_get_u64(o, "ten", 9, &v, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"ten\"", "0-9");
    assert_int_equal(json_get_u64(o, "neg", 100, &v, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"neg\"", "not an integer");
    assert_int_equal(json_get_u64(o, "real", 100, &v, err, sizeof(err)), -EBADMSG);
    assert_int_equal(json_get_u64(o, "str", 100, &v, err, sizeof(err)), -EBADMSG);
    assert_int_equal(json_get_u64(o, "bool", 100, &v, err, sizeof(err)), -EBADMSG);
    assert_int_equal(v, 77);
    assert_int_equal(json_get_u64(o, "none", 100, &v, err, sizeof(err)), -ENOENT);
    err_names(err, "\"none\"", "an integer expected");
    assert_int_equal(json_get_u64(o, "z", 100, &v, err, sizeof(err)), -ENOENT);
    assert_int_equal(v, 77);
}

static void test_get_base64(void **state) {
    /* 4, 5, 6 and 7 bytes; an empty string; broken encodings. */
    json_auto_t *o = obj("{\"b4\":\"AQIDBA==\",\"b5\":\"AQIDBAU=\",\"b6\":\"AQIDBAUG\","
                         "\"b7\":\"AQIDBAUGBw==\",\"empty\":\"\",\"bad\":\"AQI*\","
                         "\"short\":\"AQI\",\"bits\":\"AQJ=\",\"n\":5}");
    uint8_t *buf = NULL;
    size_t len = 99;
    char err[200];
    (void)state;

    assert_int_equal(json_get_base64(o, "b4", 4, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "\x01\x02\x03\x04", 4);
    free(buf);
    buf = NULL;
    assert_int_equal(json_get_base64(o, "empty", 4, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 0);
    assert_non_null(buf);
    free(buf);
    buf = NULL;

    /* Over the cap: found from the length alone (7 bytes) or once decoded
     * (5 and 6 bytes take as many characters as 4). */
    len = 99;
    for (int i = 0; i < 3; i++) {
        const char *key = (const char *[]){"b5", "b6", "b7"}[i];
        assert_int_equal(json_get_base64(o, key, 4, &buf, &len, err, sizeof(err)), -E2BIG);
        err_names(err, key, "more than 4 bytes");
        assert_null(buf);
        assert_int_equal(len, 99);
    }
    /* Not base64: a stray character, a length not a multiple of 4, unused
     * bits set. */
    for (int i = 0; i < 3; i++) {
        const char *key = (const char *[]){"bad", "short", "bits"}[i];
        assert_int_equal(json_get_base64(o, key, 100, &buf, &len, err, sizeof(err)), -EBADMSG);
        err_names(err, key, "not valid base64");
        assert_null(buf);
    }
    assert_int_equal(json_get_base64(o, "n", 100, &buf, &len, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"n\"", "not a string");
    assert_int_equal(json_get_base64(o, "x", 100, &buf, &len, err, sizeof(err)), -ENOENT);
    assert_null(buf);
}

static void test_base64_round_trip(void **state) {
    uint8_t data[256], *back = NULL;
    size_t len;
    char err[200];
    (void)state;

    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(255 - i);
    }
    for (size_t n = 0; n <= sizeof(data); n += 37) {
        json_auto_t *o = json_object();
        json_object_set_new(o, "v", json_base64(data, n));
        assert_int_equal(json_string_length(json_object_get(o, "v")), (n + 2) / 3 * 4);
        assert_int_equal(json_get_base64(o, "v", n, &back, &len, err, sizeof(err)), 0);
        assert_int_equal(len, n);
        assert_memory_equal(back, data, n);
        free(back);
        back = NULL;
    }
}

static void test_get_hex(void **state) {
    json_auto_t *o = obj("{\"h\":\"00ff7a\",\"up\":\"00FF7A\",\"long\":\"00ff7a00\","
                         "\"short\":\"00ff\",\"odd\":\"00ff7\",\"bad\":\"00fg7a\",\"n\":1}");
    uint8_t out[3] = {9, 9, 9};
    char err[200];
    (void)state;

    assert_int_equal(json_get_hex(o, "h", out, 3, err, sizeof(err)), 0);
    assert_memory_equal(out, "\x00\xff\x7a", 3);
    memset(out, 9, sizeof(out));
    assert_int_equal(json_get_hex(o, "up", out, 3, err, sizeof(err)), 0);
    assert_memory_equal(out, "\x00\xff\x7a", 3);
    /* Exactly `len` bytes: longer, shorter, odd or not hex is malformed. */
    assert_int_equal(json_get_hex(o, "long", out, 3, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"long\"", "longer than 6 bytes");
    assert_int_equal(json_get_hex(o, "short", out, 3, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"short\"", "not 3 bytes of hex");
    assert_int_equal(json_get_hex(o, "odd", out, 3, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"odd\"", "not 3 bytes of hex");
    assert_int_equal(json_get_hex(o, "bad", out, 3, err, sizeof(err)), -EBADMSG);
    err_names(err, "\"bad\"", "not 3 bytes of hex");
    assert_int_equal(json_get_hex(o, "n", out, 3, err, sizeof(err)), -EBADMSG);
    assert_int_equal(json_get_hex(o, "x", out, 3, err, sizeof(err)), -ENOENT);
}

static void test_parse_errors(void **state) {
    json_t *j = NULL;
    char err[200];
    (void)state;

    /* Any one value, a scalar too. */
    assert_int_equal(json_parse_bounded("42", 2, 1, 1, &j, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(j), 42);
    json_decref(j);
    j = NULL;
    /* Only `len` bytes are read: what follows does not count. */
    assert_int_equal(json_parse_bounded("{\"a\":1}garbage", 7, 2, 4, &j, err, sizeof(err)), 0);
    json_decref(j);
    j = NULL;
    /* Malformed: where, and nothing returned. */
    assert_int_equal(json_parse_bounded("{\"a\":}", 6, 4, 16, &j, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "invalid JSON at line 1 column"));
    assert_null(j);
    assert_int_equal(json_parse_bounded("{\"a\":1} x", 9, 4, 16, &j, err, sizeof(err)), -EBADMSG);
    assert_null(j);
    assert_int_equal(json_parse_bounded("", 0, 4, 16, &j, err, sizeof(err)), -EBADMSG);
    assert_null(j);
    /* Exactly at the depth cap. */
    assert_int_equal(json_parse_bounded("[[1]]", 5, 2, 16, &j, err, sizeof(err)), 0);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_caps),        cmocka_unit_test(test_string_untrusted),
            cmocka_unit_test(test_scan_pieces),       cmocka_unit_test(test_get_string),
            cmocka_unit_test(test_get_u64),           cmocka_unit_test(test_get_base64),
            cmocka_unit_test(test_base64_round_trip), cmocka_unit_test(test_get_hex),
            cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
