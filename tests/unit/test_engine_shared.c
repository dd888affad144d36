/* SPDX-License-Identifier: Apache-2.0 */
#include "engine-fx.h"

#include <errno.h>
#include <string.h>

#include "base64.h"
#include "engine-internal.h"
#include "fileio.h"
#include "json-util.h"

/* Two engines on one store, each with its own connection, shared nonces
 * forced (as on PostgreSQL; the engines called one after the other; on
 * SQLite, or on PostgreSQL through with-pg.sh as test_engine_shared_on_pg):
 * a nonce
 * of one is answered at the other and used once across both; a nonce with
 * a wrong MAC, another node's, an expired one or one of the wrong length
 * is refused; a round whose node another writer changed between its read
 * and its write is 409 "node changed" with nothing of it recorded
 * (engine-fx.c is the harness, against real TPMs). */

struct shared {
    struct fx *f;
    struct engine *a, *b;  /* a is f->e */
    struct audit_log *log; /* b's audit log */
    struct store *store;   /* b's connection to f's store */
    char audit_b[400];
};

static struct shared sh;

static struct engine *open_shared(struct fx *f, struct store *store, struct audit_log *log) {
    struct engine_config cfg;
    struct engine *e = NULL;

    engine_config_default(&cfg);
    cfg.min_challenge_ms = 0;
    cfg.shared_nonces = true;
    assert_int_equal(engine_new(&cfg, store, log, f->inv, f->policies, &e), 0);
    return e;
}

static int setup_shared(void **state) {
    struct fx *f;

    if (setup(state) < 0) {
        return -1;
    }
    f = *state;
    engine_free(f->e);
    f->e = open_shared(f, f->store, f->log);
    snprintf(sh.audit_b, sizeof(sh.audit_b), "%s/audit-b.log", f->dir);
    assert_int_equal(audit_open(sh.audit_b, f->audit_key, 0, 50, &sh.log), 0);
    sh.f = f;
    sh.a = f->e;
    assert_int_equal(store_open(f->db, &sh.store), 0);
    sh.b = open_shared(f, sh.store, sh.log);
    return 0;
}

static int teardown_shared(void **state) {
    struct fx *f = *state;

    f->e = sh.a;
    engine_free(sh.b);
    store_close(sh.store);
    audit_close(sh.log);
    memset(&sh, 0, sizeof(sh));
    return teardown(state);
}

static bool audited_b(const char *needle) {
    size_t len;
    uint8_t *data = NULL;
    bool found;

    assert_int_equal(read_file_capped(sh.audit_b, 64u << 20, &data, &len), 0);
    found = memmem(data, len, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

static int64_t attestations(struct fx *f) {
    json_t *n = node_json(f, NODE);
    int64_t v = json_integer_value(json_object_get(n, "attestations"));

    json_decref(n);
    return v;
}

static const char *answer(json_t *resp, const char *key) {
    return json_string_value(json_object_get(resp, key));
}

/* Tamper hooks of attest(): they run between the challenge (at f->e) and
 * the evidence. */
static json_t *saved; /* the last evidence sent by to_b or keep */

static void to_b(json_t *req, uint8_t *ima, size_t n) {
    (void)ima;
    (void)n;
    sh.f->e = sh.b;
    json_decref(saved);
    saved = json_incref(req); /* its entries are set after the hook */
}

static void to_a(json_t *req, uint8_t *ima, size_t n) {
    (void)req;
    (void)ima;
    (void)n;
    sh.f->e = sh.a;
}

static void keep(json_t *req, uint8_t *ima, size_t n) {
    (void)ima;
    (void)n;
    json_decref(saved);
    saved = json_incref(req);
}

static void set_nonce(json_t *req, const uint8_t *nonce, size_t len) {
    json_object_set_new(req, "nonce", json_base64(nonce, len));
}

static void nonce_mac_flipped(json_t *req, uint8_t *ima, size_t n) {
    const char *s = json_string_value(json_object_get(req, "nonce"));
    uint8_t nonce[64];
    int len = base64_decode(s, strlen(s), nonce, sizeof(nonce));

    (void)ima;
    (void)n;
    assert_int_equal(len, NONCE_LEN);
    nonce[NONCE_LEN - 1] ^= 1; /* a bit of its MAC */
    set_nonce(req, nonce, NONCE_LEN);
}

static void nonce_other_node(json_t *req, uint8_t *ima, size_t n) {
    uint8_t nonce[NONCE_LEN];

    (void)ima;
    (void)n;
    assert_int_equal(engine_nonce_make(sh.a, NODE2, engine_now_ms() + 10000, nonce), 0);
    set_nonce(req, nonce, NONCE_LEN);
}

static void nonce_expired(json_t *req, uint8_t *ima, size_t n) {
    uint8_t nonce[NONCE_LEN];

    (void)ima;
    (void)n;
    assert_int_equal(engine_nonce_make(sh.a, NODE, engine_now_ms() - 1, nonce), 0);
    set_nonce(req, nonce, NONCE_LEN);
}

static void nonce_short(json_t *req, uint8_t *ima, size_t n) {
    uint8_t nonce[NONCE_LEN];

    (void)ima;
    (void)n;
    assert_int_equal(engine_nonce_make(sh.a, NODE, engine_now_ms() + 10000, nonce), 0);
    set_nonce(req, nonce, 16);
}

/* A's nonce answered at B; the same evidence again at A, then at B: used. */
static void test_nonce_across_engines(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, to_b), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    f->e = sh.a;
    assert_int_equal(attestations(f), 1);
    assert_true(audited_b("\"type\":\"state-change\""));

    assert_int_equal(engine_evidence(sh.a, NODE, saved, &resp), ENGINE_CONFLICT);
    assert_string_equal(answer(resp, "error"), "bad nonce");
    assert_non_null(strstr(answer(resp, "detail"), "used already"));
    json_decref(resp);
    assert_int_equal(engine_evidence(sh.b, NODE, saved, &resp), ENGINE_CONFLICT);
    assert_non_null(strstr(answer(resp, "detail"), "used already"));
    json_decref(resp);
    assert_true(audited(f, "used already"));
    assert_true(audited_b("used already"));
    assert_int_equal(attestations(f), 1);

    /* B's nonce at A: the same. */
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    f->e = sh.b;
    assert_int_equal(attest(f, &resp, to_a), ENGINE_OK);
    assert_ptr_equal(f->e, sh.a);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_int_equal(attestations(f), 2);
    json_decref(saved);
    saved = NULL;
}

/* Each refused nonce: 409 "bad nonce" with why, audited, the node as it
 * was; a good round then passes. */
static void test_bad_nonces(void **state) {
    static const struct {
        void (*tamper)(json_t *, uint8_t *, size_t);
        const char *why;
    } cases[] = {
            {nonce_mac_flipped, "not issued to this node by a verifier of this deployment"},
            {nonce_other_node, "not issued to this node by a verifier of this deployment"},
            {nonce_expired, "the nonce expired"},
            {nonce_short, "not 32 bytes long"},
    };
    struct fx *f = *state;
    json_t *resp = NULL;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(attest(f, &resp, cases[i].tamper), ENGINE_CONFLICT);
        assert_string_equal(answer(resp, "error"), "bad nonce");
        assert_non_null(strstr(answer(resp, "detail"), cases[i].why));
        json_decref(resp);
        assert_true(audited(f, cases[i].why));
        assert_int_equal(attestations(f), 0);
    }
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    assert_int_equal(attestations(f), 1);
}

/* Another writer (the other replica, on its own connection) writes the
 * node between the round's read and its write. */
static void bump_version(void *ud) {
    struct node_record *n = calloc(1, sizeof(*n));

    (void)ud;
    assert_non_null(n);
    assert_int_equal(store_node_get(sh.store, NODE, n), 0);
    assert_int_equal(store_node_put(sh.store, n), 0);
    free(n);
}

static void test_node_changed(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *n;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");

    /* An entry the policy refuses, in a round that loses its node: not
     * judged, nothing recorded but the refusal. */
    measure(f, "/tmp/miner", EVIL, true);
    engine_set_round_hook(sh.a, bump_version, NULL);
    assert_int_equal(attest(f, &resp, keep), ENGINE_CONFLICT);
    engine_set_round_hook(sh.a, NULL, NULL);
    assert_string_equal(answer(resp, "error"), "node changed");
    assert_non_null(strstr(answer(resp, "detail"), "start a new round"));
    json_decref(resp);
    assert_string_equal(pod_state(f), "trusted");
    n = node_json(f, NODE);
    assert_int_equal(json_integer_value(json_object_get(n, "attestations")), 1);
    assert_int_equal(json_integer_value(json_object_get(n, "ima_next_index")), 1);
    json_decref(n);
    assert_true(audited(f, "\"error\":\"node changed\""));
    assert_false(audited(f, "/tmp/miner"));
    assert_false(audited(f, "\"to\":\"untrusted\""));

    /* Its nonce is used: the same evidence is not taken again, here or
     * at B. */
    assert_int_equal(engine_evidence(sh.b, NODE, saved, &resp), ENGINE_CONFLICT);
    assert_non_null(strstr(answer(resp, "detail"), "used already"));
    json_decref(resp);
    json_decref(saved);
    saved = NULL;

    /* A new round: judged. */
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    assert_string_equal(pod_state(f), "untrusted");
    assert_int_equal(attestations(f), 2);
    assert_true(audited(f, "/tmp/miner"));
}

/* A newer round of the node judged at B between this round's quote and
 * its evidence (two rounds at once, at two verifiers). */
static void newer_round_at_b(json_t *req, uint8_t *ima, size_t n) {
    json_t *resp = NULL;

    (void)req;
    (void)ima;
    (void)n;
    sh.f->e = sh.b;
    assert_int_equal(attest(sh.f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "trusted");
    json_decref(resp);
    sh.f->e = sh.a;
}

/* An older quote than the stored one: a stale round (409, nothing
 * recorded, the node as the newer round left it) when the stored one was
 * judged after this round's nonce was issued; a failure of the node (what
 * no honest TPM makes) when it was judged before. */
static void test_stale_round(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL, *n;
    struct node_record *rec = calloc(1, sizeof(*rec));

    assert_non_null(rec);
    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    json_decref(resp);
    measure(f, "/usr/lib/libc.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, newer_round_at_b), ENGINE_CONFLICT);
    assert_string_equal(answer(resp, "error"), "stale round");
    assert_non_null(strstr(answer(resp, "detail"), "start a new round"));
    json_decref(resp);
    assert_true(audited(f, "\"error\":\"stale round\""));
    n = node_json(f, NODE);
    assert_string_equal(json_string_value(json_object_get(n, "state")), "trusted");
    assert_int_equal(json_integer_value(json_object_get(n, "attestations")), 2);
    json_decref(n);
    assert_string_equal(pod_state(f), "trusted");

    /* The stored clock ahead of every quote, judged before the next
     * nonce: an older quote now fails the node. */
    assert_int_equal(store_node_get(sh.store, NODE, rec), 0);
    rec->clock += 1000000000ull;
    rec->last_attested_ms -= 1000;
    assert_int_equal(store_node_put(sh.store, rec), 0);
    measure(f, "/usr/lib/libm.so.6", GOOD, true);
    assert_int_equal(attest(f, &resp, NULL), ENGINE_OK);
    assert_string_equal(verdict(resp), "untrusted");
    assert_non_null(strstr(answer(resp, "reason"), "not after the previous quote"));
    json_decref(resp);
    free(rec);
}

/* The drain counts this verifier's outstanding nonces in shared mode too:
 * issued here, gone once used here; one used at another verifier counts
 * here until it expires (an agent answers where it asked). */
static void test_drain_counts_shared(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    int64_t now = engine_now_ms();

    register_and_activate(f);
    assert_int_equal(engine_challenge(sh.a, NODE, &resp), ENGINE_OK);
    json_decref(resp);
    assert_int_equal(engine_nonces_outstanding(sh.a, now), 1);
    assert_int_equal(engine_nonces_outstanding(sh.b, now), 0);
    assert_int_equal(engine_nonces_outstanding(sh.a, now + 31000), 0); /* expired */

    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, keep), ENGINE_OK);
    json_decref(resp);
    assert_int_equal(engine_nonces_outstanding(sh.a, engine_now_ms()), 0);
    assert_int_equal(attest(f, &resp, to_b), ENGINE_OK);
    json_decref(resp);
    f->e = sh.a;
    assert_int_equal(engine_nonces_outstanding(sh.a, engine_now_ms()), 1);
    json_decref(saved);
    saved = NULL;
}

/* The sweep forgets used nonces once they expired, not before. */
static void test_purge(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    const char *b64;
    uint8_t nonce[64];
    int len;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, keep), ENGINE_OK);
    json_decref(resp);
    b64 = json_string_value(json_object_get(saved, "nonce"));
    len = base64_decode(b64, strlen(b64), nonce, sizeof(nonce));
    assert_int_equal(len, NONCE_LEN);
    engine_sweep(sh.a, engine_now_ms());
    assert_int_equal(store_nonce_use(f->store, nonce, NONCE_LEN, engine_now_ms() + 30000), -EEXIST);
    /* 31 s on (the TTL is 30 s): forgotten (at most one purge a minute). */
    engine_sweep(sh.a, engine_now_ms() + 31000);
    assert_int_equal(store_nonce_use(f->store, nonce, NONCE_LEN, engine_now_ms() + 30000), -EEXIST);
    engine_sweep(sh.a, engine_now_ms() + 91000);
    assert_int_equal(store_nonce_use(f->store, nonce, NONCE_LEN, engine_now_ms() + 30000), 0);
    json_decref(saved);
    saved = NULL;
}

/* A used nonce past its expiry by this replica's clock is kept one TTL
 * more: another replica whose clock is behind (by less than the TTL)
 * still takes it as valid, and must still find it used. */
static void test_purge_keeps_for_clocks_behind(void **state) {
    struct fx *f = *state;
    json_t *resp = NULL;
    const char *b64;
    uint8_t nonce[64];
    int len;

    register_and_activate(f);
    measure(f, "/usr/bin/upfd", GOOD, true);
    assert_int_equal(attest(f, &resp, keep), ENGINE_OK);
    json_decref(resp);
    b64 = json_string_value(json_object_get(saved, "nonce"));
    len = base64_decode(b64, strlen(b64), nonce, sizeof(nonce));
    assert_int_equal(len, NONCE_LEN);
    /* 45 s on (the TTL is 30 s): expired here, but not at a replica 20 s
     * behind, so kept. */
    engine_sweep(sh.a, engine_now_ms() + 45000);
    assert_int_equal(store_nonce_use(f->store, nonce, NONCE_LEN, engine_now_ms() + 30000), -EEXIST);
    json_decref(saved);
    saved = NULL;
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_nonce_across_engines, setup_shared,
                                            teardown_shared),
            cmocka_unit_test_setup_teardown(test_bad_nonces, setup_shared, teardown_shared),
            cmocka_unit_test_setup_teardown(test_node_changed, setup_shared, teardown_shared),
            cmocka_unit_test_setup_teardown(test_stale_round, setup_shared, teardown_shared),
            cmocka_unit_test_setup_teardown(test_drain_counts_shared, setup_shared,
                                            teardown_shared),
            cmocka_unit_test_setup_teardown(test_purge, setup_shared, teardown_shared),
            cmocka_unit_test_setup_teardown(test_purge_keeps_for_clocks_behind, setup_shared,
                                            teardown_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
