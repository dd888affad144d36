/* SPDX-License-Identifier: Apache-2.0 */
#include "ima-pods.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct container_count {
    char id[IMA_CONTAINER_ID_LEN + 1];
    enum ima_runtime runtime;
    uint64_t entries;
};

struct pod_count {
    char uid[IMA_POD_UID_MAX + 1];
    enum ima_qos qos;
    enum ima_cgroup_driver driver;
    uint64_t entries;
    uint64_t no_container; /* entries in the pod's cgroup but no container */
    size_t ncontainers, containers_alloc;
    struct container_count *containers;
};

struct ima_pods {
    uint64_t entries;
    uint64_t node_entries;
    uint64_t unplaced_entries; /* under a kubepods root, in no pod */
    size_t npods, pods_alloc;
    struct pod_count *pods;
    size_t last; /* pod hit by the previous entry: lists come in runs */
    size_t nloose, loose_alloc;
    struct container_count *loose; /* cgn-only: container known, pod not */
};

struct ima_pods *ima_pods_new(void) {
    return calloc(1, sizeof(struct ima_pods));
}

void ima_pods_free(struct ima_pods *p) {
    if (!p) {
        return;
    }
    for (size_t i = 0; i < p->npods; i++) {
        free(p->pods[i].containers);
    }
    free(p->pods);
    free(p->loose);
    free(p);
}

/* Grow an array of `size`-byte items to hold one more, under `max` items. */
static int grow(void **arr, size_t n, size_t *alloc, size_t size, size_t max) {
    void *np;
    size_t na;

    if (n < *alloc) {
        return 0;
    }
    if (n >= max) {
        return -E2BIG;
    }
    na = *alloc ? *alloc * 2 : 8;
    if (na > max) {
        na = max;
    }
    np = realloc(*arr, na * size);
    if (!np) {
        return -ENOMEM;
    }
    *arr = np;
    *alloc = na;
    return 0;
}

static int count_container(struct container_count **arr, size_t *n, size_t *alloc,
                           const struct ima_pod_ref *ref) {
    int r;

    for (size_t i = *n; i > 0; i--) {
        if (strcmp((*arr)[i - 1].id, ref->container_id) == 0) {
            (*arr)[i - 1].entries++;
            return 0;
        }
    }
    r = grow((void **)arr, *n, alloc, sizeof(**arr), IMA_PODS_CONTAINERS_MAX);
    if (r < 0) {
        return r;
    }
    memcpy((*arr)[*n].id, ref->container_id, sizeof(ref->container_id));
    (*arr)[*n].runtime = ref->runtime;
    (*arr)[*n].entries = 1;
    (*n)++;
    return 0;
}

static int find_pod(struct ima_pods *p, const struct ima_pod_ref *ref, struct pod_count **ret) {
    int r;

    if (p->last < p->npods && strcmp(p->pods[p->last].uid, ref->pod_uid) == 0) {
        *ret = &p->pods[p->last];
        return 0;
    }
    for (size_t i = 0; i < p->npods; i++) {
        if (strcmp(p->pods[i].uid, ref->pod_uid) == 0) {
            p->last = i;
            *ret = &p->pods[i];
            return 0;
        }
    }
    r = grow((void **)&p->pods, p->npods, &p->pods_alloc, sizeof(*p->pods), IMA_PODS_MAX);
    if (r < 0) {
        return r;
    }
    memset(&p->pods[p->npods], 0, sizeof(p->pods[0]));
    memcpy(p->pods[p->npods].uid, ref->pod_uid, sizeof(ref->pod_uid));
    p->pods[p->npods].qos = ref->qos;
    p->pods[p->npods].driver = ref->driver;
    p->last = p->npods++;
    *ret = &p->pods[p->last];
    return 0;
}

int ima_pods_add(struct ima_pods *p, const struct ima_entry *e) {
    struct ima_pod_ref ref;
    struct pod_count *pod;
    int r;

    r = ima_entry_attribute(e, &ref);
    if (r < 0) {
        return r; /* -EBADMSG: a cgroup field that is not what its template says */
    }
    switch (ref.scope) {
    case IMA_SCOPE_NODE:
        p->node_entries++;
        break;
    case IMA_SCOPE_UNPLACED:
        p->unplaced_entries++;
        break;
    case IMA_SCOPE_CONTAINER:
        r = count_container(&p->loose, &p->nloose, &p->loose_alloc, &ref);
        if (r < 0) {
            return r;
        }
        break;
    case IMA_SCOPE_POD:
        r = find_pod(p, &ref, &pod);
        if (r < 0) {
            return r;
        }
        if (ref.container_id[0]) {
            r = count_container(&pod->containers, &pod->ncontainers, &pod->containers_alloc, &ref);
            if (r < 0) {
                return r;
            }
        } else {
            pod->no_container++;
        }
        pod->entries++;
        break;
    }
    p->entries++;
    return 0;
}

int ima_pods_write_text(const struct ima_pods *p, struct kbuf *out) {
    int r = 0;

    for (size_t i = 0; i < p->npods && r == 0; i++) {
        const struct pod_count *pod = &p->pods[i];
        r = kbuf_printf(out, "pod %s qos=%s driver=%s entries=%" PRIu64 "\n", pod->uid,
                        ima_qos_name(pod->qos), ima_driver_name(pod->driver), pod->entries);
        for (size_t k = 0; k < pod->ncontainers && r == 0; k++) {
            r = kbuf_printf(out, "  container %s runtime=%s entries=%" PRIu64 "\n",
                            pod->containers[k].id, ima_runtime_name(pod->containers[k].runtime),
                            pod->containers[k].entries);
        }
        if (pod->no_container && r == 0) {
            r = kbuf_printf(out, "  (pod cgroup, no container) entries=%" PRIu64 "\n",
                            pod->no_container);
        }
    }
    for (size_t k = 0; k < p->nloose && r == 0; k++) {
        r = kbuf_printf(out, "container %s runtime=%s entries=%" PRIu64 " (pod unknown)\n",
                        p->loose[k].id, ima_runtime_name(p->loose[k].runtime), p->loose[k].entries);
    }
    if (r == 0) {
        r = kbuf_printf(out, "node entries=%" PRIu64 "\n", p->node_entries);
    }
    if (r == 0) {
        r = kbuf_printf(out, "unplaced entries=%" PRIu64 "\n", p->unplaced_entries);
    }
    if (r == 0) {
        r = kbuf_printf(out, "total pods=%zu entries=%" PRIu64 "\n", p->npods, p->entries);
    }
    return r;
}

static void write_containers(struct json_writer *w, const struct container_count *c, size_t n) {
    jw_array_begin(w);
    for (size_t k = 0; k < n; k++) {
        jw_object_begin(w);
        jw_key(w, "id");
        jw_string(w, c[k].id);
        jw_key(w, "runtime");
        jw_string(w, ima_runtime_name(c[k].runtime));
        jw_key(w, "entries");
        jw_uint(w, c[k].entries);
        jw_object_end(w);
    }
    jw_array_end(w);
}

void ima_pods_write_json(const struct ima_pods *p, struct json_writer *w) {
    jw_object_begin(w);
    jw_key(w, "entries");
    jw_uint(w, p->entries);
    jw_key(w, "node_entries");
    jw_uint(w, p->node_entries);
    jw_key(w, "unplaced_entries");
    jw_uint(w, p->unplaced_entries);
    jw_key(w, "pods");
    jw_array_begin(w);
    for (size_t i = 0; i < p->npods; i++) {
        const struct pod_count *pod = &p->pods[i];
        jw_object_begin(w);
        jw_key(w, "uid");
        jw_string(w, pod->uid);
        jw_key(w, "qos");
        jw_string(w, ima_qos_name(pod->qos));
        jw_key(w, "driver");
        jw_string(w, ima_driver_name(pod->driver));
        jw_key(w, "entries");
        jw_uint(w, pod->entries);
        jw_key(w, "pod_cgroup_entries");
        jw_uint(w, pod->no_container);
        jw_key(w, "containers");
        write_containers(w, pod->containers, pod->ncontainers);
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_key(w, "containers_without_pod");
    write_containers(w, p->loose, p->nloose);
    jw_object_end(w);
}
