/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "http-parse.h"

static int head(const char *s, struct http_response *r, const char **why) {
    return http_parse_head(s, strlen(s), r, why);
}

static void test_head(void **state) {
    struct http_response r;
    const char *why = NULL;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "content-length:  12 \r\n\r\n{\"a\": true}\n";
    (void)state;

    assert_int_equal(head(ok, &r, &why), 1);
    assert_int_equal(r.status, 200);
    assert_true(r.keep_alive);
    assert_false(r.chunked);
    assert_int_equal(r.content_length, 12);
    assert_int_equal(r.header_len, strlen(ok) - 12);

    /* Incomplete: every prefix of the headers asks for more. */
    for (size_t n = 0; n < r.header_len; n++) {
        assert_int_equal(http_parse_head(ok, n, &r, &why), 0);
    }
    assert_int_equal(head("HTTP/1.0 409 Conflict\r\n\r\n", &r, &why), 1);
    assert_int_equal(r.status, 409);
    assert_false(r.keep_alive);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(
            head("HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n", &r,
                 &why),
            1);
    assert_false(r.keep_alive);
    assert_true(r.chunked);
    assert_int_equal(head("HTTP/1.1 204\r\n\r\n", &r, &why), 1);
    assert_int_equal(r.status, 204);
}

static void test_head_malformed(void **state) {
    static const char *const bad[] = {
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 600 Nope\r\n\r\n",
            "HTTP/1.1 200OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
    };
    struct http_response r;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        if (head(bad[i], &r, &why) != -EBADMSG) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_non_null(why);
    }
    /* Headers that never end are refused at 16 KiB, not read forever. */
    {
        char big[HTTP_HEADERS_MAX + 10];
        const char *why = NULL;
        memset(big, 'a', sizeof(big));
        memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
        assert_int_equal(http_parse_head(big, sizeof(big), &r, &why), -EBADMSG);
        assert_string_equal(why, "response headers over 16 KiB");
        assert_int_equal(http_parse_head(big, 1000, &r, &why), 0);
    }
}

static void test_dechunk(void **state) {
    const char *body =
            "4\r\n{\"a\"\r\nA;ext=1\r\n: [1, 2, 3\r\n2\r\n]}\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    char buf[128];
    size_t len, used, n = strlen(body);
    const char *why = NULL;
    (void)state;

    /* Every prefix short of the end asks for more and leaves buf alone. */
    for (size_t k = 0; k < n - 4; k++) {
        memcpy(buf, body, n);
        assert_int_equal(http_dechunk(buf, k, 1000, &len, &used, &why), 0);
        assert_memory_equal(buf, body, n);
    }
    memcpy(buf, body, n);
    assert_int_equal(http_dechunk(buf, n, 1000, &len, &used, &why), 1);
    assert_int_equal(len, 16);
    assert_memory_equal(buf, "{\"a\": [1, 2, 3]}", 16);
    assert_int_equal(used, n - 4);

    memcpy(buf, body, n);
    assert_int_equal(http_dechunk(buf, n, 10, &len, &used, &why), -E2BIG);
    assert_int_equal(http_dechunk((char[]){"zz\r\n"}, 4, 100, &len, &used, &why), -EBADMSG);
    assert_int_equal(http_dechunk((char[]){"\r\n"}, 2, 100, &len, &used, &why), -EBADMSG);
    assert_int_equal(http_dechunk((char[]){"2\r\nabX\r\n"}, 8, 100, &len, &used, &why), -EBADMSG);
    assert_int_equal(http_dechunk((char[]){"ffffffffffffffff\r\n"}, 18, 100, &len, &used, &why),
                     -EBADMSG);
    assert_int_equal(http_dechunk((char[]){"fffffff\r\n"}, 9, 100, &len, &used, &why), -E2BIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_head),
            cmocka_unit_test(test_head_malformed),
            cmocka_unit_test(test_dechunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
