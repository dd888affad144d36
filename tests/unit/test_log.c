/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "log.h"

static char *capture(enum log_format fmt, enum log_level level, const char *msg) {
    static char out[8192];
    FILE *f;

    memset(out, 0, sizeof(out));
    f = fmemopen(out, sizeof(out), "w");

    assert_non_null(f);
    log_set_stream(f);
    log_set_format(fmt);
    log_msg(level, "%s", msg);
    fclose(f);
    log_set_stream(NULL);
    return out;
}

static void test_logfmt_escapes(void **state) {
    char *line;
    (void)state;

    log_set_level(LOG_LEVEL_INFO);
    line = capture(LOG_FORMAT_LOGFMT, LOG_LEVEL_WARN, "bad \"name\"\nlevel=error \x01");
    assert_non_null(strstr(line, " level=warn msg=\"bad \\\"name\\\"\\x0alevel=error \\x01\"\n"));
    /* One event, one line: the newline inside the message is escaped. */
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
    assert_memory_equal(line, "time=", 5);
}

static void test_json_escapes(void **state) {
    char *line;
    (void)state;

    log_set_level(LOG_LEVEL_DEBUG);
    line = capture(LOG_FORMAT_JSON, LOG_LEVEL_ERROR, "a\"b\\c\n\xff");
    assert_non_null(strstr(line, "\"level\":\"error\",\"msg\":\"a\\\"b\\\\c\\u000a\\u00ff\"}\n"));
    assert_int_equal(line[0], '{');
}

static void test_level_filter_and_names(void **state) {
    enum log_level l;
    enum log_format f;
    char *line;
    (void)state;

    log_set_level(LOG_LEVEL_WARN);
    line = capture(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, "hidden");
    assert_int_equal(line[0], '\0');
    assert_int_equal(log_level_from_string("debug", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_from_string("verbose", &l), -EINVAL);
    assert_int_equal(log_format_from_string("json", &f), 0);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_format_from_string("xml", &f), -EINVAL);
    /* log_setup applies both or nothing. */
    assert_int_equal(log_setup("debug", "loud"), -EINVAL);
    assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
    assert_int_equal(log_setup("error", NULL), 0);
    assert_int_equal(log_get_level(), LOG_LEVEL_ERROR);
    log_set_level(LOG_LEVEL_INFO);
}

static void test_escape_truncation(void **state) {
    char out[12];
    (void)state;

    log_escape("\x01\x02\x03\x04", 4, out, sizeof(out));
    /* Two whole escapes fit with "..."; never half an escape. */
    assert_string_equal(out, "\\x01\\x02...");
    log_escape("abc", 3, out, sizeof(out));
    assert_string_equal(out, "abc");
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_logfmt_escapes),
            cmocka_unit_test(test_json_escapes),
            cmocka_unit_test(test_level_filter_and_names),
            cmocka_unit_test(test_escape_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
