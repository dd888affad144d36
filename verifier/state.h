/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_STATE_H
#define KIMA_VERIFIER_STATE_H

/* Trust states (docs/design.md section 7), as enums inside the verifier
 * and as their names at its edges: the store's TEXT columns, the JSON of
 * the API, labels and the audit log. */

enum node_state {
    NODE_REGISTERED, /* awaiting activation, never attested */
    NODE_ACTIVE,     /* activated, never attested */
    NODE_TRUSTED,    /* its last evidence verified */
    NODE_UNTRUSTED,  /* a node failure: sticky until an operator deletes it */
    NODE_STALE,      /* only as it reads: missed 3 intervals, or not attested since registering */
};

enum pod_state {
    POD_UNKNOWN, /* no verdict yet, or no policy matches */
    POD_TRUSTED,
    POD_UNTRUSTED, /* sticky until the pod is gone or an operator resets it */
};

const char *node_state_name(enum node_state s);
const char *pod_state_name(enum pod_state s);
/* 0, or -EINVAL for a name that is no state. */
int node_state_parse(const char *name, enum node_state *ret);
int pod_state_parse(const char *name, enum pod_state *ret);

#endif
