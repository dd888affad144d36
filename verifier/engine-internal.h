/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_ENGINE_INTERNAL_H
#define KIMA_VERIFIER_ENGINE_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>

#include "buf.h"
#include "pubkey.h"
#include "engine.h"
#include "policy.h"

#define NONCE_LEN       32
#define NONCES_PER_NODE 4
#define POLICY_QUIET_S  2 /* seconds a policy directory must be unchanged to skip reloads */

/* Per-node state kept in memory (engine-nodes.c): the outstanding nonces
 * and the node's AK as an OpenSSL key, parsed once. An entry exists only
 * for a node the store holds (made by a challenge or an evidence round of a
 * registered node, dropped with the node), so the table is bounded by the
 * registered nodes; its bytes per node are in docs/verifier.md. */
struct node_nonce {
    uint8_t nonce[NONCE_LEN];
    int64_t expires_ms; /* 0: free */
};

struct node_entry {
    struct node_entry *next; /* in its bucket */
    uint64_t hash;
    struct tpm_verify_key *ak; /* NULL until a round needs it */
    uint8_t ak_fp[32];         /* SHA-256 of the marshalled AK `ak` was made from */
    struct node_nonce nonces[NONCES_PER_NODE];
    char name[]; /* NUL-terminated, at most STORE_NAME_MAX */
};

/* Rounds of one node are serialised by its stripe lock (the node name's
 * hash picks one of ENGINE_NODE_STRIPES); rounds of different nodes run in
 * parallel. An entry's content belongs to whoever holds its node's lock;
 * `lock` guards the buckets only. Never hold two node locks, and take a
 * node lock before e->lock, never after. */
#define ENGINE_NODE_STRIPES 1024

struct node_table {
    pthread_mutex_t lock;
    struct node_entry **buckets;
    size_t nbuckets, count;
    pthread_mutex_t stripes[ENGINE_NODE_STRIPES];
};

/* Group commit (engine-commit.c): writers (rounds and operator actions)
 * write under e->lock inside one shared SQLite transaction, each in its own
 * savepoint, and wait; the last writer when none is queued leads: it syncs
 * the audit records of the batch, COMMITs, fdatasyncs the WAL file (the
 * syncs with e->lock released) and tells every writer of the batch how it
 * ended. */

struct engine_write {
    struct engine_write *next; /* in the open batch */
    bool member;               /* its writes are in the open batch */
    bool done;                 /* the batch ended: r says how */
    int r;
    pthread_cond_t cond; /* a member waits on its own: woken when its batch ended or it may lead */
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
    uint64_t commits, rounds_committed, commits_failed;
    uint64_t enforce[ENFORCE_COUNT]; /* engine_enforce_record() */
};

struct engine {
    struct engine_config cfg;
    struct store *store;
    struct audit_log *audit;
    struct inventory *inv;
    /* Operator reads go to `reader` (committed transactions only) under
     * read_lock when it is set (engine_set_reader), else to `store` under
     * `lock`. */
    struct store *reader;
    pthread_mutex_t read_lock;
    /* The store lock: over the store, the policies, the audit log's noisy
     * limiter and the counters. Held for short sections only (reads, a
     * round's writes, a batch's commit); the quote check, the replay and
     * the decoding of entries run outside it, under the node's lock. */
    pthread_mutex_t lock;
    pthread_cond_t batch_cond;  /* a batch ended, or a writer may lead */
    struct engine_write *batch; /* writers of the open transaction */
    size_t batch_size;
    bool txn_open, leading;
    bool closing;                 /* the leader syncs the audit log: no writer may join */
    unsigned closing_waiters;     /* threads waiting for `closing` to end (tests watch it) */
    bool store_broken;            /* a WAL sync failed: every write refused until restart */
    uint64_t batch_audit_seq;     /* last audit record appended in the open batch */
    bool writing;                 /* a writer is inside its savepoint */
    int (*commit_hook)(void *ud); /* tests: runs before each commit, lock released */
    void *commit_hook_ud;
    struct node_table nodes;
    char *policy_dir;
    struct timespec policy_mtime; /* {0}: check the content next time */
    uint8_t policy_fp[32];        /* SHA-256 of the files last loaded */
    struct policy_set *policies;
    struct kbuf policy_errors;
    struct engine_metrics_counters m;
    struct noisy_slot *noisy;
    uint64_t policy_generation;                   /* bumped when the policies changed */
    uint64_t rejudged_policy, rejudged_inventory; /* generations last re-judged */
    void (*listener)(void *ud);
    void *listener_ud;
    /* Set once by engine_drain_start() (atomic: read without a lock); a
     * challenge reads it under its node's lock, so that no nonce is issued
     * after engine_nodes_live_nonces() passed that node. */
    bool draining;
    /* Nonces any verifier of the store can check and each used once
     * (store_nonce_use with the round's writes): a shared store, or
     * cfg.shared_nonces. The key is the store's "nonce-key", read at
     * engine_new(). */
    bool shared_nonces;
    uint8_t nonce_key[32];
    int64_t nonces_purged_ms; /* the sweep's last store_nonce_purge() */
    /* Tests: runs in an evidence round after its checks outside the store
     * lock and before its writes (the node's lock held, no other). */
    void (*round_hook)(void *ud);
    void *round_hook_ud;
    uint64_t drain_rounds0; /* evidence_ok + evidence_failed when it began; e->lock */
    /* kima_leader (engine-leader.c), e->lock: shown once a Lease is used. */
    bool lease_used, leader;
};

/* The enforcement counters as Prometheus text (engine-enforce.c), appended
 * to b. Call with e->lock held. */
void engine_enforce_metrics(const struct engine *e, struct kbuf *b);

/* Tell the listener that pod states changed (call without e->lock). */
void engine_notify(struct engine *e);

/* *resp = {"error": error, "detail": detail}; returns status. */
enum engine_status engine_error(json_t **resp, enum engine_status status, const char *error,
                                const char *detail);
/* A node's read that failed with r: "unknown node" (404, `detail`) only
 * when the store has no such node (-ENOENT); any other error is the
 * store's (500, retried): an agent told "unknown node" registers again,
 * and a store that cannot answer for a moment (PostgreSQL restarting or
 * failing over) must not send every agent to register. */
enum engine_status engine_node_unreadable(json_t **resp, int r, const char *detail);
/* A noisy record (see NOISY_BURST): written like engine_audit unless the
 * (type, node) pair already wrote its burst this interval, then only
 * counted. details are borrowed. 0 when written or left out, or a negative
 * errno. Call with e->lock held. */
int engine_audit_noisy(struct engine *e, const char *type, const char *node,
                       const struct pod_record *pod, json_t *details);
/* Append an audit record and sync it: 0 or a negative errno. Inside a
 * writer's section (engine_write_begin .. end) the record is only appended:
 * the batch's leader syncs it before the commit. Call with e->lock held. */
int engine_audit(struct engine *e, const char *type, const char *node, const struct pod_record *pod,
                 json_t *details);

/* The node table (engine-nodes.c). */
int engine_nodes_init(struct node_table *t);
void engine_nodes_free(struct node_table *t);
void engine_node_lock(struct engine *e, const char *node);
void engine_node_unlock(struct engine *e, const char *node);
/* The node's entry, made when `create` (NULL without memory, or when absent
 * and not `create`). Call with the node's lock held; the entry is valid
 * until the node's lock is released. */
struct node_entry *engine_node_entry(struct engine *e, const char *node, bool create);
/* Drop the node's entry (its nonces and key): a deleted node. Node lock held. */
void engine_node_forget(struct engine *e, const char *node);
/* Drop the cached AK: a registration may bring another. Node lock held. */
void engine_node_drop_key(struct engine *e, const char *node);
/* The node's AK as a verification key, parsed from n->ak_pub once and kept
 * while the stored AK stays the same. 0, or -EBADMSG when the stored AK
 * is unusable, or -ENOMEM. The key belongs to the entry. */
int engine_node_ak(struct node_entry *ent, const struct node_record *n,
                   const struct tpm_verify_key **ret);
/* A fresh nonce for the node into `out` (random, or made by
 * engine_nonce_make() when nonces are shared): at most NONCES_PER_NODE
 * outstanding (the oldest goes). -EAGAIN when the newest outstanding one
 * is younger than min_challenge_ms, -EIO without randomness. */
int engine_nonce_issue(struct engine *e, struct node_entry *ent, int64_t now,
                       uint8_t out[NONCE_LEN]);
/* Shared nonces (engine-nonce.c; e->shared_nonces): a nonce for `node`
 * that expires at expires_ms, MACed under e->nonce_key: 0, -EIO without
 * randomness, -EINVAL for a name over STORE_NAME_MAX. */
int engine_nonce_make(const struct engine *e, const char *node, int64_t expires_ms,
                      uint8_t out[NONCE_LEN]);
/* Whether `nonce` (len bytes, from the network) was made by a verifier of
 * this store for `node` and is unexpired at now_ms: 0 with its expiry in
 * *ret_expires_ms; -EMSGSIZE when it is not NONCE_LEN bytes, -EBADMSG when
 * its MAC is not this node's under the store's key (forged, or another
 * node's), -ETIME when it expired. Whether it was used is the store's
 * (store_nonce_use). */
int engine_nonce_check(const struct engine *e, const char *node, const uint8_t *nonce, size_t len,
                       int64_t now_ms, int64_t *ret_expires_ms);
/* The node table's nonces issued, unused and unexpired at `now`; expired
 * ones are freed. Takes each node lock in turn (none may be held). */
uint64_t engine_nodes_live_nonces(struct engine *e, int64_t now);
/* Take a nonce: issued to this node, unused, unexpired; gone afterwards
 * either way. */
bool engine_nonce_take(struct node_entry *ent, const uint8_t *nonce, size_t len, int64_t now);

/* Group commit (engine-commit.c). A writer: engine_write_lock, then
 * engine_write_begin, its writes (store, engine_audit), engine_write_end,
 * engine_write_unlock. */
void engine_write_lock(struct engine *e);
void engine_write_unlock(struct engine *e);
/* Under e->lock: open the batch's transaction when none is open, and this
 * writer's savepoint. 0 or -EIO. */
int engine_write_begin(struct engine *e, struct engine_write *w);
/* Under e->lock (held again on return): r < 0 undoes this writer's writes
 * (ROLLBACK TO its savepoint) and returns r; else its writes stay in the
 * batch and it returns once the batch is durable: 0, or a negative errno
 * when the batch's sync or commit failed (then none of the batch is in the
 * store). */
int engine_write_end(struct engine *e, struct engine_write *w, int r);
/* Tests: fn runs before each batch commit with e->lock released (so that
 * writers can join the batch meanwhile); a negative return fails the
 * batch. NULL removes it. */
void engine_set_commit_hook(struct engine *e, int (*fn)(void *ud), void *ud);
/* Tests: fn runs in each evidence round between its reads and its writes
 * (see struct engine's round_hook). NULL removes it. */
void engine_set_round_hook(struct engine *e, void (*fn)(void *ud), void *ud);

#endif
