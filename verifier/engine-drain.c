/* SPDX-License-Identifier: Apache-2.0 */
/* Draining (docs/verifier.md, "Draining"): a verifier told to stop refuses
 * new challenges and registrations and lets the rounds whose nonces it
 * issued before finish; the service loop (service.c) decides when it
 * stops, this file keeps the engine's side and its two audit records. */
#include "engine-internal.h"

#include <errno.h>

bool engine_draining(const struct engine *e) {
    return __atomic_load_n(&e->draining, __ATOMIC_SEQ_CST);
}

uint64_t engine_nonces_outstanding(struct engine *e, int64_t now_ms) {
    return engine_nodes_live_nonces(e, now_ms);
}

int engine_drain_start(struct engine *e, uint64_t timeout_ms, struct engine_drain_counts *ret) {
    struct engine_drain_counts c = {0};
    json_t *d;
    int r;

    /* Set before the walk: a challenge that saw it unset holds its node's
     * lock until its nonce is in the table, where the walk counts it. */
    __atomic_store_n(&e->draining, true, __ATOMIC_SEQ_CST);
    c.outstanding = engine_nodes_live_nonces(e, engine_now_ms());
    d = json_pack("{s:I,s:I}", "outstanding_nonces", (json_int_t)c.outstanding, "timeout_ms",
                  (json_int_t)timeout_ms);
    pthread_mutex_lock(&e->lock);
    e->drain_rounds0 = e->m.evidence_ok + e->m.evidence_failed;
    r = d ? engine_audit(e, "drain-start", NULL, NULL, d) : -ENOMEM;
    pthread_mutex_unlock(&e->lock);
    json_decref(d);
    *ret = c;
    return r;
}

int engine_drain_end(struct engine *e, const char *why, struct engine_drain_counts *ret) {
    struct engine_drain_counts c = {0};
    json_t *d;
    int r;

    c.outstanding = engine_nodes_live_nonces(e, engine_now_ms());
    pthread_mutex_lock(&e->lock);
    c.rounds = e->m.evidence_ok + e->m.evidence_failed - e->drain_rounds0;
    d = json_pack("{s:s,s:I,s:I}", "why", why, "rounds_finished", (json_int_t)c.rounds,
                  "nonces_unused", (json_int_t)c.outstanding);
    r = d ? engine_audit(e, "drain-end", NULL, NULL, d) : -ENOMEM;
    pthread_mutex_unlock(&e->lock);
    json_decref(d);
    *ret = c;
    return r;
}
