/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/hmac.h>
#include <tss2/tss2_mu.h>

#include "audit.h"
#include "base64.h"
#include "engine.h"
#include "hex.h"
#include "ima-gen.h"
#include "json-util.h"
#include "judge.h"
#include "keys.h"
#include "quote.h"
#include "swtpm.h"
#include "verify.h"

/* The attestation engine end to end against a real TPM (swtpm), without
 * HTTP: register, activate, attest rounds with IMA entries that extend the
 * TPM's PCR 10 exactly as the kernel does, pods judged by policy. */

#define NODE  "node-1"
#define NODE2 "node-2"
#define UID_A "1a2b3c4d-0000-4111-8222-933344445555"
#define UID_B "1a2b3c4d-0000-4111-8222-bbbbbbbbbbbb"
#define UID_C "1a2b3c4d-0000-4111-8222-cccccccccccc"
#define CID_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define GOOD  "1111111111111111111111111111111111111111111111111111111111111111"
#define EVIL  "6666666666666666666666666666666666666666666666666666666666666666"
#define HOST  "/system.slice/containerd.service"

/* One simulated node: its own TPM (swtpm), keys and measurement list. */
struct tnode {
    const char *name;
    struct swtpm sw;
    struct tpm *tpm;
    struct tpm_key ek, ak;
    struct ima_gen g; /* the node's whole list so far */
    uint64_t sent;    /* bytes of it the verifier has */
    uint64_t sent_index;
};

struct fx {
    struct tnode nodes[2];
    char dir[300], db[340], audit[340], key[340], pods[340], policies[340];
    struct store *store;
    struct audit_log *log;
    EVP_PKEY *audit_key;
    struct inventory *inv;
    struct engine *e;
    uint64_t grace_ms;
};

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The inventory: pod A (upf) on node-1, and the pods given, each
 * "UID NODE" with app=upf. The file's mtime moves forward every write. */
static void write_pods(struct fx *f, const char *const *extra, size_t n) {
    static long tick = 1;
    char buf[4096];
    size_t o = 0;
    struct timespec ts[2];

    o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                          "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"uid\":\"" UID_A
                          "\",\"namespace\":\"open5gs\",\"name\":\"upf-0\",\"labels\":{"
                          "\"app\":\"upf\"}},\"spec\":{\"nodeName\":\"" NODE "\"}}");
    for (size_t i = 0; i < n; i++) {
        char uid[64], node[64];
        assert_int_equal(sscanf(extra[i], "%63s %63s", uid, node), 2);
        o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                              ",{\"metadata\":{\"uid\":\"%s\",\"namespace\":\"open5gs\","
                              "\"name\":\"upf-%zu\",\"labels\":{\"app\":\"upf\"}},"
                              "\"spec\":{\"nodeName\":\"%s\"}}",
                              uid, i + 1, node);
    }
    snprintf(buf + o, sizeof(buf) - o, "]}");
    write_text(f->pods, buf);
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += tick++;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, f->pods, ts, 0), 0);
    inventory_refresh(f->inv);
}

static void open_engine(struct fx *f) {
    struct engine_config cfg;

    engine_config_default(&cfg);
    cfg.min_challenge_ms = 0; /* 429 too early is tested over HTTP */
    if (f->grace_ms) {
        cfg.attribution_grace_ms = f->grace_ms == UINT64_MAX ? 0 : f->grace_ms;
    }
    assert_int_equal(store_open(f->db, &f->store), 0);
    assert_int_equal(audit_key_load_or_create(f->key, &f->audit_key), 0);
    assert_int_equal(audit_open(f->audit, f->audit_key, 0, 50, &f->log), 0);
    assert_int_equal(inventory_open_file(f->pods, &f->inv), 0);
    assert_int_equal(engine_new(&cfg, f->store, f->log, f->inv, f->policies, &f->e), 0);
}

static void close_engine(struct fx *f) {
    engine_free(f->e);
    inventory_free(f->inv);
    audit_close(f->log);
    EVP_PKEY_free(f->audit_key);
    store_close(f->store);
}

static int node_start(struct tnode *t, const char *name) {
    t->name = name;
    if (swtpm_start(&t->sw, false) < 0 || tpm_open(t->sw.tcti, &t->tpm) < 0) {
        return -1;
    }
    t->ek = (struct tpm_key)TPM_KEY_INIT;
    t->ak = (struct tpm_key)TPM_KEY_INIT;
    if (tpm_ek_load(t->tpm, TPM_KEY_RSA, &t->ek) < 0 ||
        tpm_ak_create(t->tpm, &t->ek, TPM_KEY_RSA, NULL, &t->ak) < 0) {
        return -1;
    }
    ima_gen_init(&t->g, 20, 1 << 24);
    return 0;
}

static void node_stop(struct tnode *t) {
    if (!t->tpm) {
        return;
    }
    ima_gen_free(&t->g);
    tpm_key_release(t->tpm, &t->ak);
    tpm_key_release(t->tpm, &t->ek);
    tpm_close(t->tpm);
    swtpm_stop(&t->sw);
    t->tpm = NULL;
}

/* The second node, started on first use (a second swtpm). */
static struct tnode *node2(struct fx *f) {
    if (!f->nodes[1].tpm) {
        assert_int_equal(node_start(&f->nodes[1], NODE2), 0);
    }
    return &f->nodes[1];
}

static int setup_grace(void **state, uint64_t grace_ms) {
    struct fx *f = calloc(1, sizeof(*f));
    char path[400];

    if (!f || node_start(&f->nodes[0], NODE) < 0) {
        return -1;
    }
    f->grace_ms = grace_ms;
    snprintf(f->dir, sizeof(f->dir), "%s", f->nodes[0].sw.dir);
    snprintf(f->db, sizeof(f->db), "%s/kima.db", f->dir);
    snprintf(f->audit, sizeof(f->audit), "%s/audit.log", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/audit.key", f->dir);
    snprintf(f->pods, sizeof(f->pods), "%s/pods.json", f->dir);
    snprintf(f->policies, sizeof(f->policies), "%s/policies", f->dir);
    mkdir(f->policies, 0700);
    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
                     "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"],"
                     "\"/usr/lib/libc.so.6\":[\"sha256:" GOOD "\"]}}");
    write_text(f->pods, "{\"items\":[]}");
    open_engine(f);
    write_pods(f, NULL, 0);
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_grace(state, 0);
}

/* Measurements wait for their pod no time at all past the inventory's sync. */
static int setup_no_grace(void **state) {
    return setup_grace(state, UINT64_MAX);
}

static int teardown(void **state) {
    struct fx *f = *state;
    close_engine(f);
    node_stop(&f->nodes[1]);
    node_stop(&f->nodes[0]);
    free(f);
    return 0;
}

static json_t *public_b64(const TPM2B_PUBLIC *p) {
    uint8_t buf[sizeof(*p)];
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
    return json_base64(buf, off);
}

static void register_node(struct fx *f, struct tnode *t) {
    json_t *req, *resp = NULL;
    uint8_t *blob, *secret, cred[64], proof[32], msg[300];
    size_t blen, slen, clen, off = 0, mlen;
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    char err[200];
    unsigned int plen;

    req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&t->ek.public), "ak_pub",
                    public_b64(&t->ak.public));
    assert_int_equal(engine_registration(f->e, t->name, req, &resp), 201);
    json_decref(req);
    assert_int_equal(json_get_base64(resp, "credential_blob", 4096, &blob, &blen, err, sizeof(err)),
                     0);
    assert_int_equal(json_get_base64(resp, "secret", 4096, &secret, &slen, err, sizeof(err)), 0);
    json_decref(resp);
    assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blen, &off, &id), TSS2_RC_SUCCESS);
    off = 0;
    assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret, slen, &off, &es),
                     TSS2_RC_SUCCESS);
    free(blob);
    free(secret);
    assert_int_equal(tpm_activate_credential(t->tpm, &t->ak, &t->ek, &id, &es, cred, &clen), 0);
    mlen = strlen(t->name);
    memcpy(msg, t->name, mlen);
    memcpy(msg + mlen, t->ak.name.name, t->ak.name.size);
    mlen += t->ak.name.size;
    HMAC(EVP_sha256(), cred, (int)clen, msg, mlen, proof, &plen);
    /* A wrong proof first. */
    proof[0] ^= 1;
    req = json_pack("{s:o}", "proof", json_base64(proof, plen));
    assert_int_equal(engine_activation(f->e, t->name, req, &resp), 403);
    json_decref(req);
    json_decref(resp);
    proof[0] ^= 1;
    req = json_pack("{s:o}", "proof", json_base64(proof, plen));
    assert_int_equal(engine_activation(f->e, t->name, req, &resp), 200);
    json_decref(req);
    json_decref(resp);
}

static void register_and_activate(struct fx *f) {
    register_node(f, &f->nodes[0]);
}

/* The systemd cgroup path of a container of pod `uid` (with dashes). */
static const char *pod_cgroup(const char *uid, char *buf, size_t bufsz) {
    char u[40];
    snprintf(u, sizeof(u), "%s", uid);
    for (char *c = u; *c; c++) {
        *c = *c == '-' ? '_' : *c;
    }
    snprintf(buf, bufsz,
             "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/"
             "cri-containerd-" CID_A ".scope",
             u);
    return buf;
}

/* Append an ima-cgpath entry for a file run in cgroup `cg` on node t and
 * extend its TPM's PCR 10 with it, as the kernel does. */
static void measure_cg(struct tnode *t, const char *path, const char *hex, const char *cg) {
    char s1[200], *s2 = malloc(strlen(cg) + 1), s3[200];
    uint8_t d[64], fd[32];
    size_t before = t->g.list.len;
    struct ima_parser p;
    struct ima_entry e;
    struct tpm_pcr_values v = {0};
    uint8_t h[64];

    hex_decode(hex, 64, fd, 32);
    struct gen_field fields[4] = {
            gen_str(s1, "/usr/bin/upfd:/usr/bin/containerd-shim-runc-v2:/sbin/init:swapper/0"),
            gen_str(s2, cg), gen_dng(d, "sha256:", fd, 32), gen_str(s3, path)};
    assert_int_equal(ima_gen_add(&t->g, 10, "ima-cgpath", fields, 4, false), 0);
    free(s2);
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, t->g.list.data + before, t->g.list.len - before, &e) > 0);
    ima_entry_template_hash(&e, IMA_HASH_SHA1, h);
    tpm_pcr_values_set(&v, TPM2_ALG_SHA1, 10, h, 20);
    ima_entry_template_hash(&e, IMA_HASH_SHA256, h);
    tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 10, h, 32);
    assert_int_equal(tpm_pcr_extend(t->tpm, 10, &v), 0);
}

/* An entry in pod `uid` on node t. */
static void measure_pod(struct tnode *t, const char *uid, const char *path, const char *hex) {
    char cg[300];
    measure_cg(t, path, hex, pod_cgroup(uid, cg, sizeof(cg)));
}

/* An entry of pod A (or of the host) on node-1. */
static void measure(struct fx *f, const char *path, const char *hex, bool in_pod) {
    if (in_pod) {
        measure_pod(&f->nodes[0], UID_A, path, hex);
    } else {
        measure_cg(&f->nodes[0], path, hex, HOST);
    }
}

/* One round of node t: challenge, quote, evidence with the entries not yet
 * sent. Returns the HTTP status; *ret gets the response. */
static int attest_node(struct fx *f, struct tnode *t, json_t **ret,
                       void (*tamper)(json_t *req, uint8_t *ima, size_t n)) {
    json_t *resp = NULL, *req;
    const char *nonce_b64;
    uint8_t nonce[64];
    int n, status;
    struct tpm_quote q;
    TPML_PCR_SELECTION sel;
    char hex[65];
    uint8_t *ima = malloc(t->g.list.len - t->sent + 1);

    assert_int_equal(engine_challenge(f->e, t->name, &resp), 200);
    nonce_b64 = json_string_value(json_object_get(resp, "nonce"));
    n = base64_decode(nonce_b64, strlen(nonce_b64), nonce, sizeof(nonce));
    assert_int_equal(n, 32);
    json_decref(resp);
    tpm_pcr_selection_parse("sha256:10", &sel);
    assert_int_equal(tpm_quote(t->tpm, &t->ak, nonce, (size_t)n, &sel, &q), 0);
    memcpy(ima, t->g.list.data + t->sent, t->g.list.len - t->sent);
    req = json_pack("{s:o,s:{s:o,s:o},s:{s:{s:s}},s:{s:I},s:s}", "nonce",
                    json_base64(nonce, (size_t)n), "quote", "attest",
                    json_base64(q.attest, q.attest_len), "signature", json_base64(q.sig, q.sig_len),
                    "pcrs", "sha256", "10", hex_encode(q.pcrs.v[0].digest, 32, hex), "ima", "from",
                    (json_int_t)t->sent_index, "boot_id", "boot-1");
    if (tamper) {
        tamper(req, ima, t->g.list.len - t->sent);
    }
    json_object_set_new(json_object_get(req, "ima"), "entries",
                        json_base64(ima, t->g.list.len - t->sent));
    status = engine_evidence(f->e, t->name, req, ret);
    if (status == 200 &&
        json_integer_value(json_object_get(*ret, "ima_next_index")) == (json_int_t)t->g.count) {
        t->sent = t->g.list.len;
        t->sent_index = t->g.count;
    }
    json_decref(req);
    free(ima);
    return status;
}

static int attest(struct fx *f, json_t **ret, void (*tamper)(json_t *req, uint8_t *ima, size_t n)) {
    return attest_node(f, &f->nodes[0], ret, tamper);
}

static const char *pod_state(struct fx *f) {
    static char state[16];
    json_t *resp = NULL;
    assert_int_equal(engine_pod(f->e, "open5gs", "upf-0", &resp), 200);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(resp, "state")));
    json_decref(resp);
    return state;
}

static void test_trusted_untrusted_reset(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *req;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    measure(f, "/usr/bin/containerd", EVIL, false); /* node scope, no node policy */
    assert_int_equal(attest(f, &resp, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "trusted");
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");

    /* A binary the policy does not know: untrusted, and it stays so. */
    measure(f, "/tmp/miner", EVIL, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(resp, "pods"), 0), "state")),
                        "untrusted");
    json_decref(resp);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    /* An operator reset: unknown, then trusted by the next clean round. */
    req = json_pack("{s:s}", "reason", "binary reviewed");
    assert_int_equal(engine_pod_reset(f->e, UID_A, req, "ops", &resp), 200);
    json_decref(req);
    json_decref(resp);
    assert_string_equal(pod_state(f), "unknown");
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");

    /* The verifier restarts: the node resumes from its stored state. */
    close_engine(f);
    open_engine(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(resp, "ima_next_index")), 7);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
}

static void tamper_from(json_t *req, uint8_t *ima, size_t n) {
    (void)ima;
    (void)n;
    json_object_set_new(json_object_get(req, "ima"), "from", json_integer(0));
}

static void tamper_path(json_t *req, uint8_t *ima, size_t n) {
    (void)req;
    ima[n - 3] ^= 1; /* a byte of the last entry's path */
}

static void tamper_nonce(json_t *req, uint8_t *ima, size_t n) {
    (void)ima;
    (void)n;
    json_object_set_new(req, "nonce", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
}

static void tamper_base64(json_t *req, uint8_t *ima, size_t n) {
    (void)ima;
    (void)n;
    json_object_set_new(json_object_get(req, "quote"), "attest", json_string("not base64!"));
}

static void tamper_signature(json_t *req, uint8_t *ima, size_t n) {
    json_t *q = json_object_get(req, "quote");
    const char *s = json_string_value(json_object_get(q, "signature"));
    uint8_t sig[sizeof(TPMT_SIGNATURE)];
    int len = base64_decode(s, strlen(s), sig, sizeof(sig));
    (void)ima;
    (void)n;
    sig[len - 9] ^= 0x40; /* inside the RSA signature value */
    json_object_set_new(q, "signature", json_base64(sig, (size_t)len));
}

static void test_bad_quote_fails_node(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), 200);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")), "signature"));
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    /* Even reset by an operator, a pod of a failed node cannot become
     * trusted by that node's later rounds. */
    {
        json_t *req = json_pack("{s:s}", "reason", "try again");
        assert_int_equal(engine_pod_reset(f->e, UID_A, req, "ops", &resp), 200);
        json_decref(req);
        json_decref(resp);
    }
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "untrusted");
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");
}

static void test_negative_rounds(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *req;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);

    /* Rejected requests change nothing. */
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_nonce), 409);
    json_decref(resp);
    assert_int_equal(attest(f, &resp, tamper_base64), 400);
    json_decref(resp);
    assert_int_equal(attest(f, &resp, tamper_from), 409);
    assert_non_null(strstr(json_string_value(json_object_get(resp, "detail")), "expects 1"));
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");

    /* Another TPM under the same name: refused until deleted. */
    {
        struct tnode *t = &f->nodes[0];
        struct tpm_key ak2 = TPM_KEY_INIT;
        assert_int_equal(tpm_ak_create(t->tpm, &t->ek, TPM_KEY_ECC, NULL, &ak2), 0);
        req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&t->ek.public), "ak_pub",
                        public_b64(&ak2.public));
        assert_int_equal(engine_registration(f->e, NODE, req, &resp), 409);
        json_decref(req);
        json_decref(resp);
        /* ... and the same TPM under another name: one TPM, one node. */
        req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&t->ek.public), "ak_pub",
                        public_b64(&ak2.public));
        assert_int_equal(engine_registration(f->e, NODE2, req, &resp), 409);
        assert_non_null(strstr(json_string_value(json_object_get(resp, "detail")),
                               "registered as node " NODE));
        json_decref(req);
        json_decref(resp);
        tpm_key_release(t->tpm, &ak2);
    }

    /* A log that does not replay: the node and its pods are untrusted. */
    assert_int_equal(attest(f, &resp, tamper_path), 200);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")), "IMA"));
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    /* The audit log holds all of it, intact. */
    {
        struct audit_verify_result res;
        const char *paths[] = {f->audit};
        EVP_PKEY *k = NULL;
        assert_int_equal(audit_checkpoint(f->log), 0);
        assert_int_equal(audit_key_load_or_create(f->key, &k), 0);
        assert_int_equal(audit_verify(paths, 1, k, &res), 0);
        assert_true(res.intact);
        assert_true(res.records > 8);
        EVP_PKEY_free(k);
    }
}

/* The state and node of a pod by namespace/name as operators read them;
 * "absent" when the verifier has no record of it. */
static const char *pod_of(struct fx *f, const char *name, char *node, size_t nodesz) {
    static char state[16];
    json_t *resp = NULL;
    int status = engine_pod(f->e, "open5gs", name, &resp);

    if (status == 404) {
        json_decref(resp);
        snprintf(node, nodesz, "-");
        return "absent";
    }
    assert_int_equal(status, 200);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(resp, "state")));
    snprintf(node, nodesz, "%s", json_string_value(json_object_get(resp, "node")));
    json_decref(resp);
    return state;
}

static json_t *node_json(struct fx *f, const char *name) {
    json_t *resp = NULL;
    assert_int_equal(engine_node(f->e, name, &resp), 200);
    return resp;
}

static const char *verdict(json_t *resp) {
    return json_string_value(json_object_get(resp, "verdict"));
}

static bool audited(struct fx *f, const char *needle) {
    size_t len;
    uint8_t *data = NULL;
    bool found;
    assert_int_equal(read_file_capped(f->audit, 64u << 20, &data, &len), 0);
    found = memmem(data, len, needle, strlen(needle)) != NULL;
    free(data);
    return found;
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
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    /* node-2 claims pod A with a good binary: it cannot take the pod over. */
    measure_pod(t2, UID_A, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest_node(f, t2, &resp, NULL), 200);
    assert_string_equal(verdict(resp), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")),
                           "which the inventory places on node node-1"));
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    assert_string_equal(node, NODE);
    assert_true(audited(f, "\"claimed_pod_uid\":\"" UID_A "\""));

    /* ... nor make it untrusted. */
    measure_pod(t2, UID_A, "/tmp/miner", EVIL);
    assert_int_equal(attest_node(f, t2, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    /* node-1's own failure still reaches its pod. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), 200);
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
    assert_int_equal(attest(f, &resp, NULL), 200);
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
        assert_int_equal(attest(f, &resp, NULL), 200);
        json_decref(resp);
        write_pods(f, more, 2);
    }
    /* The next round judges it too, before its own entries. */
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
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
    assert_int_equal(attest_node(f, t2, &resp, NULL), 200);
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
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "trusted");
    assert_string_equal(node, NODE);
}

/* A pod that never appears: its measurement is judged as unattributable,
 * by the NodePolicy, and without one it fails the node. */
static void test_waiting_pod_expires(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    char path[400];

    register_and_activate(f);
    /* With a NodePolicy that allows it, the node stays trusted. */
    snprintf(path, sizeof(path), "%s/node.json", f->policies);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"node\","
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"]}}");
    assert_int_equal(engine_reload_policies(f->e), 0);
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    inventory_refresh(f->inv);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "trusted");
    assert_int_equal(json_integer_value(json_object_get(resp, "waiting_measurements")), 0);
    json_decref(resp);

    /* Without one, an unattributable measurement fails the node. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(engine_reload_policies(f->e), 0);
    measure_pod(&f->nodes[0], UID_C, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    inventory_refresh(f->inv);
    assert_int_equal(engine_resolve_waiting(f->e), 0);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")),
                           "cannot be attributed to a pod"));
    json_decref(resp);
    assert_true(audited(f, "\"attribution\":\"its pod " UID_C " was not in the inventory"));
}

/* A node may keep JUDGE_WAITING_MAX measurements waiting; beyond that its
 * evidence is refused (503) and nothing of it is kept. */
static void test_waiting_bounded(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *nj;

    register_and_activate(f);
    for (int i = 0; i <= JUDGE_WAITING_MAX; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/usr/bin/x%d", i);
        measure_pod(&f->nodes[0], UID_B, p, GOOD);
    }
    assert_int_equal(attest(f, &resp, NULL), 503);
    json_decref(resp);
    nj = node_json(f, NODE);
    assert_int_equal(json_integer_value(json_object_get(nj, "waiting_measurements")), 0);
    assert_int_equal(json_integer_value(json_object_get(nj, "ima_next_index")), 0);
    json_decref(nj);
}

/* Registering again with the same EK and AK needs only public data and the
 * agent certificate: it must change no verdict, and a node that has not
 * attested since vouches for nothing. */
static void test_reregistration_keeps_verdict(void **state) {
    struct fx *f = *state;
    const char *pods[] = {UID_B " " NODE};
    json_t *resp = NULL;
    json_int_t last;
    char node[64];

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");
    resp = node_json(f, NODE);
    last = json_integer_value(json_object_get(resp, "last_attested_ms"));
    assert_true(last > 0);
    json_decref(resp);

    register_and_activate(f);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "stale");
    assert_int_equal(json_integer_value(json_object_get(resp, "last_attested_ms")), last);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "unknown");
    assert_int_equal(engine_pods(f->e, "trusted", &resp), 200);
    assert_int_equal(json_array_size(json_object_get(resp, "pods")), 0);
    json_decref(resp);
    /* The next round vouches again. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    /* A failed node stays failed across registration and activation. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), 200);
    json_decref(resp);
    register_and_activate(f);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")), "signature"));
    json_decref(resp);
    write_pods(f, pods, 1);
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), 200);
    assert_string_equal(verdict(resp), "untrusted");
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "untrusted");
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
}

/* A cgroup under a pod's belongs to that pod however deep; one in the pod
 * hierarchy that names no pod is judged like a host process and, without a
 * NodePolicy, fails the node. */
static void test_deep_and_unplaced_cgroups(void **state) {
    struct fx *f = *state;
    char cg[2048], base[300];
    json_t *resp = NULL;
    size_t o;

    register_and_activate(f);
    o = (size_t)snprintf(cg, sizeof(cg), "%s", pod_cgroup(UID_A, base, sizeof(base)));
    for (int i = 0; i < 70; i++) {
        o += (size_t)snprintf(cg + o, sizeof(cg) - o, "/n%d", i);
    }
    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, cg);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
    measure_cg(&f->nodes[0], "/tmp/miner", EVIL, cg);
    assert_int_equal(attest(f, &resp, NULL), 200);
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    measure_cg(&f->nodes[0], "/usr/bin/upfd", GOOD, "/kubepods.slice/kubepods-besteffort.slice");
    assert_int_equal(attest(f, &resp, NULL), 200);
    assert_string_equal(verdict(resp), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")),
                           "in the pod hierarchy but names no pod"));
    json_decref(resp);
}

/* A policy rewritten within one file-time tick (same mtime, same size) is
 * still reloaded: the content decides while the directory is fresh. */
static void test_policy_change_same_mtime(void **state) {
    struct fx *f = *state;
    struct timespec ts[2];
    struct stat st;
    char path[400];
    json_t *resp = NULL;

    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    assert_int_equal(stat(path, &st), 0);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upX\","
                     "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" EVIL "\"],"
                     "\"/usr/lib/libc.so.6\":[\"sha256:" EVIL "\"]}}");
    ts[0] = st.st_atim;
    ts[1] = st.st_mtim;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(engine_reload_policies(f->e), 0);
    assert_int_equal(engine_policies(f->e, &resp), 200);
    assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(resp, "policies"), 0), "name")),
                        "upX");
    json_decref(resp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_trusted_untrusted_reset, setup, teardown),
            cmocka_unit_test_setup_teardown(test_negative_rounds, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_quote_fails_node, setup, teardown),
            cmocka_unit_test_setup_teardown(test_foreign_pod_claim, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_pod_judged_later, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_pod_foreign, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_pod_expires, setup_no_grace, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_bounded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reregistration_keeps_verdict, setup, teardown),
            cmocka_unit_test_setup_teardown(test_deep_and_unplaced_cgroups, setup, teardown),
            cmocka_unit_test_setup_teardown(test_policy_change_same_mtime, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
