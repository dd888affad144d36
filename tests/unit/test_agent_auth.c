/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/agent-auth.c: the judgement of TokenReview answers, the bearer
 * header, the cache (by the token's hash, TTL, negative TTL, the token's
 * exp, the bound on entries) and one review per token at a time. The
 * Kubernetes API is a stub review function (the module's boundary); the
 * clocks are the test's. */
#include "test-util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent-auth.h"
#include "base64.h"

#define SA   "system:serviceaccount:kima-system:kima-agent"
#define NOW  1000000000 /* wall clock, seconds */
#define TTL  AGENT_AUTH_TTL_MS_DEFAULT
#define NTTL AGENT_AUTH_NEGATIVE_TTL_MS

/* The stub API: what it answers for which token, and what it was asked. */
struct stub {
    int status;             /* the HTTP status, or a negative errno: no answer */
    const char *answer_fmt; /* JSON, @NODE@ the token's node; NULL: none */
    unsigned calls;
    char last_token[AGENT_AUTH_TOKEN_MAX + 1];
    char last_audience[64];
    /* Blocking: each call waits until released, saying it entered. */
    bool block;
    unsigned entered, released;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static struct stub stub = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

#define VALID                                                                                \
    "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"audiences\":[\"kima\"]," \
    "\"user\":{\"username\":\"" SA "\",\"extra\":{\"" AGENT_AUTH_NODE_EXTRA "\":[\"@NODE@\"]}}}}"

/* The node a stub token is bound to: "tok-NODE" gives NODE. */
static int stub_review(void *ud, const json_t *body, json_t **ret) {
    const char *token = json_string_value(json_object_get(json_object_get(body, "spec"), "token"));
    const json_t *aud = json_object_get(json_object_get(body, "spec"), "audiences");
    char text[2048];
    (void)ud;

    pthread_mutex_lock(&stub.lock);
    stub.calls++;
    snprintf(stub.last_token, sizeof(stub.last_token), "%s", token ? token : "");
    snprintf(stub.last_audience, sizeof(stub.last_audience), "%s",
             json_string_value(json_array_get(aud, 0)) ? json_string_value(json_array_get(aud, 0))
                                                       : "");
    if (stub.block) {
        stub.entered++;
        pthread_cond_broadcast(&stub.cond);
        while (stub.released < stub.entered) {
            pthread_cond_wait(&stub.cond, &stub.lock);
        }
    }
    pthread_mutex_unlock(&stub.lock);
    *ret = NULL;
    if (stub.status < 0 || !stub.answer_fmt) {
        return stub.status;
    }
    {
        const char *at = strstr(stub.answer_fmt, "@NODE@");
        const char *node = token && strncmp(token, "tok-", 4) == 0 ? token + 4 : "node-1";
        if (at) {
            snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - stub.answer_fmt), stub.answer_fmt,
                     node, at + 6);
        } else {
            snprintf(text, sizeof(text), "%s", stub.answer_fmt);
        }
    }
    *ret = json_loads(text, 0, NULL);
    return stub.status;
}

static struct agent_auth *new_auth(void) {
    struct agent_auth_config cfg = {.mode = AGENT_AUTH_TOKEN, .review = stub_review};
    struct agent_auth *a = NULL;

    assert_int_equal(agent_auth_new(&cfg, &a), 0);
    return a;
}

static int setup(void **state) {
    (void)state;
    stub.calls = stub.entered = stub.released = 0;
    stub.block = false;
    stub.last_token[0] = stub.last_audience[0] = 0;
    stub.status = 201;
    stub.answer_fmt = VALID;
    return 0;
}

static enum agent_auth_result check(struct agent_auth *a, const char *header, const char *node,
                                    int64_t now_ms, char *reason) {
    return agent_auth_check(a, header, node, NULL, now_ms, NOW + now_ms / 1000, reason, 200);
}

/* The same from a client address. */
static enum agent_auth_result check_from(struct agent_auth *a, const uint8_t *client,
                                         const char *header, const char *node, int64_t now_ms,
                                         char *reason) {
    return agent_auth_check(a, header, node, client, now_ms, NOW + now_ms / 1000, reason, 200);
}

struct judge_case {
    int status;
    const char *answer;
    enum agent_auth_result want;
    const char *reason; /* a part of the expected reason */
};

#define REVIEW(st)        "{\"kind\":\"TokenReview\",\"status\":" st "}"
#define USER(name, extra) "\"user\":{\"username\":\"" name "\",\"extra\":{" extra "}}"
#define NODES(list)       "\"" AGENT_AUTH_NODE_EXTRA "\":[" list "]"
#define OK_AUD            "\"authenticated\":true,\"audiences\":[\"kima\"],"

static const struct judge_case judge_cases[] = {
        {201, REVIEW("{" OK_AUD USER(SA, NODES("\"node-1\"")) "}"), AGENT_AUTH_OK, "node-1"},
        {200, REVIEW("{" OK_AUD USER(SA, NODES("\"node-1\"")) "}"), AGENT_AUTH_OK, "node-1"},
        /* Not valid: 401, with the API's reason. */
        {201,
         REVIEW("{\"user\":{},\"error\":\"[invalid bearer token, service account token has "
                "expired]\"}"),
         AGENT_AUTH_UNAUTHENTICATED, "has expired"},
        {201, REVIEW("{\"authenticated\":false," USER(SA, NODES("\"node-1\"")) "}"),
         AGENT_AUTH_UNAUTHENTICATED, "not valid"},
        /* An error that holds the token is not repeated. */
        {201, REVIEW("{\"user\":{},\"error\":\"bad token tok-node-1 here\"}"),
         AGENT_AUTH_UNAUTHENTICATED, "withheld"},
        /* Authenticated for another audience only, or with none said. */
        {201,
         REVIEW("{\"authenticated\":true,\"audiences\":[\"https://kubernetes.default.svc\"]," USER(
                 SA, NODES("\"node-1\"")) "}"),
         AGENT_AUTH_UNAUTHENTICATED, "audience kima"},
        {201, REVIEW("{\"authenticated\":true," USER(SA, NODES("\"node-1\"")) "}"),
         AGENT_AUTH_UNAUTHENTICATED, "audience kima"},
        /* Valid, not the agents': 403. */
        {201,
         REVIEW("{" OK_AUD USER("system:serviceaccount:default:default", NODES("\"node-1\"")) "}"),
         AGENT_AUTH_FORBIDDEN, "default:default"},
        /* The agents' ServiceAccount name in another namespace, a prefix
         * or an extension of the name: another account. */
        {201,
         REVIEW("{" OK_AUD USER("system:serviceaccount:tenant:kima-agent",
                                NODES("\"node-1\"")) "}"),
         AGENT_AUTH_FORBIDDEN, "tenant:kima-agent"},
        {201,
         REVIEW("{" OK_AUD USER("system:serviceaccount:kima-system:kima-agent-x",
                                NODES("\"node-1\"")) "}"),
         AGENT_AUTH_FORBIDDEN, "kima-agent-x"},
        {201,
         REVIEW("{" OK_AUD USER("system:serviceaccount:kima-system:kima-agen",
                                NODES("\"node-1\"")) "}"),
         AGENT_AUTH_FORBIDDEN, "kima-agen,"},
        {201, REVIEW("{" OK_AUD "\"user\":{\"extra\":{}}}"), AGENT_AUTH_FORBIDDEN, "no user name"},
        {201, REVIEW("{" OK_AUD USER(SA, "") "}"), AGENT_AUTH_FORBIDDEN, "bound to no node"},
        {201, REVIEW("{" OK_AUD "\"user\":{\"username\":\"" SA "\"}}"), AGENT_AUTH_FORBIDDEN,
         "bound to no node"},
        {201, REVIEW("{" OK_AUD USER(SA, NODES("\"node-1\",\"node-2\"")) "}"), AGENT_AUTH_FORBIDDEN,
         "not one node name"},
        {201, REVIEW("{" OK_AUD USER(SA, NODES("")) "}"), AGENT_AUTH_FORBIDDEN,
         "not one node name"},
        {201, REVIEW("{" OK_AUD USER(SA, "\"" AGENT_AUTH_NODE_EXTRA "\":\"node-1\"") "}"),
         AGENT_AUTH_FORBIDDEN, "not one node name"},
        {201, REVIEW("{" OK_AUD USER(SA, NODES("\"Node_1/..\"")) "}"), AGENT_AUTH_FORBIDDEN,
         "not a valid node name"},
        {201, REVIEW("{" OK_AUD USER(SA, NODES("7")) "}"), AGENT_AUTH_FORBIDDEN,
         "not a valid node name"},
        /* The API cannot tell: 503, never acceptance. */
        {-ECONNREFUSED, NULL, AGENT_AUTH_UNAVAILABLE, "cannot be reached"},
        {-EIO, NULL, AGENT_AUTH_UNAVAILABLE, "cannot be reached"},
        {503, REVIEW("{" OK_AUD USER(SA, NODES("\"node-1\"")) "}"), AGENT_AUTH_UNAVAILABLE, "503"},
        {500, NULL, AGENT_AUTH_UNAVAILABLE, "500"},
        {429, NULL, AGENT_AUTH_UNAVAILABLE, "429"},
        {403, NULL, AGENT_AUTH_UNAVAILABLE, "create on tokenreviews"},
        {401, NULL, AGENT_AUTH_UNAVAILABLE, "create on tokenreviews"},
        {404, NULL, AGENT_AUTH_UNAVAILABLE, "404"},
        {201, NULL, AGENT_AUTH_UNAVAILABLE, "no status"},
        {201, "{\"kind\":\"TokenReview\"}", AGENT_AUTH_UNAVAILABLE, "no status"},
        {201, "{\"status\":\"yes\"}", AGENT_AUTH_UNAVAILABLE, "no status"},
};

static void test_judge(void **state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(judge_cases); i++) {
        const struct judge_case *c = &judge_cases[i];
        json_t *answer = c->answer ? json_loads(c->answer, 0, NULL) : NULL;
        struct agent_auth_verdict v;

        if (c->answer && !answer) {
            fail_msg("case %zu: the answer is not JSON", i);
        }
        agent_auth_judge(c->status, answer, "kima", SA, "tok-node-1", &v);
        if (v.result != c->want || !strstr(v.reason, c->reason) || strstr(v.reason, "tok-node-1")) {
            fail_msg("case %zu: result %d reason \"%s\", wanted %d with \"%s\"", i, v.result,
                     v.reason, c->want, c->reason);
        }
        if (v.result == AGENT_AUTH_OK) {
            assert_string_equal(v.node, "node-1");
        }
        json_decref(answer);
    }
}

/* A JWT-shaped token whose payload is `payload`. */
static void jwt(const char *payload, char *out, size_t outsz) {
    char b64[512];
    size_t n = base64_encode(payload, strlen(payload), b64);

    while (n > 0 && b64[n - 1] == '=') {
        b64[--n] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    }
    snprintf(out, outsz, "eyJhbGciOiJub25lIn0.%s.c2ln", b64);
}

static void test_jwt_exp(void **state) {
    char t[600];
    int64_t exp = 0;
    (void)state;

    jwt("{\"exp\":1700000123,\"sub\":\"x\"}", t, sizeof(t));
    assert_int_equal(agent_auth_jwt_exp(t, &exp), 0);
    assert_int_equal(exp, 1700000123);
    jwt("{\"sub\":\"x\"}", t, sizeof(t));
    assert_int_equal(agent_auth_jwt_exp(t, &exp), -EBADMSG);
    jwt("{\"exp\":\"soon\"}", t, sizeof(t));
    assert_int_equal(agent_auth_jwt_exp(t, &exp), -EBADMSG);
    jwt("[1,2]", t, sizeof(t));
    assert_int_equal(agent_auth_jwt_exp(t, &exp), -EBADMSG);
    assert_int_equal(agent_auth_jwt_exp("tok-node-1", &exp), -EBADMSG);
    assert_int_equal(agent_auth_jwt_exp("a.b", &exp), -EBADMSG);
    assert_int_equal(agent_auth_jwt_exp("a..c", &exp), -EBADMSG);
    assert_int_equal(agent_auth_jwt_exp("a.!!!!.c", &exp), -EBADMSG);
    assert_int_equal(agent_auth_jwt_exp("a.b.c.d", &exp), -EBADMSG);
}

static void test_config(void **state) {
    static const char *bad_sa[] = {"kima-agent", "kima-system:",           ":kima-agent",
                                   "Kima:agent", "kima-system:kima agent", "a:b:c"};
    struct agent_auth_config cfg = {.mode = AGENT_AUTH_TOKEN, .review = stub_review};
    struct agent_auth *a = NULL;
    enum agent_auth_mode m;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad_sa); i++) {
        cfg.service_account = bad_sa[i];
        if (agent_auth_new(&cfg, &a) != -EINVAL) {
            fail_msg("--agent-service-account %s was taken", bad_sa[i]);
        }
    }
    cfg.service_account = "ns:sa";
    cfg.audience = "";
    assert_int_equal(agent_auth_new(&cfg, &a), -EINVAL);
    cfg.audience = NULL;
    cfg.review = NULL;
    assert_int_equal(agent_auth_new(&cfg, &a), -EINVAL);
    assert_int_equal(agent_auth_mode_from_string("cert", &m), 0);
    assert_int_equal(m, AGENT_AUTH_CERT);
    assert_int_equal(agent_auth_mode_from_string("either", &m), 0);
    assert_int_equal(m, AGENT_AUTH_EITHER);
    assert_int_equal(agent_auth_mode_from_string("token", &m), 0);
    assert_int_equal(m, AGENT_AUTH_TOKEN);
    assert_int_equal(agent_auth_mode_from_string("tokens", &m), -EINVAL);
    assert_int_equal(agent_auth_mode_from_string(NULL, &m), -EINVAL);
    agent_auth_free(NULL);
}

/* The review asks for the configured audience; the user must be the
 * configured ServiceAccount. */
static void test_configured_names(void **state) {
    struct agent_auth_config cfg = {.mode = AGENT_AUTH_TOKEN,
                                    .review = stub_review,
                                    .audience = "attest",
                                    .service_account = "kima-system:kima-agent"};
    struct agent_auth *a = NULL;
    char reason[200];
    (void)state;

    assert_int_equal(agent_auth_new(&cfg, &a), 0);
    /* The stub's answer says audience kima: not this one's. */
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason),
                     AGENT_AUTH_UNAUTHENTICATED);
    assert_string_equal(stub.last_audience, "attest");
    assert_string_equal(stub.last_token, "tok-node-1");
    agent_auth_free(a);
    cfg.audience = NULL;
    cfg.service_account = "other:agent";
    assert_int_equal(agent_auth_new(&cfg, &a), 0);
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_FORBIDDEN);
    agent_auth_free(a);
}

static void test_header(void **state) {
    static const char *bad[] = {"Basic dG9rOm5vZGU=",
                                "Bearer",
                                "Bearer ",
                                "Bearer   ",
                                "Bearer tok node-1",
                                "Bearer tok-node-1\"",
                                "Bearertok-node-1",
                                "Bearer tok-node-1 ",
                                "Bearer\ttok-node-1",
                                "Bearer tok-n\xc3\xb6"
                                "de-1",
                                "Bearer tok-node-1\x01",
                                "Bearer tok-node-1,Bearer tok-node-2",
                                ""};
    struct agent_auth *a = new_auth();
    char reason[200], big[AGENT_AUTH_TOKEN_MAX + 16];
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (check(a, bad[i], "node-1", 0, reason) != AGENT_AUTH_UNAUTHENTICATED) {
            fail_msg("\"%s\" was taken", bad[i]);
        }
    }
    assert_int_equal(check(a, NULL, "node-1", 0, reason), AGENT_AUTH_UNAUTHENTICATED);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', AGENT_AUTH_TOKEN_MAX + 1);
    big[7 + AGENT_AUTH_TOKEN_MAX + 1] = 0;
    assert_int_equal(check(a, big, "node-1", 0, reason), AGENT_AUTH_UNAUTHENTICATED);
    assert_non_null(strstr(reason, "over"));
    /* None of them reached the API. */
    assert_int_equal(stub.calls, 0);
    /* The scheme in any case, blanks before the token. */
    assert_int_equal(check(a, "bearer   tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, "BEARER tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    agent_auth_free(a);
}

/* The node in the URL must be the token's. */
static void test_node(void **state) {
    struct agent_auth *a = new_auth();
    char reason[200];
    (void)state;

    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, "Bearer tok-node-1", "node-2", 0, reason), AGENT_AUTH_FORBIDDEN);
    assert_non_null(strstr(reason, "bound to node node-1"));
    assert_int_equal(check(a, "Bearer tok-node-1", "node-10", 0, reason), AGENT_AUTH_FORBIDDEN);
    assert_int_equal(check(a, "Bearer tok-node-1", "", 0, reason), AGENT_AUTH_FORBIDDEN);
    assert_int_equal(check(a, "Bearer tok-node-2", "node-1", 0, reason), AGENT_AUTH_FORBIDDEN);
    /* One review per token, whatever the URLs. */
    assert_int_equal(stub.calls, 2);
    agent_auth_free(a);
}

static void test_cache_ttl(void **state) {
    struct agent_auth *a = new_auth();
    struct agent_auth_stats st;
    char reason[200];
    (void)state;

    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", TTL - 1, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 1);
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", TTL, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 2);
    agent_auth_get_stats(a, &st);
    assert_int_equal(st.reviews, 2);
    assert_int_equal(st.hits, 1);
    /* A new review past the TTL that the API cannot answer: 503, though
     * the token was accepted before. */
    stub.status = 503;
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 2 * TTL, reason),
                     AGENT_AUTH_UNAVAILABLE);
    stub.status = -ECONNREFUSED;
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 2 * TTL, reason),
                     AGENT_AUTH_UNAVAILABLE);
    /* Not cached: each request asks again. */
    assert_int_equal(stub.calls, 4);
    stub.status = 201;
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 2 * TTL, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 5);
    agent_auth_free(a);
}

static void test_cache_negative(void **state) {
    struct agent_auth *a = new_auth();
    char reason[200];
    (void)state;

    stub.answer_fmt = REVIEW("{\"user\":{},\"error\":\"[invalid bearer token]\"}");
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason),
                     AGENT_AUTH_UNAUTHENTICATED);
    /* The API now says yes, but the refusal is remembered briefly. */
    stub.answer_fmt = VALID;
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", NTTL - 1, reason),
                     AGENT_AUTH_UNAUTHENTICATED);
    assert_int_equal(stub.calls, 1);
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", NTTL, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 2);
    agent_auth_free(a);
}

/* A positive review is never kept past the token's exp. */
static void test_cache_exp(void **state) {
    struct agent_auth *a = new_auth();
    char reason[200], t[600], header[700];
    (void)state;

    snprintf(reason, sizeof(reason), "{\"exp\":%d}", NOW + 3);
    jwt(reason, t, sizeof(t));
    snprintf(header, sizeof(header), "Bearer %s", t);
    assert_int_equal(check(a, header, "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, header, "node-1", 2999, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 1);
    stub.status = 503;
    assert_int_equal(check(a, header, "node-1", 3000, reason), AGENT_AUTH_UNAVAILABLE);
    assert_int_equal(stub.calls, 2);
    /* An exp already past: not kept at all. */
    stub.status = 201;
    snprintf(reason, sizeof(reason), "{\"exp\":%d}", NOW - 1);
    jwt(reason, t, sizeof(t));
    snprintf(header, sizeof(header), "Bearer %s", t);
    assert_int_equal(check(a, header, "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, header, "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 4);
    /* An exp far away: the TTL still bounds it. */
    snprintf(reason, sizeof(reason), "{\"exp\":%d}", NOW + 3600);
    jwt(reason, t, sizeof(t));
    snprintf(header, sizeof(header), "Bearer %s", t);
    assert_int_equal(check(a, header, "node-1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, header, "node-1", TTL, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 6);
    agent_auth_free(a);
}

/* At most AGENT_AUTH_CACHE_MAX reviews are kept: the oldest goes. */
static void test_cache_bound(void **state) {
    struct agent_auth *a = new_auth();
    char reason[200], header[64], node[32];
    (void)state;

    for (unsigned i = 0; i < AGENT_AUTH_CACHE_MAX + 1; i++) {
        snprintf(header, sizeof(header), "Bearer tok-n%u", i);
        snprintf(node, sizeof(node), "n%u", i);
        assert_int_equal(check(a, header, node, 0, reason), AGENT_AUTH_OK);
    }
    assert_int_equal(stub.calls, AGENT_AUTH_CACHE_MAX + 1);
    /* The newest is kept, the first one was dropped for it. */
    assert_int_equal(check(a, "Bearer tok-n1", "n1", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(check(a, "Bearer tok-n16384", "n16384", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, AGENT_AUTH_CACHE_MAX + 1);
    assert_int_equal(check(a, "Bearer tok-n0", "n0", 0, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, AGENT_AUTH_CACHE_MAX + 2);
    agent_auth_free(a);
}

/* A flood of made-up tokens, each refused, never pushes an agent's
 * accepted token out of the cache: a client without a certificate cannot
 * make every agent need a review at once (review finding R17-1). The
 * refusals themselves are bounded apart (AGENT_AUTH_REFUSED_MAX). */
static void test_cache_refusals_keep_accepted(void **state) {
    struct agent_auth *a = new_auth();
    char reason[200], header[64];
    unsigned calls;
    (void)state;

    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    stub.answer_fmt = REVIEW("{\"user\":{},\"error\":\"[invalid bearer token]\"}");
    for (unsigned i = 0; i < AGENT_AUTH_CACHE_MAX + AGENT_AUTH_REFUSED_MAX + 1; i++) {
        snprintf(header, sizeof(header), "Bearer junk%u", i);
        assert_int_equal(check(a, header, "node-1", 1, reason), AGENT_AUTH_UNAUTHENTICATED);
    }
    calls = stub.calls;
    /* The API would refuse it now: only a cache hit says yes. */
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 2, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, calls);
    /* The newest refusal is remembered, the oldest was dropped for it. */
    snprintf(header, sizeof(header), "Bearer junk%u",
             AGENT_AUTH_CACHE_MAX + AGENT_AUTH_REFUSED_MAX);
    assert_int_equal(check(a, header, "node-1", 3, reason), AGENT_AUTH_UNAUTHENTICATED);
    assert_int_equal(stub.calls, calls);
    assert_int_equal(check(a, "Bearer junk0", "node-1", 3, reason), AGENT_AUTH_UNAUTHENTICATED);
    assert_int_equal(stub.calls, calls + 1);
    agent_auth_free(a);
}

/* Each made-up token costs a TokenReview: one client address may have
 * AGENT_AUTH_CLIENT_REFUSALS_MAX refused per window, then its tokens that
 * are not in the cache are 429 without a review; an agent's cached token
 * from that address still works, other addresses are not affected, and
 * the next window starts afresh (review finding R17-2). */
static void test_client_refusals(void **state) {
    struct agent_auth *a = new_auth();
    const uint8_t x[AGENT_AUTH_CLIENT_LEN] = {0, 0, 0,    0,    0,  0, 0, 0,
                                              0, 0, 0xff, 0xff, 10, 0, 0, 1};
    const uint8_t y[AGENT_AUTH_CLIENT_LEN] = {0, 0, 0,    0,    0,  0, 0, 0,
                                              0, 0, 0xff, 0xff, 10, 0, 0, 2};
    const char *invalid = REVIEW("{\"user\":{},\"error\":\"[invalid bearer token]\"}");
    char reason[200], header[64];
    struct agent_auth_stats st;
    (void)state;

    assert_int_equal(check_from(a, x, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    stub.answer_fmt = invalid;
    for (unsigned i = 0; i < AGENT_AUTH_CLIENT_REFUSALS_MAX; i++) {
        snprintf(header, sizeof(header), "Bearer junk%u", i);
        assert_int_equal(check_from(a, x, header, "node-1", 1, reason), AGENT_AUTH_UNAUTHENTICATED);
    }
    assert_int_equal(stub.calls, 1 + AGENT_AUTH_CLIENT_REFUSALS_MAX);
    /* A refusal in the cache is still told as such, without a review. */
    assert_int_equal(check_from(a, x, "Bearer junk0", "node-1", 2, reason),
                     AGENT_AUTH_UNAUTHENTICATED);
    assert_int_equal(check_from(a, x, "Bearer junk-new", "node-1", 2, reason),
                     AGENT_AUTH_THROTTLED);
    assert_non_null(strstr(reason, "refused"));
    assert_int_equal(check_from(a, x, "Bearer tok-node-2", "node-2", 2, reason),
                     AGENT_AUTH_THROTTLED);
    assert_int_equal(stub.calls, 1 + AGENT_AUTH_CLIENT_REFUSALS_MAX);
    /* The cached agent token from the same address: accepted. */
    stub.answer_fmt = VALID;
    assert_int_equal(check_from(a, x, "Bearer tok-node-1", "node-1", 3, reason), AGENT_AUTH_OK);
    /* Another address: reviewed as ever. */
    assert_int_equal(check_from(a, y, "Bearer tok-node-3", "node-3", 3, reason), AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 2 + AGENT_AUTH_CLIENT_REFUSALS_MAX);
    /* Accepted reviews do not count against an address, nor do 503s. */
    stub.status = 503;
    for (unsigned i = 0; i < 2 * AGENT_AUTH_CLIENT_REFUSALS_MAX; i++) {
        assert_int_equal(check_from(a, y, "Bearer tok-node-4", "node-4", 4, reason),
                         AGENT_AUTH_UNAVAILABLE);
    }
    stub.status = 201;
    assert_int_equal(check_from(a, y, "Bearer tok-node-4", "node-4", 4, reason), AGENT_AUTH_OK);
    /* The next window: x may be reviewed again. */
    assert_int_equal(check_from(a, x, "Bearer tok-node-2", "node-2",
                                1 + AGENT_AUTH_CLIENT_WINDOW_MS, reason),
                     AGENT_AUTH_OK);
    agent_auth_get_stats(a, &st);
    assert_int_equal(st.throttled, 2);
    agent_auth_free(a);
}

/* An IPv6 client is counted by its /64: a host holds all of it. */
static void test_client_refusals_ipv6(void **state) {
    struct agent_auth *a = new_auth();
    uint8_t v6[AGENT_AUTH_CLIENT_LEN] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
    uint8_t other[AGENT_AUTH_CLIENT_LEN] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2};
    char reason[200], header[64];
    (void)state;

    stub.answer_fmt = REVIEW("{\"user\":{},\"error\":\"[invalid bearer token]\"}");
    for (unsigned i = 0; i < AGENT_AUTH_CLIENT_REFUSALS_MAX; i++) {
        v6[15] = (uint8_t)i; /* another address of the same /64 each time */
        v6[9] = (uint8_t)(i * 7);
        snprintf(header, sizeof(header), "Bearer junk%u", i);
        assert_int_equal(check_from(a, v6, header, "node-1", 1, reason),
                         AGENT_AUTH_UNAUTHENTICATED);
    }
    v6[15] = 0xee;
    assert_int_equal(check_from(a, v6, "Bearer junk-new", "node-1", 2, reason),
                     AGENT_AUTH_THROTTLED);
    /* Another /64: its own count. */
    assert_int_equal(check_from(a, other, "Bearer junk-new", "node-1", 2, reason),
                     AGENT_AUTH_UNAUTHENTICATED);
    assert_int_equal(stub.calls, AGENT_AUTH_CLIENT_REFUSALS_MAX + 1);
    agent_auth_free(a);
}

struct caller {
    struct agent_auth *a;
    const char *header, *node;
    enum agent_auth_result result;
    pthread_t thread;
};

static void *call_thread(void *ud) {
    struct caller *c = ud;
    char reason[200];

    c->result = check(c->a, c->header, c->node, 0, reason);
    return NULL;
}

/* Wait (bounded) until the stub has `n` calls blocked in it. */
static void wait_entered(unsigned n) {
    pthread_mutex_lock(&stub.lock);
    while (stub.entered < n) {
        pthread_cond_wait(&stub.cond, &stub.lock);
    }
    pthread_mutex_unlock(&stub.lock);
}

static void wait_stat_waits(struct agent_auth *a, uint64_t n) {
    struct agent_auth_stats st;

    for (int i = 0; i < 100000; i++) {
        agent_auth_get_stats(a, &st);
        if (st.waits >= n) {
            return;
        }
        nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    fail_msg("no request waited for the review under way");
}

/* Requests for a token under review wait for that review; at most
 * AGENT_AUTH_REVIEWS_MAX reviews run at once, more are 503 at once. */
static void test_one_review_at_a_time(void **state) {
    struct agent_auth *a = new_auth();
    struct caller same[2], other[AGENT_AUTH_REVIEWS_MAX - 1];
    const char *nodes[] = {"node-2", "node-3", "node-4", "node-5", "node-6"};
    static char headers[AGENT_AUTH_REVIEWS_MAX][32];
    struct agent_auth_stats st;
    char reason[200];
    (void)state;

    stub.block = true;
    for (size_t i = 0; i < 2; i++) {
        same[i] = (struct caller){.a = a, .header = "Bearer tok-node-1", .node = "node-1"};
    }
    assert_int_equal(pthread_create(&same[0].thread, NULL, call_thread, &same[0]), 0);
    wait_entered(1);
    assert_int_equal(pthread_create(&same[1].thread, NULL, call_thread, &same[1]), 0);
    wait_stat_waits(a, 1);
    for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
        snprintf(headers[i], sizeof(headers[i]), "Bearer tok-%s", nodes[i]);
        other[i] = (struct caller){.a = a, .header = headers[i], .node = nodes[i]};
        assert_int_equal(pthread_create(&other[i].thread, NULL, call_thread, &other[i]), 0);
    }
    wait_entered(AGENT_AUTH_REVIEWS_MAX);
    /* All slots taken: another token is not reviewed now. */
    assert_int_equal(check(a, "Bearer tok-node-9", "node-9", 0, reason), AGENT_AUTH_UNAVAILABLE);
    pthread_mutex_lock(&stub.lock);
    stub.released = 1000;
    pthread_cond_broadcast(&stub.cond);
    pthread_mutex_unlock(&stub.lock);
    for (size_t i = 0; i < 2; i++) {
        pthread_join(same[i].thread, NULL);
        assert_int_equal(same[i].result, AGENT_AUTH_OK);
    }
    for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
        pthread_join(other[i].thread, NULL);
        assert_int_equal(other[i].result, AGENT_AUTH_OK);
    }
    agent_auth_get_stats(a, &st);
    assert_int_equal(st.reviews, AGENT_AUTH_REVIEWS_MAX);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.busy, 1);
    assert_int_equal(stub.calls, AGENT_AUTH_REVIEWS_MAX);
    agent_auth_free(a);
}

/* Requests waiting for a review under way are bounded as the reviews
 * are: with a slow API, requests repeating one token must not hold every
 * HTTP thread (operators and agents with certificates need them too). One
 * past AGENT_AUTH_WAITERS_MAX is 503 at once (review finding R17-4). */
static void test_waiters_bounded(void **state) {
    struct agent_auth *a = new_auth();
    struct caller first, waiters[AGENT_AUTH_WAITERS_MAX];
    struct agent_auth_stats st;
    char reason[200];
    (void)state;

    stub.block = true;
    first = (struct caller){.a = a, .header = "Bearer tok-node-1", .node = "node-1"};
    assert_int_equal(pthread_create(&first.thread, NULL, call_thread, &first), 0);
    wait_entered(1);
    for (size_t i = 0; i < ARRAY_SIZE(waiters); i++) {
        waiters[i] = first;
        assert_int_equal(pthread_create(&waiters[i].thread, NULL, call_thread, &waiters[i]), 0);
        wait_stat_waits(a, i + 1);
    }
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_UNAVAILABLE);
    assert_non_null(strstr(reason, "wait"));
    pthread_mutex_lock(&stub.lock);
    stub.released = 1000;
    pthread_cond_broadcast(&stub.cond);
    pthread_mutex_unlock(&stub.lock);
    pthread_join(first.thread, NULL);
    assert_int_equal(first.result, AGENT_AUTH_OK);
    for (size_t i = 0; i < ARRAY_SIZE(waiters); i++) {
        pthread_join(waiters[i].thread, NULL);
        assert_int_equal(waiters[i].result, AGENT_AUTH_OK);
    }
    agent_auth_get_stats(a, &st);
    assert_int_equal(st.waits, AGENT_AUTH_WAITERS_MAX);
    assert_int_equal(st.busy, 1);
    assert_int_equal(stub.calls, 1);
    /* Once it ended: answered from the cache. */
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_OK);
    agent_auth_free(a);
}

/* With few HTTP threads (--threads 2) the reviews and their waiters take
 * at most half of them: one review, no waiter; the other thread is left
 * to operators and agents with certificates (review finding R17-6). */
static void test_few_threads(void **state) {
    struct agent_auth_config cfg = {.mode = AGENT_AUTH_TOKEN, .review = stub_review, .threads = 2};
    struct agent_auth *a = NULL;
    struct caller first;
    char reason[200];
    (void)state;

    assert_int_equal(agent_auth_new(&cfg, &a), 0);
    stub.block = true;
    first = (struct caller){.a = a, .header = "Bearer tok-node-1", .node = "node-1"};
    assert_int_equal(pthread_create(&first.thread, NULL, call_thread, &first), 0);
    wait_entered(1);
    assert_int_equal(check(a, "Bearer tok-node-2", "node-2", 0, reason), AGENT_AUTH_UNAVAILABLE);
    assert_non_null(strstr(reason, "1 token reviews are under way"));
    assert_int_equal(check(a, "Bearer tok-node-1", "node-1", 0, reason), AGENT_AUTH_UNAVAILABLE);
    assert_non_null(strstr(reason, "0 requests wait"));
    pthread_mutex_lock(&stub.lock);
    stub.released = 1000;
    pthread_cond_broadcast(&stub.cond);
    pthread_mutex_unlock(&stub.lock);
    pthread_join(first.thread, NULL);
    assert_int_equal(first.result, AGENT_AUTH_OK);
    assert_int_equal(stub.calls, 1);
    agent_auth_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_judge, setup),
            cmocka_unit_test_setup(test_jwt_exp, setup),
            cmocka_unit_test_setup(test_config, setup),
            cmocka_unit_test_setup(test_configured_names, setup),
            cmocka_unit_test_setup(test_header, setup),
            cmocka_unit_test_setup(test_node, setup),
            cmocka_unit_test_setup(test_cache_ttl, setup),
            cmocka_unit_test_setup(test_cache_negative, setup),
            cmocka_unit_test_setup(test_cache_exp, setup),
            cmocka_unit_test_setup(test_cache_bound, setup),
            cmocka_unit_test_setup(test_cache_refusals_keep_accepted, setup),
            cmocka_unit_test_setup(test_client_refusals, setup),
            cmocka_unit_test_setup(test_client_refusals_ipv6, setup),
            cmocka_unit_test_setup(test_one_review_at_a_time, setup),
            cmocka_unit_test_setup(test_waiters_bounded, setup),
            cmocka_unit_test_setup(test_few_threads, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
