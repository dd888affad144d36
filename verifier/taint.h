/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_TAINT_H
#define KIMA_VERIFIER_TAINT_H

/* The verifier's taint in a node's spec.taints (docs/kubernetes.md,
 * "Taints"): the list to write back, computed from the list the API
 * showed. Pure: no I/O, no lock, so every case is a unit test. The
 * verifier's own taints are those with its key; every other taint is kept
 * as it is, in its order. */

#include <stdbool.h>

#include <jansson.h>

/* Taints one node may carry for the verifier to rewrite its list; a longer
 * list (from the API: untrusted) is refused. */
#define TAINT_LIST_MAX 256
/* A taint's key or effect (a qualified name is at most 317 bytes). */
#define TAINT_FIELD_MAX 317

enum taint_want {
    TAINT_ADD,    /* `key` with NoSchedule (and NoExecute when asked), nothing else */
    TAINT_REMOVE, /* no taint with `key` */
};

/* The node's list `taints` (spec.taints: an array, or NULL when the node
 * has none) with the verifier's taints as `want` says: for TAINT_ADD, the
 * key's NoSchedule taint (and its NoExecute taint when `noexecute`, with
 * timeAdded `now_rfc3339`), its other effects and duplicates dropped; for
 * TAINT_REMOVE, every taint with the key dropped. Returns 1 with the new list
 * in *ret_taints (the caller's, json_decref) when it differs from `taints`,
 * 0 when nothing is to change (*ret_taints NULL), -EBADMSG when `taints` is
 * not an array of objects whose key and effect are strings (or longer than
 * TAINT_FIELD_MAX), -E2BIG when it holds more than TAINT_LIST_MAX, -EINVAL
 * for a bad argument, -ENOMEM. */
int taint_plan(const json_t *taints, const char *key, enum taint_want want, bool noexecute,
               const char *now_rfc3339, json_t **ret_taints);

/* Whether the list holds a taint with `key` (any effect). */
bool taint_present(const json_t *taints, const char *key);

#endif
