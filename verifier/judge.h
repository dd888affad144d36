/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_JUDGE_H
#define KIMA_VERIFIER_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cgroup.h"
#include "inventory.h"
#include "list.h"
#include "policy.h"
#include "store.h"

/* Judging one node's measurements inside one store transaction: each is
 * attributed to a pod by the inventory (never by what the node says about
 * where a pod runs), checked against its pod's or the node's policy, and the
 * pods met get their state. An evidence round and the resolution of
 * waiting measurements both use it. The caller holds the node's lock, the
 * engine's lock and a writer's section of the open batch (engine_write_begin),
 * and writes the node record afterwards. */

struct engine;

/* Most measurements a node may have waiting for their pod to be known
 * (each costs at most STORE_PATH_MAX bytes of store); past it a round
 * stops early and the node sends the rest again later. */
#define JUDGE_WAITING_MAX 2048
/* One pod's (or container's) share: past it its measurements are counted,
 * not kept, and it cannot be judged whole any more. */
#define JUDGE_WAITING_PER_POD 256
/* The policy id of a pod whose measurements cannot all be judged again (too
 * many to keep, or some could not be kept): it never matches a policy. */
#define JUDGE_POLICY_INCOMPLETE "!incomplete"

/* What one IMA entry says, decoded. */
struct measurement {
    uint64_t index;
    char template_name[64];
    const uint8_t *path; /* borrowed */
    size_t path_len;
    char digest[160]; /* "algo:hex"; "" when the entry carries no file digest */
    bool violation;   /* the kernel's ToMToU / open-writers record */
    struct ima_pod_ref ref;
};

/* Decode an entry. -E2BIG when its path is longer than any path a kernel
 * records (STORE_PATH_MAX), with the reason in why. */
int measurement_from_entry(const struct ima_entry *e, struct measurement *ret, char *why,
                           size_t whysz);

enum check {
    CHECK_PASS,
    CHECK_IGNORED, /* a violation on an excluded path: ignored like the path */
    CHECK_FAIL,
};

/* The policy's word on one measurement (pure): a file digest listed for its
 * path or "*", or an excluded path, passes; no digest, a violation on a path
 * not excluded, or anything else fails, with the reason. */
enum check measurement_check(const struct policy *p, const struct measurement *m, char *reason,
                             size_t reasonsz);

struct judge_pod {
    struct pod_record rec;
    struct pod_record stored; /* rec as the store had it, when in_store */
    bool in_store;
    const struct policy *policy;
    bool failed;     /* made untrusted here */
    bool incomplete; /* its kept measurements could not all be judged by `policy` */
};

/* An audit record to write when the judgement commits. */
struct judge_audit {
    char type[32];
    bool has_pod;
    char ns[STORE_NAME_MAX + 1], name[STORE_NAME_MAX + 1], uid[64];
    json_t *details;
    bool noisy; /* through the engine's noisy-record limit */
};

struct judgement {
    struct engine *e;
    struct node_record *n; /* borrowed; pending is kept up to date */
    json_t *changed;       /* pods whose state changed, for the answer */
    struct judge_pod *pods;
    size_t npods, alloc;
    bool node_failed;
    char node_reason[STORE_REASON_MAX];
    unsigned node_audits; /* node-level violation records queued */
    struct judge_audit *audits;
    size_t naudits, audits_alloc;
};

/* The policy that judges a pod: the one that matches it now (namespace,
 * labels, images); else the one that judged it last, if still loaded: a
 * pod whose labels were changed so that no policy matches does not leave
 * its policy (what it runs next is still judged by it). NULL: none. */
const struct policy *judge_pod_policy(const struct engine *e, const struct pod_info *info,
                                      const struct pod_record *rec);

int judgement_init(struct judgement *j, struct engine *e, struct node_record *n);
void judgement_free(struct judgement *j);

/* Attribute and judge one measurement of node j->n. A measurement whose
 * pod is not in the inventory yet waits in the store; past its pod's share
 * (JUDGE_WAITING_PER_POD) it is only counted against that pod, which can
 * then never read trusted (JUDGE_POLICY_INCOMPLETE). Returns 0, -ENOSPC
 * when the node's waiting list is full (nothing done: stop before this
 * measurement), or another negative errno on a store or audit failure. */
int judge_measurement(struct judgement *j, const struct measurement *m);

/* Judge the node's waiting measurements whose pod is known now, and those
 * whose pod an inventory synced `grace_ms` after them still does not know
 * (as measurements nothing can attribute). The rest keep waiting. */
int judge_waiting(struct judgement *j, int64_t grace_ms);

/* The pods met get their state: untrusted when the node failed or is
 * untrusted, unknown (or untrusted, as configured) without a policy,
 * trusted when every measurement passed their policy. */
int judge_settle_pods(struct judgement *j);

/* A node failure: the node and every pod the store places on it become
 * untrusted, audited. */
int judge_node_failure(struct judgement *j, const char *reason);

/* Move a pod to `state` (untrusted is sticky) and audit the change. */
int judge_set_pod_state(struct judgement *j, struct pod_record *p, enum pod_state state,
                        const char *reason);

/* Queue an audit record (details: taken over; pod may be NULL). Records are
 * written by judge_write_audits(), so a judgement that is rolled back leaves none. */
int judge_audit(struct judgement *j, const char *type, const struct pod_record *pod,
                json_t *details);
/* The same for a record any node could provoke again and again: written
 * through the engine's noisy-record limit (engine_audit_noisy). */
int judge_audit_noisy(struct judgement *j, const char *type, const struct pod_record *pod,
                      json_t *details);

/* Append the queued audit records inside the writer's section: the batch's
 * leader syncs them before it commits the store (engine_write_end). 0 or
 * a negative errno (the writer then undoes its writes). */
int judge_write_audits(struct judgement *j);

/* Judge a pod's kept measurements again when the policy that matches it
 * now is not the one that judged them all (a policy that matched only
 * later, or a policy that changed). For a pod met in no round (the
 * engine's re-judging after a policy or inventory change). */
int judge_pod_again(struct judgement *j, const struct pod_info *info);

#endif
