/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_INVENTORY_H
#define KIMA_VERIFIER_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Where pod identities come from: UID -> namespace, name, node, labels,
 * images, and container ID -> pod. Behind one interface so the Kubernetes
 * API can take the place of the file source. The file source reads a
 * Kubernetes PodList in JSON (`kubectl get pods -A -o json`) and re-reads it
 * when it changes; the API source is fed by kube.c. Lookups never wait for
 * either (what is not there yet is judged later: the engine keeps it
 * waiting) and cost the same whatever the cluster's size: the pods are kept
 * as the few fields kima uses, indexed by UID, by the static pod's config
 * hash (the kubelet's UID for it, which the API's mirror pod carries in the
 * kubernetes.io/config.mirror annotation; believed only in the namespaces
 * inventory_set_static_namespaces() names, and only when shaped like a
 * hash: anyone who may create a pod can set it) and by container ID
 * (containers, init containers and ephemeral containers). A static pod's
 * identity is its config hash, which outlives its mirror pod's UID. A pod that disappears from the
 * source stays known as gone for INVENTORY_GONE_KEEP_MS, so measurements it
 * made before it was deleted are still its own. Thread-safe. */

#define INVENTORY_FILE_MAX     (64u << 20)
#define INVENTORY_PODS_MAX     100000
#define INVENTORY_GONE_MAX     100000           /* gone pods remembered */
#define INVENTORY_GONE_KEEP_MS (15 * 60 * 1000) /* and for how long */
/* Namespaces whose mirror pods are believed (see below), by default. */
#define INVENTORY_STATIC_NS_DEFAULT "kube-system"
#define INVENTORY_STATIC_NS_MAX     1024
/* JSON values in one PodList (~300 a pod as kubectl prints them). */
#define INVENTORY_VALUES_MAX (1u << 25)

struct inventory;

struct pod_info {
    char uid[64];     /* the pod's identity: its API UID, or a static pod's config hash */
    char api_uid[64]; /* metadata.uid (a mirror pod's changes when it is recreated) */
    char ns[254];
    char name[254];
    char node[254];
    bool gone;      /* no longer in the source (deleted) */
    json_t *labels; /* a reference the caller drops with json_decref() */
    json_t *images; /* status.*containerStatuses[].imageID; the same */
};

/* Without a path: an empty inventory (every pod unknown). */
int inventory_open_file(const char *path, struct inventory **ret);
/* An inventory that inventory_replace_items() fills (the Kubernetes API):
 * empty, and never synced, until the first list arrives. */
int inventory_open_api(struct inventory **ret);
void inventory_free(struct inventory *inv);

/* Re-read the file if its modification time or size changed. A file that
 * does not parse leaves the last good inventory in place (and is logged).
 * Returns 1 when the pods changed, 0 when not, or a negative errno. */
int inventory_refresh(struct inventory *inv);

/* Replace the pods with a PodList's items (the Kubernetes API source), as
 * listed at wall-clock time listed_ms (when the request was sent). Pods no
 * longer listed are remembered as gone. */
void inventory_replace_items(struct inventory *inv, json_t *items, int64_t listed_ms);

/* One watch event (the Kubernetes API source), received at wall-clock time
 * event_ms, applied in O(1) (amortised: the index grows by doubling, and
 * removed keys are tombstones swept then):
 *  - upsert: a pod added or modified (ADDED, MODIFIED), replacing what the
 *    inventory had under its UID, gone or not; its container IDs and
 *    mirror hash are indexed anew (a container ID that moved to another pod
 *    is found there). 0; -EBADMSG (no usable metadata.uid), -E2BIG (past
 *    INVENTORY_PODS_MAX live pods), -ENOMEM: the inventory is unchanged.
 *  - delete: the pod is gone (DELETED) since event_ms, kept as gone pods
 *    are (INVENTORY_GONE_KEEP_MS, INVENTORY_GONE_MAX); 1 when it was
 *    live, 0 when the inventory did not have it, -EBADMSG without a UID.
 * Both bump the generation and move synced_ms to event_ms: with a live
 * watch the inventory is complete as of the last event received. */
int inventory_upsert_item(struct inventory *inv, const json_t *item, int64_t event_ms);
int inventory_delete_item(struct inventory *inv, const json_t *item, int64_t event_ms);
/* Complete as of as_of_ms without a change (a watch's BOOKMARK). */
void inventory_mark_synced(struct inventory *inv, int64_t as_of_ms);

/* After a whole PodList was read and dropped (the file's, or a LIST's
 * pages): give the memory its JSON took back to the system. glibc keeps
 * freed memory for later otherwise, and a 40,000-pod list parsed once would
 * stay in the verifier's resident size (about 5 KB a pod). */
void inventory_release_memory(void);

/* Wall-clock time (ms) as of which the inventory is known to be complete:
 * the start of the last successful list, the last watch event or bookmark
 * received (never moved back), or the file's modification time.
 * 0: never. A pod missing from an inventory synced well after a
 * measurement of it was not in the cluster then (or was deleted before
 * anything listed it). */
int64_t inventory_synced_ms(struct inventory *inv);

/* Bumped whenever the pods change (for callers that re-judge on change). */
uint64_t inventory_generation(struct inventory *inv);

/* Called (outside the inventory's lock) when a lookup misses: the
 * Kubernetes source notes it (a watch delivers new pods; the engine judges
 * what waited when they arrive). It must not block: the
 * caller holds the engine's lock. NULL fn removes it. */
void inventory_set_miss_handler(struct inventory *inv, void (*fn)(void *ud), void *ud);

/* The namespaces (comma-separated) whose mirror pods are believed; by
 * default INVENTORY_STATIC_NS_DEFAULT. Takes effect at the next refresh
 * (the file is read again) or list. 0, or -EINVAL when the list is not
 * namespace names (inventory_static_namespaces_valid). */
int inventory_set_static_namespaces(struct inventory *inv, const char *list);
bool inventory_static_namespaces_valid(const char *list);

/* A PodList item's identity as lookups return it in pod_info.uid. */
void inventory_item_identity(struct inventory *inv, const json_t *item, char *ret, size_t retsz);

/* By API UID, or by a static pod's config hash (a believed mirror pod's,
 * consulted only when no API UID matches); by container ID (the 64 hex
 * digits, without the runtime prefix). A hash or a container ID may be
 * claimed by several pods (both are written by kubelets, and a container
 * ID by whoever may write a pod's status): a pod on `node` (the reporting
 * node) is preferred, live before gone; else a pod elsewhere, if those
 * elsewhere are all on one node; else -EEXIST (ambiguous). NULL node: the
 * first live pod, else the first gone. 0, -ENOENT or -EEXIST. */
int inventory_lookup_uid(struct inventory *inv, const char *uid, const char *node,
                         struct pod_info *ret);
/* The same without telling the miss handler (a re-check, not a miss). */
int inventory_peek_uid(struct inventory *inv, const char *uid, const char *node,
                       struct pod_info *ret);
int inventory_lookup_container(struct inventory *inv, const char *container_id, const char *node,
                               struct pod_info *ret);

#endif
