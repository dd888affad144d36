/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's side of enforcement in Kubernetes (verifier/kube-tamper.c,
 * kube-enforce.c): its counters for /metrics and its audit records. */
#include "engine-internal.h"

#include <errno.h>
#include <inttypes.h>

int engine_enforce_record(struct engine *e, enum engine_enforce what, const char *type,
                          const char *node, const struct audit_pod *pod, json_t *details) {
    uint64_t seq;
    int r = 0;

    if (what < 0 || what >= ENFORCE_COUNT) {
        return -EINVAL;
    }
    pthread_mutex_lock(&e->lock);
    e->m.enforce[what]++;
    pthread_mutex_unlock(&e->lock);
    if (!type || !e->audit) {
        return 0;
    }
    /* Not part of any store transaction: appended and synced on its own
     * (audit_append is thread-safe), without the engine's lock. */
    r = audit_append(e->audit, type, node, pod, details, &seq);
    if (r == 0) {
        r = audit_sync(e->audit, seq);
    }
    return r;
}

/* The counters as Prometheus text, appended to b. Call with e->lock held. */
void engine_enforce_metrics(const struct engine *e, struct kbuf *b) {
    const uint64_t *c = e->m.enforce;

    kbuf_printf(b,
                "# HELP kima_label_tamper_total Trust labels changed by someone other than the "
                "verifier, seen on its pod watch while it wrote labels (each was restored).\n"
                "# TYPE kima_label_tamper_total counter\n"
                "kima_label_tamper_total %" PRIu64 "\n",
                c[ENFORCE_TAMPER]);
    kbuf_printf(b,
                "# HELP kima_evictions_total Evictions of untrusted pods by result: requested "
                "(each attempt), refused (429, a PodDisruptionBudget), done (accepted, or the "
                "pod was gone), failed (another answer).\n"
                "# TYPE kima_evictions_total counter\n"
                "kima_evictions_total{result=\"requested\"} %" PRIu64 "\n"
                "kima_evictions_total{result=\"refused\"} %" PRIu64 "\n"
                "kima_evictions_total{result=\"done\"} %" PRIu64 "\n"
                "kima_evictions_total{result=\"failed\"} %" PRIu64 "\n",
                c[ENFORCE_EVICT_REQUESTED], c[ENFORCE_EVICT_REFUSED], c[ENFORCE_EVICT_DONE],
                c[ENFORCE_EVICT_FAILED]);
    kbuf_printf(b,
                "# HELP kima_node_taints_total The kima.dev/untrusted taint added to or removed "
                "from nodes.\n"
                "# TYPE kima_node_taints_total counter\n"
                "kima_node_taints_total{change=\"added\"} %" PRIu64 "\n"
                "kima_node_taints_total{change=\"removed\"} %" PRIu64 "\n",
                c[ENFORCE_TAINT_ADDED], c[ENFORCE_TAINT_REMOVED]);
}
