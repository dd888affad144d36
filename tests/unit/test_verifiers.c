/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "verifiers.h"

/* The agent's list of verifier URLs (agent/verifiers.c): its bounds, the
 * entries it refuses with a message that names them, and which answers make
 * the agent move to the next verifier. */

static int parse(const char *spec, struct verifier_urls *v, char *err, size_t errsz) {
    *v = (struct verifier_urls){0};
    return verifier_urls_parse(spec, v, err, errsz);
}

static void test_good(void **state) {
    struct verifier_urls v;
    char err[256];
    (void)state;

    assert_int_equal(parse("https://verifier:8443", &v, err, sizeof(err)), 0);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.url[0], "https://verifier:8443");
    verifier_urls_free(&v);
    assert_int_equal(v.n, 0);

    assert_int_equal(
            parse(" https://a:1/x , https://[::1]:8443,https://10.0.0.2\t", &v, err, sizeof(err)),
            0);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.url[0], "https://a:1/x");
    assert_string_equal(v.url[1], "https://[::1]:8443");
    assert_string_equal(v.url[2], "https://10.0.0.2");
    verifier_urls_free(&v);
}

/* Exactly the caps: 8 URLs, one of 2,048 bytes; one more is refused. */
static void test_bounds(void **state) {
    struct verifier_urls v;
    char spec[9 * 16], err[256], *longest;
    size_t at = 0;
    (void)state;

    for (int i = 0; i < 8; i++) {
        at += (size_t)snprintf(spec + at, sizeof(spec) - at, "%shttps://h%d", i ? "," : "", i);
    }
    assert_int_equal(parse(spec, &v, err, sizeof(err)), 0);
    assert_int_equal(v.n, 8);
    assert_string_equal(v.url[7], "https://h7");
    verifier_urls_free(&v);
    snprintf(spec + at, sizeof(spec) - at, ",https://h8");
    assert_int_equal(parse(spec, &v, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "more than 8 URLs"));
    assert_int_equal(v.n, 0);

    longest = malloc(VERIFIER_URL_LEN_MAX + 2);
    assert_non_null(longest);
    memset(longest, 'p', VERIFIER_URL_LEN_MAX + 1);
    memcpy(longest, "https://h/", 10);
    longest[VERIFIER_URL_LEN_MAX] = 0;
    /* The URL cap is met; the path is over the client's own cap. */
    assert_int_equal(parse(longest, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "entry 1 (https://h/ppp"));
    assert_non_null(strstr(err, "path longer than"));
    longest[VERIFIER_URL_LEN_MAX] = 'p';
    longest[VERIFIER_URL_LEN_MAX + 1] = 0;
    assert_int_equal(parse(longest, &v, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "is 2049 bytes long; at most 2048"));
    assert_true(strlen(err) < 200);
    free(longest);
}

static void test_bad(void **state) {
    static const struct {
        const char *spec, *want;
    } cases[] = {
            {"", "entry 1 is empty"},
            {"https://a,", "entry 2 is empty"},
            {"https://a,,https://b", "entry 2 is empty"},
            {" , https://a", "entry 1 is empty"},
            {"https://a,http://b", "entry 2 (http://b): does not start with https://"},
            {"https://a:0", "entry 1 (https://a:0): bad port"},
            {"https://a:65536", "bad port"},
            {"https://a:x1", "bad port"},
            {"https://b,https://a:", "entry 2 (https://a:): bad port"},
            {"https://", "bad host"},
            {"https:///p", "bad host"},
            {"https://[::1", "bad IPv6 address"},
            {"https://[::1]x", "bad IPv6 address"},
            {"https://a b", "a blank, control or non-ASCII byte at offset 9"},
            {"https://a/x\r\nX: y", "control or non-ASCII byte at offset 11"},
            {"https://a\x01", "entry 1 (https://a?)"},
            {"https://a/x,https://b,https://a/x", "entry 3 (https://a/x) repeats entry 1"},
            /* The same verifier spelt another way. */
            {"https://V:8443,https://v:8443", "entry 2 (https://v:8443) repeats entry 1"},
            {"https://v,https://v:443", "repeats entry 1"},
            {"https://[::1]:8443,https://[::1]:8443/", "repeats entry 1"},
            {"https://v/p/,https://v/p", "repeats entry 1"},
            /* No user name (never echoed: it may hold a password), query or
             * fragment. */
            {"https://user:secretpw@h:8443", "entry 1 (not shown: it holds an @): a user name"},
            {"https://h@evil:8443", "has no place here"},
            {"https://h?x=1", "has no place here"},
            {"https://h#f", "has no place here"},
            {"verifier:8443", "does not start with https://"},
    };
    struct verifier_urls v;
    char err[256];
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int r = parse(cases[i].spec, &v, err, sizeof(err));
        if (r != -EINVAL || !strstr(err, cases[i].want) || strstr(err, "secretpw")) {
            fail_msg("\"%s\": %d \"%s\", wanted \"%s\"", cases[i].spec, r, err, cases[i].want);
        }
        assert_int_equal(v.n, 0);
    }
}

/* Unavailable: no answer, 502, 503, 504, "draining"; any other answer is
 * the verifier's word. */
static void test_unavailable(void **state) {
    json_t *draining = json_pack("{s:s}", "error", "draining");
    json_t *other = json_pack("{s:s}", "error", "forbidden");
    char why[128];
    (void)state;

    assert_true(verifier_unavailable(-ECONNREFUSED, NULL, why, sizeof(why)));
    assert_string_equal(why, "no answer (Connection refused)");
    assert_true(verifier_unavailable(-ETIMEDOUT, NULL, why, sizeof(why)));
    assert_true(verifier_unavailable(502, NULL, why, sizeof(why)));
    assert_string_equal(why, "HTTP 502");
    assert_true(verifier_unavailable(503, other, why, sizeof(why)));
    assert_true(verifier_unavailable(504, NULL, why, sizeof(why)));
    assert_true(verifier_unavailable(503, draining, why, sizeof(why)));
    assert_string_equal(why, "draining (HTTP 503)");
    /* A draining error moves only as a 503: a refusal stays a refusal. */
    assert_false(verifier_unavailable(409, draining, why, sizeof(why)));
    assert_false(verifier_unavailable(403, draining, why, sizeof(why)));
    /* A 500 recorded nothing (the verifier's store or audit log failed). */
    assert_true(verifier_unavailable(500, other, why, sizeof(why)));
    assert_string_equal(why, "HTTP 500");
    static const int answers[] = {200, 201, 400, 401, 403, 404, 409, 429, 501, 505};
    for (size_t i = 0; i < ARRAY_SIZE(answers); i++) {
        if (verifier_unavailable(answers[i], other, why, sizeof(why))) {
            fail_msg("%d taken for an unavailable verifier", answers[i]);
        }
    }
    json_decref(draining);
    json_decref(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good),
            cmocka_unit_test(test_bounds),
            cmocka_unit_test(test_bad),
            cmocka_unit_test(test_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
