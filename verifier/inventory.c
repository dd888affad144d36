/* SPDX-License-Identifier: Apache-2.0 */
#include "inventory.h"
#include "inventory-internal.h"

#include <errno.h>
#include <malloc.h>
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

#define MIRROR_ANNOTATION "kubernetes.io/config.mirror"

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
bool inv_config_hash_shaped(const char *s) {
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

    if (s && inv_config_hash_shaped(s) && static_ns_allowed(allowed, p->ns)) {
        copy_field(p->mirror, sizeof(p->mirror), s);
    }
}

/* 1 with *p filled, 0 when the item is no pod kima can use, or -ENOMEM. */
int inv_pod_from_item(const json_t *item, const char *static_ns, struct inv_pod *p) {
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
        inv_pod_clear(p);
        return -ENOMEM;
    }
    return 1;
}

/* Swap in the pods of `items`; the caller holds no lock. */
static int replace(struct inventory *inv, const json_t *items, int64_t listed_ms) {
    struct inv_set s, old;
    int r;

    pthread_mutex_lock(&inv->lock);
    r = inv_set_build(items, inv->static_ns, &inv->set, listed_ms, &s);
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
        inv_set_free(&old);
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
    inv_set_free(&inv->set);
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
    free(data);
    data = NULL;
    inventory_release_memory();
    if (r < 0) {
        return r;
    }
    pthread_mutex_lock(&inv->lock);
    inv->mtime = st.st_mtim;
    inv->size = st.st_size;
    pthread_mutex_unlock(&inv->lock);
    return 1;
}

void inventory_release_memory(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
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
    r = inv_pod_from_item(item, inv->static_ns, &p);
    if (r == 1) {
        r = inv_set_upsert(&inv->set, &p, event_ms);
        if (r < 0) {
            inv_pod_clear(&p);
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
    p = inv_find(&inv->set, inv->set.by_uid, inv->set.uid_slots, uid);
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
        inv_set_reserve(&inv->set, false, 0, 0, event_ms); /* compacts; on failure later */
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
    p = container ? inv_find_on(&inv->set, inv->set.by_container, inv->set.container_slots, key,
                                node, &ambiguous)
                  : inv_find_uid(&inv->set, key, node, &ambiguous);
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
