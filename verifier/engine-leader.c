/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's side of leader election (verifier/kube-lease.c): the
 * kima_leader gauge and the audit records of a change of leader. */
#include "engine-internal.h"

#include <errno.h>

int engine_leader_change(struct engine *e, bool leader, const char *lease, const char *holder,
                         const char *why) {
    json_t *d = NULL;
    int r = 0;

    if (why) {
        d = json_pack("{s:s,s:s,s:s}", "lease", lease ? lease : "", "holder", holder ? holder : "",
                      "why", why);
        if (!d) {
            return -ENOMEM;
        }
    }
    pthread_mutex_lock(&e->lock);
    e->lease_used = true;
    e->leader = leader;
    if (d) {
        r = engine_audit(e, leader ? "leader-acquired" : "leader-lost", NULL, NULL, d);
    }
    pthread_mutex_unlock(&e->lock);
    json_decref(d);
    return r;
}
