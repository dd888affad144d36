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

struct slot {
    const char *key; /* points into a pod */
    uint32_t pod;
};

struct inv_set {
    struct inv_pod *pods;
    size_t n;
    struct slot *by_uid;    /* API UIDs */
    struct slot *by_mirror; /* static pods' config hashes */
    struct slot *by_container;
    size_t uid_slots, mirror_slots, container_slots;
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

static void slot_put(struct slot *slots, size_t nslots, const char *key, uint32_t pod) {
    for (size_t i = hash_str(key) & (nslots - 1);; i = (i + 1) & (nslots - 1)) {
        if (!slots[i].key) {
            slots[i] = (struct slot){key, pod};
            return;
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

/* Index the set's pods. Live pods are indexed before gone ones, so a key
 * that is both (a recreated static pod's hash) finds the live one first. */
static int set_index(struct inv_set *s) {
    size_t mirrors = 0, containers = 0;

    for (size_t i = 0; i < s->n; i++) {
        mirrors += s->pods[i].mirror[0] != 0;
        containers += s->pods[i].ncontainers;
    }
    s->uid_slots = slots_for(s->n);
    s->mirror_slots = slots_for(mirrors);
    s->container_slots = slots_for(containers);
    s->by_uid = calloc(s->uid_slots, sizeof(*s->by_uid));
    s->by_mirror = calloc(s->mirror_slots, sizeof(*s->by_mirror));
    s->by_container = calloc(s->container_slots, sizeof(*s->by_container));
    if (!s->by_uid || !s->by_mirror || !s->by_container) {
        return -ENOMEM;
    }
    for (int gone = 0; gone < 2; gone++) {
        for (size_t i = 0; i < s->n; i++) {
            struct inv_pod *p = &s->pods[i];
            if ((p->gone_ms != 0) != gone) {
                continue;
            }
            slot_put(s->by_uid, s->uid_slots, p->uid, (uint32_t)i);
            if (p->mirror[0]) {
                slot_put(s->by_mirror, s->mirror_slots, p->mirror, (uint32_t)i);
            }
            for (size_t k = 0; k < p->ncontainers; k++) {
                slot_put(s->by_container, s->container_slots, p->containers[k], (uint32_t)i);
            }
        }
    }
    return 0;
}

static void set_unindex(struct inv_set *s) {
    free(s->by_uid);
    free(s->by_mirror);
    free(s->by_container);
    s->by_uid = s->by_mirror = s->by_container = NULL;
}

static struct inv_pod *find(const struct inv_set *s, const struct slot *slots, size_t nslots,
                            const char *key) {
    if (!slots) {
        return NULL;
    }
    for (size_t i = hash_str(key) & (nslots - 1); slots[i].key; i = (i + 1) & (nslots - 1)) {
        if (strcmp(slots[i].key, key) == 0) {
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
        if (strcmp(slots[i].key, key) != 0) {
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

/* A new set from the items, with the pods of `old` that are no longer
 * listed kept as gone (since listed_ms) for INVENTORY_GONE_KEEP_MS. */
static int set_build(const json_t *items, const char *static_ns, const struct inv_set *old,
                     int64_t listed_ms, struct inv_set *ret) {
    struct inv_set s = {0};
    size_t cap = json_array_size(items) + old->n, i, gone = 0;
    json_t *item;
    int r = 0;

    s.pods = calloc(cap ? cap : 1, sizeof(*s.pods));
    if (!s.pods) {
        return -ENOMEM;
    }
    json_array_foreach(items, i, item) {
        r = pod_from_item(item, static_ns, &s.pods[s.n]);
        if (r < 0) {
            goto fail;
        }
        s.n += (size_t)r;
    }
    r = set_index(&s);
    /* Newest gone first: old pods are in the old set's order, which lists
     * live pods before gone ones, the gone ones newest first. */
    for (size_t k = 0; r == 0 && k < old->n && gone < INVENTORY_GONE_MAX; k++) {
        const struct inv_pod *o = &old->pods[k];
        int64_t since = o->gone_ms ? o->gone_ms : listed_ms;
        /* Listed still, or a static pod whose mirror pod was recreated: not
         * gone. */
        if (find(&s, s.by_uid, s.uid_slots, o->uid) ||
            (o->mirror[0] && find(&s, s.by_mirror, s.mirror_slots, o->mirror)) ||
            listed_ms - since > INVENTORY_GONE_KEEP_MS) {
            continue;
        }
        s.pods[s.n] = *o;
        s.pods[s.n].gone_ms = since ? since : 1;
        s.pods[s.n].labels = json_incref(o->labels);
        s.pods[s.n].images = json_incref(o->images);
        s.pods[s.n].containers =
                o->ncontainers ? malloc(o->ncontainers * sizeof(*o->containers)) : NULL;
        if (o->ncontainers && !s.pods[s.n].containers) {
            r = -ENOMEM;
            break;
        }
        if (o->ncontainers) {
            memcpy(s.pods[s.n].containers, o->containers, o->ncontainers * sizeof(*o->containers));
        }
        s.n++;
        gone++;
    }
    if (r == 0) {
        set_unindex(&s);
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
