/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_METRICS_SERIES_H
#define KIMA_VERIFIER_METRICS_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "state.h"

/* The labelled series of /metrics (docs/verifier.md, "Metrics"), for
 * dashboards and alerts that need to name a node or a namespace:
 *
 *   kima_node_state{node,state}                        1 for the state it reads as
 *   kima_node_last_attestation_timestamp_seconds{node} its last judged round
 *   kima_node_series_omitted                           nodes over the cap
 *   kima_namespace_pods{namespace,state}               pods by namespace and state
 *   kima_namespace_series_omitted                      namespaces folded into _other
 *
 * engine_metrics() feeds every node and pod of the store and prints them.
 * Their cardinality is bounded: at most METRICS_NODES_MAX nodes are shown
 * one by one (those not trusted first, so that a node in trouble is never
 * the one left out), and at most METRICS_NAMESPACES_MAX namespaces (those
 * with the most untrusted, then unknown pods first); the pods of the other
 * namespaces are summed under METRICS_OTHER_NAMESPACE, so that the sum
 * over namespaces stays kima_pods. */
#define METRICS_NODES_MAX      10000
#define METRICS_NAMESPACES_MAX 1000
/* Not a DNS-1123 label ('_'): no namespace of Kubernetes has this name. */
#define METRICS_OTHER_NAMESPACE "_other"
/* Longest node or namespace name taken (the store's STORE_NAME_MAX). */
#define METRICS_NAME_MAX 253

struct metrics_node {
    char *name;
    enum node_state state;
    int64_t last_attested_ms; /* 0: never attested, no timestamp series */
};

struct metrics_namespace {
    char *name;
    uint64_t pods[POD_UNTRUSTED + 1];
};

/* Zero it or metrics_series_init() it; metrics_series_free() frees what it
 * holds. Not thread-safe: one per /metrics request. */
struct metrics_series {
    size_t nodes_max, namespaces_max;
    struct metrics_node *nodes;
    size_t n_nodes, nodes_alloc;
    struct metrics_namespace *ns; /* in name order */
    size_t n_ns, ns_alloc;
};

/* Caps (0: none shown one by one); METRICS_NODES_MAX and
 * METRICS_NAMESPACES_MAX outside tests. */
void metrics_series_init(struct metrics_series *m, size_t nodes_max, size_t namespaces_max);
void metrics_series_free(struct metrics_series *m);

/* A node as it reads. The name is copied. 0, -EINVAL for an empty name,
 * -E2BIG for one over METRICS_NAME_MAX, -ENOMEM. */
int metrics_series_add_node(struct metrics_series *m, const char *name, enum node_state state,
                            int64_t last_attested_ms);
/* One pod of namespace `ns` in `state`. 0, -EINVAL (empty name or a state
 * out of range), -E2BIG, -ENOMEM. */
int metrics_series_add_pod(struct metrics_series *m, const char *ns, enum pod_state state);

/* Append the series in Prometheus' text format (label values escaped).
 * 0, -ENOMEM, or -E2BIG when `b`'s cap is reached (then `b` holds a part:
 * the caller must not serve it). */
int metrics_series_print(const struct metrics_series *m, struct kbuf *b);

#endif
