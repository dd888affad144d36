/* SPDX-License-Identifier: Apache-2.0 */
#include "agent-auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "base64.h"
#include "engine.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"

#define SA_PREFIX "system:serviceaccount:"
/* The cache's entries: accepted tokens in [0, AGENT_AUTH_CACHE_MAX), every
 * other (under review, refused, unavailable) after them. A review starts in
 * the second part and an accepted one moves to the first: a flood of
 * made-up tokens, each refused, recycles only the second part and never
 * pushes out an agent's accepted token (which would make every agent need
 * a review at once, through AGENT_AUTH_REVIEWS_MAX slots). */
#define ENTRIES (AGENT_AUTH_CACHE_MAX + AGENT_AUTH_REFUSED_MAX)
/* Hash buckets: a power of two, at least the entries. */
#define BUCKETS (2u * AGENT_AUTH_CACHE_MAX)
_Static_assert(BUCKETS >= ENTRIES && (BUCKETS & (BUCKETS - 1)) == 0, "BUCKETS");
_Static_assert(AGENT_AUTH_REVIEWS_MAX < AGENT_AUTH_REFUSED_MAX, "a pending review has room");

/* A part of the entries, filled in ring order. */
struct pool {
    int32_t first, count;
    int32_t ring; /* the next entry to (re)use: the oldest */
};

struct entry {
    uint8_t key[32]; /* SHA-256 of the token */
    bool used, pending;
    int64_t expires_ms; /* monotonic; a verdict past it is reviewed again */
    int32_t next;       /* in its bucket's chain; -1: the end */
    struct agent_auth_verdict v;
};

/* Refused reviews of one client address in its current window. */
struct client {
    uint8_t addr[AGENT_AUTH_CLIENT_LEN];
    bool used;
    int64_t begin_ms;
    unsigned refusals;
};

struct agent_auth {
    enum agent_auth_mode mode;
    char audience[AGENT_AUTH_NAME_MAX + 1];
    char username[sizeof(SA_PREFIX) + 2 * AGENT_AUTH_NAME_MAX + 1];
    uint64_t ttl_ms, negative_ttl_ms;
    agent_auth_review_fn review;
    void *review_ud;

    /* Guards everything below. `done` is broadcast when a review ends. */
    pthread_mutex_t lock;
    pthread_cond_t done;
    struct entry *entries; /* ENTRIES: the two pools */
    int32_t *buckets;      /* BUCKETS heads; -1: empty */
    struct pool accepted, others;
    struct client *clients; /* AGENT_AUTH_CLIENTS_MAX, by clients_seed's hash */
    uint64_t clients_seed;  /* random: which addresses share a slot is not known outside */
    unsigned reviewing, waiting;
    unsigned reviews_max, waiters_max; /* from the threads */
    struct agent_auth_stats stats;
};

int agent_auth_mode_from_string(const char *s, enum agent_auth_mode *ret) {
    if (!s) {
        return -EINVAL;
    }
    if (strcmp(s, "cert") == 0) {
        *ret = AGENT_AUTH_CERT;
    } else if (strcmp(s, "token") == 0) {
        *ret = AGENT_AUTH_TOKEN;
    } else if (strcmp(s, "either") == 0) {
        *ret = AGENT_AUTH_EITHER;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* A DNS-1123 name of 1 to AGENT_AUTH_NAME_MAX bytes, as namespaces and
 * ServiceAccounts are named: [a-z0-9.-]. */
static bool k8s_name(const char *s, size_t len) {
    if (len == 0 || len > AGENT_AUTH_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* Printable ASCII of `s` into out, cut to fit; withheld whole when it holds
 * the token (an API that echoes it). */
static void sanitize(const char *s, const char *token, char *out, size_t outsz) {
    size_t n = 0;

    if (token && token[0] && strstr(s, token)) {
        snprintf(out, outsz, "(withheld: it holds the token)");
        return;
    }
    for (; *s && n + 1 < outsz; s++) {
        out[n++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
    }
    out[n] = 0;
}

static void verdict(struct agent_auth_verdict *v, enum agent_auth_result result, const char *fmt,
                    ...) _printf_(3, 4);
static void verdict(struct agent_auth_verdict *v, enum agent_auth_result result, const char *fmt,
                    ...) {
    va_list ap;

    v->result = result;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
}

/* The answer's HTTP status: false (with the verdict) unless a review came. */
static bool answer_usable(int status, const json_t *answer, struct agent_auth_verdict *v) {
    if (status < 0) {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "the Kubernetes API cannot be reached (%s)",
                strerror(-status));
    } else if (status == 429 || status >= 500) {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "the Kubernetes API answered %d to the TokenReview",
                status);
    } else if (status == 401 || status == 403) {
        verdict(v, AGENT_AUTH_UNAVAILABLE,
                "the Kubernetes API refused the verifier's TokenReview (%d): its "
                "ServiceAccount needs create on tokenreviews",
                status);
    } else if (status != 200 && status != 201) {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "the Kubernetes API answered %d to the TokenReview",
                status);
    } else if (!json_is_object(json_object_get(answer, "status"))) {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "the TokenReview's answer has no status");
    } else {
        return true;
    }
    return false;
}

static bool has_audience(const json_t *audiences, const char *audience) {
    size_t i;
    json_t *x;

    json_array_foreach(audiences, i, x) {
        if (json_is_string(x) && strcmp(json_string_value(x), audience) == 0) {
            return true;
        }
    }
    return false;
}

/* The user of an authenticated review: the agents' ServiceAccount, bound
 * to exactly one valid node name. */
static void judge_user(const json_t *user, const char *username, const char *token,
                       struct agent_auth_verdict *v) {
    const char *name = json_string_value(json_object_get(user, "username"));
    const json_t *nodes = json_object_get(json_object_get(user, "extra"), AGENT_AUTH_NODE_EXTRA);
    const char *node;
    char shown[120];

    if (!name || strcmp(name, username) != 0) {
        sanitize(name ? name : "(no user name)", token, shown, sizeof(shown));
        verdict(v, AGENT_AUTH_FORBIDDEN, "the token is of %s, not of the agents' ServiceAccount",
                shown);
        return;
    }
    if (!nodes) {
        verdict(v, AGENT_AUTH_FORBIDDEN,
                "the token is bound to no node (no %s: a pod's projected token, Kubernetes "
                "1.30 or later)",
                AGENT_AUTH_NODE_EXTRA);
        return;
    }
    if (!json_is_array(nodes) || json_array_size(nodes) != 1) {
        verdict(v, AGENT_AUTH_FORBIDDEN, "the token's %s is not one node name",
                AGENT_AUTH_NODE_EXTRA);
        return;
    }
    node = json_string_value(json_array_get(nodes, 0));
    if (!node || strlen(node) > AGENT_AUTH_NAME_MAX || !engine_valid_node_name(node)) {
        verdict(v, AGENT_AUTH_FORBIDDEN, "the token's node name is not a valid node name");
        return;
    }
    snprintf(v->node, sizeof(v->node), "%s", node);
    verdict(v, AGENT_AUTH_OK, "an agent of node %s", node);
}

void agent_auth_judge(int status, const json_t *answer, const char *audience, const char *username,
                      const char *token, struct agent_auth_verdict *ret) {
    const json_t *st;
    const char *error;
    char shown[120];

    memset(ret, 0, sizeof(*ret));
    if (!answer_usable(status, answer, ret)) {
        return;
    }
    st = json_object_get(answer, "status");
    if (!json_is_true(json_object_get(st, "authenticated"))) {
        error = json_string_value(json_object_get(st, "error"));
        sanitize(error && error[0] ? error : "not authenticated", token, shown, sizeof(shown));
        verdict(ret, AGENT_AUTH_UNAUTHENTICATED, "the token is not valid: %s", shown);
        return;
    }
    if (!has_audience(json_object_get(st, "audiences"), audience)) {
        verdict(ret, AGENT_AUTH_UNAUTHENTICATED, "the token is not for the audience %s", audience);
        return;
    }
    judge_user(json_object_get(st, "user"), username, token, ret);
}

int agent_auth_jwt_exp(const char *token, int64_t *ret) {
    const char *p = strchr(token, '.'), *q;
    char b64[AGENT_AUTH_TOKEN_MAX + 4];
    uint8_t raw[AGENT_AUTH_TOKEN_MAX];
    size_t len, n;
    json_auto_t *j = NULL;
    const json_t *exp;
    char err[64];
    int r;

    q = p ? strchr(p + 1, '.') : NULL;
    if (!q || strchr(q + 1, '.') || (len = (size_t)(q - p - 1)) == 0 ||
        len > AGENT_AUTH_TOKEN_MAX) {
        return -EBADMSG;
    }
    /* base64url, unpadded, to base64. */
    for (n = 0; n < len; n++) {
        char c = p[1 + n];
        b64[n] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (n % 4) {
        b64[n++] = '=';
    }
    b64[n] = 0;
    r = base64_decode(b64, n, raw, sizeof(raw));
    if (r < 0 ||
        json_parse_bounded((const char *)raw, (size_t)r, 4, 64, &j, err, sizeof(err)) < 0) {
        return -EBADMSG;
    }
    exp = json_object_get(j, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) <= 0) {
        return -EBADMSG;
    }
    *ret = (int64_t)json_integer_value(exp);
    return 0;
}

int agent_auth_new(const struct agent_auth_config *cfg, struct agent_auth **ret) {
    const char *sa =
            cfg->service_account ? cfg->service_account : AGENT_AUTH_SERVICE_ACCOUNT_DEFAULT;
    const char *aud = cfg->audience ? cfg->audience : AGENT_AUTH_AUDIENCE_DEFAULT;
    const char *colon = strchr(sa, ':');
    struct agent_auth *a;

    if (!cfg->review) {
        return -EINVAL;
    }
    if (!colon || !k8s_name(sa, (size_t)(colon - sa)) || !k8s_name(colon + 1, strlen(colon + 1))) {
        log_error("--agent-service-account takes NAMESPACE:NAME (DNS-1123 names)");
        return -EINVAL;
    }
    if (aud[0] == 0 || strlen(aud) > AGENT_AUTH_NAME_MAX) {
        log_error("--token-audience takes 1 to %d bytes", AGENT_AUTH_NAME_MAX);
        return -EINVAL;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        return -ENOMEM;
    }
    a->entries = calloc(ENTRIES, sizeof(*a->entries));
    a->buckets = malloc(BUCKETS * sizeof(*a->buckets));
    a->clients = calloc(AGENT_AUTH_CLIENTS_MAX, sizeof(*a->clients));
    if (!a->entries || !a->buckets || !a->clients ||
        gnutls_rnd(GNUTLS_RND_NONCE, &a->clients_seed, sizeof(a->clients_seed)) != 0) {
        free(a->entries);
        free(a->buckets);
        free(a->clients);
        free(a);
        return -ENOMEM;
    }
    memset(a->buckets, 0xff, BUCKETS * sizeof(*a->buckets)); /* -1 */
    {
        unsigned threads = cfg->threads ? cfg->threads : 8;
        a->reviews_max = threads / 2 ? threads / 2 : 1;
        a->reviews_max =
                a->reviews_max < AGENT_AUTH_REVIEWS_MAX ? a->reviews_max : AGENT_AUTH_REVIEWS_MAX;
        a->waiters_max =
                threads / 4 < AGENT_AUTH_WAITERS_MAX ? threads / 4 : AGENT_AUTH_WAITERS_MAX;
    }
    a->accepted = (struct pool){.first = 0, .count = AGENT_AUTH_CACHE_MAX};
    a->others = (struct pool){.first = AGENT_AUTH_CACHE_MAX, .count = AGENT_AUTH_REFUSED_MAX};
    a->mode = cfg->mode;
    snprintf(a->audience, sizeof(a->audience), "%s", aud);
    snprintf(a->username, sizeof(a->username), SA_PREFIX "%s", sa);
    a->ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : AGENT_AUTH_TTL_MS_DEFAULT;
    a->negative_ttl_ms = cfg->negative_ttl_ms ? cfg->negative_ttl_ms : AGENT_AUTH_NEGATIVE_TTL_MS;
    a->review = cfg->review;
    a->review_ud = cfg->review_ud;
    pthread_mutex_init(&a->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->done, &ca);
        pthread_condattr_destroy(&ca);
    }
    *ret = a;
    return 0;
}

void agent_auth_free(struct agent_auth *a) {
    if (!a) {
        return;
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->done);
    free(a->entries);
    free(a->buckets);
    free(a->clients);
    free(a);
}

enum agent_auth_mode agent_auth_mode(const struct agent_auth *a) {
    return a ? a->mode : AGENT_AUTH_CERT;
}

void agent_auth_get_stats(struct agent_auth *a, struct agent_auth_stats *ret) {
    pthread_mutex_lock(&a->lock);
    *ret = a->stats;
    pthread_mutex_unlock(&a->lock);
}

/* The cache, under a->lock. */

static uint32_t bucket_of(const uint8_t key[32]) {
    return ((uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16 |
            (uint32_t)key[3] << 24) &
           (BUCKETS - 1);
}

static int32_t cache_find(const struct agent_auth *a, const uint8_t key[32]) {
    for (int32_t i = a->buckets[bucket_of(key)]; i >= 0; i = a->entries[i].next) {
        if (memcmp(a->entries[i].key, key, 32) == 0) {
            return i;
        }
    }
    return -1;
}

static void cache_unlink(struct agent_auth *a, int32_t i) {
    int32_t *link = &a->buckets[bucket_of(a->entries[i].key)];

    while (*link >= 0 && *link != i) {
        link = &a->entries[*link].next;
    }
    if (*link == i) {
        *link = a->entries[i].next;
    }
    a->entries[i].used = false;
    a->entries[i].pending = false;
}

/* A new entry for key in pool p, pending: the pool's oldest one not under
 * review is dropped for it. -1 when every entry is under review (cannot
 * happen while AGENT_AUTH_REVIEWS_MAX < either pool's size). */
static int32_t cache_add(struct agent_auth *a, struct pool *p, const uint8_t key[32]) {
    for (int32_t tries = 0; tries < p->count; tries++) {
        int32_t i = p->first + p->ring;
        struct entry *e = &a->entries[i];
        uint32_t b;

        p->ring = (p->ring + 1) % p->count;
        if (e->pending) {
            continue;
        }
        if (e->used) {
            cache_unlink(a, i);
        }
        memcpy(e->key, key, 32);
        e->used = true;
        e->pending = true;
        e->expires_ms = 0;
        b = bucket_of(key);
        e->next = a->buckets[b];
        a->buckets[b] = i;
        return i;
    }
    return -1;
}

/* The refusals per client address, under a->lock. */

static struct client *client_slot(struct agent_auth *a, const uint8_t *addr) {
    uint64_t h = 14695981039346656037ull ^ a->clients_seed; /* FNV-1a */

    for (size_t i = 0; i < AGENT_AUTH_CLIENT_LEN; i++) {
        h = (h ^ addr[i]) * 1099511628211ull;
    }
    return &a->clients[(h ^ (h >> 32)) % AGENT_AUTH_CLIENTS_MAX];
}

static bool client_current(const struct client *c, const uint8_t *addr, int64_t now_ms) {
    return c->used && memcmp(c->addr, addr, AGENT_AUTH_CLIENT_LEN) == 0 &&
           now_ms - c->begin_ms < AGENT_AUTH_CLIENT_WINDOW_MS && now_ms >= c->begin_ms;
}

/* The part of an address that names a client: an IPv4 address whole, an
 * IPv6 one by its /64 (one host may hold all of it). */
static void client_key(const uint8_t *addr, uint8_t key[AGENT_AUTH_CLIENT_LEN]) {
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memcpy(key, addr, AGENT_AUTH_CLIENT_LEN);
    if (memcmp(addr, v4mapped, sizeof(v4mapped)) != 0) {
        memset(key + 8, 0, AGENT_AUTH_CLIENT_LEN - 8);
    }
}

static bool client_throttled(struct agent_auth *a, const uint8_t *client, int64_t now_ms) {
    uint8_t addr[AGENT_AUTH_CLIENT_LEN];
    const struct client *c;

    client_key(client, addr);
    c = client_slot(a, addr);

    return client_current(c, addr, now_ms) && c->refusals >= AGENT_AUTH_CLIENT_REFUSALS_MAX;
}

static void client_refused(struct agent_auth *a, const uint8_t *client, int64_t now_ms) {
    uint8_t addr[AGENT_AUTH_CLIENT_LEN];
    struct client *c;

    client_key(client, addr);
    c = client_slot(a, addr);

    if (!client_current(c, addr, now_ms)) {
        memcpy(c->addr, addr, AGENT_AUTH_CLIENT_LEN);
        c->used = true;
        c->begin_ms = now_ms;
        c->refusals = 0;
    }
    c->refusals++;
}

/* "Bearer TOKEN" (the scheme in any case, RFC 7235) to the token: 0, or
 * -EBADMSG with the reason. Only the token68 characters of RFC 7235. */
static int bearer_token(const char *h, const char **ret, char *reason, size_t reasonsz) {
    size_t len;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        snprintf(reason, reasonsz, "the Authorization header must be \"Bearer\" and a token");
        return -EBADMSG;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    len = strlen(h);
    if (len == 0 || len > AGENT_AUTH_TOKEN_MAX) {
        snprintf(reason, reasonsz, "the bearer token is empty or over %d bytes",
                 AGENT_AUTH_TOKEN_MAX);
        return -EBADMSG;
    }
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("-._~+/=", c))) {
            snprintf(reason, reasonsz, "the bearer token has a byte no token has");
            return -EBADMSG;
        }
    }
    *ret = h;
    return 0;
}

/* Ask the API (no lock held). */
static void review(struct agent_auth *a, const char *token, struct agent_auth_verdict *v) {
    json_auto_t *body =
            json_pack("{s:s,s:s,s:{s:s,s:[s]}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                      "TokenReview", "spec", "token", token, "audiences", a->audience);
    json_auto_t *answer = NULL;
    int status;

    if (!body) {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "out of memory");
        return;
    }
    /* Not logged here: the caller (http.c) logs each refusal once, through
     * its rate limit, since any client can provoke one. */
    status = a->review(a->review_ud, body, &answer);
    agent_auth_judge(status, answer, a->audience, a->username, token, v);
}

/* How long verdict v is kept from now_ms: a positive one at most the TTL
 * and never past the token's exp; an unavailable one not at all. */
static int64_t expiry(const struct agent_auth *a, const struct agent_auth_verdict *v,
                      const char *token, int64_t now_ms, int64_t now_s) {
    int64_t exp, until;

    switch (v->result) {
    case AGENT_AUTH_OK:
        until = now_ms + (int64_t)a->ttl_ms;
        if (agent_auth_jwt_exp(token, &exp) == 0) {
            if (exp <= now_s) {
                return now_ms;
            }
            if (exp - now_s < (int64_t)a->ttl_ms / 1000 + 1) {
                int64_t by_exp = now_ms + (exp - now_s) * 1000;
                until = by_exp < until ? by_exp : until;
            }
        }
        return until;
    case AGENT_AUTH_UNAUTHENTICATED:
    case AGENT_AUTH_FORBIDDEN:
        return now_ms + (int64_t)a->negative_ttl_ms;
    case AGENT_AUTH_UNAVAILABLE:
    case AGENT_AUTH_THROTTLED:
        break;
    }
    return now_ms;
}

/* Keep verdict v on key (a->lock held): entry i (under review) is updated
 * in place when it is in v's pool, else moved there. */
static void cache_store(struct agent_auth *a, int32_t i, const uint8_t key[32],
                        const struct agent_auth_verdict *v, int64_t expires_ms) {
    struct pool *p = v->result == AGENT_AUTH_OK ? &a->accepted : &a->others;

    if (i >= 0 && (i < p->first || i >= p->first + p->count)) {
        cache_unlink(a, i);
        i = cache_add(a, p, key);
    }
    if (i < 0) {
        return;
    }
    a->entries[i].v = *v;
    a->entries[i].expires_ms = expires_ms;
    a->entries[i].pending = false;
}

/* Wait (a->lock held) for the review of key to end: its verdict, or
 * unavailable when it did not end in time. The entry is found again after
 * each wake-up: the end of a review may move it (cache_store). */
static void wait_review(struct agent_auth *a, const uint8_t key[32], struct agent_auth_verdict *v) {
    int32_t i;

    struct timespec until;
    int64_t ms;

    clock_gettime(CLOCK_MONOTONIC, &until);
    ms = (int64_t)until.tv_sec * 1000 + until.tv_nsec / 1000000 + AGENT_AUTH_REVIEW_TIMEOUT_MS +
         1000;
    until.tv_sec = (time_t)(ms / 1000);
    until.tv_nsec = (long)(ms % 1000) * 1000000;
    a->stats.waits++;
    a->waiting++;
    while ((i = cache_find(a, key)) >= 0 && a->entries[i].pending) {
        if (pthread_cond_timedwait(&a->done, &a->lock, &until) != 0) {
            break;
        }
    }
    a->waiting--;
    i = cache_find(a, key);
    if (i >= 0 && !a->entries[i].pending) {
        *v = a->entries[i].v;
    } else {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "the review of this token did not end in time");
    }
}

/* The verdict on token from client (may be NULL): cached, waited for, or
 * reviewed now. */
static void token_verdict(struct agent_auth *a, const char *token, const uint8_t *client,
                          int64_t now_ms, int64_t now_s, struct agent_auth_verdict *v) {
    uint8_t key[32];
    int32_t i;

    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), key) != 0) {
        verdict(v, AGENT_AUTH_UNAVAILABLE, "cannot hash the token");
        return;
    }
    pthread_mutex_lock(&a->lock);
    i = cache_find(a, key);
    if (i >= 0 && a->entries[i].pending && a->waiting >= a->waiters_max) {
        a->stats.busy++;
        pthread_mutex_unlock(&a->lock);
        verdict(v, AGENT_AUTH_UNAVAILABLE,
                "%u requests wait for token reviews under way already; try again", a->waiters_max);
        return;
    }
    if (i >= 0 && a->entries[i].pending) {
        wait_review(a, key, v);
        pthread_mutex_unlock(&a->lock);
        return;
    }
    if (i >= 0 && now_ms < a->entries[i].expires_ms) {
        a->stats.hits++;
        *v = a->entries[i].v;
        pthread_mutex_unlock(&a->lock);
        return;
    }
    if (client && client_throttled(a, client, now_ms)) {
        a->stats.throttled++;
        pthread_mutex_unlock(&a->lock);
        verdict(v, AGENT_AUTH_THROTTLED,
                "%d tokens from this address were refused in the last %d s; try again later",
                AGENT_AUTH_CLIENT_REFUSALS_MAX, AGENT_AUTH_CLIENT_WINDOW_MS / 1000);
        return;
    }
    if (a->reviewing >= a->reviews_max) {
        a->stats.busy++;
        pthread_mutex_unlock(&a->lock);
        verdict(v, AGENT_AUTH_UNAVAILABLE, "%u token reviews are under way already; try again",
                a->reviews_max);
        return;
    }
    if (i >= 0) {
        a->entries[i].pending = true;
    } else {
        i = cache_add(a, &a->others, key);
    }
    a->reviewing++;
    a->stats.reviews++;
    pthread_mutex_unlock(&a->lock);

    memset(v, 0, sizeof(*v));
    review(a, token, v);

    pthread_mutex_lock(&a->lock);
    a->reviewing--;
    cache_store(a, i, key, v, expiry(a, v, token, now_ms, now_s));
    if (client && (v->result == AGENT_AUTH_UNAUTHENTICATED || v->result == AGENT_AUTH_FORBIDDEN)) {
        client_refused(a, client, now_ms);
    }
    pthread_cond_broadcast(&a->done);
    pthread_mutex_unlock(&a->lock);
}

enum agent_auth_result agent_auth_check(struct agent_auth *a, const char *authorization,
                                        const char *node, const uint8_t *client, int64_t now_ms,
                                        int64_t now_s, char *ret_reason, size_t reasonsz) {
    struct agent_auth_verdict v = {0};
    const char *token;

    if (bearer_token(authorization, &token, ret_reason, reasonsz) < 0) {
        return AGENT_AUTH_UNAUTHENTICATED;
    }
    token_verdict(a, token, client, now_ms, now_s, &v);
    if (v.result == AGENT_AUTH_OK && strcmp(v.node, node) != 0) {
        snprintf(ret_reason, reasonsz, "the token is bound to node %s, not to this node", v.node);
        return AGENT_AUTH_FORBIDDEN;
    }
    snprintf(ret_reason, reasonsz, "%s", v.reason);
    return v.result;
}
