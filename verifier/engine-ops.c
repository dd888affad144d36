/* SPDX-License-Identifier: Apache-2.0 */
/* The operator side of the engine: listings, deletion, resets, staleness,
 * metrics. */
#include "engine-internal.h"
#include "judge.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "json-util.h"
#include "log.h"
#include "metrics-series.h"

/* The state a node reads as: untrusted is sticky; a node that attested
 * once but missed 3 intervals, that has not attested since it registered
 * again, or whose list the verifier has been behind for 3 intervals (its
 * waiting list full: what it ran last is not judged yet), reads as stale
 * whatever was stored; one that never attested reads registered or active.
 * Only a node that reads trusted vouches for its pods. */
static enum node_state node_state(const struct engine *e, const struct node_record *n,
                                  int64_t now) {
    int64_t three = 3 * (int64_t)e->cfg.interval_ms;

    if (n->state == NODE_UNTRUSTED || n->last_attested_ms == 0) {
        return n->state;
    }
    if (n->last_attested_ms < n->registered_ms || now - n->last_attested_ms > three ||
        (n->behind_ms && now - n->behind_ms > three)) {
        return NODE_STALE;
    }
    return n->state;
}

static json_t *node_json(const struct engine *e, const struct node_record *n, int64_t now) {
    char akhex[2 * 66 + 1];

    return json_pack("{s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:s,s:b,s:I}", "name", n->name, "state",
                     node_state_name(node_state(e, n, now)), "reason", n->reason, "activated",
                     n->activated, "last_attested_ms", (json_int_t)n->last_attested_ms,
                     "ima_next_index", (json_int_t)n->ima_index, "attestations",
                     (json_int_t)n->attestations, "ak_name",
                     hex_encode(n->ak_name, n->ak_name_len, akhex), "ek_cert", n->ek_cert_len > 0,
                     "waiting_measurements", (json_int_t)n->pending);
}

/* The nodes' states for one listing of pods: one store read for all nodes,
 * not one per pod. */
struct node_state_entry {
    char name[STORE_NAME_MAX + 1];
    enum node_state state;
};

struct node_states {
    struct engine *e;
    struct store *store; /* where the nodes are read; NULL: e->store */
    int64_t now;
    struct node_state_entry *v;
    size_t n, alloc;
    bool loaded;
};

static int add_node_state(const struct node_record *n, void *ud) {
    struct node_states *ns = ud;

    if (ns->n == ns->alloc) {
        size_t na = ns->alloc ? 2 * ns->alloc : 64;
        struct node_state_entry *nv = realloc(ns->v, na * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        ns->v = nv;
        ns->alloc = na;
    }
    snprintf(ns->v[ns->n].name, sizeof(ns->v[ns->n].name), "%s", n->name);
    ns->v[ns->n].state = node_state(ns->e, n, ns->now);
    ns->n++;
    return 0;
}

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const struct node_state_entry *)a)->name,
                  ((const struct node_state_entry *)b)->name);
}

/* A node's state as it reads: false when it is not registered. */
static bool node_state_of(struct node_states *ns, const char *name, enum node_state *ret) {
    struct node_state_entry key, *found;

    if (!ns->loaded) {
        ns->loaded = true;
        /* in name order */
        store_node_foreach(ns->store ? ns->store : ns->e->store, add_node_state, ns);
    }
    snprintf(key.name, sizeof(key.name), "%s", name);
    found = ns->v ? bsearch(&key, ns->v, ns->n, sizeof(*ns->v), entry_cmp) : NULL;
    if (found) {
        *ret = found->state;
    }
    return found != NULL;
}

struct list_ctx {
    struct engine *e;
    json_t *arr;
    int64_t now;
    bool filtered;
    enum pod_state filter;
    struct node_states ns;
};

static int add_node(const struct node_record *n, void *ud) {
    struct list_ctx *c = ud;
    json_array_append_new(c->arr, node_json(c->e, n, c->now));
    return 0;
}

/* The store an operator's read goes to, locked: the reader connection
 * (committed transactions only) under its own lock when there is one, else
 * the writer's connection under the engine's lock. reads_end() unlocks. */
static struct store *reads_begin(struct engine *e) {
    if (e->reader) {
        pthread_mutex_lock(&e->read_lock);
        return e->reader;
    }
    pthread_mutex_lock(&e->lock);
    return e->store;
}

static void reads_end(struct engine *e) {
    pthread_mutex_unlock(e->reader ? &e->read_lock : &e->lock);
}

enum engine_status engine_nodes(struct engine *e, json_t **resp) {
    struct list_ctx c = {e,     json_array(), engine_now_ms(),
                         false, POD_UNKNOWN,  {.e = e, .now = engine_now_ms()}};

    struct store *st = reads_begin(e);
    int r = store_node_foreach(st, add_node, &c);

    reads_end(e);
    if (r < 0) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_FAILED, "store", "the nodes could not be read");
    }
    *resp = json_pack("{s:o}", "nodes", c.arr);
    return ENGINE_OK;
}

enum engine_status engine_node(struct engine *e, const char *node, json_t **resp) {
    struct node_record *n = malloc(sizeof(*n));
    int r;

    if (!n) {
        return engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
    }
    r = store_node_get(reads_begin(e), node, n);
    reads_end(e);
    if (r < 0) {
        free(n);
        return engine_node_unreadable(resp, r, node);
    }
    *resp = node_json(e, n, engine_now_ms());
    free(n);
    return ENGINE_OK;
}

enum engine_status engine_node_delete(struct engine *e, const char *node, const char *actor,
                                      json_t **resp) {
    struct engine_write w;
    json_t *d;
    int r;

    engine_node_lock(e, node);
    engine_write_lock(e);
    r = engine_write_begin(e, &w);
    r = r == 0 ? store_node_delete(e->store, node) : r;
    if (r == 0) {
        r = store_pod_delete_node(e->store, node);
    }
    if (r == 0) {
        r = store_pending_delete_node(e->store, node);
    }
    if (r == 0) {
        d = json_pack("{s:s}", "actor", actor ? actor : "");
        r = engine_audit(e, "node-deleted", node, NULL, d);
        json_decref(d);
    }
    r = engine_write_end(e, &w, r);
    engine_write_unlock(e);
    if (r == 0) {
        engine_node_forget(e, node); /* its nonces and its key */
    }
    engine_node_unlock(e, node);
    if (r == -ENOENT) {
        return engine_error(resp, ENGINE_NOT_FOUND, "unknown node", node);
    }
    if (r < 0) {
        return engine_error(resp, ENGINE_FAILED, "store", "the deletion could not be recorded");
    }
    engine_notify(e); /* its pods' labels go to unknown */
    *resp = json_pack("{s:s}", "deleted", node);
    return ENGINE_OK;
}

/* The state a pod reads as: trusted only while its node reads trusted (a
 * stale, re-registered, never attested or missing node vouches for
 * nothing); the pods of an untrusted node read untrusted. *ret_why says why
 * a stored state is not shown. */
static enum pod_state pod_state(struct node_states *states, const struct pod_record *p,
                                const char **ret_why) {
    enum node_state ns = NODE_UNTRUSTED;
    bool known = node_state_of(states, p->node, &ns);

    *ret_why = NULL;
    if (p->state != POD_TRUSTED || (known && ns == NODE_TRUSTED)) {
        return p->state;
    }
    *ret_why = !known                 ? "the node is not registered"
               : ns == NODE_STALE     ? "the node is stale (not attested lately, or its newest "
                                        "measurements not judged yet)"
               : ns == NODE_UNTRUSTED ? "the node is untrusted"
                                      : "the node has not attested yet";
    return known && ns == NODE_UNTRUSTED ? POD_UNTRUSTED : POD_UNKNOWN;
}

/* The id of the policy that judged every kept measurement of the pod
 * ("<name>@sha256:<canonical hex>"), or NULL: none (or not all of them). */
static const char *pod_policy_id(const struct pod_record *p) {
    return p->policy[0] && strcmp(p->policy, JUDGE_POLICY_INCOMPLETE) != 0 ? p->policy : NULL;
}

/* A pod as the API shows it: its record, the policy that judged it, and
 * what matching needs (labels and image IDs, from the inventory: null
 * when it does not list the pod). */
static json_t *pod_json(struct engine *e, const struct pod_record *p, enum pod_state state,
                        const char *why) {
    const char *policy = pod_policy_id(p);
    struct pod_info info;
    json_t *labels = NULL, *images = NULL;

    if (inventory_peek_uid(e->inv, p->uid, p->node, &info) == 0) {
        labels = info.labels;
        images = info.images;
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:o}", "uid", p->uid, "namespace", p->ns,
                     "name", p->name, "node", p->node, "state", pod_state_name(state), "reason",
                     why ? why : p->reason, "since_ms", (json_int_t)p->since_ms, "policy",
                     policy ? json_string(policy) : json_null(), "labels",
                     labels ? labels : json_null(), "images", images ? images : json_null());
}

static int add_pod(const struct pod_record *p, void *ud) {
    struct list_ctx *c = ud;
    const char *why;
    enum pod_state state = pod_state(&c->ns, p, &why);

    if (!c->filtered || c->filter == state) {
        json_array_append_new(c->arr, pod_json(c->e, p, state, why));
    }
    return 0;
}

enum engine_status engine_pods(struct engine *e, const char *state, json_t **resp) {
    struct list_ctx c = {e,
                         json_array(),
                         engine_now_ms(),
                         state != NULL,
                         POD_UNKNOWN,
                         {.e = e, .now = engine_now_ms()}};
    int r;

    if (state && pod_state_parse(state, &c.filter) < 0) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_MALFORMED, "bad state", "trusted, untrusted or unknown");
    }
    c.ns.store = reads_begin(e);
    r = store_pod_foreach(c.ns.store, add_pod, &c);
    reads_end(e);
    free(c.ns.v);
    if (r < 0) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_FAILED, "store", "the pods could not be read");
    }
    *resp = json_pack("{s:o}", "pods", c.arr);
    return ENGINE_OK;
}

struct find_ctx {
    struct engine *e;
    const char *ns, *name;
    struct pod_record found;
    bool ok, live;
};

/* A name can belong to a deleted pod and to its successor (a StatefulSet's
 * pods): the one the inventory lists now wins, then the newest verdict. */
static int find_named(const struct pod_record *p, void *ud) {
    struct find_ctx *f = ud;
    struct pod_info info;
    bool live;

    if (strcmp(p->ns, f->ns) != 0 || strcmp(p->name, f->name) != 0) {
        return 0;
    }
    live = inventory_peek_uid(f->e->inv, p->uid, p->node, &info) == 0;
    if (live) {
        live = !info.gone;
        json_decref(info.labels);
        json_decref(info.images);
    }
    if (!f->ok || (live && !f->live) || (live == f->live && p->since_ms > f->found.since_ms)) {
        f->found = *p;
        f->ok = true;
        f->live = live;
    }
    return 0;
}

enum engine_status engine_pod(struct engine *e, const char *ns, const char *name, json_t **resp) {
    struct find_ctx f = {.e = e, .ns = ns, .name = name};
    struct list_ctx c = {e,     json_array(), engine_now_ms(),
                         false, POD_UNKNOWN,  {.e = e, .now = engine_now_ms()}};

    int r;

    c.ns.store = reads_begin(e);
    r = store_pod_foreach(c.ns.store, find_named, &f);
    if (r == 0 && f.ok) {
        add_pod(&f.found, &c);
    }
    reads_end(e);
    free(c.ns.v);
    if (r < 0) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_FAILED, "store", "the pods could not be read");
    }
    if (!f.ok) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_NOT_FOUND, "unknown pod", "no verdict about that pod");
    }
    *resp = json_incref(json_array_get(c.arr, 0));
    json_decref(c.arr);
    return ENGINE_OK;
}

struct measurements_ctx {
    const struct policy *policy; /* the one that judged the pod, if still loaded */
    json_t *arr;
};

static int add_measurement(const struct pod_file *f, void *ud) {
    struct measurements_ctx *c = ud;
    const char *result = "unjudged";
    json_t *m;

    if (c->policy) {
        result = policy_result_name(policy_judge(c->policy, (const char *)f->path, f->path_len,
                                                 f->digest, f->violation));
    }
    m = json_pack("{s:o,s:s,s:s,s:b,s:I}", "path",
                  json_string_untrusted(f->path, f->path_len, STORE_PATH_MAX), "digest", f->digest,
                  "result", result, "ima_violation", f->violation, "entry", (json_int_t)f->entry);
    return m && json_array_append_new(c->arr, m) == 0 ? 0 : -ENOMEM;
}

/* The pod's kept pairs (at most STORE_POD_FILES_MAX, their paths at most
 * STORE_POD_FILES_BYTES_MAX bytes: the answer is bounded), each judged
 * again by the policy its record names: the same pure function, so the
 * same word the verifier gave. A policy replaced since (the pod not judged
 * by the new one yet) or none: "unjudged". */
enum engine_status engine_pod_measurements(struct engine *e, const char *ns, const char *name,
                                           json_t **resp) {
    struct find_ctx f = {.e = e, .ns = ns, .name = name};
    struct measurements_ctx c = {NULL, json_array()};
    const char *policy = NULL;
    int r = c.arr ? 0 : -ENOMEM;

    pthread_mutex_lock(&e->lock);
    if (r == 0) {
        r = store_pod_foreach(e->store, find_named, &f);
    }
    if (r == 0 && f.ok) {
        policy = pod_policy_id(&f.found);
        c.policy = policy ? policy_set_find(e->policies, policy) : NULL;
        r = store_pod_files_foreach(e->store, f.found.uid, add_measurement, &c);
    }
    pthread_mutex_unlock(&e->lock);
    if (r < 0) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_FAILED, "store", "the measurements could not be read");
    }
    if (!f.ok) {
        json_decref(c.arr);
        return engine_error(resp, ENGINE_NOT_FOUND, "unknown pod", "no verdict about that pod");
    }
    *resp = json_pack("{s:{s:s,s:s},s:s,s:o,s:o,s:I,s:b}", "pod", "namespace", f.found.ns, "name",
                      f.found.name, "uid", f.found.uid, "policy",
                      policy ? json_string(policy) : json_null(), "measurements", c.arr, "dropped",
                      (json_int_t)f.found.files_dropped, "complete", !f.found.files_overflow);
    return *resp ? ENGINE_OK : engine_error(resp, ENGINE_FAILED, "memory", "out of memory");
}

enum engine_status engine_pod_reset(struct engine *e, const char *uid, const json_t *req,
                                    const char *actor, json_t **resp) {
    struct engine_write w;
    struct pod_record p;
    const char *reason;
    char err[200];
    json_t *d;
    int r;

    if (json_get_string(req, "reason", 1024, &reason, err, sizeof(err)) < 0 || !reason[0]) {
        return engine_error(resp, ENGINE_MALFORMED, "a reason is required", err);
    }
    engine_write_lock(e);
    r = store_pod_get(e->store, uid, &p);
    if (r < 0) {
        engine_write_unlock(e);
        return engine_error(resp, ENGINE_NOT_FOUND, "unknown pod", uid);
    }
    d = json_pack("{s:s,s:s,s:s}", "from", pod_state_name(p.state), "reason", reason, "actor",
                  actor ? actor : "");
    /* Back to unknown: the next round's measurements decide again. */
    p.state = POD_UNKNOWN;
    snprintf(p.reason, sizeof(p.reason), "reset by an operator: %.400s", reason);
    p.since_ms = engine_now_ms();
    p.unjudged = false;
    /* What the operator reviewed is forgiven: the kept measurements go, so
     * no later policy change judges them again. */
    p.files = 0;
    p.files_overflow = false;
    p.files_dropped = 0;
    p.policy[0] = 0;
    r = engine_write_begin(e, &w);
    if (r == 0) {
        r = store_pod_files_delete(e->store, uid);
    }
    if (r == 0) {
        r = store_pod_put(e->store, &p);
    }
    if (r == 0) {
        r = engine_audit(e, "reset", p.node, &p, d);
    }
    r = engine_write_end(e, &w, r);
    json_decref(d);
    engine_write_unlock(e);
    if (r < 0) {
        return engine_error(resp, ENGINE_FAILED, "store", "the reset could not be recorded");
    }
    engine_notify(e);
    *resp = json_pack("{s:s,s:s}", "uid", uid, "state", pod_state_name(p.state));
    return ENGINE_OK;
}

enum engine_status engine_policies(struct engine *e, json_t **resp) {
    json_t *arr = json_array();

    engine_reload_policies(e);
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < policy_set_count(e->policies); i++) {
        const struct policy *p = policy_set_get(e->policies, i);
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "name", policy_name(p), "kind",
                                        policy_kind(p) == POLICY_POD ? "PodPolicy" : "NodePolicy",
                                        "file", policy_file(p), "id", policy_id(p), "digest",
                                        policy_content_digest(p), "digests",
                                        (json_int_t)policy_digest_count(p)));
    }
    *resp = json_pack("{s:o,s:s}", "policies", arr, "errors",
                      e->policy_errors.len ? (char *)e->policy_errors.data : "");
    pthread_mutex_unlock(&e->lock);
    return ENGINE_OK;
}

struct sweep_ctx {
    struct engine *e;
    int64_t now;
    int stale;
    char names[64][STORE_NAME_MAX + 1];
};

static int sweep_node(const struct node_record *n, void *ud) {
    struct sweep_ctx *c = ud;
    if (node_state(c->e, n, c->now) == NODE_STALE && strcmp(n->reason, "stale") != 0 &&
        c->stale < 64) {
        snprintf(c->names[c->stale++], STORE_NAME_MAX + 1, "%s", n->name);
    }
    return 0;
}

/* Record that a node was seen stale, as one writer (its lock held):
 * true when recorded. */
static bool sweep_record(struct engine *e, const char *name, int64_t now, struct node_record *n) {
    struct engine_write w;
    bool done = false;
    int r;

    engine_node_lock(e, name);
    engine_write_lock(e);
    /* Read again under the node's lock: a round may have come meanwhile. */
    if (store_node_get(e->store, name, n) == 0 && node_state(e, n, now) == NODE_STALE &&
        strcmp(n->reason, "stale") != 0) {
        json_t *d = json_pack("{s:s,s:s,s:I}", "from", node_state_name(n->state), "to", "stale",
                              "last_attested_ms", (json_int_t)n->last_attested_ms);
        /* The stored state stays (a node that comes back resumes); the
         * reason records that it was seen stale. */
        snprintf(n->reason, sizeof(n->reason), "stale");
        /* The node first: when another verifier of the store wrote it
         * since the read (-ESTALE), it is skipped, with no record. */
        r = engine_write_begin(e, &w);
        r = r == 0 ? store_node_put(e->store, n) : r;
        r = r == 0 ? engine_audit(e, "state-change", n->name, NULL, d) : r;
        done = engine_write_end(e, &w, r) == 0;
        json_decref(d);
    }
    engine_write_unlock(e);
    engine_node_unlock(e, name);
    return done;
}

/* Used shared nonces are kept until they expired by this replica's clock
 * and one TTL more (a used one must stay refused while any replica could
 * still take it, and the clock of another may be behind by up to the
 * TTL: docs/verifier.md, "Clocks"); then they go, at most once a minute,
 * as one writer. Only the sweep touches e->nonces_purged_ms. */
#define NONCE_PURGE_MS 60000

static void purge_nonces(struct engine *e, int64_t now_ms) {
    struct engine_write w;
    int r;

    if (!e->shared_nonces || now_ms - e->nonces_purged_ms < NONCE_PURGE_MS) {
        return;
    }
    e->nonces_purged_ms = now_ms;
    engine_write_lock(e);
    r = engine_write_begin(e, &w);
    r = r == 0 ? store_nonce_purge(e->store, now_ms - (int64_t)e->cfg.nonce_ttl_ms) : r;
    r = engine_write_end(e, &w, r < 0 ? r : 0);
    engine_write_unlock(e);
    if (r < 0) {
        log_warn("the used nonces that expired could not be forgotten: %s", strerror(-r));
    }
}

int engine_sweep(struct engine *e, int64_t now_ms) {
    struct sweep_ctx *c = calloc(1, sizeof(*c));
    struct node_record *n = malloc(sizeof(*n));
    int count = 0;

    if (!c || !n) {
        free(c);
        free(n);
        return -ENOMEM;
    }
    c->e = e;
    c->now = now_ms;
    pthread_mutex_lock(&e->lock);
    store_node_foreach(e->store, sweep_node, c);
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < c->stale; i++) {
        count += sweep_record(e, c->names[i], now_ms, n);
    }
    free(c);
    free(n);
    engine_resolve_waiting(e);
    engine_rejudge_pods(e);
    purge_nonces(e, now_ms);
    return count;
}

struct pod_ref {
    char uid[64], node[STORE_NAME_MAX + 1];
};

struct pod_refs {
    struct pod_ref *v;
    size_t n, alloc;
};

static int add_pod_ref(const struct pod_record *p, void *ud) {
    struct pod_refs *l = ud;

    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 64;
        struct pod_ref *nv = realloc(l->v, na * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        l->v = nv;
        l->alloc = na;
    }
    snprintf(l->v[l->n].uid, sizeof(l->v[l->n].uid), "%s", p->uid);
    snprintf(l->v[l->n].node, sizeof(l->v[l->n].node), "%s", p->node);
    l->n++;
    return 0;
}

/* One pod judged again by the policy that matches it now, in one
 * transaction; true in *ret_changed when its state changed. */
static int rejudge_pod(struct engine *e, const struct pod_info *info, bool *ret_changed) {
    _cleanup_free_ struct node_record *n = calloc(1, sizeof(*n));
    struct engine_write w;
    struct pod_record rec;
    struct judgement j;
    const struct policy *p;
    int r;

    if (!n || judgement_init(&j, e, n) < 0) {
        return -ENOMEM;
    }
    engine_write_lock(e);
    r = store_pod_get(e->store, info->uid, &rec);
    p = r == 0 ? judge_pod_policy(e, info, &rec) : NULL;
    if (r < 0 || rec.state == POD_UNTRUSTED || strcmp(rec.policy, p ? policy_id(p) : "") == 0 ||
        store_node_get(e->store, info->node, n) < 0) {
        engine_write_unlock(e);
        judgement_free(&j);
        return r == -ENOENT ? 0 : r < 0 ? r : 0;
    }
    r = engine_write_begin(e, &w);
    if (r == 0) {
        r = judge_pod_again(&j, info);
    }
    if (r == 0) {
        r = judge_settle_pods(&j);
    }
    if (r == 0) {
        r = judge_write_audits(&j);
    }
    r = engine_write_end(e, &w, r);
    engine_write_unlock(e);
    *ret_changed = r == 0 && json_array_size(j.changed) > 0;
    judgement_free(&j);
    return r;
}

/* Record when a pod was first found gone (the inventory no longer knows
 * it, or knows it as deleted), or that it is back. The record goes once it
 * has been gone for longer than the inventory keeps deleted pods: until
 * then a verifier that restarted (and so forgot the deleted pods) still
 * attributes the pod's last measurements to it (judge.c recall_pod). An
 * untrusted pod's record leaves a `pod-forgotten` audit record. */
static void pod_gone(struct engine *e, const char *uid, bool gone) {
    struct pod_record rec = {0};
    int64_t now = engine_now_ms();
    struct engine_write w;
    int r;

    engine_write_lock(e);
    /* An untrusted static pod is the same pod when its mirror pod comes
     * back, however late (its kubelet may hold the mirror pod back): its
     * record stays until an operator resets it or deletes its node. */
    bool static_untrusted = store_pod_get(e->store, uid, &rec) == 0 && rec.state == POD_UNTRUSTED &&
                            strlen(uid) == 32 && strspn(uid, "0123456789abcdef") == 32;

    if (!rec.uid[0] || (!gone && rec.gone_ms == 0) ||
        (gone && rec.gone_ms && now - rec.gone_ms <= INVENTORY_GONE_KEEP_MS) ||
        (gone && rec.gone_ms && static_untrusted)) {
        engine_write_unlock(e);
        return; /* nothing changes */
    }
    r = engine_write_begin(e, &w);
    if (r == 0 && (!gone || rec.gone_ms == 0)) {
        rec.gone_ms = gone ? now : 0; /* gone since now, or back */
        r = store_pod_put(e->store, &rec);
    } else if (r == 0) {
        if (rec.state == POD_UNTRUSTED) {
            json_t *d = json_pack("{s:s,s:I}", "reason", rec.reason, "gone_ms",
                                  (json_int_t)rec.gone_ms);
            r = engine_audit(e, "pod-forgotten", rec.node, &rec, d);
            json_decref(d);
        }
        r = r == 0 ? store_pod_delete(e->store, uid) : r;
    }
    engine_write_end(e, &w, r);
    engine_write_unlock(e);
}

int engine_rejudge_pods(struct engine *e) {
    uint64_t inv_gen = inventory_generation(e->inv), pol_gen;
    struct pod_refs l = {0};
    bool changed = false;
    int r = 0;

    pthread_mutex_lock(&e->lock);
    pol_gen = e->policy_generation;
    if (pol_gen == e->rejudged_policy && inv_gen == e->rejudged_inventory) {
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    r = store_pod_foreach(e->store, add_pod_ref, &l);
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < l.n && r == 0; i++) {
        struct pod_info info;
        bool c = false;
        r = inventory_peek_uid(e->inv, l.v[i].uid, l.v[i].node, &info);
        if (r == 0 && strcmp(info.node, l.v[i].node) != 0) {
            /* Another node's pod claims the key (a static pod's hash): not
             * this record's pod. */
            json_decref(info.labels);
            json_decref(info.images);
            r = -ENOENT;
        }
        if (r < 0) {
            /* Not known even as deleted (an inventory that never loaded
             * knows nothing yet): gone since now, or for long enough. */
            if (inv_gen > 0) {
                pod_gone(e, l.v[i].uid, true);
            }
            r = 0;
            continue;
        }
        pod_gone(e, l.v[i].uid, info.gone);
        r = rejudge_pod(e, &info, &c);
        changed |= c;
        json_decref(info.labels);
        json_decref(info.images);
    }
    free(l.v);
    if (r == 0) {
        pthread_mutex_lock(&e->lock);
        e->rejudged_policy = pol_gen;
        e->rejudged_inventory = inv_gen;
        pthread_mutex_unlock(&e->lock);
    }
    if (changed) {
        engine_notify(e);
    }
    return r;
}

struct name_list {
    char (*v)[STORE_NAME_MAX + 1];
    size_t n, alloc;
};

static int add_name(const char *node, void *ud) {
    struct name_list *l = ud;

    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 16;
        char(*nv)[STORE_NAME_MAX + 1] = realloc(l->v, na * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        l->v = nv;
        l->alloc = na;
    }
    snprintf(l->v[l->n++], STORE_NAME_MAX + 1, "%s", node);
    return 0;
}

/* One node's waiting measurements, in one transaction. */
static int resolve_node(struct engine *e, const char *node, bool *ret_changed) {
    _cleanup_free_ struct node_record *n = calloc(1, sizeof(*n));
    struct engine_write w;
    struct judgement j;
    uint32_t before;
    int r;

    if (!n || judgement_init(&j, e, n) < 0) {
        return -ENOMEM;
    }
    engine_node_lock(e, node);
    engine_write_lock(e);
    r = store_node_get(e->store, node, n);
    if (r < 0 || n->pending == 0) {
        engine_write_unlock(e);
        engine_node_unlock(e, node);
        judgement_free(&j);
        return r == -ENOENT ? 0 : r;
    }
    before = n->pending;
    r = engine_write_begin(e, &w);
    if (r == 0) {
        r = judge_waiting(&j, (int64_t)e->cfg.attribution_grace_ms);
    }
    if (r == 0 && j.node_failed) {
        r = judge_node_failure(&j, j.node_reason);
    } else if (r == 0) {
        r = judge_settle_pods(&j);
    }
    if (r == 0 && (n->pending != before || j.node_failed)) {
        r = store_node_put(e->store, n);
    }
    /* The audit records queued by the judgement, then the commit. */
    r = r == 0 ? judge_write_audits(&j) : r;
    r = engine_write_end(e, &w, r);
    if (r == -ESTALE) {
        /* Another verifier of the store wrote the node since the read:
         * nothing recorded here; its waiting measurements are judged by
         * whoever comes next. */
        log_debug("node %s changed meanwhile: its waiting measurements are left", node);
        json_array_clear(j.changed);
        r = 0;
    } else if (r < 0) {
        log_error("judging the waiting measurements of node %s failed: %s", node, strerror(-r));
    }
    engine_write_unlock(e);
    engine_node_unlock(e, node);
    *ret_changed = r == 0 && json_array_size(j.changed) > 0;
    judgement_free(&j);
    return r;
}

int engine_resolve_waiting(struct engine *e) {
    struct name_list l = {0};
    bool changed = false;
    int r;

    pthread_mutex_lock(&e->lock);
    r = store_pending_nodes(e->store, add_name, &l);
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < l.n && r == 0; i++) {
        bool c = false;
        r = resolve_node(e, l.v[i], &c);
        changed |= c;
    }
    free(l.v);
    if (changed) {
        engine_notify(e);
    }
    return r;
}

struct count_ctx {
    struct engine *e;
    int64_t now;
    uint64_t nodes[NODE_STALE + 1], pods[POD_UNTRUSTED + 1], waiting;
    struct node_states ns;
    struct metrics_series series; /* per node and per namespace (metrics-series.c) */
    int r; /* a callback's failure: the store's foreach stops at it but returns 0 */
};

static int count_node(const struct node_record *n, void *ud) {
    struct count_ctx *c = ud;
    enum node_state s = node_state(c->e, n, c->now);

    c->waiting += n->pending;
    c->nodes[s]++;
    c->r = metrics_series_add_node(&c->series, n->name, s, n->last_attested_ms);
    return c->r;
}

static int count_pod(const struct pod_record *p, void *ud) {
    struct count_ctx *c = ud;
    const char *why;
    enum pod_state s = pod_state(&c->ns, p, &why);

    c->pods[s]++;
    c->r = metrics_series_add_pod(&c->series, p->ns, s);
    return c->r;
}

/* /metrics' text: the per-node series make it grow with the nodes (about
 * 600 bytes a node at most, METRICS_NODES_MAX of them). */
#define ENGINE_METRICS_TEXT_MAX (16u << 20)

const int64_t engine_latency_bounds_us[ENGINE_LATENCY_BOUNDS] = {
        1000, 5000, 10000, 50000, 100000, 500000, 1000000,
};

/* The store's nodes and pods into c, under e->lock. A store that cannot be
 * read fails the scrape: counts of part of it would read as fewer
 * untrusted pods than there are. */
static int count_store(struct engine *e, struct count_ctx *c) {
    int r = store_node_foreach(e->store, count_node, c);

    if (r >= 0) {
        r = store_pod_foreach(e->store, count_pod, c);
    }
    return r < 0 ? r : c->r;
}

int engine_metrics(struct engine *e, char **ret_text) {
    struct count_ctx c = {.e = e, .now = engine_now_ms()};
    struct kbuf b = KBUF_INIT(ENGINE_METRICS_TEXT_MAX);
    uint64_t cum = 0;
    int r;

    c.ns = (struct node_states){.e = e, .now = c.now};
    metrics_series_init(&c.series, METRICS_NODES_MAX, METRICS_NAMESPACES_MAX);
    pthread_mutex_lock(&e->lock);
    r = count_store(e, &c);
    kbuf_printf(&b,
                "# HELP kima_attestations_total Evidence rounds by result.\n"
                "# TYPE kima_attestations_total counter\n"
                "kima_attestations_total{result=\"trusted\"} %" PRIu64 "\n"
                "kima_attestations_total{result=\"untrusted\"} %" PRIu64 "\n"
                "kima_attestations_total{result=\"rejected\"} %" PRIu64 "\n",
                e->m.evidence_ok, e->m.evidence_failed, e->m.evidence_rejected);
    kbuf_printf(&b,
                "# HELP kima_ima_entries_checked_total IMA entries replayed and judged.\n"
                "# TYPE kima_ima_entries_checked_total counter\n"
                "kima_ima_entries_checked_total %" PRIu64 "\n",
                e->m.entries_checked);
    kbuf_printf(&b,
                "# HELP kima_waiting_measurements Measurements waiting for their pod to appear "
                "in the inventory.\n"
                "# TYPE kima_waiting_measurements gauge\n"
                "kima_waiting_measurements %" PRIu64 "\n"
                "# HELP kima_audit_suppressed_total Repeated refusal and unattributed records "
                "left out of the audit log by its rate limit.\n"
                "# TYPE kima_audit_suppressed_total counter\n"
                "kima_audit_suppressed_total %" PRIu64 "\n",
                c.waiting, e->m.audit_suppressed);
    kbuf_printf(&b,
                "# HELP kima_store_commits_total Store transactions committed (group commit: "
                "one fsync each, many rounds' writes in one).\n"
                "# TYPE kima_store_commits_total counter\n"
                "kima_store_commits_total %" PRIu64 "\n"
                "# HELP kima_store_rounds_committed_total Writers (rounds and operator actions) "
                "those transactions carried.\n"
                "# TYPE kima_store_rounds_committed_total counter\n"
                "kima_store_rounds_committed_total %" PRIu64 "\n"
                "# HELP kima_store_commits_failed_total Batches whose audit sync or commit "
                "failed: every writer in them answered as failed.\n"
                "# TYPE kima_store_commits_failed_total counter\n"
                "kima_store_commits_failed_total %" PRIu64 "\n",
                e->m.commits, e->m.rounds_committed, e->m.commits_failed);
    kbuf_printf(&b, "# HELP kima_evidence_seconds Time to judge one evidence.\n"
                    "# TYPE kima_evidence_seconds histogram\n");
    for (int i = 0; i < ENGINE_LATENCY_BOUNDS; i++) {
        cum += e->m.verify_us_buckets[i];
        /* 0.001, 0.005, ... 1: seconds as Prometheus writes them. */
        kbuf_printf(&b, "kima_evidence_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                    (double)engine_latency_bounds_us[i] / 1e6, cum);
    }
    cum += e->m.verify_us_buckets[ENGINE_LATENCY_BOUNDS];
    kbuf_printf(&b, "kima_evidence_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    kbuf_printf(&b, "kima_evidence_seconds_sum %.6f\nkima_evidence_seconds_count %" PRIu64 "\n",
                (double)e->m.verify_us_sum / 1e6, e->m.verify_count);
    kbuf_printf(&b, "# HELP kima_nodes Nodes by state.\n# TYPE kima_nodes gauge\n");
    for (int i = 0; i <= NODE_STALE; i++) {
        kbuf_printf(&b, "kima_nodes{state=\"%s\"} %" PRIu64 "\n",
                    node_state_name((enum node_state)i), c.nodes[i]);
    }
    if (e->lease_used) {
        kbuf_printf(&b,
                    "# HELP kima_leader 1 while this verifier holds the Lease: it alone writes "
                    "labels and Events.\n# TYPE kima_leader gauge\nkima_leader %d\n",
                    e->leader ? 1 : 0);
    }
    engine_enforce_metrics(e, &b);
    kbuf_printf(&b, "# HELP kima_pods Pods by state.\n# TYPE kima_pods gauge\n");
    for (int i = 0; i <= POD_UNTRUSTED; i++) {
        kbuf_printf(&b, "kima_pods{state=\"%s\"} %" PRIu64 "\n", pod_state_name((enum pod_state)i),
                    c.pods[i]);
    }
    kbuf_printf(&b,
                "# HELP kima_attestation_interval_seconds The agents' interval (--interval-ms): "
                "a node that missed 3 reads as stale.\n"
                "# TYPE kima_attestation_interval_seconds gauge\n"
                "kima_attestation_interval_seconds %.3f\n",
                (double)e->cfg.interval_ms / 1000);
    pthread_mutex_unlock(&e->lock);
    free(c.ns.v);
    if (r >= 0) {
        r = metrics_series_print(&c.series, &b);
    }
    metrics_series_free(&c.series);
    if (r < 0 || !b.data) {
        if (r < 0) {
            log_error("/metrics: %s", strerror(-r));
        }
        kbuf_free(&b);
        return r < 0 ? r : -ENOMEM;
    }
    *ret_text = (char *)kbuf_steal(&b, NULL);
    return 0;
}

enum engine_status engine_audit_head(struct engine *e, json_t **resp) {
    struct audit_head h;

    if (!e->audit) {
        return engine_error(resp, ENGINE_NOT_FOUND, "no audit log", "this verifier writes none");
    }
    if (audit_head(e->audit, &h) < 0 || !(*resp = audit_head_to_json(&h))) {
        return engine_error(resp, ENGINE_FAILED, "audit", "the audit head could not be signed");
    }
    return ENGINE_OK;
}
