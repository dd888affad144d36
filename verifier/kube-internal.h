/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_KUBE_INTERNAL_H
#define KIMA_VERIFIER_KUBE_INTERNAL_H

/* What kube.c (the labels, the threads) and kube-sync.c (the inventory
 * from a LIST and a watch) share. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "kube.h"

#define KUBE_RESPONSE_MAX (256u << 20) /* a PodList of a big cluster */
#define KUBE_VALUES_MAX   (1u << 25)   /* as many as INVENTORY_VALUES_MAX */
#define KUBE_TIMEOUT_MS   10000
#define KUBE_RV_MAX       128 /* a resourceVersion's length */
#define RESOLVE_GAP_MS    200 /* waiting measurements judged after events, this often */
/* Label passes a kick starts (a verdict changed, a label tampered with),
 * at most this often: a burst of kicks is one pass, not one each. */
#define KUBE_KICK_GAP_MS     100
#define BACKOFF_MIN_MS       500
#define BACKOFF_MAX_MS       30000
#define REASON_MAX           1000
#define TOKEN_REREAD_MS      60000 /* the token file read again this often (the kubelet rotates it) */
#define TOKEN_RETRY_MS       1000            /* and after a 401, at most this often */
#define EVICT_PER_PASS       16              /* eviction requests one label pass sends, at most */
#define TAINT_NODES_PER_PASS 16              /* nodes one label pass reads and taints, at most */
#define TAINT_RECHECK_MS     (5 * 60 * 1000) /* each node's taint read again this often */
#define UNTRACKED_REASON \
    "the verifier does not track this pod (its node was deleted or never attested)"

struct kube {
    struct kube_config cfg;
    char prefix[128];
    int64_t refresh_ms, tick_ms;
    struct engine *e;
    struct inventory *inv;

    pthread_t thread, syncer;
    bool started, syncer_started;
    bool stop; /* written under lock with __atomic stores; read anywhere */
    /* The syncer's own (no lock): the resourceVersion the inventory is
     * complete as of, and when the last full LIST was (monotonic). */
    char rv[KUBE_RV_MAX + 1];
    int64_t last_list_ms, sync_backoff_ms;
    pthread_mutex_t lock; /* the fields below */
    pthread_cond_t cond;
    bool kicked, resolve; /* resolve: the inventory changed, judge what waits */
    int64_t last_resolve_ms, last_reconcile_ms;
    /* identity (UID, or a static pod's config hash) -> {"ns","name","uid","trust",
     * "reason","event"}: what the API shows */
    json_t *applied;
    /* Enforcement (kube.h's options); `taints` is the label thread's own
     * (no lock): node name -> {"tainted": bool, "next_ms", "backoff_ms"}. */
    bool evict, taint, taint_noexecute;
    json_t *taints;
    int64_t taints_read_ms; /* when `taints` was last emptied (every TAINT_RECHECK_MS) */
    int64_t backoff_until_ms, backoff_ms;
    struct kube_stats stats;
    char host[256];
    char ua[300]; /* the User-Agent: kima-verifier/HOLDER */
    /* Leader election (kube-lease.c); lease[0] == 0: none, this verifier
     * writes labels and Events. */
    char lease[254], lease_ns[254];
    char lease_path[700], leases_path[400]; /* the object, its collection */
    pthread_t leaser;
    bool leaser_started;
    pthread_mutex_t lease_op; /* one Lease operation at a time: the thread's or the release */
    /* The bearer token (cfg.token) as it is read again (kube.c bearer()):
     * when it was last read (monotonic), and whether a 401 came since. */
    pthread_mutex_t token_lock;
    int64_t token_read_ms;
    bool token_refused;
    pthread_mutex_t wlock; /* held around each label or Event write (the release waits) */
    bool leader, resigned; /* k->lock */
    int64_t renewed_ms;    /* k->lock: when the last successful renewal began (monotonic) */
    /* lease_op's: the resourceVersion last seen and when it was first seen
     * (monotonic), the last complaint logged and when. */
    char lease_rv[129];
    int64_t lease_seen_ms, complained_ms;
    char complaint[300];
};

/* The verifier is stopping (any thread). */
bool kube_stopping(struct kube *k);
/* A handle for one request to the API server, with its TLS and
 * authentication; the header list (*ret_h) is the caller's to free after
 * the transfer (curl_slist_free_all), the handle too (curl_easy_cleanup).
 * NULL when out of memory. */
/* The API answered 401: the token's file is read again before the next
 * request (at most every TOKEN_RETRY_MS). */
void kube_token_refused(struct kube *k);
CURL *kube_api_handle(struct kube *k, const char *method, const char *path, const char *ctype,
                      struct curl_slist **ret_h);
/* One request. Returns the HTTP status (the answer parsed into *ret, the
 * caller's to json_decref, when it is JSON), or a negative errno when no
 * answer came. */
int kube_request(struct kube *k, const char *method, const char *path, const char *ctype,
                 const json_t *body, long timeout_ms, json_t **ret);
/* The same with an answer of at most max_bytes (longer: -EIO). */
int kube_request_capped(struct kube *k, const char *method, const char *path, const char *ctype,
                        const json_t *body, long timeout_ms, size_t max_bytes, json_t **ret);
/* A label or Event write: made only while this verifier may write (no
 * Lease, or it holds it), with a timeout that ends before its Lease could
 * expire, under k->wlock. Returns as kube_request, or -EPERM (nothing sent)
 * when this verifier may not write. */
int kube_write(struct kube *k, const char *method, const char *path, const char *ctype,
               const json_t *body, json_t **ret);
/* How long a write may take now (ms): KUBE_TIMEOUT_MS without a Lease, 0
 * when this verifier does not hold it or its deadline passed. */
int64_t kube_write_budget_ms(struct kube *k);
const char *kube_api_reason(const json_t *j);
const char *kube_str_or_empty(const json_t *v);
void kube_applied_key(const char *id, const char *node, char *out, size_t outsz);
const char *kube_meta_str(const json_t *item, const char *a, const char *b);
bool kube_k8s_name(const char *s);
/* Whether the label thread reconciles at now_ms, the last pass at last_ms:
 * every tick_ms, and on a kick once KUBE_KICK_GAP_MS passed since the last
 * pass. When not, *ret_wait_ms is how long until it is (pure). */
bool kube_labels_due(bool kicked, int64_t now_ms, int64_t last_ms, int64_t tick_ms,
                     int64_t *ret_wait_ms);
/* Whether a label patch's answer stops the pass and backs off for every
 * pod (the API or the verifier's rights are in trouble): not a 409, which
 * says this pod's name holds another pod now (its UID precondition; anyone
 * who may delete and create pods can provoke one): only that pod waits, for
 * the next pass or the watch's news. */
bool kube_patch_backs_off(int status);
/* Wait on k->cond (k->lock held) at most ms. */
void kube_wait_locked(struct kube *k, int64_t ms);

/* An Event (type Warning) on the pod: 0, -EPERM when this verifier may not
 * write, -EIO (logged) when the API refused it. */
int kube_post_event(struct kube *k, const char *uid, const char *ns, const char *name,
                    const char *reason, const char *message);
/* "YYYY-MM-DDTHH:MM:SSZ" of wall_ms into out (at least 21 bytes). */
void kube_iso_time(int64_t wall_ms, char *out, size_t outsz);
/* Whether this verifier writes now: no Lease, or it holds it (k->lock
 * held). */
bool kube_writer_locked(struct kube *k);

/* kube-tamper.c. The applied map's entries carry the verifier's own state
 * of a pod in "own" (what it wrote or found right, a tamper seen, an
 * eviction's progress); the syncer keeps it when the API shows the pod
 * again. kube_tamper_follow_locked: under k->lock, entry `a` (the pod
 * `obj` as the API shows it now) replaces `old` (NULL: a pod new to the
 * map): "own" and a pending Event are kept, and a trust label changed by
 * someone else is marked for the label thread. Returns true when the label
 * thread should run at once (it is kicked by the caller). */
/* An applied entry's "own" object (borrowed), made when missing (k->lock). */
json_t *kube_own(json_t *a);
bool kube_tamper_follow_locked(struct kube *k, const json_t *old, json_t *a, const json_t *obj);
/* The label thread, for a pod whose verdict is `state`: a tamper the syncer
 * marked, taken when the label it saw is not the verdict (the caller's to
 * json_decref, after kube_tamper_report), else NULL. Without k->lock. */
json_t *kube_tamper_take(struct kube *k, const char *pkey, const char *state);
/* Count it, and audit it and post an Event unless this pod's last record is
 * younger than a minute (then it is counted in the next). Without k->lock. */
void kube_tamper_report(struct kube *k, const char *pkey, json_t *t, const char *state);
/* The label thread: the label of pkey shows the verdict `state`, written
 * or found so: what a tamper is judged against (k->lock held). */
void kube_tamper_vouch_locked(struct kube *k, json_t *a, const char *state);

/* kube-enforce.c: evict the untrusted pod pkey (k->evict), at most once,
 * retried on 429 with a backoff of its own; 1 when a request was sent, 0
 * when none was due. Without k->lock. */
int kube_evict(struct kube *k, const char *pkey);
/* Taint untrusted nodes and untaint trusted ones (k->taint), at most
 * TAINT_NODES_PER_PASS API writes a pass. Without k->lock. */
void kube_taint_pass(struct kube *k);

/* kube-sync.c: list every pod into the inventory (0 or a negative errno,
 * logged), and the syncer thread (LIST, WATCH). */
int kube_list_pods(struct kube *k);
void *kube_sync_run(void *ud);

/* kube-lease.c: set up the election from opt->lease (0, or -EINVAL with
 * the reason logged: a bad name, holder or namespace), the thread that
 * takes and renews the Lease, and the release (the caller holds no lock). */
int kube_lease_setup(struct kube *k, const char *lease);
void *kube_lease_run(void *ud);
void kube_lease_release(struct kube *k);

#endif
