/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_KUBE_H
#define KIMA_VERIFIER_KUBE_H

#include <stdint.h>

#include "engine.h"
#include "inventory.h"
#include "kube-config.h"

/* The verifier's side of the Kubernetes API (docs/design.md section 10), on
 * two threads of its own so that an API outage never blocks attestation, and
 * never called under the engine's lock:
 *  - the pod inventory, as client-go's informers keep it (the syncer
 *    thread): every pod listed (GET /api/v1/pods, pages of 500 with
 *    continue; an expired continue token starts the list again), the list
 *    replacing the inventory's; then a watch from the list's
 *    resourceVersion (newline-delimited JSON events, bookmarks,
 *    timeoutSeconds up to 5 minutes): ADDED and MODIFIED update a pod,
 *    DELETED marks it gone, BOOKMARK moves the resourceVersion; a watch
 *    that ends is resumed from the last good resourceVersion; 410 Gone (an
 *    ERROR event or the HTTP status) lists again; a malformed event (not
 *    JSON, a line over 4 MiB, no UID or resourceVersion, an unknown type)
 *    ends the watch with the reason logged and resumes it; no answer backs
 *    off (0.5-30 s). The whole list again every refresh_ms (the safety
 *    resync, 5 minutes by default). A pod the engine does not know yet
 *    costs nothing here: its measurements wait in the engine and are
 *    judged (by the label thread) once events change the inventory;
 *  - labels: each pod's effective state (engine_pods) is compared with the
 *    labels the API last showed; a difference is written by JSON merge patch
 *    (label <prefix>/trust, annotations <prefix>/reason and
 *    <prefix>/attested-at); 409, 429 and 5xx are retried with exponential
 *    backoff (0.5-30 s); nothing is written when nothing changed;
 *  - an Event (type Warning, reason IntegrityViolation) on the pod for each
 *    change to untrusted;
 *  - a trust label the watch shows changed by someone else (not what this
 *    verifier wrote or found right, not its verdict) is restored at once,
 *    audited ("label-tampered"), counted (kima_label_tamper_total) and told
 *    by an Event (TrustLabelTampered), at most once a minute a pod
 *    (kube-tamper.c);
 *  - with opt->evict_untrusted and opt->taint_nodes, evictions of untrusted
 *    pods and the taint of untrusted nodes (kube-enforce.c);
 *  - with opt->lease, leader election (kube-lease.h, its own thread): labels
 *    and Events are written by the Lease's holder only, the others keep the
 *    inventory and write nothing.
 * The audit log stays the record of truth; labels catch up after an outage. */

struct kube;

#define KUBE_RESYNC_MS_DEFAULT (5 * 60 * 1000)

struct kube_options {
    const char *label_prefix; /* "kima.dev" */
    int64_t refresh_ms;       /* KUBE_RESYNC_MS_DEFAULT: the full re-list's period */
    int64_t tick_ms;          /* 1000: how often labels are reconciled */
    /* A Lease's name: only its holder writes labels and Events (kube-lease.h);
     * NULL or "": no election, this verifier writes. */
    const char *lease;
    /* Enforcement (docs/kubernetes.md, "Enforcement"), off by default:
     * evict untrusted pods through the Eviction API (kube-enforce.c); taint
     * untrusted nodes <prefix>/untrusted:NoSchedule (and NoExecute). */
    bool evict_untrusted, taint_nodes, taint_noexecute;
};

int kube_new(const struct kube_config *cfg, const struct kube_options *opt, struct engine *e,
             struct inventory *inv, struct kube **ret);
/* Start the thread. */
int kube_start(struct kube *k);
/* Wake the label thread now (a verdict changed). relist is ignored (the
 * watch brings new pods; kept for callers). */
void kube_kick(struct kube *k, bool relist);
/* Stop writing labels and Events for good and release the Lease when this
 * verifier holds it (another takes over at once): the drain and the stop.
 * Waits for a write in flight. Nothing without a Lease. */
void kube_resign(struct kube *k);
void kube_free(struct kube *k);

/* A TokenReview for agent-auth.c (its agent_auth_review_fn; ud is the
 * struct kube): POST /apis/authentication.k8s.io/v1/tokenreviews with the
 * verifier's credentials, within AGENT_AUTH_REVIEW_TIMEOUT_MS, an answer of
 * at most AGENT_AUTH_ANSWER_MAX bytes. The HTTP status with the answer in
 * *ret (the caller's to json_decref; NULL when not JSON), or a negative
 * errno when none came. Any thread. */
int kube_token_review(void *ud, const json_t *body, json_t **ret);

/* Counters for /metrics and the tests' logs. */
struct kube_stats {
    uint64_t lists, list_errors, patches, patch_errors, events;
    uint64_t watches, watch_events, watch_errors; /* watch requests, events applied, failed */
};
void kube_stats(struct kube *k, struct kube_stats *ret);

#endif
