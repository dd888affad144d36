/* SPDX-License-Identifier: Apache-2.0 */
#include "engine-fx.h"

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

/* The attestation engine end to end against real TPMs (swtpm), without
 * HTTP: registration, activation, evidence rounds, node verdicts, resets,
 * the audit records a round leaves (engine-fx.c is the harness; how
 * measurements are attributed and judged is test_judge.c). */

static void test_trusted_untrusted_reset(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *req;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    measure(f, "/usr/bin/containerd", EVIL, false); /* node scope, no node policy */
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "trusted");
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");

    /* A binary the policy does not know: untrusted, and it stays so. */
    measure(f, "/tmp/miner", EVIL, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(resp, "pods"), 0), "state")),
                        "untrusted");
    json_decref(resp);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    /* An operator reset: unknown, then trusted by the next clean round. */
    req = json_pack("{s:s}", "reason", "binary reviewed");
    assert_int_equal(engine_pod_reset(f->e, UID_A, req, "ops", &resp), ENGINE_OK);
    json_decref(req);
    json_decref(resp);
    assert_string_equal(pod_state(f), "unknown");
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");

    /* The verifier restarts: the node resumes from its stored state. */
    close_engine(f);
    open_engine(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
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

static void test_bad_quote_fails_node(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")), "signature"));
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");

    /* Even reset by an operator, a pod of a failed node cannot become
     * trusted by that node's later rounds. */
    {
        json_t *req = json_pack("{s:s}", "reason", "try again");
        assert_int_equal(engine_pod_reset(f->e, UID_A, req, "ops", &resp), ENGINE_OK);
        json_decref(req);
        json_decref(resp);
    }
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(resp, "verdict")), "untrusted");
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");
}

static void test_negative_rounds(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *req;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);

    /* Rejected requests change nothing. */
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_nonce), ENGINE_CONFLICT);
    json_decref(resp);
    assert_int_equal(attest(f, &resp, tamper_base64), ENGINE_MALFORMED);
    json_decref(resp);
    assert_int_equal(attest(f, &resp, tamper_from), ENGINE_CONFLICT);
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
        assert_int_equal(engine_registration(f->e, NODE, req, &resp), ENGINE_CONFLICT);
        json_decref(req);
        json_decref(resp);
        /* ... and the same TPM under another name: one TPM, one node. */
        req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&t->ek.public), "ak_pub",
                        public_b64(&ak2.public));
        assert_int_equal(engine_registration(f->e, NODE2, req, &resp), ENGINE_CONFLICT);
        assert_non_null(strstr(json_string_value(json_object_get(resp, "detail")),
                               "registered as node " NODE));
        json_decref(req);
        json_decref(resp);
        tpm_key_release(t->tpm, &ak2);
    }

    /* A log that does not replay: the node and its pods are untrusted. */
    assert_int_equal(attest(f, &resp, tamper_path), ENGINE_OK);
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
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
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
    assert_int_equal(engine_pods(f->e, "trusted", &resp), ENGINE_OK);
    assert_int_equal(json_array_size(json_object_get(resp, "pods")), 0);
    json_decref(resp);
    /* The next round vouches again. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "trusted");

    /* A failed node stays failed across registration and activation. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, tamper_signature), ENGINE_OK);
    json_decref(resp);
    register_and_activate(f);
    resp = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(resp, "state")), "untrusted");
    assert_non_null(strstr(json_string_value(json_object_get(resp, "reason")), "signature"));
    json_decref(resp);
    write_pods(f, pods, 1);
    measure_pod(&f->nodes[0], UID_B, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    json_decref(resp);
    assert_string_equal(pod_of(f, "upf-1", node, sizeof(node)), "untrusted");
    assert_string_equal(pod_of(f, "upf-0", node, sizeof(node)), "untrusted");
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
    assert_int_equal(engine_policies(f->e, &resp), ENGINE_OK);
    assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(resp, "policies"), 0), "name")),
                        "upX");
    json_decref(resp);
}

/* A pod's name reused by a new pod (a StatefulSet's upf-0 deleted and
 * recreated): GET /v1/pods/{ns}/{name} answers for the live one. */
static void test_reused_name_shows_live_pod(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;

    register_node(f, &f->nodes[0]);
    measure_pod(&f->nodes[0], UID_A, "/usr/bin/upfd", GOOD);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
    write_items(f, POD(UID_B, "upf-0", NODE)); /* recreated, new UID */
    measure_pod(&f->nodes[0], UID_B, "/tmp/miner", EVIL);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");
}

/* One TPM, two node names, with the EK re-encoded (the RSA exponent
 * written as 65537 instead of 0: the same key in other bytes): refused. */
static void test_one_tpm_two_names_reencoded(void **state) {
    struct fx *f = *state;
    struct tnode *t = &f->nodes[0];
    struct tpm_key ak2 = TPM_KEY_INIT;
    TPM2B_PUBLIC ek2 = t->ek.public;

    register_node(f, t);
    assert_int_equal(ek2.publicArea.parameters.rsaDetail.exponent, 0);
    ek2.publicArea.parameters.rsaDetail.exponent = 65537;
    assert_int_equal(tpm_ak_create(t->tpm, &t->ek, TPM_KEY_RSA, NULL, &ak2), 0);
    assert_int_equal(register_as(f, t, NODE2, &ek2, &ak2, false), ENGINE_CONFLICT);
    tpm_key_release(t->tpm, &ak2);
}

/* One TPM, two names: its RSA EK and its ECC EK are two keys, each with a
 * certificate; only the RSA one is accepted, so the ECC one cannot name a
 * second node. */
static void test_ecc_ek_refused(void **state) {
    struct fx *f = *state;
    struct tnode *t = &f->nodes[0];
    struct tpm_key ek_ecc = TPM_KEY_INIT, ak2 = TPM_KEY_INIT;
    json_t *req, *resp = NULL;
    enum engine_status status;

    register_node(f, t);
    /* Room in the TPM for two more objects (swtpm holds 3 transient). */
    tpm_key_release(t->tpm, &t->ak);
    assert_int_equal(tpm_ek_load(t->tpm, TPM_KEY_ECC, &ek_ecc), 0);
    assert_int_equal(tpm_ak_create(t->tpm, &ek_ecc, TPM_KEY_ECC, NULL, &ak2), 0);
    req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&ek_ecc.public), "ak_pub",
                    public_b64(&ak2.public));
    status = engine_registration(f->e, NODE2, req, &resp);
    json_decref(req);
    assert_int_equal(status, ENGINE_MALFORMED);
    assert_string_equal(json_string_value(json_object_get(resp, "detail")),
                        "the EK is not the TPM's RSA EK");
    json_decref(resp);
    tpm_key_release(t->tpm, &ak2);
    tpm_key_release(t->tpm, &ek_ecc);
}

/* Draining: the tamper hook of attest() runs between the round's
 * challenge and its evidence, so the drain starts with that round in
 * flight. */
static struct fx *drain_fx;
static struct engine_drain_counts drain_started;

static void drain_mid_round(json_t *req, uint8_t *ima, size_t n) {
    (void)req;
    (void)ima;
    (void)n;
    assert_int_equal(engine_drain_start(drain_fx->e, 5000, &drain_started), 0);
}

static void test_drain(void **state) {
    struct fx *f = *state;
    struct engine_drain_counts end;
    json_t *resp = NULL, *req;
    int64_t now = engine_now_ms();

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_false(engine_draining(f->e));
    /* A nonce counts until it expires (the TTL is 30 s). */
    assert_int_equal(engine_challenge(f->e, NODE, &resp), ENGINE_OK);
    json_decref(resp);
    assert_int_equal(engine_nonces_outstanding(f->e, now), 1);
    assert_int_equal(engine_nonces_outstanding(f->e, now + 31000), 0);
    assert_int_equal(engine_nonces_outstanding(f->e, now), 0); /* forgotten */

    drain_fx = f;
    assert_int_equal(attest(f, &resp, drain_mid_round), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_true(engine_draining(f->e));
    assert_int_equal(drain_started.outstanding, 1);
    assert_int_equal(engine_nonces_outstanding(f->e, engine_now_ms()), 0);

    /* Nothing new: no challenge, no registration; reads go on. */
    assert_int_equal(engine_challenge(f->e, NODE, &resp), ENGINE_DRAINING);
    assert_string_equal(json_string_value(json_object_get(resp, "error")), "draining");
    json_decref(resp);
    assert_int_equal(engine_nonces_outstanding(f->e, engine_now_ms()), 0);
    req = json_pack("{s:o,s:o}", "ek_pub", public_b64(&f->nodes[0].ek.public), "ak_pub",
                    public_b64(&f->nodes[0].ak.public));
    assert_int_equal(engine_registration(f->e, NODE, req, &resp), ENGINE_DRAINING);
    json_decref(req);
    json_decref(resp);
    assert_int_equal(engine_nodes(f->e, &resp), ENGINE_OK);
    json_decref(resp);

    assert_int_equal(engine_drain_end(f->e, "done", &end), 0);
    assert_int_equal(end.rounds, 1);
    assert_int_equal(end.outstanding, 0);
    assert_true(audited(f, "\"type\":\"drain-start\""));
    assert_true(audited(f, "\"outstanding_nonces\":1"));
    assert_true(audited(f, "\"type\":\"drain-end\""));
    assert_true(audited(f, "\"rounds_finished\":1"));
}

/* /metrics names the node and the pod's namespace (metrics-series.c), with
 * the state each reads as and when the node's round was judged. */
static void test_metrics_per_node_namespace(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    int64_t before = engine_now_ms(), after;
    char *text = NULL;
    const char *at;
    double ts = 0;

    register_and_activate(f);
    assert_int_equal(engine_metrics(f->e, &text), 0);
    assert_non_null(strstr(text, "\nkima_node_state{node=\"node-1\",state=\"active\"} 1\n"));
    assert_null(strstr(text, "timestamp_seconds{node=\"node-1\"}"));
    assert_non_null(strstr(text, "\nkima_attestation_interval_seconds 2.000\n"));
    free(text);

    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    after = engine_now_ms();
    assert_int_equal(engine_metrics(f->e, &text), 0);
    assert_non_null(strstr(text, "\nkima_node_state{node=\"node-1\",state=\"trusted\"} 1\n"));
    assert_non_null(
            strstr(text, "\nkima_namespace_pods{namespace=\"open5gs\",state=\"trusted\"} 1\n"));
    at = strstr(text, "\nkima_node_last_attestation_timestamp_seconds{node=\"node-1\"} ");
    assert_non_null(at);
    assert_int_equal(sscanf(strchr(at, '}') + 1, "%lf", &ts), 1);
    assert_true(ts * 1000 >= (double)before - 1 && ts * 1000 <= (double)after + 1);
    free(text);

    measure(f, "/tmp/miner", EVIL, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_int_equal(engine_metrics(f->e, &text), 0);
    assert_non_null(
            strstr(text, "\nkima_namespace_pods{namespace=\"open5gs\",state=\"untrusted\"} 1\n"));
    assert_non_null(
            strstr(text, "\nkima_namespace_pods{namespace=\"open5gs\",state=\"trusted\"} 0\n"));
    assert_non_null(strstr(text, "\nkima_pods{state=\"untrusted\"} 1\n"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_trusted_untrusted_reset, setup, teardown),
            cmocka_unit_test_setup_teardown(test_negative_rounds, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_quote_fails_node, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reregistration_keeps_verdict, setup, teardown),
            cmocka_unit_test_setup_teardown(test_policy_change_same_mtime, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reused_name_shows_live_pod, setup, teardown),
            cmocka_unit_test_setup_teardown(test_one_tpm_two_names_reencoded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ecc_ek_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
            cmocka_unit_test_setup_teardown(test_metrics_per_node_namespace, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
