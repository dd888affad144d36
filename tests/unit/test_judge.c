/* SPDX-License-Identifier: Apache-2.0 */
/* Attribution and judgement (verifier/judge.c) through the engine, against
 * real TPMs: where a measurement belongs (the inventory's word, never the
 * node's), measurements waiting for their pod, pods gone or never seen,
 * static pods and cgn templates, a pod's kept measurements judged again
 * when its policy changes or matches only later. Harness: engine-fx.c. */
#include "engine-fx.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "hex.h"
#include "judge.h"

/* A NodePolicy allowing `binary` (GOOD) only, loaded; its file in path. */
static void node_policy(struct fx *f, const char *binary, char *path, size_t pathsz) {
    char text[300];

    snprintf(path, pathsz, "%s/node.json", f->policies);
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"node\","
             "\"digests\":{\"%s\":[\"sha256:" GOOD "\"]}}",
             binary);
    write_text(path, text);
    assert_int_equal(engine_reload_policies(f->e), 0);
}

static void resp_state_is(struct fx *f, const char *node, const char *state) {
    json_t *nj = node_json(f, node);
    assert_string_equal(json_string_value(json_object_get(nj, "state")), state);
    json_decref(nj);
}

static void round_ok(struct fx *f, struct tnode *t) {
    json_t *resp = NULL;
    assert_int_equal(attest_node(f, t, &resp, NULL), ENGINE_OK);
    json_decref(resp);
}

/* A node may not vouch for another node's pod: node-2's measurements in
 * the cgroup of pod A, which the inventory places on node-1, fail node-2
 * and leave pod A to node-1. */
static void test_foreign_pod_claim(void **state) {
    struct fx *f = *state;
    struct tnode *t2 = node2(f);
    json_t *resp = NULL;
    char node[64];

    register_and_activate(f);
    register_node(f, t2);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    /* node-2 claims pod A with a good binary: it cannot take the pod over. */
    measure_pod(t2, UID_A, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest_node(f, t2, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")),
                           "which the inventory places on node node-1"));
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    assert_string_equal(node, NODE);
    assert_true(audited(f, "\"claimed_pod_uid\":\"" UID_A "\""));

    /* ... nor make it untrusted. */
    measure_pod(t2, UID_A, "/tmp/miner", EVIL);
    assert_int_equal(attest_node(f, t2, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    /* node-1's own failure still reaches its pod. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
}

/* A measurement of a pod the inventory does not have yet waits, and is
 * judged when the pod appears: trusted on its own node. */
static void test_waiting_pod_judged_later(void **state) {
    struct fx *f = *state;
    const char *pods[] = {UID_B " " NODE};
    json_t *resp = NULL, *nj;
    char node[64];

    register_and_activate(f);
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "absent");
    nj = node_json(f, NODE);
    assert_int_equal(json_integer_value(json_object_get(nj, "waiting_measurements")), 1);
    json_decref(nj);

    write_pods(f, pods, 1);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted");
    assert_string_equal(node, NODE);
    nj = node_json(f, NODE);
    assert_int_equal(json_integer_value(json_object_get(nj, "waiting_measurements")), 0);
    json_decref(nj);

    /* A bad binary that waited makes the pod untrusted when judged. */
    {
        const char *more[] = {UID_B " " NODE, UID_C " " NODE};
        measure_pod(&f->nodes[0], UID_C, "/tmp/miner", EVIL);
        assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
        json_decref(resp);
        write_pods(f, more, 2);
    }
    /* The next round judges it too, before its own entries. */
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-2", node, sizeof(node)), "untrusted");
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
}

/* The first node to report an unknown UID cannot capture the pod either:
 * once the inventory places it elsewhere, the reporter fails. */
static void test_waiting_pod_foreign(void **state) {
    struct fx *f = *state;
    struct tnode *t2 = node2(f);
    const char *pods[] = {UID_C " " NODE};
    json_t *resp = NULL;
    char node[64];

    register_and_activate(f);
    register_node(f, t2);
    measure_pod(t2, UID_C, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest_node(f, t2, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);

    write_pods(f, pods, 1);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    resp = node_json(f, NODE2);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "untrusted");
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "absent");

    /* Its own node's measurement then judges it. */
    measure_pod(&f->nodes[0], UID_C, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted");
    assert_string_equal(node, NODE);
}

/* A pod that never appears: its measurement is judged by the NodePolicy
 * (naming a pod nobody knows escapes nothing), and without one it is
 * recorded as unattributed, the node unharmed (a pod deleted before any
 * list showed it must not fail its node). */
static void test_waiting_pod_expires(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    char path[400];

    register_and_activate(f);
    node_policy(f, "/usr/bin/upfd", path, sizeof(path));
    /* Allowed by the NodePolicy: the node stays trusted. */
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    write_pods(f, NULL, 0); /* a list after the measurement, still without the pod */
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "trusted");
    assert_int_equal(json_integer_value(json_object_get(resp, "waiting_measurements")), 0);
    json_decref(resp);

    /* Without a NodePolicy: recorded, not judged, the node unharmed. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(engine_reload_policies(f->e), 0);
    measure_pod(&f->nodes[0], UID_C, "/tmp/miner", EVIL);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    write_pods(f, NULL, 0);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "trusted");
    assert_int_equal(json_integer_value(json_object_get(resp, "waiting_measurements")), 0);
    json_decref(resp);
    assert_true(audited(f, "\"type\":\"unattributed\""));
    assert_true(audited(f, "\"attribution\":\"its pod " UID_C " was not in the inventory"));

    /* Not allowed by the NodePolicy: the node fails. */
    node_policy(f, "/usr/bin/upfd", path, sizeof(path));
    measure_pod(&f->nodes[0], UID_C, "/tmp/miner", EVIL);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    write_pods(f, NULL, 0);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")),
                           "unattributed (its pod " UID_C));
    json_decref(resp);
}

static json_int_t node_int(struct fx *f, const char *field) {
    json_t *nj = node_json(f, NODE);
    json_int_t v = json_integer_value(json_object_get(nj, field));
    json_decref(nj);
    return v;
}

/* Each pod has a share of its node's waiting list (JUDGE_WAITING_PER_POD):
 * past it a measurement is only counted against that pod, which, once
 * listed, can never read trusted (its judgement would miss what was not
 * kept). The round goes through; the neighbours keep their room. */
static void test_waiting_share(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    const char *extra[] = {UID_B " " NODE};
    char node[64];

    register_and_activate(f);
    for (int i = 0; i < JUDGE_WAITING_PER_POD + 10; i++) {
        measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    }
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    /* The kept ones and one counter for what was not kept. */
    assert_int_equal(node_int(f, "waiting_measurements"), JUDGE_WAITING_PER_POD + 1);
    assert_int_equal(node_int(f, "ima_next_index"), JUDGE_WAITING_PER_POD + 10);

    write_pods(f, extra, 1); /* upf-1 is listed now: every file was GOOD */
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "unknown");
    assert_int_equal(engine_pod(f->e, "open5gs", "upf-1", &resp), ENGINE_OK);
    assert_non_null(
            strstr(json_string_value(json_object_get(resp, "reason")), "could not all be kept"));
    json_decref(resp);
    assert_int_equal(node_int(f, "waiting_measurements"), 0);
    resp_state_is(f, NODE, "trusted");
}

/* More measurements of pods no list shows than the node's waiting list
 * holds (nine pods of 256 files, force-deleted at once): the round stops
 * where the list is full, nothing is lost or counted against anyone else,
 * and the node is behind (stale once it stays behind: what it ran last is
 * not judged yet). Once the flood is past its grace (recorded as
 * unattributable, without a NodePolicy no failure), the rest comes, and a
 * binary a victim pod ran after the flood is judged. */
static void test_waiting_full_stops_round(void **state) {
    struct fx *f = *state;
    struct node_record n;
    json_t *resp = NULL;
    const char *extra[] = {UID_C " " NODE};
    char p[64], uid[64], node[64];
    int total = 9 * JUDGE_WAITING_PER_POD + 1;

    register_and_activate(f);
    for (int k = 0; k < 9; k++) {
        snprintf(uid, sizeof(uid), "1a2b3c4d-0000-4111-8222-%012d", k + 1);
        for (int i = 0; i < JUDGE_WAITING_PER_POD; i++) {
            snprintf(p, sizeof(p), "/tmp/f%d", i);
            measure_pod(&f->nodes[0], uid, p, GOOD);
        }
    }
    measure_pod(&f->nodes[0], UID_C, "/tmp/miner", EVIL); /* the victim, after the flood */
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_int_equal(node_int(f, "ima_next_index"), JUDGE_WAITING_MAX);
    assert_int_equal(node_int(f, "waiting_measurements"), JUDGE_WAITING_MAX);
    resp_state_is(f, NODE, "trusted");
    /* Behind for longer than three intervals: stale, its pods unknown. */
    assert_int_equal(store_node_get(f->store, NODE, &n), 0);
    assert_true(n.behind_ms > 0);
    n.behind_ms -= 60000;
    assert_int_equal(store_node_put(f->store, &n), 0);
    resp_state_is(f, NODE, "stale");

    write_pods(f, extra, 1); /* the flood never listed, the victim listed */
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    assert_int_equal(node_int(f, "waiting_measurements"), 0);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_int_equal(node_int(f, "ima_next_index"), total);
    resp_state_is(f, NODE, "trusted");
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "untrusted");
    assert_int_equal(store_node_get(f->store, NODE, &n), 0);
    assert_int_equal(n.behind_ms, 0);
}

/* With a NodePolicy, what could not be kept of a pod no list shows cannot
 * be checked against it: the node fails, naming the count. */
static void test_waiting_overflow_nodepolicy(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *nj;
    char path[400];

    register_and_activate(f);
    node_policy(f, "/usr/bin/upfd", path, sizeof(path));
    for (int i = 0; i < JUDGE_WAITING_PER_POD + 3; i++) {
        measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    }
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    write_pods(f, NULL, 0);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    nj = node_json(f, NODE);
    assert_int_equal(json_integer_value(json_object_get(nj, "waiting_measurements")), 0);
    assert_string_equal(json_string_value(json_object_get(nj, "state")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(nj, "reason")),
                           "3 measurements of pod " UID_B " could not be kept"));
    json_decref(nj);
}

/* A cgroup under a pod's belongs to that pod however deep; one in the pod
 * hierarchy that names no pod is judged like a host process: recorded
 * without a NodePolicy, and failing the node when the NodePolicy does not
 * allow it. */
static void test_deep_and_unplaced_cgroups(void **state) {
    struct fx *f = *state;
    char cg[2048], base[300], path[400];
    json_t *resp = NULL;
    size_t o;

    register_and_activate(f);
    o = (size_t)snprintf(cg, sizeof(cg), "%s", pod_cgroup(UID_A, base, sizeof(base)));
    for (int i = 0; i < 70; i++) {
        o += (size_t)snprintf(cg + o, sizeof(cg) - o, "/n%d", i);
    }
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, cg);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
    measure_cg(&f->nodes[0], "/tmp/miner", EVIL, cg);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, "/kubepods.slice/kubepods-besteffort.slice");
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_true(
            audited(f, "\"attribution\":\"its cgroup is in the pod hierarchy but names no pod"));

    node_policy(f, "/usr/bin/containerd", path, sizeof(path));
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, "/kubepods.slice/kubepods-besteffort.slice");
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")),
                           "in the pod hierarchy but names no pod"));
    json_decref(resp);
}

/* R1 of the review: a pod the node ran and the API deleted (a Job,
 * `kubectl delete --force`) before any list showed it must not fail its
 * node; one a list showed before it went is still the node's own. */
static void test_deleted_pod_keeps_node(void **state) {
    struct fx *f = *state;
    char node[64];

    register_node(f, &f->nodes[0]);
    measure_pod(&f->nodes[0], UID_A, "/usr/bin/upfd", GOOD);
    round_ok(f, &f->nodes[0]);
    /* B: listed, then deleted; its container, stopping, runs a binary. */
    write_items(f, POD(UID_A, "upf-0", NODE) "," POD(UID_B, "upf-1", NODE));
    write_items(f, POD(UID_A, "upf-0", NODE));
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    /* C: never listed at all. */
    measure_pod(&f->nodes[0], UID_C, "/usr/bin/upfd", GOOD);
    round_ok(f, &f->nodes[0]);
    write_items(f, POD(UID_A, "upf-0", NODE)); /* a list after both */
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    {
        json_t *n = node_json(f, NODE);
        assert_string_equal(json_string_value(json_object_get(n, "state")), "trusted");
        json_decref(n);
    }
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted"); /* judged as itself */
    assert_true(audited(f, "\"attribution\":\"its pod " UID_C " was not in the inventory"));
}

#define STATIC_UID "5d1b7e0c2f3a4b6c8d9e0f1a2b3c4d5e" /* kubelet's config hash */

/* R2: static pods run under the kubelet's config hash, which the API's
 * mirror pod carries in kubernetes.io/config.mirror. */
static void test_static_pod_attributed(void **state) {
    struct fx *f = *state;
    char cg[400], node[64];

    assert_int_equal(inventory_set_static_namespaces(f->inv, "kube-system,open5gs"), 0);
    write_items(f, POD(UID_A, "upf-0", NODE) ",{\"metadata\":{\"uid\":\"" UID_B
                                             "\",\"namespace\":\"open5gs\",\"name\":\"upf-"
                                             "static-node-1\",\"labels\":{\"app\":\"upf\"},"
                                             "\"annotations\":{\"kubernetes.io/config.mirror\":"
                                             "\"" STATIC_UID "\"}},\"spec\":{\"nodeName\":\"" NODE
                                             "\"}}");
    register_node(f, &f->nodes[0]);
    snprintf(cg, sizeof(cg),
             "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" STATIC_UID
             ".slice/cri-containerd-" CID_A ".scope");
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, cg);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-static-node-1", node, sizeof(node)), "trusted");
}

#define UID_D "1a2b3c4d-0000-4111-8222-dddddddddddd"
/* A tenant's pod (in a namespace listed before the victim's) claiming, by
 * the mirror annotation, to stand for `mirror`. No labels: no policy. */
#define DECOY(mirror, node)                                                                     \
    "{\"metadata\":{\"uid\":\"" UID_D "\",\"namespace\":\"aaa-tenant\",\"name\":\"decoy\","     \
    "\"annotations\":{\"kubernetes.io/config.mirror\":\"" mirror "\"}},\"spec\":{\"nodeName\":" \
    "\"" node "\"}}"

/* The decoy neither captures the victim's measurements (the victim ran a
 * binary its policy forbids: untrusted) nor, bound to another node, makes
 * the victim's honest node a liar. */
static void test_mirror_annotation_decoy(void **state) {
    struct fx *f = *state;
    char node[64];

    register_node(f, &f->nodes[0]);
    write_items(f, DECOY(UID_A, "no-such-node") "," POD(UID_A, "upf-0", NODE));
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    resp_state_is(f, NODE, "trusted");
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    write_items(f, DECOY(UID_A, NODE) "," POD(UID_A, "upf-0", NODE));
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");

    /* A static pod's hash claimed from a tenant namespace: not believed
     * (the measurement waits, and is then unattributable). */
    write_items(f, DECOY(STATIC_UID, NODE) "," POD(UID_A, "upf-0", NODE));
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD,
               "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" STATIC_UID
               ".slice/cri-containerd-" CID_A ".scope");
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "decoy", node, sizeof(node)), "absent");
}

#define MIRROR_POD(uid)                                                                       \
    "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"kube-system\",\"name\":\"upf-static-" \
    "node-1\",\"labels\":{\"app\":\"upf\"},\"annotations\":{\"kubernetes.io/"                 \
    "config.mirror\":\"" STATIC_UID "\"}},\"spec\":{\"nodeName\":\"" NODE "\"}}"

/* A static pod is the same pod whatever its mirror pod's UID: deleting the
 * mirror pod (the API recreates it under a new UID) does not make an
 * untrusted static pod trusted again. */
static void test_static_pod_mirror_recreated(void **state) {
    struct fx *f = *state;
    char cg[400], node[64];
    json_t *resp = NULL;
    const char *upf_ks = "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"ks\","
                         "\"match\":{\"namespace\":\"kube-system\",\"podLabels\":{\"app\":"
                         "\"upf\"}},\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"]}}";
    char path[400];

    snprintf(path, sizeof(path), "%s/ks.json", f->policies);
    write_text(path, upf_ks);
    assert_int_equal(engine_reload_policies(f->e), 0);
    snprintf(cg, sizeof(cg),
             "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" STATIC_UID
             ".slice/cri-containerd-" CID_A ".scope");
    write_items(f, POD(UID_A, "upf-0", NODE) "," MIRROR_POD(UID_B));
    register_node(f, &f->nodes[0]);
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, cg);
    round_ok(f, &f->nodes[0]);
    assert_int_equal(engine_pod(f->e, "kube-system", "upf-static-node-1", &resp), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "trusted");
    assert_string_equal(json_string_value(json_object_get(resp, "uid")), STATIC_UID);
    json_decref(resp);
    measure_cg(&f->nodes[0], "/tmp/miner", EVIL, cg);
    round_ok(f, &f->nodes[0]);

    write_items(f, POD(UID_A, "upf-0", NODE) "," MIRROR_POD(UID_C)); /* recreated */
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, cg);
    round_ok(f, &f->nodes[0]);
    assert_int_equal(engine_pod(f->e, "kube-system", "upf-static-node-1", &resp), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "untrusted");
    json_decref(resp);
    (void)node;
}

#define IMG "abababababababababababababababababababababababababababababababab"

/* R3: a measurement met while no policy matches its pod (here the image
 * pin: the API shows the imageID only once the container started) is kept
 * and judged when a policy matches: the pod is never trusted on the word of
 * a binary nothing judged. */
static void test_late_policy_match_judges_kept(void **state) {
    struct fx *f = *state;
    char path[400], node[64];

    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
                     "\"match\":{\"namespace\":\"open5gs\",\"images\":[\"sha256:" IMG "\"]},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"]}}");
    assert_int_equal(engine_reload_policies(f->e), 0);
    write_items(f, "{\"metadata\":{\"uid\":\"" UID_A "\",\"namespace\":\"open5gs\",\"name\":"
                   "\"upf-0\"},\"spec\":{\"nodeName\":\"" NODE "\"},\"status\":{"
                   "\"containerStatuses\":[{\"name\":\"upf\",\"imageID\":\"\"}]}}");
    register_node(f, &f->nodes[0]);
    measure_pod(&f->nodes[0], UID_A, "/usr/bin/evil-entrypoint", EVIL);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "unknown");
    write_items(f,
                "{\"metadata\":{\"uid\":\"" UID_A "\",\"namespace\":\"open5gs\",\"name\":"
                "\"upf-0\"},\"spec\":{\"nodeName\":\"" NODE "\"},\"status\":{"
                "\"containerStatuses\":[{\"name\":\"upf\",\"imageID\":\"docker.io/x/upf@sha256:" IMG
                "\",\"containerID\":\"containerd://" CID_A "\"}]}}");
    /* Judged again without a new measurement (the sweep after a list) ... */
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
    assert_true(audited(f, "/usr/bin/evil-entrypoint"));
}

/* ... and with one: the kept measurement is judged before the new one. */
static void test_late_policy_match_next_round(void **state) {
    struct fx *f = *state;
    char path[400], node[64];

    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
                     "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"]}}");
    assert_int_equal(engine_reload_policies(f->e), 0);
    write_items(f, "{\"metadata\":{\"uid\":\"" UID_A "\",\"namespace\":\"open5gs\",\"name\":"
                   "\"upf-0\"},\"spec\":{\"nodeName\":\"" NODE "\"}}");
    register_node(f, &f->nodes[0]);
    measure_pod(&f->nodes[0], UID_A, "/usr/bin/evil-entrypoint", EVIL);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "unknown");
    write_pods(f, NULL, 0); /* the label app=upf appears */
    measure_pod(&f->nodes[0], UID_A, "/usr/bin/upfd", GOOD);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
}

/* A policy that changes (a digest removed) judges the pods it covers again,
 * without waiting for a new measurement; an operator's reset forgives what
 * was kept before it. */
static void test_policy_change_judges_again(void **state) {
    struct fx *f = *state;
    char path[400], node[64];

    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
                     "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"]}}");
    assert_int_equal(engine_reload_policies(f->e), 0);
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
    {
        json_t *req = json_pack("{s:s}", "reason", "libc reviewed"), *resp = NULL;
        assert_int_equal(engine_pod_reset(f->e, UID_A, req, "ops", &resp), ENGINE_OK);
        json_decref(req);
        json_decref(resp);
    }
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
                     "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\",\"sha256:" EVIL "\"]}}");
    assert_int_equal(engine_reload_policies(f->e), 0);
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
}

/* A list `secs` seconds after the last one (the file's mtime moved). */
static void list_later(struct fx *f, long secs) {
    struct stat st;
    struct timespec ts[2];

    assert_int_equal(stat(f->pods, &st), 0);
    ts[0] = st.st_mtim;
    ts[0].tv_sec += secs;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, f->pods, ts, 0), 0);
    assert_int_equal(inventory_refresh(f->inv), 1);
}

/* A deleted pod's record stays while it may still send its last
 * measurements: for INVENTORY_GONE_KEEP_MS after the verifier first found
 * it gone, whatever the inventory remembers (a restarted verifier
 * remembers no deleted pod). Then it goes (a tenant creating and deleting
 * pods cannot grow the store), an untrusted one with a record saying so. */
static void test_gone_pod_records_dropped(void **state) {
    struct fx *f = *state;
    struct pod_record rec;
    char node[64];

    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    write_items(f, "");
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted"); /* deleted: kept */
    assert_int_equal(store_pod_get(f->store, UID_A, &rec), 0);
    assert_true(rec.gone_ms > 0);

    list_later(f, INVENTORY_GONE_KEEP_MS / 1000 + 60); /* the inventory forgets it */
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted"); /* still kept */
    assert_false(audited(f, "pod-forgotten"));

    /* Gone for longer than the inventory keeps deleted pods: dropped. */
    rec.gone_ms -= INVENTORY_GONE_KEEP_MS + 1000;
    assert_int_equal(store_pod_put(f->store, &rec), 0);
    list_later(f, 1);
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "absent");
    assert_true(audited(f, "\"type\":\"pod-forgotten\""));
}

/* A pod found gone and then listed again (a static pod's mirror pod
 * recreated, an inventory that missed it once) is not gone. */
static void test_gone_pod_back(void **state) {
    struct fx *f = *state;
    struct pod_record rec;

    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    write_items(f, "");
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_int_equal(store_pod_get(f->store, UID_A, &rec), 0);
    assert_true(rec.gone_ms > 0);
    write_pods(f, NULL, 0);
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_int_equal(store_pod_get(f->store, UID_A, &rec), 0);
    assert_int_equal(rec.gone_ms, 0);
}

/* A verifier restart forgets the deleted pods its inventory remembered; the
 * store still has the pods it judged: a deleted pod's last measurements,
 * sent after the restart, are still its own (not unattributable, which
 * with a NodePolicy would fail its node). */
static void test_deleted_pod_after_restart(void **state) {
    struct fx *f = *state;
    char path[400], node[64];

    node_policy(f, "/usr/bin/containerd", path, sizeof(path));
    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    write_items(f, ""); /* upf-0 deleted */
    close_engine(f);    /* the verifier restarts */
    open_engine(f);
    measure(f, "/usr/lib/libc.so.6", GOOD, true); /* upf-0, stopping */
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    resp_state_is(f, NODE, "trusted");
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
    assert_string_equal(node, NODE);
}

#define CID_I "1111111111111111111111111111111111111111111111111111111111111111"

/* R7: with the cgn template a container is found by its ID: init and
 * ephemeral containers too. */
static void test_cgn_init_container(void **state) {
    struct fx *f = *state;
    char node[64];

    write_items(f, "{\"metadata\":{\"uid\":\"" UID_A "\",\"namespace\":\"open5gs\",\"name\":"
                   "\"upf-0\",\"labels\":{\"app\":\"upf\"}},\"spec\":{\"nodeName\":\"" NODE "\"},"
                   "\"status\":{\"initContainerStatuses\":[{\"name\":\"init\",\"containerID\":"
                   "\"containerd://" CID_I "\"}],\"containerStatuses\":[{\"name\":\"upf\","
                   "\"containerID\":\"containerd://" CID_A "\"}]}}");
    register_node(f, &f->nodes[0]);
    measure_t(&f->nodes[0], "ima-dep-cgn", "/usr/bin/upfd", GOOD, "cri-containerd-" CID_I ".scope",
              true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
}

/* The upf policy allowing `digests` (a JSON object body), with a new mtime
 * second every time so that the reload is never skipped. */
static void write_upf_policy(struct fx *f, const char *digests) {
    char path[400], text[2048];
    struct timespec ts[2];
    static long tick = 100;

    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
             "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
             "\"digests\":{%s}}",
             digests);
    write_text(path, text);
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= tick++;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(engine_reload_policies(f->e), 0);
}

/* A pod whose kept measurements overflowed is never whole again, whichever
 * policy comes: a policy changed and rolled back must not make it trusted,
 * since what it ran in between was judged by the other policy only. */
static void test_overflow_policy_flip_back(void **state) {
    struct fx *f = *state;
    char node[64], p[64];
    const char *strict = "\"*\":[\"sha256:" GOOD "\"]";
    const char *loose = "\"*\":[\"sha256:" GOOD "\",\"sha256:" EVIL "\"]";

    write_upf_policy(f, strict);
    register_node(f, &f->nodes[0]);
    for (int i = 0; i <= STORE_POD_FILES_MAX; i++) {
        snprintf(p, sizeof(p), "/opt/app/bin/tool-%d", i);
        measure(f, p, GOOD, true);
    }
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    {
        /* The one past the cap is counted, not kept. */
        json_t *resp = NULL;
        assert_int_equal(engine_pod_measurements(f->e, "open5gs", "upf-0", &resp), ENGINE_OK);
        assert_int_equal(json_array_size(json_object_get(resp, "measurements")),
                         STORE_POD_FILES_MAX);
        assert_int_equal(json_integer_value(json_object_get(resp, "dropped")), 1);
        assert_true(json_is_false(json_object_get(resp, "complete")));
        json_decref(resp);
    }

    write_upf_policy(f, loose);
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    measure(f, "/opt/app/bin/evil", EVIL, true); /* allowed by `loose` only */
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "unknown");
    write_upf_policy(f, strict); /* rolled back */
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    measure(f, "/opt/app/bin/tool-x", GOOD, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "unknown");
}

/* Does one audit record (one line) hold both needles? */
static bool audited_both(struct fx *f, const char *a, const char *b) {
    uint8_t *data = NULL;
    char *text, *save = NULL;
    size_t len;
    bool found = false;

    assert_int_equal(read_file_capped(f->audit, 64u << 20, &data, &len), 0);
    text = malloc(len + 1);
    assert_non_null(text);
    memcpy(text, data, len);
    text[len] = 0;
    for (char *line = strtok_r(text, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        found = strstr(line, a) && strstr(line, b);
    }
    free(text);
    free(data);
    return found;
}

/* The loaded upf policy's id, from GET /v1/policies, checked against
 * the SHA-256 of policy_canonical() over the file as it is now. */
static void upf_policy_id(struct fx *f, char *ret, size_t retsz) {
    json_t *resp = NULL, *p;
    char path[400], err[256], hex[65], want[128];
    uint8_t *data = NULL, md[32];
    char *canon = NULL;
    size_t len;

    assert_int_equal(engine_policies(f->e, &resp), ENGINE_OK);
    p = json_array_get(json_object_get(resp, "policies"), 0);
    assert_string_equal(json_string_value(json_object_get(p, "name")), "upf");
    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    assert_int_equal(read_file_capped(path, 1u << 20, &data, &len), 0);
    assert_int_equal(policy_canonical((char *)data, len, path, NULL, &canon, err, sizeof(err)), 0);
    assert_true(EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL));
    snprintf(want, sizeof(want), "sha256:%s", hex_encode(md, sizeof(md), hex));
    assert_string_equal(json_string_value(json_object_get(p, "digest")), want);
    snprintf(ret, retsz, "%s", json_string_value(json_object_get(p, "id")));
    assert_string_equal(ret + strlen("upf@"), want);
    free(canon);
    free(data);
    json_decref(resp);
}

/* GET /v1/pods/{ns}/{name}/measurements: the kept (path, digest) pairs with
 * their results, as "path=result" in kept order, and the count dropped. */
static void measurements_of(struct fx *f, const char *policy, char *ret, size_t retsz,
                            json_int_t *ret_dropped) {
    json_t *resp = NULL, *m;
    size_t i, n = 0;

    assert_int_equal(engine_pod_measurements(f->e, "open5gs", "upf-0", &resp), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "uid")), UID_A);
    assert_string_equal(json_string_value(json_object_get(json_object_get(resp, "pod"), "name")),
                        "upf-0");
    if (policy) {
        assert_string_equal(json_string_value(json_object_get(resp, "policy")), policy);
    } else {
        assert_true(json_is_null(json_object_get(resp, "policy")));
    }
    ret[0] = 0;
    json_array_foreach(json_object_get(resp, "measurements"), i, m) {
        n += (size_t)snprintf(ret + n, retsz - n, "%s=%s,",
                              json_string_value(json_object_get(m, "path")),
                              json_string_value(json_object_get(m, "result")));
        assert_true(n < retsz);
    }
    *ret_dropped = json_integer_value(json_object_get(resp, "dropped"));
    json_decref(resp);
}

/* Which version of which policy judged a pod: the state-change and
 * violation records, GET /v1/pods/{ns}/{name} and the measurements all
 * name "<name>@sha256:<canonical hex>"; a file rewritten with other
 * whitespace and key order is the same version. */
static void test_verdicts_name_policy(void **state) {
    struct fx *f = *state;
    char id[320], again[320], needle[400], got[1024], path[400];
    json_t *resp = NULL;
    json_int_t dropped = -1;
    struct timespec ts[2];

    upf_policy_id(f, id, sizeof(id));
    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    measure(f, "/usr/bin/upfd", GOOD, true); /* the same pair: kept once */
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_state(f), "trusted");
    snprintf(needle, sizeof(needle), "\"policy\":\"%s\"", id);
    assert_true(audited_both(f, needle, "\"to\":\"trusted\"")); /* the state change */

    assert_int_equal(engine_pod(f->e, "open5gs", "upf-0", &resp), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "policy")), id);
    assert_string_equal(json_string_value(json_object_get(json_object_get(resp, "labels"), "app")),
                        "upf");
    json_decref(resp);
    measurements_of(f, id, got, sizeof(got), &dropped);
    assert_string_equal(got, "/usr/bin/upfd=pass,/usr/lib/libc.so.6=pass,");
    assert_int_equal(dropped, 0);

    /* The same policy, written otherwise: the same id. */
    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    write_text(path,
               "{ \"digests\": { \"/usr/lib/libc.so.6\": [\"sha256:" GOOD "\"],\n"
               "  \"/usr/bin/upfd\": [\"sha256:" GOOD "\", \"sha256:" GOOD "\"] },\n"
               "  \"name\": \"upf\", \"kind\": \"PodPolicy\",\n"
               "  \"match\": {\"podLabels\": {\"app\": \"upf\"}, \"namespace\": \"open5gs\"},\n"
               "  \"apiVersion\": \"kima.dev/v1\" }\n");
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 50;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(engine_reload_policies(f->e), 0);
    upf_policy_id(f, again, sizeof(again));
    assert_string_equal(again, id);
    snprintf(needle, sizeof(needle), "\"loaded\":[\"%s\"]", id);
    assert_true(audited(f, needle)); /* the policy-change record */

    /* A violation names the policy too, and the pair reads "fail". */
    measure(f, "/usr/bin/evil", EVIL, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_state(f), "untrusted");
    snprintf(needle, sizeof(needle), "\"policy\":\"%s\"", id);
    assert_true(audited_both(f, needle, "\"path\":\"/usr/bin/evil\"")); /* the violation */
    assert_true(audited_both(f, needle, "\"to\":\"untrusted\""));
    measurements_of(f, id, got, sizeof(got), &dropped);
    assert_string_equal(got, "/usr/bin/upfd=pass,/usr/lib/libc.so.6=pass,/usr/bin/evil=fail,");

    /* A pod the verifier has no verdict on. */
    assert_int_equal(engine_pod_measurements(f->e, "open5gs", "nope", &resp), ENGINE_NOT_FOUND);
    json_decref(resp);
}

/* An operator reset means "judge it again from the next measurement": a
 * sweep with nothing new measured leaves it unknown. */
static void test_reset_needs_a_measurement(void **state) {
    struct fx *f = *state;
    char node[64];
    json_t *req, *resp = NULL;

    register_and_activate(f);
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
    req = json_pack("{s:s}", "reason", "investigating");
    assert_int_equal(engine_pod_reset(f->e, UID_A, req, "ops", &resp), ENGINE_OK);
    json_decref(req);
    json_decref(resp);
    round_ok(f, &f->nodes[0]); /* nothing new measured */
    write_pods(f, NULL, 0);
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "unknown");
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
}

static size_t audit_bytes(struct fx *f) {
    struct stat st;
    assert_int_equal(stat(f->audit, &st), 0);
    return (size_t)st.st_size;
}

/* A node already untrusted changes nothing by what it reports, so what it
 * reports cannot grow the audit log without bound: five rounds of 20 pods
 * each running a 4 KiB-path binary their policy forbids, and a host binary
 * the NodePolicy forbids, add a few records, not a hundred. */
static void test_untrusted_node_audit_bounded(void **state) {
    struct fx *f = *state;
    char path[400], p[4200], uids[20][64], lines[19][128];
    const char *extra[19];
    size_t before, grew = 0;

    for (int i = 0; i < 20; i++) {
        snprintf(uids[i], sizeof(uids[i]), "1a2b3c4d-0000-4111-8222-%012d", i + 1);
    }
    snprintf(uids[0], sizeof(uids[0]), "%s", UID_A);
    for (int i = 1; i < 20; i++) {
        snprintf(lines[i - 1], sizeof(lines[i - 1]), "%s " NODE, uids[i]);
        extra[i - 1] = lines[i - 1];
    }
    write_pods(f, extra, 19);
    register_and_activate(f);
    node_policy(f, "/usr/bin/containerd", path, sizeof(path));
    measure(f, "/tmp/miner", EVIL, false);
    round_ok(f, &f->nodes[0]);
    resp_state_is(f, NODE, "untrusted");
    for (int r = 0; r < 5; r++) {
        before = audit_bytes(f);
        for (int i = 0; i < 21; i++) {
            memset(p, 'a', 4000);
            p[4000] = 0;
            memcpy(p, "/x/", 3);
            p[3] = (char)('a' + r);
            p[4] = (char)('a' + i);
            if (i < 20) {
                measure_pod(&f->nodes[0], uids[i], p, EVIL);
            } else {
                measure(f, p, EVIL, false);
            }
        }
        round_ok(f, &f->nodes[0]);
        grew += audit_bytes(f) - before;
    }
    assert_true(grew < 64 * 1024);
}

/* The template name is not in the template digest: a node can send its
 * pod's entry under another name (the PCR replays the same) to move it out
 * of the pod, where without a NodePolicy nothing judges it. A cgroup field
 * that does not read as its template says, or a template neither built in
 * nor listed (--ima-templates), fails the node. */
static void test_renamed_template(void **state) {
    struct fx *f = *state;
    char cg[300], base[300];
    json_t *resp = NULL, *nj;

    register_and_activate(f);
    snprintf(cg, sizeof(cg), "%s", pod_cgroup(UID_A, base, sizeof(base)));
    /* An ima-cgpath entry of upf-0 named ima-dep-cgn: its cgn would be a
     * path, and the entry node scope. */
    measure_t(&f->nodes[0], "ima-dep-cgn", "/tmp/miner", EVIL, cg, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    json_decref(resp);
    nj = node_json(f, NODE);
    assert_non_null(strstr(json_string_value(json_object_get(nj, "reason")),
                           "its cgroup field does not read as its template says"));
    json_decref(nj);
}

static void test_unlisted_template(void **state) {
    struct fx *f = *state;
    char cg[300], base[300];
    json_t *resp = NULL, *nj;

    register_and_activate(f);
    snprintf(cg, sizeof(cg), "%s", pod_cgroup(UID_A, base, sizeof(base)));
    /* The same entry named as a custom format with no cgroup field. */
    measure_t(&f->nodes[0], "dep|buf|d-ng|n-ng", "/tmp/miner", EVIL, cg, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    json_decref(resp);
    nj = node_json(f, NODE);
    assert_non_null(strstr(json_string_value(json_object_get(nj, "reason")),
                           "has the template \"dep|buf|d-ng|n-ng\", which is neither built in"));
    json_decref(nj);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_foreign_pod_claim, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_pod_judged_later, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_pod_foreign, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_pod_expires, setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_share, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_full_stops_round, setup_no_grace,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_waiting_overflow_nodepolicy, setup_no_grace,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_deep_and_unplaced_cgroups, setup, teardown),
            cmocka_unit_test_setup_teardown(test_deleted_pod_keeps_node, setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_static_pod_attributed, setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_mirror_annotation_decoy, setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_static_pod_mirror_recreated, setup_no_grace,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_late_policy_match_judges_kept, setup, teardown),
            cmocka_unit_test_setup_teardown(test_late_policy_match_next_round, setup, teardown),
            cmocka_unit_test_setup_teardown(test_policy_change_judges_again, setup, teardown),
            cmocka_unit_test_setup_teardown(test_gone_pod_records_dropped, setup, teardown),
            cmocka_unit_test_setup_teardown(test_gone_pod_back, setup, teardown),
            cmocka_unit_test_setup_teardown(test_deleted_pod_after_restart, setup_no_grace,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_cgn_init_container, setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_renamed_template, setup, teardown),
            cmocka_unit_test_setup_teardown(test_unlisted_template, setup, teardown),
            cmocka_unit_test_setup_teardown(test_overflow_policy_flip_back, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reset_needs_a_measurement, setup, teardown),
            cmocka_unit_test_setup_teardown(test_untrusted_node_audit_bounded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_verdicts_name_policy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
