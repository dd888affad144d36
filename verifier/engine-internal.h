/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_ENGINE_INTERNAL_H
#define KIMA_VERIFIER_ENGINE_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>

#include "buf.h"
#include "engine.h"
#include "policy.h"

#define NONCE_LEN       32
#define NONCES_PER_NODE 4
#define NONCE_SLOTS     8192
#define POLICY_QUIET_S  2 /* seconds a policy directory must be unchanged to skip reloads */

struct nonce_slot {
    char node[STORE_NAME_MAX + 1];
    uint8_t nonce[NONCE_LEN];
    int64_t expires_ms;
};

/* Records any agent certificate can provoke over and over (refusals, an
 * agent's repeated registration, unattributable measurements): at most
 * NOISY_BURST of one type for one node per NOISY_INTERVAL_MS; the rest are
 * counted, and the next written record says how many were left out. */
#define NOISY_SLOTS       4096
#define NOISY_BURST       5
#define NOISY_INTERVAL_MS 60000

struct noisy_slot {
    char key[STORE_NAME_MAX + 40];
    int64_t window_ms;
    unsigned count;
    uint64_t suppressed;
};

/* kima_evidence_seconds, the /metrics histogram of the time one evidence
 * takes: the upper bounds of its buckets in microseconds (1, 5, 10, 50, 100,
 * 500 and 1000 ms, in engine-ops.c); one more bucket, +Inf, takes the rest. */
#define ENGINE_LATENCY_BOUNDS 7
extern const int64_t engine_latency_bounds_us[ENGINE_LATENCY_BOUNDS];

struct engine_metrics_counters {
    uint64_t evidence_ok, evidence_failed, evidence_rejected;
    uint64_t entries_checked;
    uint64_t audit_suppressed;
    uint64_t verify_us_buckets[ENGINE_LATENCY_BOUNDS + 1]; /* the last: +Inf */
    uint64_t verify_us_sum, verify_count;
};

struct engine {
    struct engine_config cfg;
    struct store *store;
    struct audit_log *audit;
    struct inventory *inv;
    /* One lock over the store, the nonces and the policies: state changes
     * are serialized. */
    pthread_mutex_t lock;
    char *policy_dir;
    struct timespec policy_mtime; /* {0}: check the content next time */
    uint8_t policy_fp[32];        /* SHA-256 of the files last loaded */
    struct policy_set *policies;
    struct kbuf policy_errors;
    struct nonce_slot nonces[NONCE_SLOTS];
    struct engine_metrics_counters m;
    struct noisy_slot *noisy;
    uint64_t policy_generation;                   /* bumped when the policies changed */
    uint64_t rejudged_policy, rejudged_inventory; /* generations last re-judged */
    void (*listener)(void *ud);
    void *listener_ud;
};

/* Tell the listener that pod states changed (call without e->lock). */
void engine_notify(struct engine *e);

/* *resp = {"error": error, "detail": detail}; returns status. */
enum engine_status engine_error(json_t **resp, enum engine_status status, const char *error,
                                const char *detail);
/* A noisy record (see NOISY_BURST): written like engine_audit unless the
 * (type, node) pair already wrote its burst this interval, then only
 * counted. details are borrowed. 0 when written or left out, or a negative
 * errno. Call with e->lock held. */
int engine_audit_noisy(struct engine *e, const char *type, const char *node,
                       const struct pod_record *pod, json_t *details);
/* Append an audit record and sync it: 0 or a negative errno. */
int engine_audit(struct engine *e, const char *type, const char *node, const struct pod_record *pod,
                 json_t *details);

#endif
