/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <string.h>

#include "http-admit.h"

#define EVID HTTP_EVIDENCE_BODY_MAX
#define BODY HTTP_BODY_MAX

struct admit_case {
    const char *method, *url;
    enum role role;
    const char *cn, *content_length;
    bool chunked;
    int status;         /* expected */
    uint64_t body_max;  /* expected when admitted */
    const char *detail; /* a part of the expected detail, or NULL */
};

static const struct admit_case cases[] = {
        /* The role comes before anything about the body: a client without a
         * certificate gets 401 whatever it announces. */
        {"POST", "/v1/nodes/node-1/evidence", ROLE_NONE, NULL, "95000000", false, 401, 0,
         "client certificate"},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_NONE, NULL, NULL, true, 401, 0, NULL},
        {"GET", "/v1/nodes", ROLE_NONE, NULL, NULL, false, 401, 0, NULL},
        {"GET", "/metrics", ROLE_NONE, NULL, NULL, false, 401, 0, NULL},
        {"GET", "/healthz", ROLE_NONE, NULL, NULL, false, 0, 0, NULL},
        {"GET", "/readyz", ROLE_NONE, NULL, NULL, false, 0, 0, NULL},
        {"POST", "/healthz", ROLE_NONE, NULL, NULL, false, 401, 0, NULL},
        {"GET", "/healthz", ROLE_NONE, NULL, "10", false, 413, 0, "takes no body"},
        /* An operator on an agent route, an agent on another node's. */
        {"POST", "/v1/nodes/node-1/evidence", ROLE_OPERATOR, "alice", "95000000", false, 403, 0,
         "own node"},
        {"POST", "/v1/nodes/node-2/evidence", ROLE_AGENT, "node-1", "95000000", false, 403, 0,
         "own node"},
        {"POST", "/v1/nodes/node-10/challenges", ROLE_AGENT, "node-1", NULL, false, 403, 0, NULL},
        {"GET", "/v1/nodes", ROLE_AGENT, "node-1", NULL, false, 403, 0, "operator"},
        {"DELETE", "/v1/nodes/node-1", ROLE_AGENT, "node-1", NULL, false, 403, 0, "operator"},
        /* The large cap is the agent's own evidence route only. */
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "95000000", false, 0, EVID,
         NULL},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "100663296", false, 0, EVID,
         NULL},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "100663297", false, 413, 0,
         "cap of 100663296"},
        {"POST", "/v1/nodes/node-1/registration", ROLE_AGENT, "node-1", "65536", false, 0, BODY,
         NULL},
        {"POST", "/v1/nodes/node-1/registration", ROLE_AGENT, "node-1", "65537", false, 413, 0,
         "65537 bytes is over this request's cap of 65536"},
        {"POST", "/v1/nodes/node-1/evidence/x", ROLE_AGENT, "node-1", "95000000", false, 403, 0,
         "operator"},
        {"POST", "/v1/evidence", ROLE_OPERATOR, "alice", "95000000", false, 413, 0, NULL},
        {"POST", "/v1/pods/u-1/reset", ROLE_OPERATOR, "alice", "40", false, 0, BODY, NULL},
        {"POST", "/v1/nodes/node-1/challenges", ROLE_AGENT, "node-1", NULL, false, 0, BODY, NULL},
        /* GET and DELETE take no body. */
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", NULL, false, 0, 0, NULL},
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", "0", false, 0, 0, NULL},
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", "1", false, 413, 0, "takes no body"},
        {"DELETE", "/v1/nodes/node-1", ROLE_OPERATOR, "alice", "5", false, 413, 0, NULL},
        {"GET", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "5", false, 413, 0, NULL},
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", NULL, true, 413, 0, "takes no body"},
        /* A body needs a length. */
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", NULL, true, 411, 0,
         "Content-Length"},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "12x", false, 400, 0,
         "Content-Length"},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "-1", false, 400, 0, NULL},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "99999999999999999999999",
         false, 400, 0, NULL},
        /* Unknown routes pass to the dispatcher (404) with their method's cap. */
        {"GET", "/metrics", ROLE_AGENT, "node-1", NULL, false, 0, 0, NULL},
        {"GET", "/nope", ROLE_OPERATOR, "alice", NULL, false, 0, 0, NULL},
        {"GET", "//v1//nodes", ROLE_OPERATOR, "alice", NULL, false, 0, 0, NULL},
};

static void test_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct admit_case *c = &cases[i];
        struct http_head h = {.method = c->method,
                              .url = c->url,
                              .role = c->role,
                              .cn = c->cn,
                              .content_length = c->content_length,
                              .chunked = c->chunked};
        struct http_admission a;

        http_admit(&h, &a);
        if (a.status != c->status || (c->status == 0 && a.body_max != c->body_max) ||
            (c->detail && !strstr(a.detail, c->detail))) {
            print_error("case %zu: %s %s: status %d cap %llu \"%s\"\n", i, c->method, c->url,
                        a.status, (unsigned long long)a.body_max, a.detail);
            fail();
        }
        if (a.status != 0) {
            assert_non_null(a.error);
        }
    }
}

/* --insecure-plain-http has no roles: everything is admitted, with caps. */
static void test_no_roles(void **state) {
    struct http_head h = {.method = "POST",
                          .url = "/v1/nodes/node-1/evidence",
                          .role = ROLE_NONE,
                          .no_roles = true,
                          .content_length = "1000000"};
    struct http_admission a;
    (void)state;

    http_admit(&h, &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.body_len, 1000000);
    assert_int_equal(a.body_max, HTTP_EVIDENCE_BODY_MAX);
    h.url = "/v1/nodes/node-1/registration";
    http_admit(&h, &a);
    assert_int_equal(a.status, 413);
}

static void test_split(void **state) {
    char parts[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX];
    char longpart[HTTP_PATH_PART_MAX + 8];
    (void)state;

    assert_int_equal(http_split_path("/v1/nodes/node-1/evidence", parts), 4);
    assert_string_equal(parts[2], "node-1");
    assert_int_equal(http_split_path("/", parts), 0);
    assert_int_equal(http_split_path("/a/b/c/d/e", parts), 5);
    assert_int_equal(http_split_path("/a/b/c/d/e/f", parts), -1);
    assert_int_equal(http_split_path("/a//b", parts), -1);
    memset(longpart, 'x', sizeof(longpart) - 1);
    longpart[0] = '/';
    longpart[sizeof(longpart) - 1] = 0;
    assert_int_equal(http_split_path(longpart, parts), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cases),
            cmocka_unit_test(test_no_roles),
            cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
