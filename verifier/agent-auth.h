/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_AGENT_AUTH_H
#define KIMA_VERIFIER_AGENT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Agents that authenticate with a projected ServiceAccount token instead of
 * a client certificate (--agent-auth token|either; docs/kubernetes.md,
 * "Agent identity"). The verifier does not check the token itself: it asks
 * the Kubernetes API (a TokenReview) and accepts an agent request only when
 * the API says the token is authenticated, for the verifier's audience, of
 * the agent's ServiceAccount, and bound to exactly one node (the
 * `authentication.kubernetes.io/node-name` extra, Kubernetes 1.30+) which
 * is the node in the URL. Everything else is a refusal: 401 (the token is
 * not valid), 403 (valid, but not an agent's or not this node's), 503 (the
 * API cannot tell: unreachable, 5xx, 429, a malformed answer). An outage
 * never turns into acceptance.
 *
 * Reviews are cached by the SHA-256 of the token (the token itself is never
 * stored, logged or echoed): a positive one for at most ttl_ms and never
 * past the `exp` the token's payload claims (read without trusting it
 * otherwise: it only shortens the cache), a negative one for
 * negative_ttl_ms, an unavailable one not at all; accepted and refused
 * tokens are kept apart, each part bounded, so that refusals never push
 * an accepted token out. Requests for a token
 * under review wait for that review instead of making their own (at most
 * AGENT_AUTH_WAITERS_MAX at once, more: 503). At most
 * AGENT_AUTH_REVIEWS_MAX reviews run at once (more: 503), so that clients
 * without a certificate cannot tie up the HTTP threads or hammer the API. */

enum agent_auth_mode {
    AGENT_AUTH_CERT,   /* client certificates only (the default) */
    AGENT_AUTH_TOKEN,  /* agents by token only; operators by certificate */
    AGENT_AUTH_EITHER, /* agents by certificate or token */
};

/* "cert", "token" or "either". 0 or -EINVAL. */
int agent_auth_mode_from_string(const char *s, enum agent_auth_mode *ret);

#define AGENT_AUTH_AUDIENCE_DEFAULT        "kima"
#define AGENT_AUTH_SERVICE_ACCOUNT_DEFAULT "kima-system:kima-agent"
#define AGENT_AUTH_NODE_EXTRA              "authentication.kubernetes.io/node-name"
#define AGENT_AUTH_TTL_MS_DEFAULT          10000
#define AGENT_AUTH_TTL_MS_MAX              300000
/* How long a refusal (401, 403) is remembered. */
#define AGENT_AUTH_NEGATIVE_TTL_MS 2000
/* The longest bearer token taken; longer is 401 without a review. A
 * projected token is about 1 to 2 KB. */
#define AGENT_AUTH_TOKEN_MAX 6144
/* Accepted tokens remembered at once; the oldest goes first. */
#define AGENT_AUTH_CACHE_MAX 16384
/* Refused tokens (and reviews under way) remembered at once, apart from the
 * accepted ones, so that made-up tokens recycle only these. */
#define AGENT_AUTH_REFUSED_MAX 4096
/* Refused reviews (401, 403: each one a TokenReview) one client address
 * may cause per AGENT_AUTH_CLIENT_WINDOW_MS; past them, its tokens not in
 * the cache are 429 without a review (a cached one still works), so that a
 * client without a certificate cannot turn made-up tokens into API calls
 * at the rate of AGENT_AUTH_REVIEWS_MAX slots. AGENT_AUTH_CLIENTS_MAX
 * addresses are tracked; one over it takes another's slot (the count
 * starts again). An address is AGENT_AUTH_CLIENT_LEN bytes (IPv4 as
 * ::ffff:a.b.c.d); an IPv6 client is counted by its /64. */
#define AGENT_AUTH_CLIENT_REFUSALS_MAX 10
#define AGENT_AUTH_CLIENT_WINDOW_MS    10000
#define AGENT_AUTH_CLIENTS_MAX         4096
#define AGENT_AUTH_CLIENT_LEN          16
/* Reviews under way at once (each holds an HTTP thread). */
#define AGENT_AUTH_REVIEWS_MAX 4
/* Requests waiting at once for a review under way (each holds an HTTP
 * thread too; more: 503), so that reviews and waiters together leave
 * threads of the pool (8 by default) to everyone else while the API is
 * slow. */
#define AGENT_AUTH_WAITERS_MAX 2
/* How long one review may take. */
#define AGENT_AUTH_REVIEW_TIMEOUT_MS 5000
/* The longest answer of a review taken from the API. */
#define AGENT_AUTH_ANSWER_MAX (64u * 1024)
/* The audience and each part of NS:SA. */
#define AGENT_AUTH_NAME_MAX 253

enum agent_auth_result {
    AGENT_AUTH_OK,              /* an agent of the node */
    AGENT_AUTH_UNAUTHENTICATED, /* 401: not a valid token for this verifier */
    AGENT_AUTH_FORBIDDEN,       /* 403: valid, but not an agent's, or not this node's */
    AGENT_AUTH_UNAVAILABLE,     /* 503: the API cannot tell now */
    AGENT_AUTH_THROTTLED,       /* 429: this address had too many tokens refused lately */
};

/* POST `body` (a TokenReview) to the API. Returns the HTTP status with the
 * parsed answer in *ret (NULL when not JSON; the caller's to json_decref),
 * or a negative errno when no answer came. Called from the HTTP threads. */
typedef int (*agent_auth_review_fn)(void *ud, const json_t *body, json_t **ret);

struct agent_auth_config {
    enum agent_auth_mode mode;
    const char *audience;        /* NULL: AGENT_AUTH_AUDIENCE_DEFAULT */
    const char *service_account; /* "NS:SA"; NULL: AGENT_AUTH_SERVICE_ACCOUNT_DEFAULT */
    uint64_t ttl_ms;             /* 0: AGENT_AUTH_TTL_MS_DEFAULT */
    uint64_t negative_ttl_ms;    /* 0: AGENT_AUTH_NEGATIVE_TTL_MS */
    agent_auth_review_fn review;
    void *review_ud; /* borrowed */
    /* The HTTP threads the reviews run on (--threads; 0: 8 assumed):
     * reviews take at most half of them, waiters a quarter, each within
     * AGENT_AUTH_REVIEWS_MAX and AGENT_AUTH_WAITERS_MAX (one review at
     * least: with a single thread it is that thread). */
    unsigned threads;
};

/* One review's verdict, whatever the URL: the node the token is bound to
 * when result is AGENT_AUTH_OK, else why not (no token in it). */
struct agent_auth_verdict {
    enum agent_auth_result result;
    char node[AGENT_AUTH_NAME_MAX + 1];
    char reason[200];
};

/* Judge a TokenReview's answer (pure). `status` is the HTTP status of the
 * answer or a negative errno, `answer` its body (may be NULL), `token` only
 * to keep it out of the reason. */
void agent_auth_judge(int status, const json_t *answer, const char *audience, const char *username,
                      const char *token, struct agent_auth_verdict *ret);

/* The `exp` (seconds since the epoch) a JWT's payload claims, unverified:
 * 0, or -EBADMSG when it is not a JWT with a numeric exp. */
int agent_auth_jwt_exp(const char *token, int64_t *ret);

struct agent_auth;

/* 0, or -EINVAL (a bad audience or service account, logged) or -ENOMEM.
 * Free with agent_auth_free(), which accepts NULL. */
int agent_auth_new(const struct agent_auth_config *cfg, struct agent_auth **ret);
void agent_auth_free(struct agent_auth *a);
enum agent_auth_mode agent_auth_mode(const struct agent_auth *a);

/* An agent's request for `node` with the Authorization header `authorization`
 * (the whole value, "Bearer ..."), from the client address `client`
 * (AGENT_AUTH_CLIENT_LEN bytes; NULL: not limited): the verdict with the
 * reason in ret_reason. now_ms is monotonic, now_s the wall clock (the
 * token's exp). */
enum agent_auth_result agent_auth_check(struct agent_auth *a, const char *authorization,
                                        const char *node, const uint8_t *client, int64_t now_ms,
                                        int64_t now_s, char *ret_reason, size_t reasonsz);

struct agent_auth_stats {
    uint64_t reviews, hits, waits, busy, throttled;
};
void agent_auth_get_stats(struct agent_auth *a, struct agent_auth_stats *ret);

#endif
