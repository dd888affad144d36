/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "taint.h"

#define KEY "kima.dev/untrusted"
#define NOW "2026-12-02T04:00:00Z"

static json_t *parse(const char *text) {
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);

    assert_non_null(j);
    return j;
}

/* taint_plan on `in` (JSON text, or NULL) must give `want` (JSON text) or
 * no change (want NULL). */
static void expect_plan(const char *in, enum taint_want w, bool noexecute, const char *want) {
    json_t *list = in ? parse(in) : NULL, *out = NULL;
    int r = taint_plan(list, KEY, w, noexecute, NOW, &out);

    if (!want) {
        assert_int_equal(r, 0);
        assert_null(out);
    } else {
        json_t *expected = parse(want);
        assert_int_equal(r, 1);
        assert_non_null(out);
        if (!json_equal(out, expected)) {
            char *got = json_dumps(out, JSON_COMPACT);
            fail_msg("got %s, wanted %s", got, want);
        }
        json_decref(expected);
    }
    json_decref(out);
    json_decref(list);
}

static void test_add_to_none(void **state) {
    (void)state;
    expect_plan(NULL, TAINT_ADD, false, "[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"}]");
    expect_plan("[]", TAINT_ADD, false, "[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"}]");
    expect_plan("[]", TAINT_ADD, true,
                "[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"},"
                "{\"key\":\"" KEY "\",\"effect\":\"NoExecute\",\"timeAdded\":\"" NOW "\"}]");
}

/* Others' taints stay as they are, in their order, with every field. */
static void test_add_keeps_others(void **state) {
    (void)state;
    expect_plan("[{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\","
                "\"timeAdded\":\"2026-01-01T00:00:00Z\"},{\"key\":\"gpu\",\"value\":\"a\","
                "\"effect\":\"NoSchedule\"}]",
                TAINT_ADD, false,
                "[{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\","
                "\"timeAdded\":\"2026-01-01T00:00:00Z\"},{\"key\":\"gpu\",\"value\":\"a\","
                "\"effect\":\"NoSchedule\"},{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"}]");
    /* the same key under another prefix is not ours */
    expect_plan("[{\"key\":\"x.kima.dev/untrusted\",\"effect\":\"NoSchedule\"}]", TAINT_REMOVE,
                false, NULL);
}

static void test_already_there(void **state) {
    (void)state;
    expect_plan("[{\"key\":\"gpu\",\"effect\":\"NoSchedule\"},{\"key\":\"" KEY
                "\",\"effect\":\"NoSchedule\"}]",
                TAINT_ADD, false, NULL);
    expect_plan("[{\"key\":\"" KEY
                "\",\"effect\":\"NoExecute\",\"timeAdded\":\"x\"},{\"key\":\"" KEY
                "\",\"effect\":\"NoSchedule\"}]",
                TAINT_ADD, true, NULL);
    expect_plan("[{\"key\":\"gpu\",\"effect\":\"NoSchedule\"}]", TAINT_REMOVE, false, NULL);
    expect_plan(NULL, TAINT_REMOVE, true, NULL);
}

/* NoExecute no longer asked for (a restart without --taint-noexecute): it
 * goes; a duplicate and another effect of the key go too. */
static void test_add_drops_unwanted(void **state) {
    (void)state;
    expect_plan("[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"},{\"key\":\"" KEY
                "\",\"effect\":\"NoExecute\"}]",
                TAINT_ADD, false, "[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"}]");
    expect_plan("[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"},{\"key\":\"a\",\"effect\":"
                "\"NoSchedule\"},{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"},{\"key\":\"" KEY
                "\",\"effect\":\"PreferNoSchedule\"}]",
                TAINT_ADD, false,
                "[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"},{\"key\":\"a\",\"effect\":"
                "\"NoSchedule\"}]");
}

static void test_remove(void **state) {
    (void)state;
    expect_plan("[{\"key\":\"a\",\"effect\":\"NoSchedule\"},{\"key\":\"" KEY
                "\",\"effect\":\"NoSchedule\"},{\"key\":\"b\",\"effect\":\"NoExecute\"},"
                "{\"key\":\"" KEY "\",\"effect\":\"NoExecute\"}]",
                TAINT_REMOVE, false,
                "[{\"key\":\"a\",\"effect\":\"NoSchedule\"},{\"key\":\"b\",\"effect\":"
                "\"NoExecute\"}]");
    expect_plan("[{\"key\":\"" KEY "\",\"effect\":\"NoSchedule\"}]", TAINT_REMOVE, false, "[]");
}

/* What the API sends is untrusted: anything that is not a list of taints
 * is refused, never rewritten. */
static void test_malformed(void **state) {
    const char *bad[] = {
            "{}",
            "[1]",
            "[{\"effect\":\"NoSchedule\"}]",
            "[{\"key\":\"a\"}]",
            "[{\"key\":5,\"effect\":\"NoSchedule\"}]",
            "\"x\"",
    };
    json_t *out = (json_t *)1, *big;
    char longkey[TAINT_FIELD_MAX + 2];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = parse(bad[i]);
        assert_int_equal(taint_plan(j, KEY, TAINT_ADD, false, NOW, &out), -EBADMSG);
        assert_null(out);
        json_decref(j);
    }
    memset(longkey, 'a', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    big = json_pack("[{s:s,s:s}]", "key", longkey, "effect", "NoSchedule");
    assert_int_equal(taint_plan(big, KEY, TAINT_REMOVE, false, NOW, &out), -EBADMSG);
    json_decref(big);
    big = json_array();
    for (int i = 0; i <= TAINT_LIST_MAX; i++) {
        json_array_append_new(big, json_pack("{s:s,s:s}", "key", "a", "effect", "NoSchedule"));
    }
    assert_int_equal(taint_plan(big, KEY, TAINT_ADD, false, NOW, &out), -E2BIG);
    json_array_remove(big, 0);
    assert_int_equal(taint_plan(big, KEY, TAINT_ADD, false, NOW, &out), 1);
    assert_int_equal(json_array_size(out), TAINT_LIST_MAX + 1);
    json_decref(out);
    json_decref(big);
    assert_int_equal(taint_plan(NULL, "", TAINT_ADD, false, NOW, &out), -EINVAL);
    assert_int_equal(taint_plan(NULL, KEY, TAINT_ADD, true, NULL, &out), -EINVAL);
}

static void test_present(void **state) {
    json_t *j = parse("[{\"key\":\"a\",\"effect\":\"NoSchedule\"},{\"key\":\"" KEY
                      "\",\"effect\":\"NoExecute\"}]");
    json_t *k = parse("[{\"key\":\"a\",\"effect\":\"NoSchedule\"}]");
    (void)state;

    assert_true(taint_present(j, KEY));
    assert_false(taint_present(k, KEY));
    assert_false(taint_present(NULL, KEY));
    json_decref(j);
    json_decref(k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_add_to_none),   cmocka_unit_test(test_add_keeps_others),
            cmocka_unit_test(test_already_there), cmocka_unit_test(test_add_drops_unwanted),
            cmocka_unit_test(test_remove),        cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_present),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
