/* SPDX-License-Identifier: Apache-2.0 */
#include "inventory.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "time-util.h"

#define CONTAINER_ID_MAX  64
#define MIRROR_ANNOTATION "kubernetes.io/config.mirror"

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

static const char tomb_key[1];
#define TOMB tomb_key

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

struct inventory {
    pthread_mutex_t lock;
    char *path;
    struct timespec mtime;
    off_t size;
    struct inv_set set;
    bool api;                                /* fed by inventory_replace_items() */
    char static_ns[INVENTORY_STATIC_NS_MAX]; /* ",ns1,ns2," */
    int64_t synced_ms;
    uint64_t generation;
    void (*miss)(void *ud);
    void *miss_ud;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h;
}

static void pod_clear(struct inv_pod *p) {
    json_decref(p->labels);
    json_decref(p->images);
    free(p->containers);
    memset(p, 0, sizeof(*p));
}

static void set_free(struct inv_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        pod_clear(&s->pods[i]);
    }
    free(s->pods);
    free(s->by_uid);
    free(s->by_mirror);
    free(s->by_container);
    memset(s, 0, sizeof(*s));
}

static const char *str_at(const json_t *o, const char *a, const char *b) {
    const json_t *v = json_object_get(json_object_get(o, a), b);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Copy a string field when it fits; false when it is missing or too long. */
static bool copy_field(char *dst, size_t dstsz, const char *s) {
    if (!s || strlen(s) >= dstsz) {
        return false;
    }
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

/* The images and container IDs of every kind of container. */
static int pod_containers(const json_t *status, struct inv_pod *p) {
    static const char *const kinds[] = {"containerStatuses", "initContainerStatuses",
                                        "ephemeralContainerStatuses"};
    size_t total = 0, i;
    json_t *cs;

    for (size_t k = 0; k < 3; k++) {
        total += json_array_size(json_object_get(status, kinds[k]));
    }
    p->images = json_array();
    p->containers = total ? calloc(total, sizeof(*p->containers)) : NULL;
    if (!p->images || (total && !p->containers)) {
        return -ENOMEM;
    }
    for (size_t k = 0; k < 3; k++) {
        json_array_foreach(json_object_get(status, kinds[k]), i, cs) {
            const char *id = json_string_value(json_object_get(cs, "containerID"));
            const char *sep = id ? strstr(id, "://") : NULL;
            json_t *image = json_object_get(cs, "imageID");
            if (json_is_string(image) && json_string_length(image) > 0) {
                json_array_append(p->images, image);
            }
            if (sep && copy_field(p->containers[p->ncontainers], CONTAINER_ID_MAX + 1, sep + 3)) {
                p->ncontainers++;
            }
        }
    }
    return 0;
}

/* The kubelet's UID for a static pod: its config hash, 32 lowercase hex
 * digits (an API UID has dashes). */
static bool config_hash_shaped(const char *s) {
    size_t n = 0;

    for (; s[n]; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
            return false;
        }
    }
    return n == 32;
}

/* Is ns one of the namespaces whose mirror pods are believed? */
static bool static_ns_allowed(const char *allowed, const char *ns) {
    size_t n = strlen(ns);
    const char *at = allowed;

    while (n && (at = strstr(at, ns))) {
        if (at > allowed && at[-1] == ',' && at[n] == ',') {
            return true;
        }
        at += n;
    }
    return false;
}

/* The annotation kubernetes.io/config.mirror names the static pod a mirror
 * pod stands for. Anyone who may create pods can set it, so it is believed
 * only in the namespaces the operator named (--static-pod-namespaces:
 * kube-system by default, where tenants create nothing), and only when it
 * is shaped like a config hash, never like another pod's UID. */
static void pod_mirror(const json_t *md, const char *allowed, struct inv_pod *p) {
    const char *s = json_string_value(
            json_object_get(json_object_get(md, "annotations"), MIRROR_ANNOTATION));

    if (s && config_hash_shaped(s) && static_ns_allowed(allowed, p->ns)) {
        copy_field(p->mirror, sizeof(p->mirror), s);
    }
}

/* 1 with *p filled, 0 when the item is no pod kima can use, or -ENOMEM. */
static int pod_from_item(const json_t *item, const char *static_ns, struct inv_pod *p) {
    const json_t *md = json_object_get(item, "metadata");
    const json_t *labels = json_object_get(md, "labels");

    memset(p, 0, sizeof(*p));
    if (!copy_field(p->uid, sizeof(p->uid), str_at(item, "metadata", "uid"))) {
        return 0;
    }
    copy_field(p->ns, sizeof(p->ns), str_at(item, "metadata", "namespace"));
    copy_field(p->name, sizeof(p->name), str_at(item, "metadata", "name"));
    copy_field(p->node, sizeof(p->node), str_at(item, "spec", "nodeName"));
    pod_mirror(md, static_ns, p);
    p->labels = json_is_object(labels) ? json_incref((json_t *)labels) : json_object();
    if (!p->labels || pod_containers(json_object_get(item, "status"), p) < 0) {
        pod_clear(p);
        return -ENOMEM;
    }
    return 1;
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

static int set_index(struct inv_set *s) {
    struct tables t;
    int r = tables_alloc(s, 1, 0, 0, &t);

    if (r == 0) {
        tables_fill(s, &t);
    }
    return r;
}

static struct inv_pod *find(const struct inv_set *s, const struct slot *slots, size_t nslots,
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
static struct inv_pod *find_on(const struct inv_set *s, const struct slot *slots, size_t nslots,
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
static struct inv_pod *find_uid(const struct inv_set *s, const char *key, const char *node,
                                bool *ret_ambiguous) {
    struct inv_pod *p = find(s, s->by_uid, s->uid_slots, key);

    *ret_ambiguous = false;
    if (!p && config_hash_shaped(key)) {
        p = find_on(s, s->by_mirror, s->mirror_slots, key, node, ret_ambiguous);
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
            pod_clear(p);
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
static int set_build(const json_t *items, const char *static_ns, const struct inv_set *old,
                     int64_t listed_ms, struct inv_set *ret) {
    struct inv_set s = {0};
    size_t cap = json_array_size(items) + old->n, i;
    json_t *item;
    int r = 0;

    s.pods = calloc(cap ? cap : 1, sizeof(*s.pods));
    if (!s.pods) {
        return -ENOMEM;
    }
    s.cap = cap ? cap : 1;
    json_array_foreach(items, i, item) {
        r = pod_from_item(item, static_ns, &s.pods[s.n]);
        if (r < 0) {
            goto fail;
        }
        s.n += (size_t)r;
    }
    r = set_index(&s);
    for (size_t k = 0; r == 0 && k < old->n; k++) {
        const struct inv_pod *o = &old->pods[k];
        int64_t since = o->gone_ms ? o->gone_ms : listed_ms;
        /* Listed still, or a static pod whose mirror pod was recreated: not
         * gone. */
        if (!o->uid[0] || find(&s, s.by_uid, s.uid_slots, o->uid) ||
            (o->mirror[0] && find(&s, s.by_mirror, s.mirror_slots, o->mirror)) ||
            listed_ms - since > INVENTORY_GONE_KEEP_MS) {
            continue;
        }
        r = copy_gone(&s, o, since);
    }
    if (r == 0) {
        set_compact(&s, listed_ms);
        r = set_index(&s);
    }
    if (r == 0) {
        *ret = s;
        return 0;
    }
fail:
    set_free(&s);
    return r;
}

/* Make room for one more pod (when `new_pod`) with `mirrors` and
 * `containers` keys: compact and index again, with twice the room, when a
 * table would be more than half full or the array is full. The pods move
 * then: the caller finds its pod again. */
static int set_reserve(struct inv_set *s, bool new_pod, size_t mirrors, size_t containers,
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
            memset(np + s->cap, 0, (ncap - s->cap) * sizeof(*np));
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
        pod_clear(&s->pods[pi]); /* uid "": a free entry until the next compaction */
        s->ngone--;
        s->nfree++;
    }
}

/* Insert or update pod p (taken over) in place. */
static int set_upsert(struct inv_set *s, struct inv_pod *p, int64_t now) {
    struct inv_pod *old = find(s, s->by_uid, s->uid_slots, p->uid);
    size_t i;
    int r;

    if (!old && s->n - s->ngone - s->nfree >= INVENTORY_PODS_MAX) {
        return -E2BIG;
    }
    r = set_reserve(s, !old, p->mirror[0] != 0, p->ncontainers, now);
    if (r < 0) {
        return r;
    }
    old = find(s, s->by_uid, s->uid_slots, p->uid); /* it may have moved */
    if (old) {
        i = (size_t)(old - s->pods);
        pod_unindex(s, i, false);
        s->ngone -= old->gone_ms != 0;
        pod_clear(old);
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

/* Swap in the pods of `items`; the caller holds no lock. */
static int replace(struct inventory *inv, const json_t *items, int64_t listed_ms) {
    struct inv_set s, old;
    int r;

    pthread_mutex_lock(&inv->lock);
    r = set_build(items, inv->static_ns, &inv->set, listed_ms, &s);
    if (r == 0) {
        old = inv->set;
        inv->set = s;
        inv->generation++;
        if (listed_ms > inv->synced_ms) {
            inv->synced_ms = listed_ms;
        }
    }
    pthread_mutex_unlock(&inv->lock);
    if (r == 0) {
        set_free(&old);
    } else {
        log_error("pod inventory: out of memory; keeping the previous one");
    }
    return r;
}

int inventory_open_api(struct inventory **ret) {
    int r = inventory_open_file(NULL, ret);

    if (r == 0) {
        (*ret)->api = true;
        (*ret)->synced_ms = 0;
    }
    return r;
}

int inventory_open_file(const char *path, struct inventory **ret) {
    struct inventory *inv = calloc(1, sizeof(*inv));
    int r;

    if (!inv) {
        return -ENOMEM;
    }
    pthread_mutex_init(&inv->lock, NULL);
    snprintf(inv->static_ns, sizeof(inv->static_ns), ",%s,", INVENTORY_STATIC_NS_DEFAULT);
    if (path) {
        inv->path = strdup(path);
        r = inventory_refresh(inv);
        if (r < 0) {
            inventory_free(inv);
            return r;
        }
    }
    *ret = inv;
    return 0;
}

void inventory_free(struct inventory *inv) {
    if (!inv) {
        return;
    }
    set_free(&inv->set);
    free(inv->path);
    pthread_mutex_destroy(&inv->lock);
    free(inv);
}

int inventory_refresh(struct inventory *inv) {
    _cleanup_free_ uint8_t *data = NULL;
    json_t *j = NULL, *items;
    struct stat st;
    char err[256];
    size_t len;
    int r;

    if (!inv->path) {
        if (!inv->api) {
            /* No source at all: the (empty) inventory is always current. */
            pthread_mutex_lock(&inv->lock);
            inv->synced_ms = time_wall_ms();
            pthread_mutex_unlock(&inv->lock);
        }
        return 0;
    }
    if (stat(inv->path, &st) < 0) {
        r = -errno;
        log_error("pods file %s: %s", inv->path, strerror(errno));
        return r;
    }
    pthread_mutex_lock(&inv->lock);
    if (st.st_mtim.tv_sec == inv->mtime.tv_sec && st.st_mtim.tv_nsec == inv->mtime.tv_nsec &&
        st.st_size == inv->size) {
        pthread_mutex_unlock(&inv->lock);
        return 0;
    }
    pthread_mutex_unlock(&inv->lock);
    r = read_file_capped(inv->path, INVENTORY_FILE_MAX, &data, &len);
    if (r < 0) {
        log_error("pods file %s: %s", inv->path, strerror(-r));
        return r;
    }
    r = json_parse_bounded((const char *)data, len, 32, INVENTORY_VALUES_MAX, &j, err, sizeof(err));
    items = r == 0 ? json_object_get(j, "items") : NULL;
    if (!json_is_array(items) || json_array_size(items) > INVENTORY_PODS_MAX) {
        log_error("pods file %s is not a PodList (%s); keeping the previous one", inv->path,
                  r < 0 ? err : "no \"items\" array, or too many pods");
        json_decref(j);
        return -EBADMSG;
    }
    /* The file is a snapshot as of when it was written: its mtime. */
    r = replace(inv, items, (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    json_decref(j);
    if (r < 0) {
        return r;
    }
    pthread_mutex_lock(&inv->lock);
    inv->mtime = st.st_mtim;
    inv->size = st.st_size;
    pthread_mutex_unlock(&inv->lock);
    return 1;
}

void inventory_replace_items(struct inventory *inv, json_t *items, int64_t listed_ms) {
    replace(inv, items, listed_ms);
}

/* Under the lock: the pods changed, as of event_ms. */
static void changed_at(struct inventory *inv, int64_t event_ms) {
    inv->generation++;
    if (event_ms > inv->synced_ms) {
        inv->synced_ms = event_ms;
    }
}

int inventory_upsert_item(struct inventory *inv, const json_t *item, int64_t event_ms) {
    struct inv_pod p;
    int r;

    pthread_mutex_lock(&inv->lock);
    r = pod_from_item(item, inv->static_ns, &p);
    if (r == 1) {
        r = set_upsert(&inv->set, &p, event_ms);
        if (r < 0) {
            pod_clear(&p);
        }
    } else if (r == 0) {
        r = -EBADMSG; /* no metadata.uid that fits */
    }
    if (r == 0) {
        changed_at(inv, event_ms);
    }
    pthread_mutex_unlock(&inv->lock);
    return r;
}

int inventory_delete_item(struct inventory *inv, const json_t *item, int64_t event_ms) {
    const char *uid = str_at(item, "metadata", "uid");
    struct inv_pod *p;
    int r = 0;

    if (!uid) {
        return -EBADMSG;
    }
    pthread_mutex_lock(&inv->lock);
    p = find(&inv->set, inv->set.by_uid, inv->set.uid_slots, uid);
    if (p && !p->gone_ms) {
        p->gone_ms = event_ms > 0 ? event_ms : 1;
        inv->set.ngone++;
        r = 1;
    }
    if (r == 1) {
        changed_at(inv, event_ms);
    } else if (event_ms > inv->synced_ms) {
        inv->synced_ms = event_ms; /* news all the same */
    }
    if (inv->set.ngone > INVENTORY_GONE_MAX + INVENTORY_GONE_MAX / 4) {
        set_reserve(&inv->set, false, 0, 0, event_ms); /* compacts; on failure later */
    }
    pthread_mutex_unlock(&inv->lock);
    return r;
}

void inventory_mark_synced(struct inventory *inv, int64_t as_of_ms) {
    pthread_mutex_lock(&inv->lock);
    if (as_of_ms > inv->synced_ms) {
        inv->synced_ms = as_of_ms;
    }
    pthread_mutex_unlock(&inv->lock);
}

int64_t inventory_synced_ms(struct inventory *inv) {
    int64_t t;

    pthread_mutex_lock(&inv->lock);
    t = inv->synced_ms;
    pthread_mutex_unlock(&inv->lock);
    return t;
}

uint64_t inventory_generation(struct inventory *inv) {
    uint64_t g;

    pthread_mutex_lock(&inv->lock);
    g = inv->generation;
    pthread_mutex_unlock(&inv->lock);
    return g;
}

void inventory_set_miss_handler(struct inventory *inv, void (*fn)(void *ud), void *ud) {
    pthread_mutex_lock(&inv->lock);
    inv->miss = fn;
    inv->miss_ud = ud;
    pthread_mutex_unlock(&inv->lock);
}

static void fill(const struct inv_pod *p, struct pod_info *ret) {
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->uid, p->mirror[0] ? p->mirror : p->uid, sizeof(ret->uid));
    memcpy(ret->api_uid, p->uid, sizeof(ret->api_uid));
    memcpy(ret->ns, p->ns, sizeof(ret->ns));
    memcpy(ret->name, p->name, sizeof(ret->name));
    memcpy(ret->node, p->node, sizeof(ret->node));
    ret->gone = p->gone_ms != 0;
    ret->labels = json_incref(p->labels);
    ret->images = json_incref(p->images);
}

/* A miss: tell the miss handler, if any (outside the lock), unless quiet.
 * An ambiguous key is no miss: a list would not resolve it. */
static int lookup(struct inventory *inv, bool container, const char *key, const char *node,
                  struct pod_info *ret, bool quiet) {
    const struct inv_pod *p;
    void (*fn)(void *ud) = NULL;
    void *ud = NULL;
    bool ambiguous = false;

    pthread_mutex_lock(&inv->lock);
    p = container ? find_on(&inv->set, inv->set.by_container, inv->set.container_slots, key, node,
                            &ambiguous)
                  : find_uid(&inv->set, key, node, &ambiguous);
    if (p) {
        fill(p, ret);
    } else if (!quiet && !ambiguous) {
        fn = inv->miss;
        ud = inv->miss_ud;
    }
    pthread_mutex_unlock(&inv->lock);
    if (!p && fn) {
        fn(ud);
    }
    return p ? 0 : ambiguous ? -EEXIST : -ENOENT;
}

int inventory_lookup_uid(struct inventory *inv, const char *uid, const char *node,
                         struct pod_info *ret) {
    return lookup(inv, false, uid, node, ret, false);
}

int inventory_peek_uid(struct inventory *inv, const char *uid, const char *node,
                       struct pod_info *ret) {
    return lookup(inv, false, uid, node, ret, true);
}

int inventory_lookup_container(struct inventory *inv, const char *container_id, const char *node,
                               struct pod_info *ret) {
    return lookup(inv, true, container_id, node, ret, false);
}

bool inventory_static_namespaces_valid(const char *list) {
    size_t n = list ? strlen(list) : 0;

    if (!list || n + 3 > INVENTORY_STATIC_NS_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = list[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == ',')) {
            return false;
        }
    }
    return true;
}

int inventory_set_static_namespaces(struct inventory *inv, const char *list) {
    if (!inventory_static_namespaces_valid(list)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&inv->lock);
    snprintf(inv->static_ns, sizeof(inv->static_ns), ",%s,", list);
    /* The file is read again at the next refresh (the API: at its next
     * list), under the new rule. */
    inv->mtime = (struct timespec){0};
    inv->size = -1;
    pthread_mutex_unlock(&inv->lock);
    return 0;
}

void inventory_item_identity(struct inventory *inv, const json_t *item, char *ret, size_t retsz) {
    struct inv_pod p;

    memset(&p, 0, sizeof(p));
    copy_field(p.uid, sizeof(p.uid), str_at(item, "metadata", "uid"));
    copy_field(p.ns, sizeof(p.ns), str_at(item, "metadata", "namespace"));
    pthread_mutex_lock(&inv->lock);
    pod_mirror(json_object_get(item, "metadata"), inv->static_ns, &p);
    pthread_mutex_unlock(&inv->lock);
    snprintf(ret, retsz, "%s", p.mirror[0] ? p.mirror : p.uid);
}
