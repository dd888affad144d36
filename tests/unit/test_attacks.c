/* SPDX-License-Identifier: Apache-2.0 */
/* Attacks from the third security review, each asserting what holds (it
 * failed before the fix it names): another node's mirror pod or pod status
 * claiming a node's static pod hash or container ID, a waiting-list flood,
 * a TPM restart passed off as a reboot, reboot records, EK squatting and a
 * second certified EK, a pod relabelled out of its policy, a forgotten
 * untrusted static pod; the ones marked "held" guard what was tried and
 * found sound. Harness: tests/helpers/engine-fx.c (real swtpm TPMs, no
 * HTTP). */
#include "engine-fx.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#include "base64.h"
#include "credential.h"
#include "engine-internal.h"
#include "judge.h"
#include "json-util.h"
#include "pubkey.h"

#define UID_D      "1a2b3c4d-0000-4111-8222-dddddddddddd"
#define STATIC_UID "5d1b7e0c2f3a4b6c8d9e0f1a2b3c4d5e" /* a kubelet config hash */
#define STATIC_CG                                                                          \
    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" STATIC_UID ".slice/" \
    "cri-containerd-" CID_A ".scope"

/* A mirror pod in kube-system standing for the static pod STATIC_UID. */
#define MIRROR(uid, name, node)                                                                   \
    "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"kube-system\",\"name\":\"" name "\","     \
    "\"labels\":{\"app\":\"upf\"},\"annotations\":{\"kubernetes.io/config.mirror\":\"" STATIC_UID \
    "\"}},\"spec\":{\"nodeName\":\"" node "\"}}"

/* ---- helpers ---- */

static void round_ok(struct fx *f, struct tnode *t) {
    json_t *resp = NULL;
    assert_int_equal(attest_node(f, t, &resp, NULL), ENGINE_OK);
    json_decref(resp);
}

static const char *node_state_of(struct fx *f, const char *node) {
    static char state[32];
    json_t *nj = node_json(f, node);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(nj, "state")));
    json_decref(nj);
    return state;
}

static json_int_t node_waiting(struct fx *f, const char *node) {
    json_t *nj = node_json(f, node);
    json_int_t n = json_integer_value(json_object_get(nj, "waiting_measurements"));
    json_decref(nj);
    return n;
}

/* A pod's state as operators read it, by identity; "absent" without a record. */
static const char *pod_state_uid(struct fx *f, const char *uid) {
    static char state[32];
    json_t *resp = NULL, *p;
    size_t i;

    snprintf(state, sizeof(state), "absent");
    assert_int_equal(engine_pods(f->e, NULL, &resp), ENGINE_OK);
    json_array_foreach(json_object_get(resp, "pods"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "uid")), uid) == 0) {
            snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(p, "state")));
        }
    }
    json_decref(resp);
    return state;
}

static size_t count_audited(struct fx *f, const char *needle) {
    size_t len, n = 0;
    uint8_t *data = NULL;
    const uint8_t *at;

    assert_int_equal(read_file_capped(f->audit, 64u << 20, &data, &len), 0);
    for (at = data; (at = memmem(at, len - (size_t)(at - data), needle, strlen(needle)));
         at += strlen(needle)) {
        n++;
    }
    free(data);
    return n;
}

static void upf_policy_in(struct fx *f, const char *name, const char *ns) {
    char path[400], text[600];

    snprintf(path, sizeof(path), "%s/%s.json", f->policies, name);
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"%s\","
             "\"match\":{\"namespace\":\"%s\",\"podLabels\":{\"app\":\"upf\"}},"
             "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"]}}",
             name, ns);
    write_text(path, text);
    assert_int_equal(engine_reload_policies(f->e), 0);
}

/* ---- 1. static pods: one config hash, two mirror pods ---- */

/* F1a. A node holds kubelet credentials, and a kubelet may create mirror
 * pods bound to itself in any namespace, kube-system included, with any
 * kubernetes.io/config.mirror value (NodeRestriction checks the node, not
 * the hash). node-2 creates a mirror pod carrying node-1's static pod's
 * config hash, named so that it is listed first. The inventory's hash index
 * then answers with node-2's pod (the first one put in), so node-1's honest
 * measurement of its own static pod is "a pod the inventory places on
 * node-2": node-1 fails, with every pod on it.
 * What holds: a hash claimed by two mirror pods is not believed for the other
 * node (the reporting node's own mirror pod wins, or the claim waits);
 * node-1 stays trusted and its static pod is judged. */
static void test_r3_duplicate_static_hash_fails_honest_node(void **state) {
    struct fx *f = *state;

    upf_policy_in(f, "ks", "kube-system");
    write_items(f,
                POD(UID_A, "upf-0", NODE) "," MIRROR(UID_D, "aaa-decoy-node-2", NODE2) "," MIRROR(
                        UID_B, "upf-static-node-1", NODE));
    register_node(f, &f->nodes[0]);
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, STATIC_CG);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(node_state_of(f, NODE), "trusted");
    assert_string_equal(pod_state_uid(f, STATIC_UID), "trusted");
}

/* F1b. The same decoy, and node-2 (its own TPM, its own agent
 * certificate) reports a good binary in the static pod's cgroup first: the
 * static pod's record (its identity is the hash) is placed on node-2 and
 * trusted. node-1's static pod then runs a binary its policy forbids:
 * node-1 fails as a "liar", the record on node-2 stays trusted, and the
 * Kubernetes side (kube.c keys `applied` by the same hash; the later item,
 * the real mirror pod, wins) labels the real mirror pod trusted.
 * What holds: the static pod that ran /tmp/miner does not read trusted. */
static void test_r3_duplicate_static_hash_captures_verdict(void **state) {
    struct fx *f = *state;
    struct tnode *t2 = node2(f);

    upf_policy_in(f, "ks", "kube-system");
    write_items(f,
                POD(UID_A, "upf-0", NODE) "," MIRROR(UID_D, "aaa-decoy-node-2", NODE2) "," MIRROR(
                        UID_B, "upf-static-node-1", NODE));
    register_node(f, &f->nodes[0]);
    register_node(f, t2);
    measure_cg(t2, "/usr/bin/upfd", GOOD, STATIC_CG);
    round_ok(f, t2);
    measure_cg(&f->nodes[0], "/tmp/miner", EVIL, STATIC_CG);
    round_ok(f, &f->nodes[0]);
    assert_string_not_equal(pod_state_uid(f, STATIC_UID), "trusted");
}

/* ---- 1'. cgn templates: one container ID, two pods ---- */

#define CGN_POD(uid, ns, name, node, labels)                                                    \
    "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"" ns "\",\"name\":\"" name "\"," labels \
    "},\"spec\":{\"nodeName\":\"" node "\"},\"status\":{\"containerStatuses\":[{\"name\":"      \
    "\"c\",\"containerID\":\"containerd://" CID_A "\"}]}}"

/* F2. With the cgn template a container is found by its ID alone, and the
 * container index takes the first pod listed with that ID. Pod status is
 * written by the kubelet of the pod's node (and by anyone granted
 * pods/status), so node-2's kubelet (or a tenant with pods/status) puts
 * node-1's container ID into the status of its own pod, listed first.
 * node-1's honest measurement in that container is then a claim on a pod
 * of node-2: node-1 fails.
 * What holds: a container ID two pods claim is not believed against the
 * reporting node (prefer the pod on the reporting node, or treat the ID as
 * ambiguous); node-1 and upf-0 stay trusted. */
static void test_r3_duplicate_container_id_fails_honest_node(void **state) {
    struct fx *f = *state;
    char node[64];

    write_items(f, CGN_POD(UID_D, "aaa", "decoy", NODE2, "\"labels\":{}") "," CGN_POD(
                           UID_A, "open5gs", "upf-0", NODE, "\"labels\":{\"app\":\"upf\"}"));
    register_node(f, &f->nodes[0]);
    measure_t(&f->nodes[0], "ima-dep-cgn", "/usr/bin/upfd", GOOD, "cri-containerd-" CID_A ".scope",
              true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(node_state_of(f, NODE), "trusted");
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
}

/* ---- 3. the waiting list ---- */

/* Measurements of a pod (UID n) the inventory does not list. */
static void flood_unlisted(struct fx *f, const char *uid, int n, const char *prefix) {
    char p[64];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s%d", prefix, i);
        measure_pod(&f->nodes[0], uid, p, GOOD);
    }
}

/* F3. A tenant's pod (UID_D) runs 2048 distinct files and is force-deleted
 * before any list shows it (kubectl delete --grace-period=0 --force takes
 * it out of the API at once): its measurements fill node-1's waiting list
 * for the attribution grace (10 s) plus a list interval. Another tenant's
 * pod (UID_B) starting on node-1 in that window (every new pod's first
 * measurements wait for the next list) has its measurements only counted,
 * and reads `unknown` for good: later rounds of nothing but good binaries
 * never make it trusted (only an operator's reset does). Repeating the
 * flood keeps every new pod of the node unknown.
 * What holds: one pod cannot use up the room of the others (a share per pod or
 * container; what overflows is counted against the pod that overflowed);
 * upf-1 turns trusted once listed and judged. */
static void test_r3_waiting_flood_makes_victim_unknown_for_good(void **state) {
    struct fx *f = *state;
    char node[64];

    register_node(f, &f->nodes[0]);
    flood_unlisted(f, UID_D, JUDGE_WAITING_MAX, "/opt/t/f");
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD); /* the victim starts */
    round_ok(f, &f->nodes[0]);
    write_items(f, POD(UID_A, "upf-0", NODE) "," POD(UID_B, "upf-1", NODE)); /* listed */
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    for (int r = 0; r < 3; r++) { /* it runs nothing but its golden binaries */
        measure_pod(&f->nodes[0], UID_B, r ? "/usr/lib/libc.so.6" : "/usr/bin/upfd", GOOD);
        round_ok(f, &f->nodes[0]);
    }
    {
        json_t *resp = NULL;
        assert_int_equal(engine_pod(f->e, "open5gs", "upf-1", &resp), ENGINE_OK);
        if (strcmp(json_string_value(json_object_get(resp, "state")), "trusted") != 0) {
            fail_msg("upf-1 reads %s: %s", json_string_value(json_object_get(resp, "state")),
                     json_string_value(json_object_get(resp, "reason")));
        }
        json_decref(resp);
    }
    (void)node;
}

/* F4. Without a NodePolicy the verifier does not fail a node for a pod
 * nobody listed ("a tenant who may create and delete pods could otherwise
 * fail nodes at will"), but JUDGE_DROPPED_MAX does exactly that: once the
 * waiting list is full, measurements of 257 pods the inventory does not
 * show fail the node (and every pod on it, sticky until an operator
 * deletes the node). A tenant gets there with force-deleted pods (or, with
 * the cgn template, with containers whose IDs the kubelet has not reported
 * yet: each container ID counts as one).
 * What holds: node-1 (whose kernel only recorded what the tenant ran) stays
 * trusted without a NodePolicy; what overflowed is recorded. */
static void test_r3_tenant_pods_fail_node_without_nodepolicy(void **state) {
    struct fx *f = *state;
    char uid[64];

    register_node(f, &f->nodes[0]);
    flood_unlisted(f, UID_D, JUDGE_WAITING_MAX, "/opt/t/f");
    for (int i = 0; i <= 256; i++) { /* more pods than the old JUDGE_DROPPED_MAX */
        snprintf(uid, sizeof(uid), "1a2b3c4d-0000-4111-8222-%012d", i + 1);
        measure_pod(&f->nodes[0], uid, "/opt/t/x", GOOD);
    }
    round_ok(f, &f->nodes[0]);
    assert_string_equal(node_state_of(f, NODE), "trusted");
}

/* ---- 5. reboots ---- */

static char boot_id[32];

static void set_boot_id(json_t *req, uint8_t *ima, size_t n) {
    (void)ima;
    (void)n;
    json_object_set_new(req, "boot_id", json_string(boot_id));
}

static void set_boot_id_wrong_from(json_t *req, uint8_t *ima, size_t n) {
    set_boot_id(req, ima, n);
    json_object_set_new(json_object_get(req, "ima"), "from", json_integer(999999));
}

/* A node whose AK is kept in a file, so that it can be loaded again after
 * the TPM restarts (the fixture's nodes keep it only in the TPM). */
static void node_start_with_ak_file(struct tnode *t, const char *name, char *akpath,
                                    size_t akpathsz) {
    t->name = name;
    assert_int_equal(swtpm_start(&t->sw, false), 0);
    assert_int_equal(tpm_open(t->sw.tcti, &t->tpm), 0);
    t->ek = (struct tpm_key)TPM_KEY_INIT;
    t->ak = (struct tpm_key)TPM_KEY_INIT;
    snprintf(akpath, akpathsz, "%s/ak.blob", t->sw.dir);
    assert_int_equal(tpm_ek_load(t->tpm, TPM_KEY_RSA, &t->ek), 0);
    assert_int_equal(tpm_ak_create(t->tpm, &t->ek, TPM_KEY_RSA, akpath, &t->ak), 0);
    ima_gen_init(&t->g, 20, 1 << 24);
}

/* A TPM Restart, as on resume from hibernation (S4): TPM2_Shutdown(STATE),
 * _TPM_Init, TPM2_Startup(CLEAR). resetCount stays, restartCount goes up,
 * and the PCRs (PCR 10 included) are back to zero. */
static void tpm_restart(struct tnode *t, const char *akpath) {
    char ctrl[340];
    char *argv[] = {"swtpm_ioctl", "--unix", ctrl, "-i", NULL};

    snprintf(ctrl, sizeof(ctrl), "%s/sock.ctrl", t->sw.dir);
    tpm_key_release(t->tpm, &t->ak);
    tpm_key_release(t->tpm, &t->ek);
    assert_int_equal(
            Esys_Shutdown(t->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_SU_STATE),
            TSS2_RC_SUCCESS);
    tpm_close(t->tpm);
    t->tpm = NULL;
    assert_int_equal(test_run_quiet(argv), 0);
    assert_int_equal(tpm_open(t->sw.tcti, &t->tpm), 0); /* Startup(CLEAR) */
    assert_int_equal(tpm_ek_load(t->tpm, TPM_KEY_RSA, &t->ek), 0);
    assert_int_equal(tpm_ak_load(t->tpm, &t->ek, akpath, &t->ak), 0);
}

/* F5. A reboot is "the TPM's resetCount moved, or the agent's boot id
 * changed", and the boot id is the agent's word. On a TPM Restart (resume
 * from hibernation: root can hibernate a node with swap and no lockdown)
 * PCR 10 is zero again while resetCount stays. Root on node-2 runs
 * /tmp/miner in upf-1 (measured, PCR 10 extended), withholds that round,
 * hibernates, then extends a clean list into the fresh PCR 10 and reports
 * it with a new boot id: the verifier replays it from zero, never sees the
 * miner, and upf-1 (whose miner is still in memory) reads trusted.
 * What holds: a replay restarts only when the TPM shows a reset (resetCount);
 * a boot id change or a TPM restart without one keeps the replay position
 * (kexec with the IMA list carried over), so a PCR 10 that went back to
 * zero does not replay and the node fails. */
static void test_r3_boot_id_alone_restarts_replay(void **state) {
    struct fx *f = *state;
    struct tnode *t = &f->nodes[1];
    char akpath[400], node[64];
    json_t *resp = NULL;
    static struct node_record before, after;

    node_start_with_ak_file(t, NODE2, akpath, sizeof(akpath));
    write_items(f, POD(UID_A, "upf-0", NODE) "," POD(UID_B, "upf-1", NODE2));
    register_node(f, t);
    measure_pod(t, UID_B, "/usr/bin/upfd", GOOD);
    round_ok(f, t);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted");

    assert_int_equal(store_node_get(f->store, NODE2, &before), 0);
    measure_pod(t, UID_B, "/tmp/miner", EVIL); /* measured; the round is withheld */
    tpm_restart(t, akpath);
    ima_gen_free(&t->g);
    ima_gen_init(&t->g, 20, 1 << 24);
    t->sent = t->sent_index = 0;
    measure_pod(t, UID_B, "/usr/bin/upfd", GOOD); /* a clean list, from zero */
    snprintf(boot_id, sizeof(boot_id), "boot-2");
    /* No TPM reset: no reboot, whatever the boot id says. The list must go
     * on where it was; a list from zero is refused (409), and a PCR 10
     * that went back cannot replay: the node cannot attest again, goes
     * stale, and upf-1 is not trusted any more. */
    assert_int_equal(attest_node(f, t, &resp, set_boot_id), ENGINE_CONFLICT);
    json_decref(resp);
    assert_int_equal(store_node_get(f->store, NODE2, &after), 0);
    assert_int_equal(after.reset_count, before.reset_count);
    assert_int_equal(after.ima_index, before.ima_index);
    assert_false(audited(f, "\"type\":\"reboot\""));
    after.last_attested_ms -= 60000;
    assert_int_equal(store_node_put(f->store, &after), 0);
    assert_string_not_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted");
}

/* F6. "What an untrusted pod or node reports is recorded at the noisy
 * rate", but a `reboot` record is written for every round whose boot id
 * changed, also for a node that is untrusted (nothing it says matters) and
 * also when the round is then refused (wrong index: the reboot is kept).
 * Each such round costs the node one quote; each record is fdatasynced
 * under the engine's lock.
 * What holds: at most the noisy burst of reboot records a minute from a node
 * already untrusted. */
static void test_r3_reboot_records_unbounded(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;

    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]); /* boot id "boot-1" stored */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), ENGINE_OK); /* a bad quote */
    json_decref(resp);
    assert_string_equal(node_state_of(f, NODE), "untrusted");
    for (int i = 0; i < 20; i++) {
        snprintf(boot_id, sizeof(boot_id), "boot-x%d", i);
        assert_int_equal(attest(f, &resp, set_boot_id_wrong_from), ENGINE_CONFLICT);
        json_decref(resp);
    }
    {
        size_t n = count_audited(f, "\"type\":\"reboot\"");
        if (n > 6) {
            fail_msg("%zu reboot records from an untrusted node in 20 rounds", n);
        }
    }
}

/* ---- 6. one TPM, one node ---- */

/* F7. An EK is bound to a name at registration, before anything proved
 * that the registrant holds the TPM (activation). node-2's agent
 * certificate registers node-1's EK (public data: readable by anyone with
 * access to node-1's TPM or its EK certificate) with some AK under node-2's
 * own name and never activates. node-1 (a new node, or one an operator
 * deleted to clear it) then cannot register: 409 "this TPM (EK) is
 * registered as node node-2", until an operator deletes node-2.
 * What holds: a registration that was never activated binds no EK (check it
 * again at activation instead); node-1 registers. */
static void test_r3_unactivated_registration_squats_ek(void **state) {
    struct fx *f = *state;
    struct tnode *t2 = node2(f);
    json_t *req, *resp = NULL;
    enum engine_status st;

    req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&f->nodes[0].ek.public), "ak_pub",
                    public_b64(&t2->ak.public));
    st = engine_registration(f->e, NODE2, req, &resp);
    json_decref(req);
    json_decref(resp);
    assert_int_equal(st, ENGINE_CREATED); /* never activated: node-2 has not that TPM */
    assert_int_equal(
            register_as(f, &f->nodes[0], NODE, &f->nodes[0].ek.public, &f->nodes[0].ak, false),
            ENGINE_CREATED);
}

/* A test CA (the TPM vendor's, for the verifier) and EK certificates. */
static EVP_PKEY *ca_key;
static X509 *ca_cert;
static X509_STORE *ek_store; /* borrowed by the engine until teardown */

static int teardown_ek(void **state) {
    int r = teardown(state);
    X509_STORE_free(ek_store);
    ek_store = NULL;
    return r;
}

static X509 *cert_for(EVP_PKEY *pub, const char *cn, long serial, bool ca) {
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, nm);
    X509_set_issuer_name(x, ca ? nm : X509_get_subject_name(ca_cert));
    X509_NAME_free(nm);
    X509_set_pubkey(x, pub);
    if (ca) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *bc =
                X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign");
        X509_add_ext(x, bc, -1);
        X509_add_ext(x, ku, -1);
        X509_EXTENSION_free(bc);
        X509_EXTENSION_free(ku);
    }
    assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
    return x;
}

static json_t *ek_cert_b64(const TPMT_PUBLIC *ek, long serial) {
    EVP_PKEY *pk = NULL;
    X509 *x;
    unsigned char *der = NULL;
    int len;
    json_t *j;

    assert_int_equal(tpm_public_to_pkey(ek, &pk), 0);
    x = cert_for(pk, "EK", serial, false);
    len = i2d_X509(x, &der);
    assert_true(len > 0);
    j = json_base64(der, (size_t)len);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(pk);
    return j;
}

/* TPM2_ActivateCredential with an EK whose userWithAuth lets a password
 * session (empty auth) use it, as the TCG high-range templates do. */
static void activate_with(struct fx *f, struct tnode *t, const char *name, ESYS_TR ek, json_t *resp,
                          bool policy_session) {
    uint8_t *blob, *secret, proof[TPM_ACTIVATION_PROOF_SIZE];
    size_t blen, slen, off = 0;
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    TPM2B_DIGEST *cred = NULL;
    char err[200];
    json_t *req, *r2 = NULL;

    assert_int_equal(json_get_base64(resp, "credential_blob", 4096, &blob, &blen, err, sizeof(err)),
                     0);
    assert_int_equal(json_get_base64(resp, "secret", 4096, &secret, &slen, err, sizeof(err)), 0);
    assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blen, &off, &id), TSS2_RC_SUCCESS);
    off = 0;
    assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret, slen, &off, &es),
                     TSS2_RC_SUCCESS);
    free(blob);
    free(secret);
    if (policy_session) {
        uint8_t c[64];
        size_t clen;
        struct tpm_key ekk = {.handle = ek};
        assert_int_equal(tpm_activate_credential(t->tpm, &t->ak, &ekk, &id, &es, c, &clen), 0);
        assert_int_equal(
                tpm_activation_proof(c, clen, name, t->ak.name.name, t->ak.name.size, proof), 0);
    } else {
        assert_int_equal(Esys_ActivateCredential(t->tpm->esys, t->ak.handle, ek, ESYS_TR_PASSWORD,
                                                 ESYS_TR_PASSWORD, ESYS_TR_NONE, &id, &es, &cred),
                         TSS2_RC_SUCCESS);
        assert_int_equal(tpm_activation_proof(cred->buffer, cred->size, name, t->ak.name.name,
                                              t->ak.name.size, proof),
                         0);
        Esys_Free(cred);
    }
    req = json_pack("{s:o}", "proof", json_base64(proof, sizeof(proof)));
    assert_int_equal(engine_activation(f->e, name, req, &r2), ENGINE_OK);
    json_decref(req);
    json_decref(r2);
}

/* F8. "With EK certificates only the certified RSA EK registers": the
 * registration accepts any RSA key that a trusted CA certified for it; it
 * pins neither the key size nor the TCG template. A TPM provisioned with
 * EK certificates for more than one RSA template (the EK Credential
 * Profile's L-1 RSA-2048 and its high-range H-1 RSA-2048, H-6 RSA-3072 and
 * H-7 RSA-4096, each at its own NV index) registers as two node names with
 * --require-ek-cert. Here: the L-1 EK and an H-1 EK of the same swtpm, both
 * certified by the (test) vendor CA.
 * What holds: only the L-1 template's EK registers (its attributes, policy and
 * size), so a second certified EK of the same TPM is refused. */
static void test_r3_second_certified_rsa_ek(void **state) {
    struct fx *f = *state;
    struct tnode *t = &f->nodes[0];
    struct engine_config cfg;
    X509_STORE *store = ek_store = X509_STORE_new();
    TPM2B_PUBLIC tmpl, *out = NULL;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    ESYS_TR ek2 = ESYS_TR_NONE;
    /* TCG EK Credential Profile 2.5, H-1: PolicyB (SHA-256). */
    static const uint8_t policy_b[32] = {0xca, 0x3d, 0x0a, 0x99, 0xa2, 0xb9, 0x39, 0x06,
                                         0xf7, 0xa3, 0x34, 0x24, 0x14, 0xef, 0xcf, 0xb3,
                                         0xa3, 0x85, 0xd4, 0x4c, 0xd1, 0xfd, 0x45, 0x90,
                                         0x89, 0xd1, 0x9b, 0x50, 0x71, 0xc0, 0xb7, 0xa0};
    json_t *req, *resp = NULL;
    enum engine_status st;

    ca_key = EVP_RSA_gen(2048);
    assert_non_null(ca_key);
    ca_cert = cert_for(ca_key, "test TPM vendor EK CA", 1, true);
    assert_int_equal(X509_STORE_add_cert(store, ca_cert), 1);
    engine_free(f->e);
    engine_config_default(&cfg);
    cfg.min_challenge_ms = 0;
    cfg.ek_store = store;
    cfg.require_ek_cert = true;
    assert_int_equal(engine_new(&cfg, f->store, f->log, f->inv, f->policies, &f->e), 0);

    /* node-1: the L-1 EK with its certificate. */
    req = json_pack("{s:o,s:o,s:o}", "ek_pub", public_b64(&t->ek.public), "ak_pub",
                    public_b64(&t->ak.public), "ek_cert", ek_cert_b64(&t->ek.public.publicArea, 2));
    st = engine_registration(f->e, NODE, req, &resp);
    json_decref(req);
    assert_int_equal(st, ENGINE_CREATED);
    activate_with(f, t, NODE, t->ek.handle, resp, true);
    json_decref(resp);

    /* The H-1 EK of the same TPM. */
    tpm_ek_template(TPM_KEY_RSA, &tmpl);
    tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                       TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED |
                                       TPMA_OBJECT_DECRYPT;
    tmpl.publicArea.authPolicy.size = 32;
    memcpy(tmpl.publicArea.authPolicy.buffer, policy_b, 32);
    tmpl.publicArea.unique.rsa.size = 0;
    assert_int_equal(Esys_CreatePrimary(t->tpm->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
                                        ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs,
                                        &ek2, &out, NULL, NULL, NULL),
                     TSS2_RC_SUCCESS);
    assert_int_equal(out->publicArea.type, TPM2_ALG_RSA);
    assert_int_equal(out->publicArea.parameters.rsaDetail.keyBits, 2048);
    req = json_pack("{s:o,s:o,s:o}", "ek_pub", public_b64(out), "ak_pub", public_b64(&t->ak.public),
                    "ek_cert", ek_cert_b64(&out->publicArea, 3));
    st = engine_registration(f->e, NODE2, req, &resp);
    json_decref(req);
    if (st == ENGINE_CREATED) {
        activate_with(f, t, NODE2, ek2, resp, false); /* it activates too: a second node */
        assert_string_equal(node_state_of(f, NODE2), "active");
    }
    json_decref(resp);
    Esys_Free(out);
    Esys_FlushContext(t->tpm->esys, ek2);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    assert_int_equal(st, ENGINE_MALFORMED); /* not the L-1 template */
}

/* ---- 7/8. policy choice by labels ---- */

/* F9. The policy is chosen by namespace, labels and images, and a pod no
 * policy matches is `unknown`, which the quarantine NetworkPolicy (it
 * selects `untrusted`) does not cut off. A tenant who may label its pods
 * (label-guard.yaml guards only kima.dev/trust) removes app=upf from its
 * trusted pod: the pod reads unknown ("no policy matches"), then runs
 * /tmp/miner: it is kept, judged by nothing, and the pod stays unknown and
 * un-quarantined (the kept miner is judged only if a policy matches again).
 * What holds: a pod that a policy judged does not escape it by losing the
 * match: what it runs afterwards makes it untrusted (keep judging by the
 * last policy, or read untrusted), or --unknown-untrusted by default /
 * quarantine every pod not `trusted`. */
static void test_r3_relabel_escapes_policy(void **state) {
    struct fx *f = *state;
    char node[64];

    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    write_items(f,
                "{\"metadata\":{\"uid\":\"" UID_A "\",\"namespace\":\"open5gs\",\"name\":"
                "\"upf-0\",\"labels\":{\"app\":\"upf-x\"}},\"spec\":{\"nodeName\":\"" NODE "\"}}");
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
}

/* ---- 2. gone pods ---- */

/* F10. A static pod's identity is its config hash, which outlives its
 * mirror pods, but its record goes 15 minutes after the mirror pod is
 * found gone, like a deleted pod's. The static pod itself (the kubelet
 * runs it from the manifest whatever the API shows) is still running what
 * made it untrusted. When the mirror pod comes back (the node's kubelet
 * deletes it and recreates it later: it holds the credentials for both),
 * the same static pod starts over as unknown, and turns trusted on its next
 * good measurement.
 * What holds: an untrusted static pod stays untrusted while its node has not
 * rebooted (or until an operator resets it). */
static void test_r3_static_pod_forgotten_then_trusted(void **state) {
    struct fx *f = *state;
    struct pod_record rec;

    upf_policy_in(f, "ks", "kube-system");
    write_items(f, POD(UID_A, "upf-0", NODE) "," MIRROR(UID_B, "upf-static-node-1", NODE));
    register_node(f, &f->nodes[0]);
    measure_cg(&f->nodes[0], "/tmp/miner", EVIL, STATIC_CG);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_state_uid(f, STATIC_UID), "untrusted");

    write_items(f, POD(UID_A, "upf-0", NODE)); /* the mirror pod deleted */
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_int_equal(store_pod_get(f->store, STATIC_UID, &rec), 0);
    assert_true(rec.gone_ms > 0);
    rec.gone_ms -= INVENTORY_GONE_KEEP_MS + 1000; /* ... and not back for 15 minutes */
    assert_int_equal(store_pod_put(f->store, &rec), 0);
    write_items(f, POD(UID_A, "upf-0", NODE));
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    assert_int_equal(store_pod_get(f->store, STATIC_UID, &rec), 0); /* not forgotten */
    assert_false(audited(f, "\"type\":\"pod-forgotten\""));

    write_items(f, POD(UID_A, "upf-0", NODE) "," MIRROR(UID_C, "upf-static-node-1", NODE));
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, STATIC_CG);
    round_ok(f, &f->nodes[0]);
    assert_string_not_equal(pod_state_uid(f, STATIC_UID), "trusted");
}

/* Held: a deleted pod's record is recalled after a restart only on its own
 * node and only within 15 minutes of being found gone. node-2 cannot use
 * it for node-1's pod; node-1 cannot use it once the window has passed. */
static void test_r3_held_recall_bounds(void **state) {
    struct fx *f = *state;
    struct tnode *t2 = node2(f);
    struct pod_record rec;

    register_node(f, &f->nodes[0]);
    register_node(f, t2);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    write_items(f, ""); /* upf-0 deleted */
    assert_int_equal(engine_rejudge_pods(f->e), 0);
    close_engine(f); /* the verifier restarts: its inventory forgot upf-0 */
    open_engine(f);

    /* Another node's claim on it waits (it is not recalled for node-2). */
    measure_pod(t2, UID_A, "/tmp/miner", EVIL);
    round_ok(f, t2);
    assert_int_equal(store_pod_get(f->store, UID_A, &rec), 0);
    assert_int_equal(rec.state, POD_TRUSTED);
    assert_int_equal(node_waiting(f, NODE2), 1);

    /* Past the keep window, node-1's own claim is not recalled either. */
    assert_int_equal(store_pod_get(f->store, UID_A, &rec), 0);
    rec.gone_ms -= INVENTORY_GONE_KEEP_MS + 1000;
    assert_int_equal(store_pod_put(f->store, &rec), 0);
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    assert_int_equal(store_pod_get(f->store, UID_A, &rec), 0);
    assert_int_equal(rec.state, POD_TRUSTED);
    assert_int_equal(node_waiting(f, NODE), 1);
}

/* ---- 4. noisy records ---- */

/* Held: a pod already untrusted floods violations (noisy: five a minute),
 * and the first violation of another, trusted pod of the same node in the
 * same minute is still written (it changes a verdict). */
static void test_r3_held_first_violation_not_noisy(void **state) {
    struct fx *f = *state;
    char p[64], node[64];

    write_items(f, POD(UID_A, "upf-0", NODE) "," POD(UID_B, "upf-1", NODE));
    register_node(f, &f->nodes[0]);
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    measure(f, "/tmp/miner", EVIL, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted");
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof(p), "/tmp/noise-%d", i);
        measure(f, p, EVIL, true);
        round_ok(f, &f->nodes[0]);
    }
    assert_true(count_audited(f, "/tmp/noise-") <= NOISY_BURST);
    measure_pod(&f->nodes[0], UID_B, "/tmp/the-real-one", EVIL);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "untrusted");
    assert_true(count_audited(f, "\"path\":\"/tmp/the-real-one\"") >= 1);
}

/* Held (the bound of F3): a pod the inventory already lists is judged at
 * once, however full the waiting list is. */
static void test_r3_held_listed_pod_unaffected_by_flood(void **state) {
    struct fx *f = *state;
    char node[64];

    register_node(f, &f->nodes[0]);
    flood_unlisted(f, UID_D, JUDGE_WAITING_MAX + 5, "/opt/t/f");
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
}

/* Held (item 5): a refused round (wrong index, no reboot) records nothing
 * and leaves no transaction open: the next round is judged and committed. */
static void test_r3_held_refusal_records_nothing(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    size_t before;
    char node[64];

    register_node(f, &f->nodes[0]);
    measure(f, "/usr/bin/upfd", GOOD, true);
    round_ok(f, &f->nodes[0]);
    measure(f, "/tmp/miner", EVIL, true);
    before = count_audited(f, "\"seq\":");
    snprintf(boot_id, sizeof(boot_id), "boot-1");
    assert_int_equal(attest(f, &resp, set_boot_id_wrong_from), ENGINE_CONFLICT);
    json_decref(resp);
    assert_int_equal(count_audited(f, "\"seq\":"), before);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    round_ok(f, &f->nodes[0]);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_r3_duplicate_static_hash_fails_honest_node,
                                            setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_r3_duplicate_static_hash_captures_verdict,
                                            setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_r3_duplicate_container_id_fails_honest_node,
                                            setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_r3_waiting_flood_makes_victim_unknown_for_good,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_r3_tenant_pods_fail_node_without_nodepolicy, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_r3_boot_id_alone_restarts_replay, setup, teardown),
            cmocka_unit_test_setup_teardown(test_r3_reboot_records_unbounded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_r3_unactivated_registration_squats_ek, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_r3_second_certified_rsa_ek, setup, teardown_ek),
            cmocka_unit_test_setup_teardown(test_r3_relabel_escapes_policy, setup, teardown),
            cmocka_unit_test_setup_teardown(test_r3_static_pod_forgotten_then_trusted,
                                            setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_r3_held_recall_bounds, setup, teardown),
            cmocka_unit_test_setup_teardown(test_r3_held_first_violation_not_noisy, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_r3_held_listed_pod_unaffected_by_flood, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_r3_held_refusal_records_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
