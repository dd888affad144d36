/* SPDX-License-Identifier: Apache-2.0 */
/* The attestation engine's test fixture: the engine against real TPMs
 * (swtpm), without HTTP. Nodes register and activate, append IMA entries
 * that extend their TPM's PCR 10 exactly as the kernel does, and attest;
 * the inventory is a pods file the tests rewrite. Used by test_engine and
 * test_judge. */
#include "engine-fx.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "base64.h"
#include "credential.h"
#include "fileio.h"
#include "hex.h"
#include "json-util.h"
#include "quote.h"
#include "verify.h"
#include "test-store-db.h"

void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The inventory: pod A (upf) on node-1, and the pods given, each
 * "UID NODE" with app=upf. The file's mtime moves forward every write. */
/* Seconds ahead of now for the next pods file's mtime: always later. */
static long fx_tick = 1;

void write_pods(struct fx *f, const char *const *extra, size_t n) {
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
    ts[0].tv_sec += fx_tick++;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, f->pods, ts, 0), 0);
    inventory_refresh(f->inv);
}

void write_items(struct fx *f, const char *items) {
    struct timespec ts[2];
    size_t n = strlen(items) + 64;
    char *buf = malloc(n);

    snprintf(buf, n, "{\"kind\":\"PodList\",\"items\":[%s]}", items);
    write_text(f->pods, buf);
    free(buf);
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += fx_tick++;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, f->pods, ts, 0), 0);
    assert_true(inventory_refresh(f->inv) >= 0);
}

void open_engine(struct fx *f) {
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

void close_engine(struct fx *f) {
    engine_free(f->e);
    inventory_free(f->inv);
    audit_close(f->log);
    EVP_PKEY_free(f->audit_key);
    store_close(f->store);
}

int node_start(struct tnode *t, const char *name) {
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

void node_stop(struct tnode *t) {
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
struct tnode *node2(struct fx *f) {
    if (!f->nodes[1].tpm) {
        assert_int_equal(node_start(&f->nodes[1], NODE2), 0);
    }
    return &f->nodes[1];
}

int setup_grace(void **state, uint64_t grace_ms) {
    struct fx *f = calloc(1, sizeof(*f));
    char path[400];

    if (!f || node_start(&f->nodes[0], NODE) < 0) {
        return -1;
    }
    f->grace_ms = grace_ms;
    snprintf(f->dir, sizeof(f->dir), "%s", f->nodes[0].sw.dir);
    snprintf(path, sizeof(path), "%s/kima.db", f->dir);
    test_db_choose(f->db, sizeof(f->db), path);
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

int setup(void **state) {
    return setup_grace(state, 0);
}

/* Measurements wait for their pod no time at all past the inventory's sync. */
int setup_no_grace(void **state) {
    return setup_grace(state, UINT64_MAX);
}

int teardown(void **state) {
    struct fx *f = *state;
    close_engine(f);
    node_stop(&f->nodes[1]);
    node_stop(&f->nodes[0]);
    free(f);
    return 0;
}

json_t *public_b64(const TPM2B_PUBLIC *p) {
    uint8_t buf[sizeof(*p)];
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
    return json_base64(buf, off);
}

enum engine_status register_as(struct fx *f, struct tnode *t, const char *name,
                               const TPM2B_PUBLIC *ek_pub, struct tpm_key *ak,
                               bool wrong_proof_first) {
    json_t *req, *resp = NULL;
    uint8_t *blob, *secret, cred[64], proof[TPM_ACTIVATION_PROOF_SIZE];
    size_t blen, slen, clen, off = 0;
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    char err[200];
    enum engine_status status;

    req = json_pack("{s:o,s:o}", "ek_pub", public_b64(ek_pub), "ak_pub", public_b64(&ak->public));
    status = engine_registration(f->e, name, req, &resp);
    json_decref(req);
    if (status != ENGINE_CREATED) {
        json_decref(resp);
        return status;
    }
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
    assert_int_equal(tpm_activate_credential(t->tpm, ak, &t->ek, &id, &es, cred, &clen), 0);
    assert_int_equal(tpm_activation_proof(cred, clen, name, ak->name.name, ak->name.size, proof),
                     0);
    if (wrong_proof_first) {
        proof[0] ^= 1;
        req = json_pack("{s:o}", "proof", json_base64(proof, sizeof(proof)));
        assert_int_equal(engine_activation(f->e, name, req, &resp), ENGINE_REFUSED);
        json_decref(req);
        json_decref(resp);
        proof[0] ^= 1;
    }
    req = json_pack("{s:o}", "proof", json_base64(proof, sizeof(proof)));
    assert_int_equal(engine_activation(f->e, name, req, &resp), ENGINE_OK);
    json_decref(req);
    json_decref(resp);
    return status;
}

void register_node(struct fx *f, struct tnode *t) {
    assert_int_equal(register_as(f, t, t->name, &t->ek.public, &t->ak, true), ENGINE_CREATED);
}

void register_and_activate(struct fx *f) {
    register_node(f, &f->nodes[0]);
}

/* The systemd cgroup path of a container of pod `uid` (with dashes). */
const char *pod_cgroup(const char *uid, char *buf, size_t bufsz) {
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
void measure_t(struct tnode *t, const char *tmpl, const char *path, const char *hex, const char *cg,
               bool extend) {
    char s1[200], *s2 = malloc(strlen(cg) + 1), *s3 = malloc(strlen(path) + 1);
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
    assert_int_equal(ima_gen_add(&t->g, 10, tmpl, fields, 4, false), 0);
    free(s2);
    free(s3);
    if (!extend) {
        return;
    }
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, t->g.list.data + before, t->g.list.len - before, &e) > 0);
    ima_entry_template_hash(&e, IMA_HASH_SHA1, h);
    tpm_pcr_values_set(&v, TPM2_ALG_SHA1, 10, h, 20);
    ima_entry_template_hash(&e, IMA_HASH_SHA256, h);
    tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 10, h, 32);
    assert_int_equal(tpm_pcr_extend(t->tpm, 10, &v), 0);
}

void measure_cg(struct tnode *t, const char *path, const char *hex, const char *cg) {
    measure_t(t, "ima-cgpath", path, hex, cg, true);
}

void measure_pod(struct tnode *t, const char *uid, const char *path, const char *hex) {
    char cg[300];
    measure_cg(t, path, hex, pod_cgroup(uid, cg, sizeof(cg)));
}

/* An entry of pod A (or of the host) on node-1. */
void measure(struct fx *f, const char *path, const char *hex, bool in_pod) {
    if (in_pod) {
        measure_pod(&f->nodes[0], UID_A, path, hex);
    } else {
        measure_cg(&f->nodes[0], path, hex, HOST);
    }
}

/* One round of node t: challenge, quote, evidence with the entries not yet
 * sent. Returns the engine status; *ret gets the answer. */
enum engine_status attest_node(struct fx *f, struct tnode *t, json_t **ret,
                               void (*tamper)(json_t *req, uint8_t *ima, size_t n)) {
    json_t *resp = NULL, *req;
    const char *nonce_b64;
    uint8_t nonce[64];
    enum engine_status status;
    int n;
    struct tpm_quote q;
    TPML_PCR_SELECTION sel;
    char hex[65];
    uint8_t *ima = malloc(t->g.list.len - t->sent + 1);

    assert_int_equal(engine_challenge(f->e, t->name, &resp), ENGINE_OK);
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
    if (status == ENGINE_OK) {
        /* As the agent does: the next round starts where the verifier
         * says (all of it, or less when it stopped early). */
        uint64_t next = (uint64_t)json_integer_value(json_object_get(*ret, "ima_next_index"));
        struct ima_parser p;
        struct ima_entry e;
        ima_parser_init(&p, 20);
        ima_parser_seek(&p, t->sent_index, t->sent);
        while (t->sent_index < next && t->sent < t->g.list.len) {
            int k = ima_parser_next(&p, t->g.list.data + t->sent, t->g.list.len - t->sent, &e);
            assert_true(k > 0);
            t->sent += (uint64_t)k;
            t->sent_index++;
        }
    }
    json_decref(req);
    free(ima);
    return status;
}

enum engine_status attest(struct fx *f, json_t **ret,
                          void (*tamper)(json_t *req, uint8_t *ima, size_t n)) {
    return attest_node(f, &f->nodes[0], ret, tamper);
}

const char *pod_state(struct fx *f) {
    static char state[16];
    json_t *resp = NULL;
    assert_int_equal(engine_pod(f->e, "open5gs", "upf-0", &resp), ENGINE_OK);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(resp, "state")));
    json_decref(resp);
    return state;
}

/* The state and node of a pod by namespace/name as operators read them;
 * "absent" when the verifier has no record of it. */
const char *pod_of(struct fx *f, const char *name, char *node, size_t nodesz) {
    static char state[16];
    json_t *resp = NULL;
    enum engine_status status = engine_pod(f->e, "open5gs", name, &resp);

    if (status == ENGINE_NOT_FOUND) {
        json_decref(resp);
        snprintf(node, nodesz, "-");
        return "absent";
    }
    assert_int_equal(status, ENGINE_OK);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(resp, "state")));
    snprintf(node, nodesz, "%s", json_string_value(json_object_get(resp, "node")));
    json_decref(resp);
    return state;
}

json_t *node_json(struct fx *f, const char *name) {
    json_t *resp = NULL;
    assert_int_equal(engine_node(f->e, name, &resp), ENGINE_OK);
    return resp;
}

const char *verdict(json_t *resp) {
    return json_string_value(json_object_get(resp, "verdict"));
}

bool audited(struct fx *f, const char *needle) {
    size_t len;
    uint8_t *data = NULL;
    bool found;
    assert_int_equal(read_file_capped(f->audit, 64u << 20, &data, &len), 0);
    found = memmem(data, len, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

void tamper_signature(json_t *req, uint8_t *ima, size_t n) {
    json_t *q = json_object_get(req, "quote");
    const char *s = json_string_value(json_object_get(q, "signature"));
    uint8_t sig[sizeof(TPMT_SIGNATURE)];
    int len = base64_decode(s, strlen(s), sig, sizeof(sig));
    (void)ima;
    (void)n;
    sig[len - 9] ^= 0x40; /* inside the RSA signature value */
    json_object_set_new(q, "signature", json_base64(sig, (size_t)len));
}
