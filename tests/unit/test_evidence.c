/* SPDX-License-Identifier: Apache-2.0 */
/* The pure steps of an evidence round (verifier/evidence.h): parsing the
 * request, telling a reboot, and the incremental replay against the
 * reported PCR 10. The steps under the engine's lock are covered through
 * the engine (test_engine, test_judge). */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "evidence.h"
#include "hex.h"
#include "ima-gen.h"
#include "json-util.h"

static const uint8_t fd_digest[32] = {7, 7, 7};

static void add_ng(struct ima_gen *g, uint32_t pcr, const char *path) {
    char s[256];
    uint8_t d[64];
    struct gen_field f[2] = {gen_dng(d, "sha256:", fd_digest, 32), gen_str(s, path)};

    assert_int_equal(ima_gen_add(g, pcr, "ima-ng", f, 2, false), 0);
}

static json_t *b64(const void *data, size_t len) {
    return json_base64(data, len);
}

/* A well-formed request: a 32-byte nonce, a quote, PCR 10 in sha256, and
 * `ima` bytes from index `from`. */
static json_t *request(const uint8_t *ima, size_t len, uint64_t from, const uint8_t pcr10[32]) {
    uint8_t nonce[32] = {1}, attest[64] = {2}, sig[64] = {3};
    char hex[65];

    hex_encode(pcr10, 32, hex);
    return json_pack("{s:o,s:{s:o,s:o},s:{s:{s:s}},s:{s:I,s:o},s:s}", "nonce",
                     b64(nonce, sizeof(nonce)), "quote", "attest", b64(attest, sizeof(attest)),
                     "signature", b64(sig, sizeof(sig)), "pcrs", "sha256", "10", hex, "ima", "from",
                     (json_int_t)from, "entries", b64(ima, len), "boot_id", "boot-1");
}

static void test_parse(void **state) {
    uint8_t ima[10] = {0}, pcr[32] = {0xaa};
    struct evidence ev;
    char err[300];
    json_t *req = request(ima, sizeof(ima), 5, pcr);
    (void)state;

    assert_int_equal(evidence_parse(req, 1024, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.nonce_len, 32);
    assert_int_equal(ev.attest_len, 64);
    assert_int_equal(ev.sig_len, 64);
    assert_int_equal(ev.ima_len, 10);
    assert_int_equal(ev.from, 5);
    assert_int_equal(ev.digest_size, 20); /* the legacy list by default */
    assert_string_equal(ev.boot_id, "boot-1");
    assert_int_equal(ev.pcrs.n, 1);
    assert_int_equal(ev.pcrs.v[0].pcr, 10);
    assert_int_equal(ev.pcrs.v[0].digest[0], 0xaa);
    evidence_free(&ev);

    /* A per-bank list; no boot id. */
    json_object_set_new(json_object_get(req, "ima"), "digest_size", json_integer(32));
    json_object_del(req, "boot_id");
    assert_int_equal(evidence_parse(req, 1024, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.digest_size, 32);
    assert_string_equal(ev.boot_id, "");
    evidence_free(&ev);

    /* Entries over the cap: -E2BIG (413), not malformed. */
    assert_int_equal(evidence_parse(req, 9, &ev, err, sizeof(err)), -E2BIG);
    evidence_free(&ev);
    json_decref(req);
}

/* Each malformed field is named, and nothing leaks (ASan). */
static void test_parse_refusals(void **state) {
    static const struct {
        const char *path, *key, *value, *want;
    } cases[] = {
            {NULL, "nonce", "!!", "nonce"},
            {"quote", "attest", "!!", "attest"},
            {"quote", "signature", NULL, "signature"},
            {"ima", "from", "x", "from"},
            {"ima", "entries", NULL, "entries"},
            {"ima", "digest_size", "33", "digest_size"},
            {NULL, "boot_id",
             "0123456789012345678901234567890123456789012345678901234567890123456789", "boot_id"},
            {NULL, "pcrs", "x", "pcrs"},
    };
    uint8_t ima[4] = {0}, pcr[32] = {0};
    struct evidence ev;
    char err[300];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *req = request(ima, sizeof(ima), 0, pcr);
        json_t *o = cases[i].path ? json_object_get(req, cases[i].path) : req;
        if (!cases[i].value) {
            json_object_del(o, cases[i].key);
        } else if (strcmp(cases[i].key, "digest_size") == 0) {
            json_object_set_new(o, cases[i].key, json_integer(33));
        } else {
            json_object_set_new(o, cases[i].key, json_string(cases[i].value));
        }
        err[0] = 0;
        assert_int_equal(evidence_parse(req, 1024, &ev, err, sizeof(err)), -EBADMSG);
        if (!strstr(err, cases[i].want)) {
            fail_msg("%s: %s", cases[i].key, err);
        }
        evidence_free(&ev);
        json_decref(req);
    }

    /* PCR values: a bank that is none, an index out of range, a short value. */
    static const char *const pcrs[] = {
            "{\"md5\":{\"10\":\"00\"}}",
            "{\"sha256\":{\"24\":"
            "\"0000000000000000000000000000000000000000000000000000000000000000\"}}",
            "{\"sha256\":{\"10\":\"00\"}}",
            "{\"a\":{},\"b\":{},\"c\":{},\"d\":{},\"e\":{}}",
    };
    for (size_t i = 0; i < sizeof(pcrs) / sizeof(pcrs[0]); i++) {
        json_t *req = request(ima, sizeof(ima), 0, pcr);
        json_object_set_new(req, "pcrs", json_loads(pcrs[i], 0, NULL));
        assert_int_equal(evidence_parse(req, 1024, &ev, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "pcrs"));
        evidence_free(&ev);
        json_decref(req);
    }
}

static void test_reboot(void **state) {
    struct tpm_quote_result qr = {0};
    (void)state;

    assert_false(evidence_is_reboot(&qr));
    qr.restart = true; /* a TPM restart (resume, or a hibernation's): no reboot */
    assert_false(evidence_is_reboot(&qr));
    qr.reset = true; /* the TPM's reset count moved */
    assert_true(evidence_is_reboot(&qr));
}

/* Replay from the node's stored position and PCR 10 to the reported one:
 * the covered prefix, its bytes and the new PCR 10; entries past the quote
 * are left for the next round. */
static void test_replay_incremental(void **state) {
    struct ima_gen g;
    struct node_record *n = calloc(1, sizeof(*n));
    struct evidence ev = {0};
    struct evidence_replay rep;
    char reason[300];
    size_t first, second;
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    add_ng(&g, 10, "/usr/bin/a");
    add_ng(&g, 10, "/usr/bin/b");
    first = g.list.len;
    /* The node has replayed nothing yet: round one covers both entries. */
    ev.ima = g.list.data;
    ev.ima_len = g.list.len;
    ev.digest_size = 20;
    ev.pcrs.n = 1;
    ev.pcrs.v[0] = (struct tpm_pcr_value){.alg = TPM2_ALG_SHA256, .pcr = 10, .size = 32};
    memcpy(ev.pcrs.v[0].digest, g.pcr[1][10], 32);
    assert_int_equal(evidence_replay(&ev, n, &rep, reason, sizeof(reason)), 0);
    assert_int_equal(rep.res.entries, 2);
    assert_int_equal(rep.res.bytes, first);
    assert_memory_equal(rep.pcr10[1], g.pcr[1][10], 32);

    /* Round two: the node moved past them; a third entry is quoted, a
     * fourth is not yet. */
    n->ima_index = 2;
    n->ima_offset = first;
    memcpy(n->pcr10[1], rep.pcr10[1], 32);
    add_ng(&g, 10, "/usr/bin/c");
    second = g.list.len;
    memcpy(ev.pcrs.v[0].digest, g.pcr[1][10], 32);
    add_ng(&g, 10, "/usr/bin/d");
    ev.ima = g.list.data + first;
    ev.ima_len = g.list.len - first;
    assert_int_equal(evidence_replay(&ev, n, &rep, reason, sizeof(reason)), 0);
    assert_int_equal(rep.res.entries, 1);
    assert_int_equal(rep.res.bytes, second - first);

    /* A PCR 10 no prefix reaches; no PCR 10 at all; a corrupt entry. */
    ev.pcrs.v[0].digest[0] ^= 1;
    assert_int_equal(evidence_replay(&ev, n, &rep, reason, sizeof(reason)), -EBADMSG);
    assert_string_equal(reason, "the IMA log does not replay to the quoted PCR 10");
    ev.pcrs.v[0].pcr = 0;
    assert_int_equal(evidence_replay(&ev, n, &rep, reason, sizeof(reason)), -EBADMSG);
    assert_string_equal(reason, "the quote does not cover PCR 10");
    ev.pcrs.v[0].pcr = 10;
    ev.pcrs.v[0].digest[0] ^= 1;
    g.list.data[first + 8] ^= 1; /* inside the third entry's template digest */
    assert_int_equal(evidence_replay(&ev, n, &rep, reason, sizeof(reason)), -EBADMSG);
    assert_non_null(strstr(reason, "bad IMA log"));
    ima_gen_free(&g);
    free(n);
}

/* Built-in templates are read; a custom format only when listed (and made
 * of known fields); any other name is refused: the name is not in the
 * template digest, so it is the sender's to choose. */
static void test_template_accepted(void **state) {
    struct ima_entry e = {0};
    (void)state;

    e.known = true;
    e.name = "ima-cgpath";
    e.name_len = 10;
    assert_true(evidence_template_accepted(&e, NULL));
    e.name = "ima-ng";
    e.name_len = 6;
    assert_true(evidence_template_accepted(&e, ""));
    e.name = "dep|cgn|d-ng|n-ng";
    e.name_len = strlen(e.name);
    assert_false(evidence_template_accepted(&e, NULL));
    assert_false(evidence_template_accepted(&e, "dep|cg-path|d-ng|n-ng"));
    assert_true(evidence_template_accepted(&e, "d-ng|n-ng|buf,dep|cgn|d-ng|n-ng"));
    assert_false(evidence_template_accepted(&e, "dep|cgn|d-ng|n-ng|x"));
    assert_false(evidence_template_accepted(&e, "dep|cgn|d-ng|n-n"));
    e.name = "foo";
    e.name_len = 3;
    e.known = false;
    assert_false(evidence_template_accepted(&e, "foo"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_parse_refusals),
            cmocka_unit_test(test_reboot),
            cmocka_unit_test(test_replay_incremental),
            cmocka_unit_test(test_template_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
