/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_KUBE_H
#define KIMA_VERIFIER_KUBE_H

#include <stdint.h>

#include "engine.h"
#include "inventory.h"
#include "kube-config.h"

/* The verifier's side of the Kubernetes API (docs/design.md section 10), on its
 * own thread so that an API outage never blocks attestation:
 *  - the pod inventory: every pod listed (GET /api/v1/pods) at least every
 *    refresh_ms, and again at once when the engine meets a pod UID it does
 *    not know (at most once a second); the list replaces the inventory's;
 *  - labels: each pod's effective state (engine_pods) is compared with the
 *    labels the API last showed; a difference is written by JSON merge patch
 *    (label <prefix>/trust, annotations <prefix>/reason and
 *    <prefix>/attested-at); 409, 429 and 5xx are retried with exponential
 *    backoff (0.5-30 s); nothing is written when nothing changed;
 *  - an Event (type Warning, reason IntegrityViolation) on the pod for each
 *    change to untrusted.
 * The audit log stays the record of truth; labels catch up after an outage. */

struct kube;

struct kube_options {
    const char *label_prefix; /* "kima.dev" */
    int64_t refresh_ms;       /* 10000 */
    int64_t tick_ms;          /* 1000: how often labels are reconciled */
};

int kube_new(const struct kube_config *cfg, const struct kube_options *opt, struct engine *e,
             struct inventory *inv, struct kube **ret);
/* Start the thread. */
int kube_start(struct kube *k);
/* Wake the thread now (a verdict changed, or an unknown UID was seen). */
void kube_kick(struct kube *k, bool relist);
void kube_free(struct kube *k);

/* Counters for /metrics and the tests' logs. */
struct kube_stats {
    uint64_t lists, list_errors, patches, patch_errors, events;
};
void kube_stats(struct kube *k, struct kube_stats *ret);

#endif
