/* SPDX-License-Identifier: Apache-2.0 */
/* The inventory's pods and their indexes: open-addressing tables by API
 * UID, static pod config hash and container ID, built from a list or
 * updated by one watch event at a time. */
#include "inventory-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"
#include "macro.h"

/* A removed slot (see struct slot). */
static const char tomb_key[1];
#define TOMB tomb_key

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h;
}

void inv_pod_clear(struct inv_pod *p) {
    json_decref(p->labels);
    json_decref(p->images);
    free(p->containers);
    memset(p, 0, sizeof(*p));
}

void inv_set_free(struct inv_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        inv_pod_clear(&s->pods[i]);
    }
    free(s->pods);
    free(s->by_uid);
    free(s->by_mirror);
    free(s->by_container);
    memset(s, 0, sizeof(*s));
}

/* 1 when an empty slot was taken, 0 when a tombstone was reused. */
static int slot_put(struct slot *slots, size_t nslots, const char *key, uint32_t pod) {
    for (size_t i = hash_str(key) & (nslots - 1);; i = (i + 1) & (nslots - 1)) {
        if (!slots[i].key || slots[i].key == TOMB) {
            int fresh = !slots[i].key;
            slots[i] = (struct slot){key, pod};
            return fresh;
        }
    }
}

/* Remove pod's entries for key (it may have put one several times). */
static void slot_del(struct slot *slots, size_t nslots, const char *key, uint32_t pod) {
    for (size_t i = hash_str(key) & (nslots - 1); slots[i].key; i = (i + 1) & (nslots - 1)) {
        if (slots[i].key != TOMB && slots[i].pod == pod && strcmp(slots[i].key, key) == 0) {
            slots[i].key = TOMB;
        }
    }
}

static size_t slots_for(size_t keys) {
    size_t n = 16;
    while (n < 2 * keys) {
        n *= 2;
    }
    return n;
}

struct tables {
    struct slot *uid, *mirror, *container;
    size_t nu, nm, nc;
};

static void tables_free(struct tables *t) {
    free(t->uid);
    free(t->mirror);
    free(t->container);
}

/* Tables for the set's pods plus `extra_*` more keys, with `factor` times
 * the room a rebuild from scratch needs (2: growth, so that the next
 * rebuild comes only after as many insertions again). */
static int tables_alloc(const struct inv_set *s, size_t factor, size_t extra_mirrors,
                        size_t extra_containers, struct tables *ret) {
    size_t mirrors = extra_mirrors, containers = extra_containers;

    for (size_t i = 0; i < s->n; i++) {
        mirrors += s->pods[i].mirror[0] != 0;
        containers += s->pods[i].ncontainers;
    }
    ret->nu = slots_for(factor * (s->n + 1));
    ret->nm = slots_for(factor * mirrors);
    ret->nc = slots_for(factor * containers);
    ret->uid = calloc(ret->nu, sizeof(*ret->uid));
    ret->mirror = calloc(ret->nm, sizeof(*ret->mirror));
    ret->container = calloc(ret->nc, sizeof(*ret->container));
    if (!ret->uid || !ret->mirror || !ret->container) {
        tables_free(ret);
        return -ENOMEM;
    }
    return 0;
}

static void pod_index(struct inv_set *s, size_t i) {
    struct inv_pod *p = &s->pods[i];

    s->uid_used += slot_put(s->by_uid, s->uid_slots, p->uid, (uint32_t)i);
    if (p->mirror[0]) {
        s->mirror_used += slot_put(s->by_mirror, s->mirror_slots, p->mirror, (uint32_t)i);
    }
    for (size_t k = 0; k < p->ncontainers; k++) {
        s->container_used +=
                slot_put(s->by_container, s->container_slots, p->containers[k], (uint32_t)i);
    }
}

/* Take the tables t (the set's old ones are freed) and index every pod in
 * them. Live pods are indexed before gone ones, so a key that is both (a
 * recreated static pod's hash) finds the live one first. */
static void tables_fill(struct inv_set *s, struct tables *t) {
    free(s->by_uid);
    free(s->by_mirror);
    free(s->by_container);
    s->by_uid = t->uid;
    s->by_mirror = t->mirror;
    s->by_container = t->container;
    s->uid_slots = t->nu;
    s->mirror_slots = t->nm;
    s->container_slots = t->nc;
    s->uid_used = s->mirror_used = s->container_used = 0;
    s->ngone = s->nfree = 0;
    for (int gone = 0; gone < 2; gone++) {
        for (size_t i = 0; i < s->n; i++) {
            struct inv_pod *p = &s->pods[i];
            if (!p->uid[0]) {
                s->nfree += gone;
                continue;
            }
            if ((p->gone_ms != 0) != gone) {
                continue;
            }
            s->ngone += (size_t)gone;
            pod_index(s, i);
        }
    }
}

/* Index the set anew, with `factor` times the room it needs (2: room for
 * as many watch events again before the tables grow). */
static int set_index(struct inv_set *s, size_t factor) {
    struct tables t;
    int r = tables_alloc(s, factor, 0, 0, &t);

    if (r == 0) {
        tables_fill(s, &t);
    }
    return r;
}

struct inv_pod *inv_find(const struct inv_set *s, const struct slot *slots, size_t nslots,
                         const char *key) {
    if (!slots) {
        return NULL;
    }
    for (size_t i = hash_str(key) & (nslots - 1); slots[i].key; i = (i + 1) & (nslots - 1)) {
        if (slots[i].key != TOMB && strcmp(slots[i].key, key) == 0) {
            return &s->pods[slots[i].pod];
        }
    }
    return NULL;
}

/* The pod `key` names in `slots`. Several pods may claim a static pod's
 * hash or a container ID (fields a kubelet or a tenant writes; API UIDs
 * are the API server's own and unique): the first that is live on `node`
 * wins, then one gone from `node`, then one elsewhere, live before gone,
 * as long as all those elsewhere are on one node; candidates on two or more
 * other nodes and none on `node` make the key ambiguous (*ret_ambiguous,
 * NULL returned). Without a node the first live pod wins, else the first
 * gone one. */
struct inv_pod *inv_find_on(const struct inv_set *s, const struct slot *slots, size_t nslots,
                            const char *key, const char *node, bool *ret_ambiguous) {
    struct inv_pod *here_gone = NULL, *away[2] = {NULL, NULL};
    bool spread = false;

    *ret_ambiguous = false;
    if (!slots) {
        return NULL;
    }
    for (size_t i = hash_str(key) & (nslots - 1); slots[i].key; i = (i + 1) & (nslots - 1)) {
        struct inv_pod *p = &s->pods[slots[i].pod];
        int gone = p->gone_ms != 0;
        if (slots[i].key == TOMB || strcmp(slots[i].key, key) != 0) {
            continue;
        }
        if (node && strcmp(p->node, node) == 0) {
            if (!gone) {
                return p;
            }
            here_gone = here_gone ? here_gone : p;
            continue;
        }
        if (!away[gone]) {
            away[gone] = p;
        }
        spread |= (away[0] && strcmp(away[0]->node, p->node) != 0) ||
                  (away[1] && strcmp(away[1]->node, p->node) != 0);
    }
    if (here_gone) {
        return here_gone;
    }
    if (node && spread) {
        *ret_ambiguous = true;
        return NULL;
    }
    return away[0] ? away[0] : away[1];
}

/* By API UID, or (a key shaped like one) by a static pod's config hash. */
struct inv_pod *inv_find_uid(const struct inv_set *s, const char *key, const char *node,
                             bool *ret_ambiguous) {
    struct inv_pod *p = inv_find(s, s->by_uid, s->uid_slots, key);

    *ret_ambiguous = false;
    if (!p && inv_config_hash_shaped(key)) {
        p = inv_find_on(s, s->by_mirror, s->mirror_slots, key, node, ret_ambiguous);
    }
    return p;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The gone_ms below which gone pods are dropped to keep at most
 * INVENTORY_GONE_MAX (the newest); INT64_MIN when there are not more. */
static int64_t gone_cutoff(const struct inv_set *s, size_t *ret_at_cutoff) {
    _cleanup_free_ int64_t *v = NULL;
    size_t n = 0, keep = 0;

    *ret_at_cutoff = SIZE_MAX;
    if (s->ngone <= INVENTORY_GONE_MAX || !(v = malloc(s->ngone * sizeof(*v)))) {
        return INT64_MIN; /* without memory the bound waits for the next time */
    }
    for (size_t i = 0; i < s->n && n < s->ngone; i++) {
        if (s->pods[i].uid[0] && s->pods[i].gone_ms) {
            v[n++] = s->pods[i].gone_ms;
        }
    }
    qsort(v, n, sizeof(*v), cmp_desc);
    /* Those newer than the cutoff are kept, and as many at it as fit. */
    for (size_t i = 0; i < INVENTORY_GONE_MAX; i++) {
        keep += v[i] == v[INVENTORY_GONE_MAX - 1];
    }
    *ret_at_cutoff = keep;
    return v[INVENTORY_GONE_MAX - 1];
}

/* Drop free entries, pods gone longer than INVENTORY_GONE_KEEP_MS before
 * now, and the oldest gone pods past INVENTORY_GONE_MAX; the pods move, so
 * the caller indexes the set again (s->ngone must be right on entry). */
static void set_compact(struct inv_set *s, int64_t now) {
    size_t at_cutoff, w = 0;
    int64_t cutoff = gone_cutoff(s, &at_cutoff);

    for (size_t i = 0; i < s->n; i++) {
        struct inv_pod *p = &s->pods[i];
        bool drop = !p->uid[0];
        if (!drop && p->gone_ms) {
            drop = now - p->gone_ms > INVENTORY_GONE_KEEP_MS || p->gone_ms < cutoff ||
                   (p->gone_ms == cutoff && at_cutoff == 0);
            at_cutoff -= !drop && p->gone_ms == cutoff;
        }
        if (drop) {
            inv_pod_clear(p);
            continue;
        }
        if (w != i) {
            s->pods[w] = *p;
            memset(p, 0, sizeof(*p));
        }
        w++;
    }
    s->n = w;
}

/* A copy of pod o, gone since `since`, at the end of s (which has room). */
static int copy_gone(struct inv_set *s, const struct inv_pod *o, int64_t since) {
    struct inv_pod *p = &s->pods[s->n];

    *p = *o;
    p->gone_ms = since ? since : 1;
    p->labels = json_incref(o->labels);
    p->images = json_incref(o->images);
    p->containers = o->ncontainers ? malloc(o->ncontainers * sizeof(*o->containers)) : NULL;
    if (o->ncontainers && !p->containers) {
        memset(p, 0, sizeof(*p));
        return -ENOMEM;
    }
    if (o->ncontainers) {
        memcpy(p->containers, o->containers, o->ncontainers * sizeof(*o->containers));
    }
    s->n++;
    s->ngone++;
    return 0;
}

/* A new set from the items, with the pods of `old` that are no longer
 * listed kept as gone (since listed_ms) for INVENTORY_GONE_KEEP_MS, the
 * newest INVENTORY_GONE_MAX of them. */
int inv_set_build(const json_t *items, const char *static_ns, const struct inv_set *old,
                  int64_t listed_ms, struct inv_set *ret) {
    struct inv_set s = {0};
    size_t cap = json_array_size(items) + old->n, i;
    json_t *item;
    int r = 0;

    /* Room for the watch events after the list (calloc: pages untouched
     * until used), so that the first ones do not grow the array at once. */
    cap += cap / 2 + 16;
    s.pods = calloc(cap, sizeof(*s.pods));
    if (!s.pods) {
        return -ENOMEM;
    }
    s.cap = cap;
    json_array_foreach(items, i, item) {
        r = inv_pod_from_item(item, static_ns, &s.pods[s.n]);
        if (r < 0) {
            goto fail;
        }
        s.n += (size_t)r;
    }
    r = set_index(&s, 1);
    for (size_t k = 0; r == 0 && k < old->n; k++) {
        const struct inv_pod *o = &old->pods[k];
        int64_t since = o->gone_ms ? o->gone_ms : listed_ms;
        /* Listed still, or a static pod whose mirror pod was recreated: not
         * gone. */
        if (!o->uid[0] || inv_find(&s, s.by_uid, s.uid_slots, o->uid) ||
            (o->mirror[0] && inv_find(&s, s.by_mirror, s.mirror_slots, o->mirror)) ||
            listed_ms - since > INVENTORY_GONE_KEEP_MS) {
            continue;
        }
        r = copy_gone(&s, o, since);
    }
    if (r == 0) {
        set_compact(&s, listed_ms);
        r = set_index(&s, 2);
    }
    if (r == 0) {
        *ret = s;
        return 0;
    }
fail:
    inv_set_free(&s);
    return r;
}

/* Make room for one more pod (when `new_pod`) with `mirrors` and
 * `containers` keys: compact and index again, with twice the room, when a
 * table would be more than half full or the array is full. The pods move
 * then: the caller finds its pod again. */
int inv_set_reserve(struct inv_set *s, bool new_pod, size_t mirrors, size_t containers,
                    int64_t now) {
    struct tables t;
    int r;

    if (!(new_pod && s->n == s->cap) && s->by_uid && 2 * (s->uid_used + 1) <= s->uid_slots &&
        2 * (s->mirror_used + mirrors) <= s->mirror_slots &&
        2 * (s->container_used + containers) <= s->container_slots &&
        s->ngone <= INVENTORY_GONE_MAX + INVENTORY_GONE_MAX / 4) {
        return 0;
    }
    r = tables_alloc(s, 2, mirrors, containers, &t);
    if (r < 0) {
        return r;
    }
    set_compact(s, now);
    if (s->n + 1 > s->cap / 2) {
        size_t ncap = 2 * (s->n + 1) < 16 ? 16 : 2 * (s->n + 1);
        struct inv_pod *np = realloc(s->pods, ncap * sizeof(*np));
        if (np) {
            /* Not cleared: entries from n on are written whole before use. */
            s->pods = np;
            s->cap = ncap;
        }
    }
    tables_fill(s, &t);
    return new_pod && s->n == s->cap ? -ENOMEM : 0;
}

/* Take pod i out of the tables (all its keys, or all but its UID). */
static void pod_unindex(struct inv_set *s, size_t i, bool uid_too) {
    struct inv_pod *p = &s->pods[i];

    if (uid_too) {
        slot_del(s->by_uid, s->uid_slots, p->uid, (uint32_t)i);
    }
    if (p->mirror[0]) {
        slot_del(s->by_mirror, s->mirror_slots, p->mirror, (uint32_t)i);
    }
    for (size_t k = 0; k < p->ncontainers; k++) {
        slot_del(s->by_container, s->container_slots, p->containers[k], (uint32_t)i);
    }
}

/* A static pod whose mirror pod is back under another UID is not gone:
 * forget the gone mirror pods that carry its hash (as a list would). */
static void forget_gone_mirrors(struct inv_set *s, const char *hash, size_t keep) {
    for (size_t i = hash_str(hash) & (s->mirror_slots - 1); s->by_mirror[i].key;
         i = (i + 1) & (s->mirror_slots - 1)) {
        size_t pi = s->by_mirror[i].pod;
        if (s->by_mirror[i].key == TOMB || pi == keep || !s->pods[pi].gone_ms ||
            strcmp(s->by_mirror[i].key, hash) != 0) {
            continue;
        }
        pod_unindex(s, pi, true);
        inv_pod_clear(&s->pods[pi]); /* uid "": a free entry until the next compaction */
        s->ngone--;
        s->nfree++;
    }
}

/* Insert or update pod p (taken over) in place. */
int inv_set_upsert(struct inv_set *s, struct inv_pod *p, int64_t now) {
    struct inv_pod *old = inv_find(s, s->by_uid, s->uid_slots, p->uid);
    size_t i;
    int r;

    if (!old && s->n - s->ngone - s->nfree >= INVENTORY_PODS_MAX) {
        return -E2BIG;
    }
    r = inv_set_reserve(s, !old, p->mirror[0] != 0, p->ncontainers, now);
    if (r < 0) {
        return r;
    }
    old = inv_find(s, s->by_uid, s->uid_slots, p->uid); /* it may have moved */
    if (old) {
        i = (size_t)(old - s->pods);
        pod_unindex(s, i, false);
        s->ngone -= old->gone_ms != 0;
        inv_pod_clear(old);
        *old = *p; /* the UID's slot points into *old: the same UID */
    } else {
        i = s->n++;
        s->pods[i] = *p;
        s->uid_used += slot_put(s->by_uid, s->uid_slots, s->pods[i].uid, (uint32_t)i);
    }
    if (s->pods[i].mirror[0]) {
        forget_gone_mirrors(s, s->pods[i].mirror, i);
        s->mirror_used += slot_put(s->by_mirror, s->mirror_slots, s->pods[i].mirror, (uint32_t)i);
    }
    for (size_t k = 0; k < s->pods[i].ncontainers; k++) {
        s->container_used += slot_put(s->by_container, s->container_slots, s->pods[i].containers[k],
                                      (uint32_t)i);
    }
    return 0;
}
