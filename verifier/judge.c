/* SPDX-License-Identifier: Apache-2.0 */
/* Attribution and judgement of measurements (see judge.h). Where a pod runs
 * is the inventory's word alone: a node's measurement in the cgroup of a pod
 * that the inventory places on another node is a lie an honest kernel cannot
 * tell, and fails the node that told it, never the pod. */
#include "judge.h"

#include "engine-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "json-util.h"
#include "log.h"

#define CHANGED_MAX     256  /* pods listed in one answer */
#define AUDIT_PATH_MAX  4096 /* bytes of a path an audit record keeps */
#define WAITING_BATCH   64
#define NODE_AUDITS_MAX 64 /* node-level violation records one judgement writes */

enum place {
    PLACE_NODE,     /* a host process: the NodePolicy's */
    PLACE_UNPLACED, /* in the pod hierarchy, but no pod can be named */
    PLACE_POD,      /* a pod the inventory places on this node */
    PLACE_FOREIGN,  /* a pod the inventory places on another node */
    PLACE_WAIT,     /* a pod or container the inventory does not know (yet) */
};

int measurement_from_entry(const struct ima_entry *e, struct measurement *m, char *why,
                           size_t whysz) {
    const struct ima_field *d = ima_entry_field(e, e->legacy ? IMA_FIELD_D : IMA_FIELD_D_NG);
    const struct ima_field *nm = ima_entry_field(e, e->legacy ? IMA_FIELD_N : IMA_FIELD_N_NG);
    struct ima_digest_field df;
    char hex[2 * 64 + 1];

    memset(m, 0, sizeof(*m));
    m->index = e->index;
    m->violation = e->violation;
    log_escape(e->name, e->name_len, m->template_name, sizeof(m->template_name));
    if (ima_entry_attribute(e, &m->ref) < 0) {
        snprintf(why, whysz,
                 "IMA entry %" PRIu64 " (template %s): its cgroup field does not read as its "
                 "template says (a renamed entry)",
                 e->index, m->template_name);
        return -EBADMSG;
    }
    if (!d) {
        d = ima_entry_field(e, IMA_FIELD_D_NGV2);
    }
    if (!d || !nm || ima_field_decode_digest(d, &df, NULL) < 0 || df.digest_len > 64) {
        m->path = (const uint8_t *)"";
        return 0; /* no file digest: judged as such */
    }
    snprintf(m->digest, sizeof(m->digest), "%.*s:%s", (int)df.algo_len, df.algo,
             hex_encode(df.digest, df.digest_len, hex));
    if (e->legacy) {
        m->path = nm->data;
        m->path_len = nm->len;
    } else {
        const char *s;
        ima_field_string(nm, &s, &m->path_len);
        m->path = (const uint8_t *)s;
    }
    if (m->path_len > STORE_PATH_MAX) {
        snprintf(why, whysz,
                 "IMA entry %" PRIu64 " records a path of %zu bytes: no kernel records paths "
                 "longer than %d",
                 e->index, m->path_len, STORE_PATH_MAX);
        return -E2BIG;
    }
    return 0;
}

enum check measurement_check(const struct policy *p, const struct measurement *m, char *reason,
                             size_t reasonsz) {
    char esc[300];
    const char *path = (const char *)m->path;

    switch (policy_judge(p, path, m->path_len, m->digest, m->violation)) {
    case POLICY_RESULT_PASS:
        return CHECK_PASS;
    case POLICY_RESULT_EXCLUDED:
        return m->violation ? CHECK_IGNORED : CHECK_PASS;
    case POLICY_RESULT_NO_DIGEST:
        snprintf(reason, reasonsz, "entry %" PRIu64 " (template %s) carries no file digest",
                 m->index, m->template_name);
        return CHECK_FAIL;
    case POLICY_RESULT_VIOLATION:
        snprintf(reason, reasonsz, "IMA violation (ToMToU or open-writers) on %s",
                 log_escape(path, m->path_len, esc, sizeof(esc)));
        return CHECK_FAIL;
    case POLICY_RESULT_NOT_LISTED:
        break;
    }
    snprintf(reason, reasonsz, "%s %s is not in policy %s",
             log_escape(path, m->path_len, esc, sizeof(esc)), m->digest, policy_name(p));
    return CHECK_FAIL;
}

int judgement_init(struct judgement *j, struct engine *e, struct node_record *n) {
    memset(j, 0, sizeof(*j));
    j->e = e;
    j->n = n;
    j->changed = json_array();
    return j->changed ? 0 : -ENOMEM;
}

void judgement_free(struct judgement *j) {
    json_decref(j->changed);
    free(j->pods);
    for (size_t i = 0; i < j->naudits; i++) {
        json_decref(j->audits[i].details);
    }
    free(j->audits);
    j->changed = NULL;
    j->pods = NULL;
    j->audits = NULL;
    j->naudits = j->audits_alloc = 0;
}

static int queue_audit(struct judgement *j, const char *type, const struct pod_record *pod,
                       json_t *details, bool noisy);

int judge_audit(struct judgement *j, const char *type, const struct pod_record *pod,
                json_t *details) {
    return queue_audit(j, type, pod, details, false);
}

int judge_audit_noisy(struct judgement *j, const char *type, const struct pod_record *pod,
                      json_t *details) {
    return queue_audit(j, type, pod, details, true);
}

static int queue_audit(struct judgement *j, const char *type, const struct pod_record *pod,
                       json_t *details, bool noisy) {
    struct judge_audit *a;

    if (j->naudits == j->audits_alloc) {
        size_t na = j->audits_alloc ? 2 * j->audits_alloc : 8;
        struct judge_audit *nv = realloc(j->audits, na * sizeof(*nv));
        if (!nv) {
            json_decref(details);
            return -ENOMEM;
        }
        j->audits = nv;
        j->audits_alloc = na;
    }
    a = &j->audits[j->naudits++];
    memset(a, 0, sizeof(*a));
    snprintf(a->type, sizeof(a->type), "%s", type);
    if (pod) {
        a->has_pod = true;
        snprintf(a->ns, sizeof(a->ns), "%s", pod->ns);
        snprintf(a->name, sizeof(a->name), "%s", pod->name);
        snprintf(a->uid, sizeof(a->uid), "%s", pod->uid);
    }
    a->details = details;
    a->noisy = noisy;
    return 0;
}

int judge_write_audits(struct judgement *j) {
    int r = 0;

    for (size_t i = 0; i < j->naudits && r == 0; i++) {
        struct judge_audit *a = &j->audits[i];
        struct pod_record pod = {0};
        if (a->has_pod) {
            snprintf(pod.ns, sizeof(pod.ns), "%s", a->ns);
            snprintf(pod.name, sizeof(pod.name), "%s", a->name);
            snprintf(pod.uid, sizeof(pod.uid), "%s", a->uid);
        }
        r = a->noisy
                    ? engine_audit_noisy(j->e, a->type, j->n->name, a->has_pod ? &pod : NULL,
                                         a->details)
                    : engine_audit(j->e, a->type, j->n->name, a->has_pod ? &pod : NULL, a->details);
    }
    return r;
}

static void pod_changed(struct judgement *j, const struct pod_record *p) {
    if (json_array_size(j->changed) < CHANGED_MAX) {
        json_array_append_new(j->changed, json_pack("{s:s,s:s,s:s,s:s,s:s}", "uid", p->uid,
                                                    "namespace", p->ns, "name", p->name, "state",
                                                    pod_state_name(p->state), "reason", p->reason));
    }
}

static struct judge_pod *met_pod(struct judgement *j, const char *uid) {
    for (size_t i = 0; i < j->npods; i++) {
        if (strcmp(j->pods[i].rec.uid, uid) == 0) {
            return &j->pods[i];
        }
    }
    return NULL;
}

/* The id of the policy behind a pod's verdict ("<name>@sha256:<canonical
 * hex>"): the one judging it in this judgement, else the one its record
 * names; NULL when none does. */
static const char *verdict_policy(struct judgement *j, const struct pod_record *p) {
    const struct judge_pod *jp = met_pod(j, p->uid);

    if (jp) {
        return jp->policy ? policy_id(jp->policy) : NULL;
    }
    return p->policy[0] && strcmp(p->policy, JUDGE_POLICY_INCOMPLETE) != 0 ? p->policy : NULL;
}

static json_t *policy_json(const char *id) {
    return id ? json_string(id) : json_null();
}

/* Write a pod's record; when it is one this judgement met, remember it as
 * the stored one (settle() skips writing it again unchanged). */
static int put_pod(struct judgement *j, const struct pod_record *p) {
    int r = store_pod_put(j->e->store, p);

    for (size_t i = 0; r == 0 && i < j->npods; i++) {
        if (&j->pods[i].rec == p) {
            j->pods[i].stored = *p;
            j->pods[i].in_store = true;
        }
    }
    return r;
}

int judge_set_pod_state(struct judgement *j, struct pod_record *p, enum pod_state state,
                        const char *reason) {
    json_t *d;
    int r;

    if (p->state == POD_UNTRUSTED) {
        return 0;
    }
    if (p->state == state) {
        /* No change of verdict, no record; the reason shown stays true. */
        snprintf(p->reason, sizeof(p->reason), "%s", reason);
        return 0;
    }
    d = json_pack("{s:s,s:s,s:s,s:o}", "from", pod_state_name(p->state), "to",
                  pod_state_name(state), "reason", reason, "policy",
                  policy_json(verdict_policy(j, p)));
    p->state = state;
    snprintf(p->reason, sizeof(p->reason), "%s", reason);
    p->since_ms = engine_now_ms();
    r = judge_audit(j, "state-change", p, d);
    if (r == 0) {
        r = put_pod(j, p);
    }
    pod_changed(j, p);
    return r;
}

/* The details of a violation record: the measurement as the node sent it
 * (the path escaped when it is not UTF-8, and cut when long). */
static json_t *violation_details(const struct measurement *m, const char *policy) {
    json_t *d = json_object();

    json_object_set_new(d, "path", json_string_untrusted(m->path, m->path_len, AUDIT_PATH_MAX));
    json_object_set_new(d, "digest", json_string(m->digest));
    json_object_set_new(d, "policy", policy_json(policy));
    json_object_set_new(d, "entry", json_integer((json_int_t)m->index));
    json_object_set_new(d, "ima_violation", json_boolean(m->violation));
    return d;
}

static void measurement_from_kept(const struct pod_file *f, struct measurement *m) {
    memset(m, 0, sizeof(*m));
    m->index = f->entry;
    snprintf(m->template_name, sizeof(m->template_name), "kept");
    m->path = f->path;
    m->path_len = f->path_len;
    snprintf(m->digest, sizeof(m->digest), "%s", f->digest);
    m->violation = f->violation;
}

static int fail_in_pod(struct judgement *j, struct judge_pod *jp, const struct measurement *m,
                       const char *reason);

struct kept_ctx {
    struct judgement *j;
    struct judge_pod *jp;
    int r;
};

static int judge_one_kept(const struct pod_file *f, void *ud) {
    struct kept_ctx *c = ud;
    struct measurement m;
    char reason[STORE_REASON_MAX];

    measurement_from_kept(f, &m);
    if (measurement_check(c->jp->policy, &m, reason, sizeof(reason)) != CHECK_FAIL) {
        return 0;
    }
    c->r = fail_in_pod(c->j, c->jp, &m, reason);
    return 1; /* untrusted now: the rest need no judging */
}

/* A pod's kept measurements judged by the policy that matches it now, if
 * not all of them were judged by exactly that policy (one matched only now,
 * or it changed). Without all of them kept, the pod cannot be judged whole
 * again: it is `incomplete` and cannot read trusted. */
static int judge_kept(struct judgement *j, struct judge_pod *jp) {
    const char *id = jp->policy ? policy_id(jp->policy) : "";
    struct kept_ctx c = {j, jp, 0};
    int r;

    if (strcmp(jp->rec.policy, id) == 0 || jp->rec.state == POD_UNTRUSTED) {
        snprintf(jp->rec.policy, sizeof(jp->rec.policy), "%s", id);
        return 0;
    }
    if (!jp->policy) {
        jp->rec.policy[0] = 0; /* what comes now is judged by nothing */
        return 0;
    }
    if (jp->rec.files_overflow) {
        /* Not all kept: never judged whole again, whichever policy comes
         * (a policy changed and changed back must not make it whole). */
        jp->incomplete = true;
        snprintf(jp->rec.policy, sizeof(jp->rec.policy), "%s", JUDGE_POLICY_INCOMPLETE);
        return 0;
    }
    r = store_pod_files_foreach(j->e->store, jp->rec.uid, judge_one_kept, &c);
    if (r < 0) {
        return r;
    }
    snprintf(jp->rec.policy, sizeof(jp->rec.policy), "%s", id);
    return c.r;
}

/* Keep a pod's measurement (distinct path, digest and violation), so that it
 * can be judged again; past STORE_POD_FILES_MAX the pod is marked as not
 * all kept. */
static int keep_measurement(struct judgement *j, struct judge_pod *jp,
                            const struct measurement *m) {
    struct pod_file *f;
    int r;

    if (jp->rec.files_overflow) {
        jp->rec.files_dropped++;
        return 0;
    }
    if (jp->rec.files >= STORE_POD_FILES_MAX ||
        jp->rec.files_bytes + m->path_len > STORE_POD_FILES_BYTES_MAX) {
        jp->rec.files_overflow = true;
        jp->rec.files_dropped++;
        if (jp->policy && strcmp(jp->rec.policy, policy_id(jp->policy)) != 0) {
            jp->incomplete = true; /* this one is judged live, earlier ones were not */
        }
        return 0;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    memcpy(f->path, m->path, m->path_len);
    f->path_len = m->path_len;
    snprintf(f->digest, sizeof(f->digest), "%s", m->digest);
    f->violation = m->violation;
    f->entry = m->index;
    r = store_pod_file_add(j->e->store, jp->rec.uid, f);
    free(f);
    if (r == 1) {
        jp->rec.files++;
        jp->rec.files_bytes += m->path_len;
    }
    return r < 0 ? r : 0;
}

static const struct policy *policy_by_id(const struct policy_set *set, const char *id) {
    return id[0] ? policy_set_find(set, id) : NULL;
}

const struct policy *judge_pod_policy(const struct engine *e, const struct pod_info *info,
                                      const struct pod_record *rec) {
    const struct policy *p =
            policy_set_match_pod(e->policies, info->ns, info->labels, info->images);

    return p ? p : policy_by_id(e->policies, rec->policy);
}

/* Room for one more pod in the judgement (not counted yet), zeroed. */
static struct judge_pod *pod_slot(struct judgement *j) {
    if (j->npods == j->alloc) {
        size_t na = j->alloc ? j->alloc * 2 : 16;
        struct judge_pod *np = realloc(j->pods, na * sizeof(*np));
        if (!np) {
            return NULL;
        }
        j->pods = np;
        j->alloc = na;
    }
    memset(&j->pods[j->npods], 0, sizeof(j->pods[0]));
    return &j->pods[j->npods];
}

/* The pod as this judgement will treat it: its stored record (or a new
 * unknown one), placed where the inventory says, with its policy, its kept
 * measurements judged again if that policy did not judge them all. */
static struct judge_pod *meet_pod(struct judgement *j, const struct pod_info *info) {
    struct judge_pod *jp = pod_slot(j);

    if (!jp) {
        return NULL;
    }
    j->npods++;
    if (store_pod_get(j->e->store, info->uid, &jp->rec) == 0) {
        jp->stored = jp->rec;
        jp->in_store = true;
    } else {
        snprintf(jp->rec.uid, sizeof(jp->rec.uid), "%s", info->uid);
        jp->rec.state = POD_UNKNOWN;
        snprintf(jp->rec.reason, sizeof(jp->rec.reason), "no verdict yet");
        jp->rec.since_ms = engine_now_ms();
    }
    snprintf(jp->rec.node, sizeof(jp->rec.node), "%s", info->node);
    snprintf(jp->rec.ns, sizeof(jp->rec.ns), "%s", info->ns);
    snprintf(jp->rec.name, sizeof(jp->rec.name), "%s", info->name);
    jp->policy = judge_pod_policy(j->e, info, &jp->rec);
    if (judge_kept(j, jp) < 0) {
        j->npods--;
        return NULL;
    }
    return jp;
}

/* A pod the inventory does not know (any more) but the store does, on this
 * node, and not gone for longer than the inventory keeps deleted pods:
 * still that pod (the inventory forgot it when the verifier restarted).
 * Its record came from an inventory that placed it here; it is judged by
 * the policy that judged it last, if that still exists. */
static struct judge_pod *recall_pod(struct judgement *j, const char *uid) {
    struct judge_pod *jp = pod_slot(j);
    int64_t now = engine_now_ms();

    if (!jp || store_pod_get(j->e->store, uid, &jp->rec) < 0 ||
        strcmp(jp->rec.node, j->n->name) != 0 ||
        (jp->rec.gone_ms && now - jp->rec.gone_ms > INVENTORY_GONE_KEEP_MS)) {
        return NULL;
    }
    jp->stored = jp->rec;
    jp->in_store = true;
    jp->policy = policy_by_id(j->e->policies, jp->rec.policy);
    if (!jp->policy && strcmp(jp->rec.policy, JUDGE_POLICY_INCOMPLETE) == 0) {
        jp->incomplete = true;
    }
    j->npods++;
    return jp;
}

/* Where a measurement belongs. For PLACE_POD *ret_pod is the pod; for
 * PLACE_FOREIGN other_node and uid name the claimed pod. */
static enum place place(struct judgement *j, const struct ima_pod_ref *ref,
                        struct judge_pod **ret_pod, char *other_node, size_t other_sz, char *uid,
                        size_t uid_sz) {
    struct pod_info info;
    enum place pl;
    int found;

    switch (ref->scope) {
    case IMA_SCOPE_NODE:
        return PLACE_NODE;
    case IMA_SCOPE_POD:
        if ((*ret_pod = met_pod(j, ref->pod_uid))) {
            return PLACE_POD;
        }
        found = inventory_lookup_uid(j->e->inv, ref->pod_uid, j->n->name, &info);
        break;
    case IMA_SCOPE_CONTAINER:
        found = inventory_lookup_container(j->e->inv, ref->container_id, j->n->name, &info);
        break;
    case IMA_SCOPE_UNPLACED:
    default:
        return PLACE_UNPLACED;
    }
    if (found < 0) {
        if (ref->scope == IMA_SCOPE_POD && (*ret_pod = recall_pod(j, ref->pod_uid))) {
            return PLACE_POD;
        }
        return PLACE_WAIT;
    }
    if (!info.node[0]) {
        pl = PLACE_WAIT; /* not scheduled in this snapshot: nothing can run it yet */
    } else if (strcmp(info.node, j->n->name) != 0 && strcmp(info.uid, info.api_uid) != 0) {
        /* A static pod's hash is the node's own (the kubelet hashes the
         * node name in): another node's mirror pod claiming it is that
         * kubelet's word, no proof that the reporter lies. It waits. */
        pl = PLACE_WAIT;
    } else if (strcmp(info.node, j->n->name) != 0) {
        snprintf(other_node, other_sz, "%s", info.node);
        snprintf(uid, uid_sz, "%s", info.uid);
        pl = PLACE_FOREIGN;
    } else if ((*ret_pod = met_pod(j, info.uid)) || (*ret_pod = meet_pod(j, &info))) {
        pl = PLACE_POD;
    } else {
        pl = PLACE_WAIT; /* out of memory: it waits */
    }
    json_decref(info.labels);
    json_decref(info.images);
    return pl;
}

/* A node-level failure found while judging: audited (up to a bound, so a
 * flood of lies cannot flood the log), and the node fails at the end. */
static int node_violation(struct judgement *j, const char *reason, json_t *d) {
    int r = 0;

    json_object_set_new(d, "reason", json_string(reason));
    if (j->n->state == NODE_UNTRUSTED) {
        r = judge_audit_noisy(j, "violation", NULL, d); /* it changes nothing any more */
    } else if (j->node_audits < NODE_AUDITS_MAX) {
        j->node_audits++;
        r = judge_audit(j, "violation", NULL, d);
    } else {
        json_decref(d);
    }
    if (!j->node_failed) {
        j->node_failed = true;
        snprintf(j->node_reason, sizeof(j->node_reason), "%s", reason);
    }
    return r;
}

static int fail_in_pod(struct judgement *j, struct judge_pod *jp, const struct measurement *m,
                       const char *reason) {
    json_t *d = violation_details(m, policy_id(jp->policy));
    /* A pod untrusted before this judgement, or on a node untrusted
     * before it, changes no more: what else it runs is recorded at the
     * rate of the noisy records. */
    bool moot = jp->rec.state == POD_UNTRUSTED || j->n->state == NODE_UNTRUSTED;
    int r = moot ? judge_audit_noisy(j, "violation", &jp->rec, d)
                 : judge_audit(j, "violation", &jp->rec, d);

    jp->failed = true;
    return r < 0 ? r : judge_set_pod_state(j, &jp->rec, POD_UNTRUSTED, reason);
}

static int judge_in_pod(struct judgement *j, struct judge_pod *jp, const struct measurement *m) {
    char reason[STORE_REASON_MAX];
    int r;

    if (jp->failed) {
        return 0; /* untrusted already */
    }
    r = keep_measurement(j, jp, m);
    if (r < 0 || !jp->policy) {
        return r; /* no policy: kept, and judged if one matches later */
    }
    if (measurement_check(jp->policy, m, reason, sizeof(reason)) != CHECK_FAIL) {
        return 0;
    }
    return fail_in_pod(j, jp, m, reason);
}

/* Node scope: host processes, and (`unplaced` says why) measurements that
 * cannot be attributed to any pod. Both are judged by the NodePolicy: an
 * unattributable measurement cannot escape it by naming a pod nobody
 * knows. Without a NodePolicy neither is judged (the node's verdict then
 * covers the quote and the list only); an unattributable one is then
 * recorded (audit type `unattributed`, at most a few per node a minute):
 * failing the node for it would let anyone who may create and delete pods
 * fail nodes, and anything that can make such a cgroup could as well run
 * on the host, unjudged too. */
static int judge_on_node(struct judgement *j, const struct measurement *m, const char *unplaced) {
    const struct policy *p = policy_set_node(j->e->policies);
    char reason[STORE_REASON_MAX], why[STORE_REASON_MAX];
    json_t *d;

    if (j->node_failed) {
        return 0;
    }
    if (!p && !unplaced) {
        return 0;
    }
    if (!p) {
        d = violation_details(m, NULL);
        json_object_set_new(d, "attribution", json_string(unplaced));
        return judge_audit_noisy(j, "unattributed", NULL, d);
    }
    if (measurement_check(p, m, why, sizeof(why)) != CHECK_FAIL) {
        return 0;
    } else {
        snprintf(reason, sizeof(reason), "%s%.150s%s %.250s",
                 unplaced ? "unattributed (" : "node-scope", unplaced ? unplaced : "",
                 unplaced ? ")" : "", why);
    }
    d = violation_details(m, p ? policy_id(p) : NULL);
    if (unplaced) {
        json_object_set_new(d, "attribution", json_string(unplaced));
    }
    return node_violation(j, reason, d);
}

static int claim_failure(struct judgement *j, const struct measurement *m, const char *uid,
                         const char *other) {
    char reason[STORE_REASON_MAX];
    json_t *d = violation_details(m, NULL);

    snprintf(reason, sizeof(reason),
             "entry %" PRIu64 " is in the cgroup of pod %s, which the inventory places on node %s",
             m->index, uid, other);
    json_object_set_new(d, "claimed_pod_uid", json_string(uid));
    json_object_set_new(d, "pod_node", json_string(other));
    return node_violation(j, reason, d);
}

/* Keep a measurement until its pod is known. Each pod (or container) has a
 * share of the node's waiting list: past it, its measurements are only
 * counted (one marker row), and that pod can then never be judged whole:
 * one pod's flood costs itself, not its neighbours. When the node's list
 * is full, -ENOSPC: nothing is kept or counted, and the round stops before
 * this entry (the node sends it again once the list has room). */
static int wait_for_pod(struct judgement *j, const struct measurement *m) {
    const char *uid = m->ref.scope == IMA_SCOPE_POD ? m->ref.pod_uid : "";
    const char *cid = m->ref.scope == IMA_SCOPE_POD ? "" : m->ref.container_id;
    struct pending_record *p;
    uint64_t mine = 0;
    int r;

    if (j->n->pending >= JUDGE_WAITING_MAX) {
        return -ENOSPC;
    }
    r = store_pending_count_key(j->e->store, j->n->name, uid, cid, &mine);
    if (r < 0) {
        return r;
    }
    if (mine >= JUDGE_WAITING_PER_POD) {
        r = store_pending_mark_dropped(j->e->store, j->n->name, uid, cid, engine_now_ms());
        j->n->pending += r == 1;
        return r < 0 ? r : 0;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    snprintf(p->node, sizeof(p->node), "%s", j->n->name);
    snprintf(p->uid, sizeof(p->uid), "%s", uid);
    snprintf(p->container, sizeof(p->container), "%s", cid);
    p->entry = m->index;
    snprintf(p->template_name, sizeof(p->template_name), "%s", m->template_name);
    memcpy(p->path, m->path, m->path_len);
    p->path_len = m->path_len;
    snprintf(p->digest, sizeof(p->digest), "%s", m->digest);
    p->violation = m->violation;
    p->seen_ms = engine_now_ms();
    r = store_pending_add(j->e->store, p);
    free(p);
    if (r == 0) {
        j->n->pending++;
    }
    return r;
}

/* Judge a measurement placed as `pl`. Returns 1 when it must (keep) wait. */
static int judge_placed(struct judgement *j, const struct measurement *m, enum place pl,
                        struct judge_pod *jp, const char *uid, const char *other) {
    switch (pl) {
    case PLACE_NODE:
        return judge_on_node(j, m, NULL);
    case PLACE_UNPLACED:
        return judge_on_node(j, m, "its cgroup is in the pod hierarchy but names no pod");
    case PLACE_POD:
        return judge_in_pod(j, jp, m);
    case PLACE_FOREIGN:
        return claim_failure(j, m, uid, other);
    case PLACE_WAIT:
        break;
    }
    return 1;
}

int judge_measurement(struct judgement *j, const struct measurement *m) {
    struct judge_pod *jp = NULL;
    char other[STORE_NAME_MAX + 1] = "", uid[64] = "";
    enum place pl = place(j, &m->ref, &jp, other, sizeof(other), uid, sizeof(uid));
    int r = judge_placed(j, m, pl, jp, uid, other);

    return r == 1 ? wait_for_pod(j, m) : r;
}

/* The count of a pod's measurements that could not be kept: the pod, once
 * known, cannot be judged whole (it never reads trusted again until an
 * operator resets it); one nobody lists is judged as unattributable. */
static int judge_dropped(struct judgement *j, const struct pending_record *p, enum place pl,
                         struct judge_pod *jp, const char *uid, const char *other) {
    struct measurement m = {0};
    char why[STORE_REASON_MAX];

    m.index = p->entry;
    m.path = (const uint8_t *)"";
    snprintf(m.template_name, sizeof(m.template_name), "(dropped)");
    switch (pl) {
    case PLACE_POD:
        jp->incomplete = true;
        jp->rec.files_overflow = true;
        jp->rec.files_dropped += p->dropped;
        snprintf(jp->rec.policy, sizeof(jp->rec.policy), "%s", JUDGE_POLICY_INCOMPLETE);
        return 0;
    case PLACE_FOREIGN:
        return claim_failure(j, &m, uid, other);
    default:
        break;
    }
    snprintf(why, sizeof(why),
             "%u measurements of %s %s could not be kept and its pod was never listed", p->dropped,
             p->uid[0] ? "pod" : "container", p->uid[0] ? p->uid : p->container);
    return judge_on_node(j, &m, why);
}

/* One waiting measurement: judged (and gone), or still waiting. */
static int judge_one_waiting(struct judgement *j, const struct pending_record *p, int64_t synced,
                             int64_t grace_ms) {
    struct measurement m = {0};
    struct judge_pod *jp = NULL;
    char other[STORE_NAME_MAX + 1] = "", uid[64] = "", why[200];
    enum place pl;
    int r;

    m.index = p->entry;
    snprintf(m.template_name, sizeof(m.template_name), "%s", p->template_name);
    m.path = p->path;
    m.path_len = p->path_len;
    snprintf(m.digest, sizeof(m.digest), "%s", p->digest);
    m.violation = p->violation;
    if (p->uid[0]) {
        m.ref.scope = IMA_SCOPE_POD;
        snprintf(m.ref.pod_uid, sizeof(m.ref.pod_uid), "%.36s", p->uid);
    } else {
        m.ref.scope = IMA_SCOPE_CONTAINER;
        snprintf(m.ref.container_id, sizeof(m.ref.container_id), "%.64s", p->container);
    }
    pl = place(j, &m.ref, &jp, other, sizeof(other), uid, sizeof(uid));
    if (pl == PLACE_WAIT && synced < p->seen_ms + grace_ms) {
        return 0; /* the inventory may still catch up */
    }
    if (p->dropped) {
        r = judge_dropped(j, p, pl, jp, uid, other);
    } else if (pl == PLACE_WAIT) {
        snprintf(why, sizeof(why), "%s %s was not in the inventory %" PRId64 " ms after it",
                 p->uid[0] ? "its pod" : "its container", p->uid[0] ? p->uid : p->container,
                 synced - p->seen_ms);
        r = judge_on_node(j, &m, why);
    } else {
        r = judge_placed(j, &m, pl, jp, uid, other);
    }
    if (r == 0) {
        r = store_pending_delete(j->e->store, p->id);
    }
    if (r == 0 && j->n->pending > 0) {
        j->n->pending--;
    }
    return r;
}

int judge_waiting(struct judgement *j, int64_t grace_ms) {
    struct pending_record *batch = calloc(WAITING_BATCH, sizeof(*batch));
    int64_t synced = inventory_synced_ms(j->e->inv), after = 0;
    int n, r = 0;

    if (!batch) {
        return -ENOMEM;
    }
    do {
        n = store_pending_list(j->e->store, j->n->name, after, batch, WAITING_BATCH);
        for (int i = 0; i < n && r == 0; i++) {
            after = batch[i].id;
            r = judge_one_waiting(j, &batch[i], synced, grace_ms);
        }
    } while (r == 0 && n == WAITING_BATCH);
    free(batch);
    return n < 0 ? n : r;
}

int judge_settle_pods(struct judgement *j) {
    bool node_bad = j->node_failed || j->n->state == NODE_UNTRUSTED;
    int r = 0;

    for (size_t i = 0; i < j->npods && r == 0; i++) {
        struct judge_pod *jp = &j->pods[i];
        char reason[STORE_REASON_MAX];
        if (jp->failed) {
            r = put_pod(j, &jp->rec); /* its kept-measurement count */
            continue;
        }
        if (node_bad) {
            /* A node that failed stays untrusted until an operator deletes
             * it; nothing it reports can make a pod trusted. */
            r = judge_set_pod_state(j, &jp->rec, POD_UNTRUSTED, "the node is untrusted");
        } else if (!jp->policy) {
            r = judge_set_pod_state(j, &jp->rec,
                                    j->e->cfg.unknown_untrusted ? POD_UNTRUSTED : POD_UNKNOWN,
                                    "no policy matches the pod");
        } else if (jp->rec.files == 0) {
            r = judge_set_pod_state(j, &jp->rec, POD_UNKNOWN,
                                    "no measurement of it has been judged yet");
        } else if (jp->incomplete) {
            snprintf(reason, sizeof(reason),
                     "its measurements could not all be kept (more than %d distinct, or more "
                     "than %d waiting for it to be listed): policy %s cannot judge them all",
                     STORE_POD_FILES_MAX, JUDGE_WAITING_PER_POD, policy_name(jp->policy));
            r = judge_set_pod_state(j, &jp->rec, POD_UNKNOWN, reason);
        } else {
            snprintf(reason, sizeof(reason), "every measurement is in policy %s",
                     policy_name(jp->policy));
            r = judge_set_pod_state(j, &jp->rec, POD_TRUSTED, reason);
        }
        /* A pod whose record the round left as it was is not written again
         * (most rounds of a healthy node change no pod). */
        if (r == 0 && !(jp->in_store && store_pod_same(&jp->stored, &jp->rec))) {
            r = put_pod(j, &jp->rec);
        }
    }
    return r;
}

struct pod_list {
    struct pod_record *v;
    size_t n, alloc;
};

static int collect_pod(const struct pod_record *p, void *ud) {
    struct pod_list *l = ud;

    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 16;
        struct pod_record *nv = realloc(l->v, na * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        l->v = nv;
        l->alloc = na;
    }
    l->v[l->n++] = *p;
    return 0;
}

int judge_node_failure(struct judgement *j, const char *reason) {
    struct pod_list l = {0};
    json_t *d = json_pack("{s:s}", "reason", reason);
    int r;

    r = j->n->state == NODE_UNTRUSTED ? judge_audit_noisy(j, "node-failure", NULL, d)
                                      : judge_audit(j, "node-failure", NULL, d);
    j->n->state = NODE_UNTRUSTED;
    snprintf(j->n->reason, sizeof(j->n->reason), "%s", reason);
    /* The pods met here (some not stored yet), then every pod the store
     * places on the node. */
    for (size_t i = 0; i < j->npods && r == 0; i++) {
        r = judge_set_pod_state(j, &j->pods[i].rec, POD_UNTRUSTED, reason);
        if (r == 0) {
            r = put_pod(j, &j->pods[i].rec);
        }
    }
    if (r == 0) {
        r = store_pod_foreach_node(j->e->store, j->n->name, collect_pod, &l);
    }
    for (size_t i = 0; i < l.n && r == 0; i++) {
        r = judge_set_pod_state(j, &l.v[i], POD_UNTRUSTED, reason);
    }
    free(l.v);
    return r;
}

int judge_pod_again(struct judgement *j, const struct pod_info *info) {
    return met_pod(j, info->uid) || meet_pod(j, info) ? 0 : -ENOMEM;
}
