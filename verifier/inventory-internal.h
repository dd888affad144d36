/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_INVENTORY_INTERNAL_H
#define KIMA_VERIFIER_INVENTORY_INTERNAL_H

/* What inventory.c (the sources, the API) and inventory-index.c (the pods
 * and their hash tables) share. Nothing here locks: the inventory's lock is
 * held by the caller. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "inventory.h"

#define CONTAINER_ID_MAX 64

/* A pod as kima keeps it: the fields attribution and policy matching use. */
struct inv_pod {
    char uid[64], ns[254], name[254], node[254];
    /* A static pod's config hash (the kubelet's UID for it, in its cgroup),
     * from the mirror pod's annotation when that is honoured, or "". */
    char mirror[64];
    json_t *labels, *images;
    char (*containers)[CONTAINER_ID_MAX + 1];
    size_t ncontainers;
    int64_t gone_ms; /* 0: in the source; else when it was first missing */
};

/* Open addressing with linear probing. A key may be in a table several
 * times (a hash or a container ID claimed by several pods): a lookup scans
 * its run up to the first empty slot. A removed entry becomes a tombstone
 * (TOMB), which lookups step over and insertions reuse, so that a watch
 * event costs O(1); tombstones are swept when the table is rebuilt, which
 * happens only when it is half full (used counts them), so the rebuilds
 * are amortised over at least as many insertions as the table holds. */
struct slot {
    const char *key; /* points into a pod; NULL: empty; TOMB: removed */
    uint32_t pod;
};

struct inv_set {
    struct inv_pod *pods; /* a pod with uid "" is a free entry (removed) */
    size_t n, cap;
    size_t ngone, nfree;
    struct slot *by_uid;    /* API UIDs */
    struct slot *by_mirror; /* static pods' config hashes */
    struct slot *by_container;
    size_t uid_slots, mirror_slots, container_slots;
    size_t uid_used, mirror_used, container_used; /* slots not empty (tombstones too) */
};

void inv_pod_clear(struct inv_pod *p);
void inv_set_free(struct inv_set *s);

/* inventory.c: a PodList item as a pod (1), no pod kima can use (0), or
 * -ENOMEM; a key shaped like a static pod's config hash. */
int inv_pod_from_item(const json_t *item, const char *static_ns, struct inv_pod *p);
bool inv_config_hash_shaped(const char *s);

/* Lookups (see inventory.h for the rules of several claimants). */
struct inv_pod *inv_find(const struct inv_set *s, const struct slot *slots, size_t nslots,
                         const char *key);
struct inv_pod *inv_find_on(const struct inv_set *s, const struct slot *slots, size_t nslots,
                            const char *key, const char *node, bool *ret_ambiguous);
struct inv_pod *inv_find_uid(const struct inv_set *s, const char *key, const char *node,
                             bool *ret_ambiguous);

/* A new set (*ret, the caller's to inv_set_free) from a list's items, with
 * the pods of `old` no longer listed kept as gone. */
int inv_set_build(const json_t *items, const char *static_ns, const struct inv_set *old,
                  int64_t listed_ms, struct inv_set *ret);
/* Insert or update pod p (taken over on success) in O(1) amortised; 0,
 * -E2BIG past INVENTORY_PODS_MAX live pods, -ENOMEM. */
int inv_set_upsert(struct inv_set *s, struct inv_pod *p, int64_t now);
/* Room for one more pod and its keys (compacting and growing the tables
 * when needed: pods move). */
int inv_set_reserve(struct inv_set *s, bool new_pod, size_t mirrors, size_t containers,
                    int64_t now);

#endif
