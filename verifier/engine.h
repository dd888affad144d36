/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_ENGINE_H
#define KIMA_VERIFIER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <tss2/tss2_tpm2_types.h>

#include "audit.h"
#include "inventory.h"
#include "store.h"

/* The attestation engine: registration, activation, challenges, evidence,
 * trust states (docs/design.md sections 3, 5, 7), independent of HTTP. Every
 * call takes the request's JSON, fills a JSON answer and returns what the
 * request came to (enum engine_status). Every state change is in the audit
 * log, synced, and committed to the store before the call returns. */

/* What a request came to. The engine knows no HTTP: http.c alone turns a
 * status into an HTTP code. Every call also leaves an answer in *resp: the
 * result, or {"error": "...", "detail": "..."} naming what was wrong. */
enum engine_status {
    ENGINE_OK,        /* done */
    ENGINE_CREATED,   /* a registration recorded */
    ENGINE_MALFORMED, /* the request is not what the API takes */
    ENGINE_REFUSED,   /* not allowed: EK certificate, activation proof, not activated */
    ENGINE_NOT_FOUND, /* no such node or pod */
    ENGINE_CONFLICT,  /* an identity bound elsewhere, a bad nonce, a wrong IMA index, a node
                       * changed by another writer */
    ENGINE_TOO_LARGE, /* over a cap */
    ENGINE_TOO_SOON,  /* challenges too close together or too many outstanding */
    ENGINE_FAILED,    /* the store or the audit log failed: nothing was recorded */
    ENGINE_DRAINING,  /* the verifier is draining: no new challenge or registration */
};

struct engine_config {
    uint64_t interval_ms;         /* the agents' interval; stale after 3 missed */
    uint64_t nonce_ttl_ms;        /* a challenge's lifetime */
    uint64_t min_challenge_ms;    /* closer challenges of one node are 429 too early */
    bool require_ek_cert;         /* refuse TPMs without a valid EK certificate */
    X509_STORE *ek_store;         /* trusted EK CAs, or NULL (borrowed) */
    TPML_PCR_SELECTION selection; /* what quotes must cover (sha256:10) */
    bool unknown_untrusted;       /* pods no policy matches: untrusted instead of unknown */
    size_t ima_max_bytes;         /* IMA bytes one evidence may carry */
    /* A measurement of a pod (or container) the inventory does not know
     * waits; once an inventory synced this long after it still does not
     * know it, it is judged as a measurement no pod can be named for. */
    uint64_t attribution_grace_ms;
    /* Load policies with an exclude that matches every path (warned). */
    bool allow_match_all_excludes;
    /* Custom template formats (the kernel names an entry of a custom
     * ima_template_fmt= by the format itself) accepted besides the
     * built-in templates, comma-separated; NULL or "": none (borrowed). */
    const char *ima_templates;
    /* Nonces checkable and single-use across every verifier of the store
     * (docs/verifier.md, "Several verifiers"): always on a shared store
     * (PostgreSQL); this forces them on an SQLite one (tests). */
    bool shared_nonces;
};

void engine_config_default(struct engine_config *c);

struct engine;

/* store, audit and inventory are borrowed. policy_dir may be NULL. */
int engine_new(const struct engine_config *cfg, struct store *store, struct audit_log *audit,
               struct inventory *inv, const char *policy_dir, struct engine **ret);
void engine_free(struct engine *e);

/* Called (without the engine's lock) after a round or an operator action
 * changed some pod's state: the Kubernetes side labels it at once. */
void engine_set_listener(struct engine *e, void (*fn)(void *ud), void *ud);

/* A read-only connection to the same store (store_open_reader, borrowed)
 * for the operator's reads (nodes, pods, a pod's measurements): they then
 * show committed transactions only, never a batch being committed, and do
 * not wait for the engine's lock. Without it they read the writer's
 * connection. Call before serving requests. */
void engine_set_reader(struct engine *e, struct store *reader);

/* Reload the policy directory when it changed; errors are logged and kept
 * for GET /v1/policies. */
int engine_reload_policies(struct engine *e);

enum engine_status engine_registration(struct engine *e, const char *node, const json_t *req,
                                       json_t **resp);
enum engine_status engine_activation(struct engine *e, const char *node, const json_t *req,
                                     json_t **resp);
enum engine_status engine_challenge(struct engine *e, const char *node, json_t **resp);
enum engine_status engine_evidence(struct engine *e, const char *node, const json_t *req,
                                   json_t **resp);

/* Operator side. */
enum engine_status engine_nodes(struct engine *e, json_t **resp);
enum engine_status engine_node(struct engine *e, const char *node, json_t **resp);
enum engine_status engine_node_delete(struct engine *e, const char *node, const char *actor,
                                      json_t **resp);
enum engine_status engine_pods(struct engine *e, const char *state, json_t **resp);
enum engine_status engine_pod(struct engine *e, const char *ns, const char *name, json_t **resp);
enum engine_status engine_pod_reset(struct engine *e, const char *uid, const json_t *req,
                                    const char *actor, json_t **resp);
/* GET /v1/pods/{namespace}/{name}/measurements: the pod's kept (path,
 * digest) pairs, each with the word of the policy that judged the pod. */
enum engine_status engine_pod_measurements(struct engine *e, const char *ns, const char *name,
                                           json_t **resp);
enum engine_status engine_policies(struct engine *e, json_t **resp);
/* GET /v1/audit/head: the audit log's last seq and hash, signed (audit_head). */
enum engine_status engine_audit_head(struct engine *e, json_t **resp);

/* Mark nodes that stopped attesting for 3 intervals stale (their pods read
 * as unknown) and audit it, and judge waiting measurements whose time has
 * come. Returns how many nodes became stale. */
int engine_sweep(struct engine *e, int64_t now_ms);

/* Judge every node's waiting measurements whose pod the inventory knows now
 * (or that waited past the grace period). Called when the inventory
 * changed and by the sweep; without the engine's lock. 0 or a negative
 * errno. */
int engine_resolve_waiting(struct engine *e);

/* After the policies or the inventory changed: each pod whose kept
 * measurements the policy that matches it now did not judge is judged
 * again (a policy that matched only later, a policy that changed), and the
 * records of pods the inventory no longer knows at all are dropped. 0 or a
 * negative errno. */
int engine_rejudge_pods(struct engine *e);

/* The counters for GET /metrics as Prometheus text, NUL-terminated, in
 * *ret_text; the caller frees it with free(). 0 or -ENOMEM. */
int engine_metrics(struct engine *e, char **ret_text);

/* Draining (docs/verifier.md, "Draining"). From engine_drain_start() on,
 * challenges and registrations are answered ENGINE_DRAINING; evidence for
 * nonces issued before, activations and operator reads go on as usual.
 * There is no way back: a draining verifier stops. */
struct engine_drain_counts {
    uint64_t outstanding; /* nonces issued, unused and unexpired */
    uint64_t rounds;      /* evidence rounds judged since the drain began */
};
/* Start draining and audit "drain-start" with the outstanding nonces and
 * `timeout_ms`; *ret their count. 0, or a negative errno when the audit
 * record could not be written (the engine drains all the same). */
int engine_drain_start(struct engine *e, uint64_t timeout_ms, struct engine_drain_counts *ret);
bool engine_draining(const struct engine *e);
/* The nonces issued, unused and unexpired at now_ms (expired ones are
 * forgotten on the way); a walk of the node table under each node's lock. */
uint64_t engine_nonces_outstanding(struct engine *e, int64_t now_ms);
/* Audit "drain-end" with `why` ("done", "timeout" or "signal"), the rounds
 * judged since the drain began and the nonces left unused; *ret both. 0 or
 * a negative errno (the audit record could not be written). */
int engine_drain_end(struct engine *e, const char *why, struct engine_drain_counts *ret);

/* Leader election (verifier/kube-lease.c): the kima_leader gauge of
 * /metrics and an audit record "leader-acquired" or "leader-lost" with
 * {"lease", "holder", "why"}. `why` NULL: only the gauge (shown from then
 * on), no record. Not on a hot path: a change of leader. 0 or a negative
 * errno (the record could not be written; the gauge is set all the
 * same). Call without e->lock. */
int engine_leader_change(struct engine *e, bool leader, const char *lease, const char *holder,
                         const char *why);

/* Enforcement in Kubernetes (verifier/kube-enforce.c, kube-tamper.c): what
 * happened, counted for /metrics (kima_label_tamper_total,
 * kima_evictions_total{result}, kima_node_taints_total{change}). */
enum engine_enforce {
    ENFORCE_TAMPER,          /* a trust label changed by someone else */
    ENFORCE_EVICT_REQUESTED, /* an eviction asked for (each attempt) */
    ENFORCE_EVICT_REFUSED,   /* 429: a PodDisruptionBudget said no (each attempt) */
    ENFORCE_EVICT_DONE,      /* accepted, or the pod was gone */
    ENFORCE_EVICT_FAILED,    /* another answer (each attempt) */
    ENFORCE_TAINT_ADDED,     /* a node tainted */
    ENFORCE_TAINT_REMOVED,   /* its taint removed */
    ENFORCE_COUNT,
};
/* Count `what` and, when type is not NULL, write the audit record `type`
 * for the node and pod (either NULL) with details (borrowed; NULL: {}),
 * synced. 0 or a negative errno (the record could not be written; counted
 * all the same). Call without e->lock. */
int engine_enforce_record(struct engine *e, enum engine_enforce what, const char *type,
                          const char *node, const struct audit_pod *pod, json_t *details);

/* A node name Kubernetes would accept (DNS-1123 subdomain). */
bool engine_valid_node_name(const char *name);

int64_t engine_now_ms(void);

#endif
