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

struct inventory {
    pthread_mutex_t lock;
    char *path;
    struct timespec mtime;
    off_t size;
    json_t *items; /* the PodList's items array */
    bool api;      /* fed by inventory_replace_items() */
    int64_t synced_ms;
    void (*miss)(void *ud);
    void *miss_ud;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    inv->items = json_array();
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
    json_decref(inv->items);
    free(inv->path);
    pthread_mutex_destroy(&inv->lock);
    free(inv);
}

int inventory_refresh(struct inventory *inv) {
    _cleanup_free_ uint8_t *data = NULL;
    json_t *j = NULL, *items;
    struct stat st;
    char err[256];
    int64_t now;
    size_t len;
    int r;

    if (!inv->path) {
        if (!inv->api) {
            /* No source at all: the (empty) inventory is always current. */
            pthread_mutex_lock(&inv->lock);
            inv->synced_ms = wall_ms();
            pthread_mutex_unlock(&inv->lock);
        }
        return 0;
    }
    now = wall_ms();
    if (stat(inv->path, &st) < 0) {
        r = -errno;
        log_error("pods file %s: %s", inv->path, strerror(errno));
        return r;
    }
    pthread_mutex_lock(&inv->lock);
    if (st.st_mtim.tv_sec == inv->mtime.tv_sec && st.st_mtim.tv_nsec == inv->mtime.tv_nsec &&
        st.st_size == inv->size) {
        inv->synced_ms = now;
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
    pthread_mutex_lock(&inv->lock);
    json_decref(inv->items);
    inv->items = json_incref(items);
    inv->mtime = st.st_mtim;
    inv->size = st.st_size;
    inv->synced_ms = now;
    pthread_mutex_unlock(&inv->lock);
    json_decref(j);
    return 0;
}

static const char *str_at(const json_t *o, const char *a, const char *b) {
    const json_t *v = json_object_get(json_object_get(o, a), b);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void fill(const json_t *item, struct pod_info *ret) {
    const char *s;

    memset(ret, 0, sizeof(*ret));
    snprintf(ret->uid, sizeof(ret->uid), "%s", (s = str_at(item, "metadata", "uid")) ? s : "");
    snprintf(ret->ns, sizeof(ret->ns), "%s", (s = str_at(item, "metadata", "namespace")) ? s : "");
    snprintf(ret->name, sizeof(ret->name), "%s", (s = str_at(item, "metadata", "name")) ? s : "");
    snprintf(ret->node, sizeof(ret->node), "%s", (s = str_at(item, "spec", "nodeName")) ? s : "");
    ret->labels = json_object_get(json_object_get(item, "metadata"), "labels");
    ret->labels = json_is_object(ret->labels) ? json_incref(ret->labels) : json_object();
    ret->images = json_array();
    {
        size_t i;
        json_t *cs;
        json_array_foreach(json_object_get(json_object_get(item, "status"), "containerStatuses"), i,
                           cs) {
            json_t *id = json_object_get(cs, "imageID");
            if (json_is_string(id)) {
                json_array_append(ret->images, id);
            }
        }
    }
}

void inventory_replace_items(struct inventory *inv, json_t *items, int64_t listed_ms) {
    pthread_mutex_lock(&inv->lock);
    json_decref(inv->items);
    inv->items = json_incref(items);
    if (listed_ms > inv->synced_ms) {
        inv->synced_ms = listed_ms;
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

void inventory_set_miss_handler(struct inventory *inv, void (*fn)(void *ud), void *ud) {
    pthread_mutex_lock(&inv->lock);
    inv->miss = fn;
    inv->miss_ud = ud;
    pthread_mutex_unlock(&inv->lock);
}

/* Tell the miss handler, if any. */
static void missed(struct inventory *inv) {
    void (*fn)(void *ud);
    void *ud;

    pthread_mutex_lock(&inv->lock);
    fn = inv->miss;
    ud = inv->miss_ud;
    pthread_mutex_unlock(&inv->lock);
    if (fn) {
        fn(ud);
    }
}

static int lookup_uid(struct inventory *inv, const char *uid, struct pod_info *ret) {
    size_t i;
    json_t *item;
    int r = -ENOENT;

    pthread_mutex_lock(&inv->lock);
    json_array_foreach(inv->items, i, item) {
        const char *u = str_at(item, "metadata", "uid");
        if (u && strcmp(u, uid) == 0) {
            fill(item, ret);
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&inv->lock);
    return r;
}

int inventory_lookup_uid(struct inventory *inv, const char *uid, struct pod_info *ret) {
    int r = lookup_uid(inv, uid, ret);

    if (r == -ENOENT) {
        missed(inv);
    }
    return r;
}

static int lookup_container(struct inventory *inv, const char *container_id, struct pod_info *ret) {
    size_t i, k;
    json_t *item, *cs;
    int r = -ENOENT;

    pthread_mutex_lock(&inv->lock);
    json_array_foreach(inv->items, i, item) {
        json_t *statuses = json_object_get(json_object_get(item, "status"), "containerStatuses");
        json_array_foreach(statuses, k, cs) {
            const char *id = json_string_value(json_object_get(cs, "containerID"));
            const char *sep = id ? strstr(id, "://") : NULL;
            if (sep && strcmp(sep + 3, container_id) == 0) {
                fill(item, ret);
                r = 0;
                goto out;
            }
        }
    }
out:
    pthread_mutex_unlock(&inv->lock);
    return r;
}

int inventory_lookup_container(struct inventory *inv, const char *container_id,
                               struct pod_info *ret) {
    int r = lookup_container(inv, container_id, ret);

    if (r == -ENOENT) {
        missed(inv);
    }
    return r;
}
