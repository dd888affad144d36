/* SPDX-License-Identifier: Apache-2.0 */
/* Optional enforcement by the label thread (docs/kubernetes.md,
 * "Enforcement"), each step audited and counted, written by the Lease's
 * holder only (kube_write):
 *  - eviction of untrusted pods through the Eviction API (policy/v1), so
 *    that PodDisruptionBudgets apply: 429 (a budget says no) is retried
 *    with a backoff of the pod's own, 404 (gone) and a UID that no longer
 *    matches (409: another pod under the name) end it, other answers are
 *    logged and retried with the same backoff;
 *  - the taint <prefix>/untrusted on untrusted nodes (NoSchedule, and
 *    NoExecute when asked), removed once the node attests trusted again:
 *    read the node, merge the list (taint.c: others' taints kept), write it
 *    with the resourceVersion read (409: read again and retry). */
#include "kube-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "log.h"
#include "taint.h"
#include "time-util.h"

#define EVICT_BACKOFF_MIN_MS 1000
#define EVICT_BACKOFF_MAX_MS 60000
#define TAINT_BACKOFF_MIN_MS 1000
#define TAINT_BACKOFF_MAX_MS 60000
#define TAINT_ABSENT_MS      60000      /* a node the API does not have: asked again after */
#define TAINT_CONFLICTS_MAX  5          /* 409s one node's write retries at once */
#define KUBE_NODE_MAX        (4u << 20) /* a Node object */

static int64_t next_backoff(int64_t cur, int64_t lo, int64_t hi) {
    int64_t b = cur ? cur * 2 : lo;

    return b > hi ? hi : b;
}

/* What an eviction came to, for the pod's "own" state and the audit. */
enum evict_result {
    EVICT_DONE,    /* accepted, or the pod is gone */
    EVICT_REFUSED, /* 429: a disruption budget */
    EVICT_FAILED,  /* another answer: retried */
    EVICT_SKIPPED, /* not the writer: nothing sent */
};

/* POST .../pods/NAME/eviction with the pod's UID as a precondition. */
static enum evict_result evict_request(struct kube *k, const char *ns, const char *name,
                                       const char *uid, int *ret_status, char *why, size_t whysz) {
    char path[700];
    json_t *body, *resp = NULL;
    int status;

    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/eviction", ns, name);
    body = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:{s:s}}}", "apiVersion", "policy/v1", "kind",
                     "Eviction", "metadata", "name", name, "namespace", ns, "deleteOptions",
                     "preconditions", "uid", uid);
    status = body ? kube_write(k, "POST", path, "application/json", body, &resp) : -ENOMEM;
    json_decref(body);
    *ret_status = status;
    snprintf(why, whysz, "%.300s", kube_api_reason(resp));
    json_decref(resp);
    if (status == -EPERM) {
        return EVICT_SKIPPED;
    }
    if (status == 200 || status == 201) {
        snprintf(why, whysz, "evicted");
        return EVICT_DONE;
    }
    if (status == 404 || status == 409) {
        snprintf(why, whysz, status == 404 ? "the pod is gone" : "another pod has the name now");
        return EVICT_DONE;
    }
    return status == 429 ? EVICT_REFUSED : EVICT_FAILED;
}

static void evict_audit(struct kube *k, enum engine_enforce what, const char *type,
                        const char *node, const struct audit_pod *ap, json_t *d) {
    if (engine_enforce_record(k->e, what, type, node, ap, d) < 0) {
        log_error("audit: the %s record of %s/%s could not be written", type ? type : "-",
                  ap->namespace_, ap->name);
    }
}

int kube_evict(struct kube *k, const char *pkey) {
    char ns[256], name[256], uid[64], node[256], why[320], st[16];
    int64_t now = time_mono_ms(), backoff_ms;
    json_int_t tries;
    enum evict_result res;
    json_t *a, *own, *d;
    int status;

    if (kube_write_budget_ms(k) <= 0) {
        return 0; /* not the Lease's holder: nothing recorded either */
    }
    pthread_mutex_lock(&k->lock);
    a = json_object_get(k->applied, pkey);
    own = a ? kube_own(a) : NULL;
    if (!own || json_integer_value(json_object_get(own, "evict_next_ms")) > now) {
        pthread_mutex_unlock(&k->lock);
        return 0;
    }
    snprintf(st, sizeof(st), "%s", kube_str_or_empty(json_object_get(own, "evict")));
    snprintf(ns, sizeof(ns), "%s", json_string_value(json_object_get(a, "ns")));
    snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(a, "name")));
    snprintf(uid, sizeof(uid), "%s", json_string_value(json_object_get(a, "uid")));
    snprintf(node, sizeof(node), "%s", json_string_value(json_object_get(a, "node")));
    tries = json_integer_value(json_object_get(own, "evict_tries"));
    backoff_ms = json_integer_value(json_object_get(own, "evict_backoff_ms"));
    pthread_mutex_unlock(&k->lock);
    if (strcmp(st, "done") == 0) {
        return 0;
    }
    struct audit_pod ap = {ns, name, uid};
    d = json_pack("{s:I}", "attempt", tries + 1);
    /* Recorded before the first attempt: the request is what an operator
     * must find, whatever its answer. */
    evict_audit(k, ENFORCE_EVICT_REQUESTED, st[0] ? NULL : "eviction-requested",
                node[0] ? node : NULL, &ap, d);
    res = evict_request(k, ns, name, uid, &status, why, sizeof(why));
    if (res == EVICT_SKIPPED) {
        json_decref(d);
        return 0;
    }
    json_object_set_new(d, "status", json_integer(status));
    json_object_set_new(d, "message", json_string(why));
    if (res == EVICT_DONE) {
        log_info("kubernetes: evicting untrusted %s/%s: %s", ns, name, why);
        evict_audit(k, ENFORCE_EVICT_DONE, "eviction-done", node[0] ? node : NULL, &ap, d);
    } else {
        /* A refusal or a failure is recorded once a pod (the first of
         * each), then counted: a budget may refuse for hours. */
        bool first = strcmp(st, res == EVICT_REFUSED ? "refused" : "failed") != 0;
        backoff_ms = next_backoff(backoff_ms, EVICT_BACKOFF_MIN_MS, EVICT_BACKOFF_MAX_MS);
        json_object_set_new(d, "retry_in_ms", json_integer(backoff_ms));
        if (first) {
            log_warn("kubernetes: evicting untrusted %s/%s: %d %s; retrying", ns, name, status,
                     why);
        }
        evict_audit(k, res == EVICT_REFUSED ? ENFORCE_EVICT_REFUSED : ENFORCE_EVICT_FAILED,
                    !first                 ? NULL
                    : res == EVICT_REFUSED ? "eviction-refused"
                                           : "eviction-failed",
                    node[0] ? node : NULL, &ap, d);
    }
    json_decref(d);
    pthread_mutex_lock(&k->lock);
    a = json_object_get(k->applied, pkey);
    if (a) {
        own = kube_own(a);
        json_object_set_new(own, "evict",
                            json_string(res == EVICT_DONE      ? "done"
                                        : res == EVICT_REFUSED ? "refused"
                                                               : "failed"));
        json_object_set_new(own, "evict_tries", json_integer(tries + 1));
        json_object_set_new(own, "evict_backoff_ms", json_integer(backoff_ms));
        json_object_set_new(own, "evict_next_ms", json_integer(now + backoff_ms));
    }
    pthread_mutex_unlock(&k->lock);
    return 1;
}

/* One read-merge-write of a node's taints: 1 when written, 0 when nothing
 * was to change, -ESTALE on 409 (read again), -ENOENT when the API has no
 * such node, -EPERM when this verifier may not write, another negative
 * errno (logged). *ret_kept: others' taints on the node. */
static int taint_once(struct kube *k, const char *node, enum taint_want want, size_t *ret_kept) {
    char path[400], key[160], now[32], rv[KUBE_RV_MAX + 1];
    json_t *resp = NULL, *taints = NULL, *patch, *presp = NULL;
    const char *prv;
    int status, r;

    snprintf(key, sizeof(key), "%s/untrusted", k->prefix);
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
    status = kube_request_capped(k, "GET", path, NULL, NULL, KUBE_TIMEOUT_MS, KUBE_NODE_MAX, &resp);
    prv = json_string_value(json_object_get(json_object_get(resp, "metadata"), "resourceVersion"));
    if (status != 200 || !prv || !prv[0] || strlen(prv) > KUBE_RV_MAX) {
        if (status != 404) {
            log_warn("kubernetes: reading node %s: %d %s", node, status,
                     status == 200 ? "no resourceVersion" : kube_api_reason(resp));
        }
        json_decref(resp);
        return status == 404 ? -ENOENT : -EIO;
    }
    snprintf(rv, sizeof(rv), "%s", prv);
    kube_iso_time(time_wall_ms(), now, sizeof(now));
    r = taint_plan(json_object_get(json_object_get(resp, "spec"), "taints"), key, want,
                   k->taint_noexecute, now, &taints);
    *ret_kept = 0;
    if (r > 0) {
        size_t i;
        json_t *t;
        json_array_foreach(taints, i, t) {
            *ret_kept += strcmp(json_string_value(json_object_get(t, "key")), key) != 0;
        }
    }
    json_decref(resp);
    if (r <= 0) {
        if (r < 0) {
            log_warn("kubernetes: node %s: its taints cannot be rewritten (%s)", node,
                     r == -E2BIG ? "too many" : "not a list of taints");
        }
        return r;
    }
    /* The resourceVersion makes the write conditional: a list changed
     * since it was read is not overwritten (409). */
    patch = json_pack("{s:{s:s},s:{s:o}}", "metadata", "resourceVersion", rv, "spec", "taints",
                      taints);
    status = patch ? kube_write(k, "PATCH", path, "application/merge-patch+json", patch, &presp)
                   : -ENOMEM;
    json_decref(patch);
    if (status != 200 && status != 409 && status != -EPERM) {
        log_warn("kubernetes: tainting node %s: %d %s", node, status, kube_api_reason(presp));
    }
    json_decref(presp);
    return status == 200 ? 1 : status == 409 ? -ESTALE : status == -EPERM ? -EPERM : -EIO;
}

/* A node's taint as `want` says, 409s retried: 0 (done, or nothing to do),
 * or a negative errno as taint_once. Audited when written. */
static int taint_node(struct kube *k, const char *node, enum taint_want want, const char *state) {
    size_t kept = 0;
    int r = -ESTALE;

    for (int i = 0; i < TAINT_CONFLICTS_MAX && r == -ESTALE; i++) {
        r = taint_once(k, node, want, &kept);
        if (r == -ESTALE) {
            log_info("kubernetes: node %s changed while being tainted (409): reading it again",
                     node);
        }
    }
    if (r == 1) {
        char key[160];
        json_t *d;
        snprintf(key, sizeof(key), "%s/untrusted", k->prefix);
        d = json_pack("{s:s,s:s,s:s,s:I}", "taint", key, "effects",
                      want == TAINT_REMOVE ? ""
                      : k->taint_noexecute ? "NoSchedule,NoExecute"
                                           : "NoSchedule",
                      "node_state", state, "others_kept", (json_int_t)kept);
        log_info("kubernetes: node %s (%s): taint %s %s", node, state, key,
                 want == TAINT_ADD ? "added" : "removed");
        if (engine_enforce_record(
                    k->e, want == TAINT_ADD ? ENFORCE_TAINT_ADDED : ENFORCE_TAINT_REMOVED,
                    want == TAINT_ADD ? "node-tainted" : "node-untainted", node, NULL, d) < 0) {
            log_error("audit: the taint record of node %s could not be written", node);
        }
        json_decref(d);
        r = 0;
    }
    return r;
}

/* The taint's bookkeeping of one node after an attempt. */
static void taint_note(struct kube *k, const char *node, enum taint_want want, int r) {
    json_t *n = json_object_get(k->taints, node);
    int64_t now = time_mono_ms(), b;

    if (!n) {
        n = json_object();
        json_object_set_new(k->taints, node, n);
    }
    if (r == 0) {
        json_object_set_new(n, "tainted", json_boolean(want == TAINT_ADD));
        json_object_set_new(n, "backoff_ms", json_integer(0));
        json_object_set_new(n, "next_ms", json_integer(0));
        return;
    }
    json_object_del(n, "tainted"); /* not known: read it again when due */
    b = r == -ENOENT ? TAINT_ABSENT_MS
                     : next_backoff(json_integer_value(json_object_get(n, "backoff_ms")),
                                    TAINT_BACKOFF_MIN_MS, TAINT_BACKOFF_MAX_MS);
    json_object_set_new(n, "backoff_ms", json_integer(r == -ENOENT ? 0 : b));
    json_object_set_new(n, "next_ms", json_integer(now + b));
}

void kube_taint_pass(struct kube *k) {
    json_t *resp = NULL, *n;
    int64_t now = time_mono_ms();
    int writes = 0;
    size_t i;

    /* What was written is read again now and then: a taint removed by
     * hand, or written by another replica while it held the Lease. */
    if (now - k->taints_read_ms >= TAINT_RECHECK_MS) {
        json_object_clear(k->taints);
        k->taints_read_ms = now;
    }
    if (engine_nodes(k->e, &resp) != ENGINE_OK) {
        json_decref(resp);
        return;
    }
    json_array_foreach(json_object_get(resp, "nodes"), i, n) {
        const char *name = json_string_value(json_object_get(n, "name"));
        const char *state = kube_str_or_empty(json_object_get(n, "state"));
        json_t *c = name ? json_object_get(k->taints, name) : NULL;
        enum taint_want want;
        int r;
        /* Failed: untrusted (a node failure, sticky until an operator
         * deletes the node). Trusted again: its last evidence verified.
         * Any other state (registered, active, stale) leaves it as it is. */
        if (strcmp(state, "untrusted") == 0) {
            want = TAINT_ADD;
        } else if (strcmp(state, "trusted") == 0) {
            want = TAINT_REMOVE;
        } else {
            continue;
        }
        if (!kube_k8s_name(name) ||
            (json_is_boolean(json_object_get(c, "tainted")) &&
             json_is_true(json_object_get(c, "tainted")) == (want == TAINT_ADD)) ||
            json_integer_value(json_object_get(c, "next_ms")) > now) {
            continue;
        }
        if (writes++ >= TAINT_NODES_PER_PASS) {
            break; /* the next pass goes on */
        }
        r = taint_node(k, name, want, state);
        if (r == -EPERM) {
            break; /* not the Lease's holder (any more) */
        }
        taint_note(k, name, want, r);
    }
    json_decref(resp);
}
