/* SPDX-License-Identifier: Apache-2.0 */
/* The per-node and per-namespace series of /metrics: collected from the
 * store's rows, capped, printed (metrics-series.h says which and why). */
#include "metrics-series.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void metrics_series_init(struct metrics_series *m, size_t nodes_max, size_t namespaces_max) {
    *m = (struct metrics_series){.nodes_max = nodes_max, .namespaces_max = namespaces_max};
}

void metrics_series_free(struct metrics_series *m) {
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].name);
    }
    for (size_t i = 0; i < m->n_ns; i++) {
        free(m->ns[i].name);
    }
    free(m->nodes);
    free(m->ns);
    metrics_series_init(m, m->nodes_max, m->namespaces_max);
}

static int check_name(const char *name) {
    if (!name || !name[0]) {
        return -EINVAL;
    }
    return strnlen(name, METRICS_NAME_MAX + 1) > METRICS_NAME_MAX ? -E2BIG : 0;
}

/* Room for one more element in *v (n used of *alloc, each `size` bytes). */
static int grow(void **v, size_t n, size_t *alloc, size_t size) {
    size_t na;
    void *nv;

    if (n < *alloc) {
        return 0;
    }
    na = *alloc ? 2 * *alloc : 64;
    if (na > SIZE_MAX / size) {
        return -ENOMEM;
    }
    nv = realloc(*v, na * size);
    if (!nv) {
        return -ENOMEM;
    }
    *v = nv;
    *alloc = na;
    return 0;
}

int metrics_series_add_node(struct metrics_series *m, const char *name, enum node_state state,
                            int64_t last_attested_ms) {
    int r = check_name(name);
    char *copy;

    if (r < 0) {
        return r;
    }
    if ((unsigned)state > NODE_STALE) {
        return -EINVAL;
    }
    r = grow((void **)&m->nodes, m->n_nodes, &m->nodes_alloc, sizeof(*m->nodes));
    if (r < 0) {
        return r;
    }
    copy = strdup(name);
    if (!copy) {
        return -ENOMEM;
    }
    m->nodes[m->n_nodes++] = (struct metrics_node){
            .name = copy, .state = state, .last_attested_ms = last_attested_ms};
    return 0;
}

/* The index of namespace `name` in m->ns, or where it would go (*found
 * false). */
static size_t ns_find(const struct metrics_series *m, const char *name, bool *found) {
    size_t lo = 0, hi = m->n_ns;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->ns[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

int metrics_series_add_pod(struct metrics_series *m, const char *ns, enum pod_state state) {
    int r = check_name(ns);
    bool found;
    size_t at;
    char *copy;

    if (r < 0) {
        return r;
    }
    if ((unsigned)state > POD_UNTRUSTED) {
        return -EINVAL;
    }
    at = ns_find(m, ns, &found);
    if (!found) {
        r = grow((void **)&m->ns, m->n_ns, &m->ns_alloc, sizeof(*m->ns));
        if (r < 0) {
            return r;
        }
        copy = strdup(ns);
        if (!copy) {
            return -ENOMEM;
        }
        memmove(&m->ns[at + 1], &m->ns[at], (m->n_ns - at) * sizeof(*m->ns));
        m->ns[at] = (struct metrics_namespace){.name = copy};
        m->n_ns++;
    }
    m->ns[at].pods[state]++;
    return 0;
}

/* A label value as the text format wants it: \, " and newline escaped. */
static int put_label_value(struct kbuf *b, const char *s) {
    int r = kbuf_putc(b, '"');

    for (; r >= 0 && *s; s++) {
        r = *s == '\\'   ? kbuf_puts(b, "\\\\")
            : *s == '"'  ? kbuf_puts(b, "\\\"")
            : *s == '\n' ? kbuf_puts(b, "\\n")
                         : kbuf_putc(b, *s);
    }
    return r < 0 ? r : kbuf_putc(b, '"');
}

static int print_node_state(const struct metrics_node *n, struct kbuf *b) {
    int r = kbuf_puts(b, "kima_node_state{node=");

    r = r < 0 ? r : put_label_value(b, n->name);
    return r < 0 ? r : kbuf_printf(b, ",state=\"%s\"} 1\n", node_state_name(n->state));
}

static int print_node_last(const struct metrics_node *n, struct kbuf *b) {
    int r;

    if (n->last_attested_ms <= 0) {
        return 0;
    }
    r = kbuf_puts(b, "kima_node_last_attestation_timestamp_seconds{node=");
    r = r < 0 ? r : put_label_value(b, n->name);
    return r < 0 ? r
                 : kbuf_printf(b, "} %" PRId64 ".%03d\n", n->last_attested_ms / 1000,
                               (int)(n->last_attested_ms % 1000));
}

/* The nodes shown, into idx (m->n_nodes entries): those not trusted first,
 * at most nodes_max. Returns how many. */
static size_t nodes_shown(const struct metrics_series *m, size_t *idx) {
    size_t shown = 0;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < m->n_nodes && shown < m->nodes_max; i++) {
            if ((m->nodes[i].state == NODE_TRUSTED) == (pass == 1)) {
                idx[shown++] = i;
            }
        }
    }
    return shown;
}

/* Each metric's lines in one group, as the text format requires. */
static int print_nodes(const struct metrics_series *m, struct kbuf *b) {
    size_t *idx = malloc((m->n_nodes ? m->n_nodes : 1) * sizeof(*idx));
    size_t shown;
    int r;

    if (!idx) {
        return -ENOMEM;
    }
    shown = nodes_shown(m, idx);
    r = kbuf_puts(b, "# HELP kima_node_state 1 for the state the node reads as, one series a "
                     "node.\n# TYPE kima_node_state gauge\n");
    for (size_t i = 0; i < shown && r >= 0; i++) {
        r = print_node_state(&m->nodes[idx[i]], b);
    }
    r = r < 0 ? r
              : kbuf_puts(b,
                          "# HELP kima_node_last_attestation_timestamp_seconds When the "
                          "node's last evidence round was judged (Unix time; none before its "
                          "first).\n# TYPE kima_node_last_attestation_timestamp_seconds gauge\n");
    for (size_t i = 0; i < shown && r >= 0; i++) {
        r = print_node_last(&m->nodes[idx[i]], b);
    }
    free(idx);
    return r < 0 ? r
                 : kbuf_printf(b,
                               "# HELP kima_node_series_omitted Nodes over the cap of per-node "
                               "series (%zu): counted in kima_nodes only.\n"
                               "# TYPE kima_node_series_omitted gauge\n"
                               "kima_node_series_omitted %zu\n",
                               m->nodes_max, m->n_nodes - shown);
}

/* Namespaces first shown: most untrusted pods, then most unknown, then by
 * name. */
static int ns_rank_cmp(const void *a, const void *b) {
    const struct metrics_namespace *x = *(const struct metrics_namespace *const *)a;
    const struct metrics_namespace *y = *(const struct metrics_namespace *const *)b;

    if (x->pods[POD_UNTRUSTED] != y->pods[POD_UNTRUSTED]) {
        return x->pods[POD_UNTRUSTED] > y->pods[POD_UNTRUSTED] ? -1 : 1;
    }
    if (x->pods[POD_UNKNOWN] != y->pods[POD_UNKNOWN]) {
        return x->pods[POD_UNKNOWN] > y->pods[POD_UNKNOWN] ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

static int print_namespace(const char *name, const uint64_t pods[POD_UNTRUSTED + 1],
                           struct kbuf *b) {
    int r = 0;

    for (int s = 0; s <= POD_UNTRUSTED && r >= 0; s++) {
        r = kbuf_puts(b, "kima_namespace_pods{namespace=");
        r = r < 0 ? r : put_label_value(b, name);
        r = r < 0 ? r
                  : kbuf_printf(b, ",state=\"%s\"} %" PRIu64 "\n",
                                pod_state_name((enum pod_state)s), pods[s]);
    }
    return r;
}

static int print_namespaces(const struct metrics_series *m, struct kbuf *b) {
    const struct metrics_namespace **order = NULL;
    uint64_t other[POD_UNTRUSTED + 1] = {0};
    size_t shown = m->n_ns < m->namespaces_max ? m->n_ns : m->namespaces_max;
    int r = kbuf_puts(b, "# HELP kima_namespace_pods Pods by namespace and state (the namespaces "
                         "over the cap summed as " METRICS_OTHER_NAMESPACE ").\n"
                         "# TYPE kima_namespace_pods gauge\n");

    if (r >= 0 && m->n_ns > 0) {
        order = malloc(m->n_ns * sizeof(*order));
        if (!order) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_ns; i++) {
            order[i] = &m->ns[i];
        }
        if (shown < m->n_ns) {
            qsort(order, m->n_ns, sizeof(*order), ns_rank_cmp);
        }
    }
    for (size_t i = 0; i < m->n_ns && r >= 0; i++) {
        if (i < shown) {
            r = print_namespace(order[i]->name, order[i]->pods, b);
            continue;
        }
        for (int s = 0; s <= POD_UNTRUSTED; s++) {
            other[s] += order[i]->pods[s];
        }
    }
    free(order);
    if (r >= 0 && shown < m->n_ns) {
        r = print_namespace(METRICS_OTHER_NAMESPACE, other, b);
    }
    return r < 0 ? r
                 : kbuf_printf(b,
                               "# HELP kima_namespace_series_omitted Namespaces over the cap of "
                               "per-namespace series (%zu), summed as " METRICS_OTHER_NAMESPACE
                               ".\n# TYPE kima_namespace_series_omitted gauge\n"
                               "kima_namespace_series_omitted %zu\n",
                               m->namespaces_max, m->n_ns - shown);
}

int metrics_series_print(const struct metrics_series *m, struct kbuf *b) {
    int r = print_nodes(m, b);

    return r < 0 ? r : print_namespaces(m, b);
}
