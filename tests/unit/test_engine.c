/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/hmac.h>
#include <tss2/tss2_mu.h>

#include "audit.h"
#include "base64.h"
#include "engine.h"
#include "hex.h"
#include "ima-gen.h"
#include "json-util.h"
#include "keys.h"
#include "quote.h"
#include "swtpm.h"
#include "verify.h"

/* The attestation engine end to end against a real TPM (swtpm), without
 * HTTP: register, activate, attest rounds with IMA entries that extend the
 * TPM's PCR 10 exactly as the kernel does, pods judged by policy. */

#define NODE   "node-1"
#define UID_A  "1a2b3c4d-0000-4111-8222-933344445555"
#define UID_A_ "1a2b3c4d_0000_4111_8222_933344445555"
#define CID_A  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define GOOD   "1111111111111111111111111111111111111111111111111111111111111111"
#define EVIL   "6666666666666666666666666666666666666666666666666666666666666666"

struct fx {
    struct swtpm sw;
    struct tpm *tpm;
    struct tpm_key ek, ak;
    char dir[300], db[340], audit[340], key[340], pods[340], policies[340];
    struct store *store;
    struct audit_log *log;
    EVP_PKEY *audit_key;
    struct inventory *inv;
    struct engine *e;
    struct ima_gen g; /* the node's whole list so far */
    uint64_t sent;    /* bytes of it the verifier has */
    uint64_t sent_index;
};

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void open_engine(struct fx *f) {
    struct engine_config cfg;

    engine_config_default(&cfg);
    cfg.min_challenge_ms = 0; /* 429 too early is tested over HTTP */
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

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    char path[400];

    if (!f || swtpm_start(&f->sw, false) < 0 || tpm_open(f->sw.tcti, &f->tpm) < 0) {
        return -1;
    }
    f->ek = (struct tpm_key)TPM_KEY_INIT;
    f->ak = (struct tpm_key)TPM_KEY_INIT;
    if (tpm_ek_load(f->tpm, TPM_KEY_RSA, &f->ek) < 0 ||
        tpm_ak_create(f->tpm, &f->ek, TPM_KEY_RSA, NULL, &f->ak) < 0) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s", f->sw.dir);
    snprintf(f->db, sizeof(f->db), "%s/kima.db", f->dir);
    snprintf(f->audit, sizeof(f->audit), "%s/audit.log", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/audit.key", f->dir);
    snprintf(f->pods, sizeof(f->pods), "%s/pods.json", f->dir);
    snprintf(f->policies, sizeof(f->policies), "%s/policies", f->dir);
    mkdir(f->policies, 0700);
    write_text(f->pods, "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"uid\":\"" UID_A
                        "\",\"namespace\":\"open5gs\",\"name\":\"upf-0\",\"labels\":{\"app\":"
                        "\"upf\"}},\"spec\":{\"nodeName\":\"" NODE "\"}}]}");
    snprintf(path, sizeof(path), "%s/upf.json", f->policies);
    write_text(path, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"upf\","
                     "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
                     "\"digests\":{\"/usr/bin/upfd\":[\"sha256:" GOOD "\"],"
                     "\"/usr/lib/libc.so.6\":[\"sha256:" GOOD "\"]}}");
    ima_gen_init(&f->g, 20, 1 << 20);
    open_engine(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    close_engine(f);
    ima_gen_free(&f->g);
    tpm_key_release(f->tpm, &f->ak);
    tpm_key_release(f->tpm, &f->ek);
    tpm_close(f->tpm);
    swtpm_stop(&f->sw);
    free(f);
    return 0;
}

static json_t *public_b64(const TPM2B_PUBLIC *p) {
    uint8_t buf[sizeof(*p)];
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
    return json_base64(buf, off);
}

static void register_and_activate(struct fx *f) {
    json_t *req, *resp = NULL;
    uint8_t *blob, *secret, cred[64], proof[32], msg[300];
    size_t blen, slen, clen, off = 0, mlen;
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    char err[200];
    unsigned int plen;

    req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&f->ek.public), "ak_pub",
                    public_b64(&f->ak.public));
    assert_int_equal(engine_registration(f->e, NODE, req, &resp), 201);
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
    assert_int_equal(tpm_activate_credential(f->tpm, &f->ak, &f->ek, &id, &es, cred, &clen), 0);
    mlen = strlen(NODE);
    memcpy(msg, NODE, mlen);
    memcpy(msg + mlen, f->ak.name.name, f->ak.name.size);
    mlen += f->ak.name.size;
    HMAC(EVP_sha256(), cred, (int)clen, msg, mlen, proof, &plen);
    /* A wrong proof first. */
    proof[0] ^= 1;
    req = json_pack("{s:o}", "proof", json_base64(proof, plen));
    assert_int_equal(engine_activation(f->e, NODE, req, &resp), 403);
    json_decref(req);
    json_decref(resp);
    proof[0] ^= 1;
    req = json_pack("{s:o}", "proof", json_base64(proof, plen));
    assert_int_equal(engine_activation(f->e, NODE, req, &resp), 200);
    json_decref(req);
    json_decref(resp);
}

/* Append an ima-cgpath entry for a file run in pod A (or on the node) and
 * extend the TPM's PCR 10 with it, as the kernel does. */
static void measure(struct fx *f, const char *path, const char *hex, bool in_pod) {
    char s1[200], s2[300], s3[200];
    uint8_t d[64], fd[32];
    size_t before = f->g.list.len;
    struct ima_parser p;
    struct ima_entry e;
    struct tpm_pcr_values v = {0};
    uint8_t h[64];

    hex_decode(hex, 64, fd, 32);
    struct gen_field fields[4] = {
            gen_str(s1, "/usr/bin/upfd:/usr/bin/containerd-shim-runc-v2:/sbin/init:swapper/0"),
            gen_str(s2, in_pod ? "/kubepods.slice/kubepods-besteffort.slice/"
                                 "kubepods-besteffort-pod" UID_A_ ".slice/cri-containerd-" CID_A
                                 ".scope"
                               : "/system.slice/containerd.service"),
            gen_dng(d, "sha256:", fd, 32), gen_str(s3, path)};
    assert_int_equal(ima_gen_add(&f->g, 10, "ima-cgpath", fields, 4, false), 0);
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, f->g.list.data + before, f->g.list.len - before, &e) > 0);
    ima_entry_template_hash(&e, IMA_HASH_SHA1, h);
    tpm_pcr_values_set(&v, TPM2_ALG_SHA1, 10, h, 20);
    ima_entry_template_hash(&e, IMA_HASH_SHA256, h);
    tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 10, h, 32);
    assert_int_equal(tpm_pcr_extend(f->tpm, 10, &v), 0);
}

/* One round: challenge, quote, evidence with the entries not yet sent.
 * Returns the HTTP status; *ret gets the response. */
static int attest(struct fx *f, json_t **ret, void (*tamper)(json_t *req, uint8_t *ima, size_t n)) {
    json_t *resp = NULL, *req;
    const char *nonce_b64;
    uint8_t nonce[64];
    int n, status;
    struct tpm_quote q;
    TPML_PCR_SELECTION sel;
    char hex[65];
    uint8_t *ima = malloc(f->g.list.len - f->sent + 1);

    assert_int_equal(engine_challenge(f->e, NODE, &resp), 200);
    nonce_b64 = json_string_value(json_object_get(resp, "nonce"));
    n = base64_decode(nonce_b64, strlen(nonce_b64), nonce, sizeof(nonce));
    assert_int_equal(n, 32);
    json_decref(resp);
    tpm_pcr_selection_parse("sha256:10", &sel);
    assert_int_equal(tpm_quote(f->tpm, &f->ak, nonce, (size_t)n, &sel, &q), 0);
    memcpy(ima, f->g.list.data + f->sent, f->g.list.len - f->sent);
    req = json_pack("{s:o,s:{s:o,s:o},s:{s:{s:s}},s:{s:I},s:s}", "nonce",
                    json_base64(nonce, (size_t)n), "quote", "attest",
                    json_base64(q.attest, q.attest_len), "signature", json_base64(q.sig, q.sig_len),
                    "pcrs", "sha256", "10", hex_encode(q.pcrs.v[0].digest, 32, hex), "ima", "from",
                    (json_int_t)f->sent_index, "boot_id", "boot-1");
    if (tamper) {
        tamper(req, ima, f->g.list.len - f->sent);
    }
    json_object_set_new(json_object_get(req, "ima"), "entries",
                        json_base64(ima, f->g.list.len - f->sent));
    status = engine_evidence(f->e, NODE, req, ret);
    if (status == 200 &&
        json_integer_value(json_object_get(*ret, "ima_next_index")) == (json_int_t)f->g.count) {
        f->sent = f->g.list.len;
        f->sent_index = f->g.count;
    }
    json_decref(req);
    free(ima);
    return status;
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
        struct tpm_key ak2 = TPM_KEY_INIT;
        assert_int_equal(tpm_ak_create(f->tpm, &f->ek, TPM_KEY_ECC, NULL, &ak2), 0);
        req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&f->ek.public), "ak_pub",
                        public_b64(&ak2.public));
        assert_int_equal(engine_registration(f->e, NODE, req, &resp), 409);
        json_decref(req);
        json_decref(resp);
        tpm_key_release(f->tpm, &ak2);
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

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_trusted_untrusted_reset, setup, teardown),
            cmocka_unit_test_setup_teardown(test_negative_rounds, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_quote_fails_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
