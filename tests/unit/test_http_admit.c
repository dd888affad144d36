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
        /* No such route: 404 before the body, whatever it announces. */
        {"POST", "/v1/evidence", ROLE_OPERATOR, "alice", "95000000", false, 404, 0, NULL},
        {"POST", "/v1/pods/u-1/reset", ROLE_OPERATOR, "alice", "40", false, 0, BODY, NULL},
        {"POST", "/v1/nodes/node-1/challenges", ROLE_AGENT, "node-1", NULL, false, 0, BODY, NULL},
        /* GET and DELETE take no body. */
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", NULL, false, 0, 0, NULL},
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", "0", false, 0, 0, NULL},
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", "1", false, 413, 0, "takes no body"},
        {"DELETE", "/v1/nodes/node-1", ROLE_OPERATOR, "alice", "5", false, 413, 0, NULL},
        {"GET", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "5", false, 405, 0, "POST"},
        {"GET", "/v1/nodes", ROLE_OPERATOR, "alice", NULL, true, 413, 0, "takes no body"},
        /* A body needs a length. */
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", NULL, true, 411, 0,
         "Content-Length"},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "12x", false, 400, 0,
         "Content-Length"},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "-1", false, 400, 0, NULL},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_AGENT, "node-1", "99999999999999999999999",
         false, 400, 0, NULL},
        /* Unknown routes are 404 to whoever has a certificate, before the
         * body; /metrics is the operators'. */
        {"GET", "/metrics", ROLE_AGENT, "node-1", NULL, false, 403, 0, "operator"},
        {"GET", "/nope", ROLE_OPERATOR, "alice", NULL, false, 404, 0, "/nope"},
        {"POST", "/nope", ROLE_AGENT, "node-1", "95000000", false, 404, 0, NULL},
        {"GET", "/nope", ROLE_NONE, NULL, NULL, false, 401, 0, NULL},
        {"GET", "//v1//nodes", ROLE_OPERATOR, "alice", NULL, false, 404, 0, NULL},
        /* A scraper's certificate (OU kima-metrics) reads /metrics and
         * nothing else: no operator route, no agent route even when its CN
         * is a node's name. */
        {"GET", "/metrics", ROLE_METRICS, "prometheus", NULL, false, 0, 0, NULL},
        {"POST", "/metrics", ROLE_METRICS, "prometheus", NULL, false, 405, 0, "GET"},
        {"GET", "/v1/nodes", ROLE_METRICS, "prometheus", NULL, false, 403, 0, "only read /metrics"},
        {"GET", "/v1/pods", ROLE_METRICS, "prometheus", NULL, false, 403, 0, NULL},
        {"GET", "/v1/audit/head", ROLE_METRICS, "prometheus", NULL, false, 403, 0, NULL},
        {"POST", "/v1/pods/u-1/reset", ROLE_METRICS, "prometheus", "40", false, 403, 0, NULL},
        {"DELETE", "/v1/nodes/node-1", ROLE_METRICS, "prometheus", NULL, false, 403, 0, NULL},
        {"POST", "/v1/nodes/node-1/challenges", ROLE_METRICS, "node-1", NULL, false, 403, 0,
         "only read /metrics"},
        {"POST", "/v1/nodes/node-1/evidence", ROLE_METRICS, "node-1", "100", false, 403, 0, NULL},
        {"GET", "/nope", ROLE_METRICS, "prometheus", NULL, false, 404, 0, NULL},
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

/* Every route the dispatcher (http.c) answers, under every role: the
 * status before the body (0: admitted), and the route's cap. */
struct route_case {
    const char *method, *url;
    uint64_t cap; /* with roles; plain mode has the same caps */
    int none, revoked, agent, operator;
};

static const struct route_case routes[] = {
        {"GET", "/healthz", 0, 0, 0, 0, 0},
        {"GET", "/readyz", 0, 0, 0, 0, 0},
        /* The agent's own node: node-1 is the agent's CN. */
        {"POST", "/v1/nodes/node-1/registration", BODY, 401, 401, 0, 403},
        {"POST", "/v1/nodes/node-1/activation", BODY, 401, 401, 0, 403},
        {"POST", "/v1/nodes/node-1/challenges", BODY, 401, 401, 0, 403},
        {"POST", "/v1/nodes/node-1/evidence", EVID, 401, 401, 0, 403},
        /* Another node's. */
        {"POST", "/v1/nodes/node-2/registration", BODY, 401, 401, 403, 403},
        {"POST", "/v1/nodes/node-2/activation", BODY, 401, 401, 403, 403},
        {"POST", "/v1/nodes/node-2/challenges", BODY, 401, 401, 403, 403},
        {"POST", "/v1/nodes/node-2/evidence", EVID, 401, 401, 403, 403},
        /* The operators'. */
        {"GET", "/v1/nodes", 0, 401, 401, 403, 0},
        {"GET", "/v1/nodes/node-1", 0, 401, 401, 403, 0},
        {"DELETE", "/v1/nodes/node-1", 0, 401, 401, 403, 0},
        {"GET", "/v1/pods", 0, 401, 401, 403, 0},
        {"GET", "/v1/pods/open5gs/upf-0", 0, 401, 401, 403, 0},
        {"POST", "/v1/pods/1a2b3c4d-0000-4111-8222-933344445555/reset", BODY, 401, 401, 403, 0},
        {"GET", "/v1/policies", 0, 401, 401, 403, 0},
        {"GET", "/v1/audit/head", 0, 401, 401, 403, 0},
        /* Outside /v1: metrics for operators. */
        {"GET", "/metrics", 0, 401, 401, 403, 0},
};

static int admit_as(const struct route_case *rc, enum role role, bool plain, const char *len,
                    struct http_admission *a) {
    struct http_head h = {.method = rc->method,
                          .url = rc->url,
                          .role = role,
                          .cn = role == ROLE_AGENT      ? "node-1"
                                : role == ROLE_OPERATOR ? "alice"
                                : role == ROLE_METRICS  ? "prometheus"
                                                        : NULL,
                          .no_roles = plain,
                          .content_length = len};

    http_admit(&h, a);
    if (a->status != 0) {
        assert_non_null(a->error);
        assert_true(a->detail[0] != 0);
    }
    return a->status;
}

static void test_routes_and_roles(void **state) {
    static const enum role roles[] = {ROLE_NONE, ROLE_REVOKED, ROLE_AGENT, ROLE_OPERATOR};
    static const char *const role_names[] = {"none", "revoked", "agent", "operator"};
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        const struct route_case *rc = &routes[i];
        const int want[] = {rc->none, rc->revoked, rc->agent, rc->operator};
        struct http_admission a;
        char at_cap[32], over[32];

        snprintf(at_cap, sizeof(at_cap), "%llu", (unsigned long long)rc->cap);
        snprintf(over, sizeof(over), "%llu", (unsigned long long)rc->cap + 1);
        for (size_t r = 0; r < ARRAY_SIZE(roles); r++) {
            int got = admit_as(rc, roles[r], false, NULL, &a);
            if (got != want[r]) {
                fail_msg("%s %s as %s: %d, wanted %d (%s)", rc->method, rc->url, role_names[r], got,
                         want[r], a.detail);
            }
            if (got == 401 && roles[r] == ROLE_REVOKED) {
                assert_non_null(strstr(a.detail, "revoked"));
            }
            /* A refused role is refused whatever the body announced. */
            if (got != 0) {
                assert_int_equal(admit_as(rc, roles[r], false, over, &a), got);
                continue;
            }
            /* Admitted: a route the dispatcher runs, with its cap, exactly. */
            assert_true(a.route.id > HTTP_ROUTE_BAD_METHOD);
            assert_int_equal(a.body_max, rc->cap);
            assert_int_equal(admit_as(rc, roles[r], false, at_cap, &a), 0);
            assert_int_equal(a.body_len, rc->cap);
            if (admit_as(rc, roles[r], false, over, &a) != 413) {
                fail_msg("%s %s as %s: a body of %s bytes got %d", rc->method, rc->url,
                         role_names[r], over, a.status);
            }
        }
        /* A metrics certificate: what an operator gets on /metrics and off
         * the API (404, 405), 403 on every other route. */
        {
            struct http_route rt;
            int want_m;

            http_route(rc->method, rc->url, &rt);
            want_m = strcmp(rc->url, "/metrics") == 0 || rt.role == ROLE_NONE ? rc->operator: 403;
            if (admit_as(rc, ROLE_METRICS, false, NULL, &a) != want_m) {
                fail_msg("%s %s as metrics: %d, wanted %d (%s)", rc->method, rc->url, a.status,
                         want_m, a.detail);
            }
        }
        /* --insecure-plain-http: no roles, whoever asks; the same caps. */
        for (size_t r = 0; r < ARRAY_SIZE(roles); r++) {
            assert_int_equal(admit_as(rc, roles[r], true, NULL, &a), 0);
            assert_int_equal(a.body_max, rc->cap);
            assert_int_equal(admit_as(rc, roles[r], true, at_cap, &a), 0);
            assert_int_equal(admit_as(rc, roles[r], true, over, &a), 413);
        }
    }
}

/* An agent certificate without a CN (or a CN that is no node name, which
 * http.c leaves empty) acts on no node. */
static void test_agent_without_name(void **state) {
    struct http_head h = {
            .method = "POST", .url = "/v1/nodes/node-1/evidence", .role = ROLE_AGENT, .cn = NULL};
    struct http_admission a;
    (void)state;

    http_admit(&h, &a);
    assert_int_equal(a.status, 403);
    h.cn = "";
    http_admit(&h, &a);
    assert_int_equal(a.status, 403);
    h.cn = "node-1/evidence";
    http_admit(&h, &a);
    assert_int_equal(a.status, 403);
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

/* The route function alone: method and path to the route, the role it
 * needs, its body cap and what the path names. */
struct route_expect {
    const char *method, *url;
    enum http_route_id id;
    enum role role;
    uint64_t cap;
    const char *node, *arg0, *arg1, *allow;
};

static const struct route_expect route_table[] = {
        {"GET", "/healthz", HTTP_ROUTE_HEALTHZ, ROLE_NONE, 0, "", "", "", NULL},
        {"GET", "/readyz", HTTP_ROUTE_READYZ, ROLE_NONE, 0, "", "", "", NULL},
        {"POST", "/healthz", HTTP_ROUTE_BAD_METHOD, ROLE_NONE, 0, "", "", "", "GET"},
        {"GET", "/metrics", HTTP_ROUTE_METRICS, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"POST", "/metrics", HTTP_ROUTE_BAD_METHOD, ROLE_OPERATOR, 0, "", "", "", "GET"},
        {"POST", "/v1/nodes/node-1/registration", HTTP_ROUTE_REGISTRATION, ROLE_AGENT, BODY,
         "node-1", "", "", NULL},
        {"POST", "/v1/nodes/node-1/activation", HTTP_ROUTE_ACTIVATION, ROLE_AGENT, BODY, "node-1",
         "", "", NULL},
        {"POST", "/v1/nodes/n/challenges", HTTP_ROUTE_CHALLENGES, ROLE_AGENT, BODY, "n", "", "",
         NULL},
        {"POST", "/v1/nodes/node-1/evidence", HTTP_ROUTE_EVIDENCE, ROLE_AGENT, EVID, "node-1", "",
         "", NULL},
        /* An agent route with another method, an unknown action. */
        {"GET", "/v1/nodes/node-1/evidence", HTTP_ROUTE_BAD_METHOD, ROLE_AGENT, 0, "node-1", "", "",
         "POST"},
        {"DELETE", "/v1/nodes/node-1/challenges", HTTP_ROUTE_BAD_METHOD, ROLE_AGENT, 0, "node-1",
         "", "", "POST"},
        {"POST", "/v1/nodes/node-1/reboot", HTTP_ROUTE_NOT_FOUND, ROLE_AGENT, 0, "node-1", "", "",
         NULL},
        {"GET", "/v1/nodes", HTTP_ROUTE_NODES, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"POST", "/v1/nodes", HTTP_ROUTE_BAD_METHOD, ROLE_OPERATOR, 0, "", "", "", "GET"},
        {"GET", "/v1/nodes/node-1", HTTP_ROUTE_NODE, ROLE_OPERATOR, 0, "node-1", "", "", NULL},
        {"DELETE", "/v1/nodes/node-1", HTTP_ROUTE_NODE_DELETE, ROLE_OPERATOR, 0, "node-1", "", "",
         NULL},
        {"PUT", "/v1/nodes/node-1", HTTP_ROUTE_BAD_METHOD, ROLE_OPERATOR, 0, "node-1", "", "",
         "GET, DELETE"},
        {"GET", "/v1/pods", HTTP_ROUTE_PODS, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"GET", "/v1/pods/open5gs/upf-0", HTTP_ROUTE_POD, ROLE_OPERATOR, 0, "", "open5gs", "upf-0",
         NULL},
        /* A pod named "reset" is a pod; POST .../reset resets a UID. */
        {"GET", "/v1/pods/open5gs/reset", HTTP_ROUTE_POD, ROLE_OPERATOR, 0, "", "open5gs", "reset",
         NULL},
        {"POST", "/v1/pods/u-1/reset", HTTP_ROUTE_POD_RESET, ROLE_OPERATOR, BODY, "", "u-1", "",
         NULL},
        {"PUT", "/v1/pods/u-1/reset", HTTP_ROUTE_BAD_METHOD, ROLE_OPERATOR, 0, "", "", "",
         "GET, POST"},
        {"POST", "/v1/pods/open5gs/upf-0", HTTP_ROUTE_BAD_METHOD, ROLE_OPERATOR, 0, "", "", "",
         "GET"},
        {"GET", "/v1/pods/u-1", HTTP_ROUTE_NOT_FOUND, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"GET", "/v1/pods/open5gs/upf-0/measurements", HTTP_ROUTE_POD_MEASUREMENTS, ROLE_OPERATOR,
         0, "", "open5gs", "upf-0", NULL},
        {"POST", "/v1/pods/open5gs/upf-0/measurements", HTTP_ROUTE_BAD_METHOD, ROLE_OPERATOR, 0, "",
         "", "", "GET"},
        {"GET", "/v1/pods/open5gs/upf-0/files", HTTP_ROUTE_NOT_FOUND, ROLE_OPERATOR, 0, "", "", "",
         NULL},
        {"GET", "/v1/policies", HTTP_ROUTE_POLICIES, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"GET", "/v1/audit/head", HTTP_ROUTE_AUDIT_HEAD, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"GET", "/v1/audit", HTTP_ROUTE_NOT_FOUND, ROLE_OPERATOR, 0, "", "", "", NULL},
        {"POST", "/v1/nodes/node-1/evidence/x", HTTP_ROUTE_NOT_FOUND, ROLE_OPERATOR, 0, "", "", "",
         NULL},
        /* Outside the API. */
        {"GET", "/", HTTP_ROUTE_NOT_FOUND, ROLE_NONE, 0, "", "", "", NULL},
        {"GET", "/v1", HTTP_ROUTE_NOT_FOUND, ROLE_NONE, 0, "", "", "", NULL},
        {"GET", "/v2/nodes", HTTP_ROUTE_NOT_FOUND, ROLE_NONE, 0, "", "", "", NULL},
        {"GET", "/v1//nodes", HTTP_ROUTE_NOT_FOUND, ROLE_NONE, 0, "", "", "", NULL},
        {"GET", "/a/b/c/d/e/f", HTTP_ROUTE_NOT_FOUND, ROLE_NONE, 0, "", "", "", NULL},
};

static void test_route(void **state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(route_table); i++) {
        const struct route_expect *x = &route_table[i];
        struct http_route r;

        http_route(x->method, x->url, &r);
        if (r.id != x->id || r.role != x->role || r.body_max != x->cap) {
            fail_msg("%s %s: route %d role %d cap %llu, wanted %d %d %llu", x->method, x->url, r.id,
                     r.role, (unsigned long long)r.body_max, x->id, x->role,
                     (unsigned long long)x->cap);
        }
        assert_string_equal(r.node, x->node);
        if (x->id != HTTP_ROUTE_BAD_METHOD) {
            assert_string_equal(r.arg[0], x->arg0);
            assert_string_equal(r.arg[1], x->arg1);
            assert_null(r.allow);
        } else {
            assert_non_null(r.allow);
            assert_string_equal(r.allow, x->allow);
        }
        assert_int_equal(r.anonymous, x->id == HTTP_ROUTE_HEALTHZ || x->id == HTTP_ROUTE_READYZ);
    }
}

/* What the routes come to at admission: an unknown action of the agent's
 * own node is 404 (another node's is 403, as any of its routes), a wrong
 * method on an agent route 405 naming POST, /metrics for operators only. */
static void test_route_admission(void **state) {
    struct http_head h = {.method = "POST",
                          .url = "/v1/nodes/node-1/reboot",
                          .role = ROLE_AGENT,
                          .cn = "node-1",
                          .content_length = "95000000"};
    struct http_admission a;
    (void)state;

    http_admit(&h, &a);
    assert_int_equal(a.status, 404);
    assert_string_equal(a.error, "not found");
    assert_non_null(strstr(a.detail, "/v1/nodes/node-1/reboot"));
    h.cn = "node-2";
    http_admit(&h, &a);
    assert_int_equal(a.status, 403);
    h.role = ROLE_OPERATOR;
    http_admit(&h, &a);
    assert_int_equal(a.status, 403);

    h = (struct http_head){.method = "GET",
                           .url = "/v1/nodes/node-1/challenges",
                           .role = ROLE_AGENT,
                           .cn = "node-1"};
    http_admit(&h, &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.allow, "POST");
    assert_non_null(strstr(a.detail, "POST"));
    h.method = "PUT";
    h.content_length = "95000000"; /* 405 before the body's length */
    http_admit(&h, &a);
    assert_int_equal(a.status, 405);
    h.role = ROLE_OPERATOR; /* an operator is refused the route first */
    http_admit(&h, &a);
    assert_int_equal(a.status, 403);
    assert_null(a.allow);

    h = (struct http_head){
            .method = "GET", .url = "/metrics", .role = ROLE_OPERATOR, .cn = "alice"};
    http_admit(&h, &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.route.id, HTTP_ROUTE_METRICS);
    h.role = ROLE_AGENT;
    h.cn = "node-1";
    http_admit(&h, &a);
    assert_int_equal(a.status, 403);
    h.role = ROLE_NONE;
    h.cn = NULL;
    http_admit(&h, &a);
    assert_int_equal(a.status, 401);
    h.role = ROLE_REVOKED;
    http_admit(&h, &a);
    assert_int_equal(a.status, 401);
    h = (struct http_head){.method = "POST", .url = "/metrics", .role = ROLE_OPERATOR, .cn = "a"};
    http_admit(&h, &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.allow, "GET");

    /* Without roles the route is still checked. */
    h = (struct http_head){.method = "GET", .url = "/v1/nodes/node-1/evidence", .no_roles = true};
    http_admit(&h, &a);
    assert_int_equal(a.status, 405);
    h.url = "/v1/nope";
    http_admit(&h, &a);
    assert_int_equal(a.status, 404);
    h.url = "/metrics";
    http_admit(&h, &a);
    assert_int_equal(a.status, 0);
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

/* With --agent-auth token|either the 401 of an agent route without
 * credentials says what an agent may show; other routes keep theirs (a
 * token opens none of them: http.c looks at it on agent routes only). */
static void test_agent_auth_detail(void **state) {
    static const struct {
        enum agent_auth_mode mode;
        const char *url, *has, *lacks;
    } auth_cases[] = {
            {AGENT_AUTH_CERT, "/v1/nodes/node-1/evidence", "client certificate", "bearer"},
            {AGENT_AUTH_TOKEN, "/v1/nodes/node-1/evidence", "bearer token", "certificate"},
            {AGENT_AUTH_EITHER, "/v1/nodes/node-1/evidence", "bearer token", NULL},
            {AGENT_AUTH_EITHER, "/v1/nodes/node-1/evidence", "client certificate", NULL},
            {AGENT_AUTH_TOKEN, "/v1/nodes", "kima-operator", "bearer"},
            {AGENT_AUTH_TOKEN, "/metrics", "kima-operator", "bearer"},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(auth_cases); i++) {
        struct http_head h = {.method = strncmp(auth_cases[i].url, "/v1/nodes/", 10) == 0 ? "POST"
                                                                                          : "GET",
                              .url = auth_cases[i].url,
                              .role = ROLE_NONE,
                              .agent_auth = auth_cases[i].mode};
        struct http_admission a;

        http_admit(&h, &a);
        assert_int_equal(a.status, 401);
        if (!strstr(a.detail, auth_cases[i].has) ||
            (auth_cases[i].lacks && strstr(a.detail, auth_cases[i].lacks))) {
            fail_msg("case %zu: \"%s\"", i, a.detail);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cases),
            cmocka_unit_test(test_agent_auth_detail),
            cmocka_unit_test(test_routes_and_roles),
            cmocka_unit_test(test_agent_without_name),
            cmocka_unit_test(test_no_roles),
            cmocka_unit_test(test_split),
            cmocka_unit_test(test_route),
            cmocka_unit_test(test_route_admission),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
