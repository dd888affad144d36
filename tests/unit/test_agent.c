/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <tss2/tss2_mu.h>

#include "attest.h"
#include "base64.h"
#include "credential.h"
#include "health.h"
#include "ima-gen.h"
#include "json-util.h"
#include "log.h"
#include "loop.h"
#include "position.h"
#include "swtpm.h"

/* The agent's registration, round and schedule against a stubbed verifier:
 * client_post() is wrapped (-Wl,--wrap=client_post, the HTTP boundary) and
 * answers from a script; the TPM is a real one (swtpm), so the quotes and
 * the activation are the TPM's own. The list is written by the test
 * generator into a securityfs stand-in. */

#define NODE "node-1"

/* One scripted verifier answer. */
struct call {
    const char *what; /* the path after /v1/nodes/NODE/ */
    int status;
    json_t *answer;     /* handed to the agent */
    void (*hook)(void); /* runs when the call arrives */
};

static struct {
    struct call calls[8];
    json_t *bodies[8];                 /* what the agent sent (copies) */
    const struct client *to[8];        /* and to which client */
    const struct client *disconnected; /* the last one client_disconnect() closed */
    size_t n, at;
    const char *node; /* the node in the paths; NULL: NODE */
} stub;

int __wrap_client_post(struct client *c, const char *path, const json_t *body, json_t **ret);

void __wrap_client_disconnect(struct client *c);

void __wrap_client_disconnect(struct client *c) {
    stub.disconnected = c;
}

int __wrap_client_post(struct client *c, const char *path, const json_t *body, json_t **ret) {
    struct call *call;
    char want[600];

    if (stub.at >= stub.n) {
        fail_msg("unexpected request %s", path);
    }
    call = &stub.calls[stub.at];
    snprintf(want, sizeof(want), "/v1/nodes/%s/%s", stub.node ? stub.node : NODE, call->what);
    assert_string_equal(path, want);
    stub.to[stub.at] = c;
    stub.bodies[stub.at++] = body ? json_deep_copy(body) : NULL;
    if (call->hook) {
        call->hook();
    }
    *ret = call->answer;
    call->answer = NULL;
    return call->status;
}

static void expect(const char *what, int status, json_t *answer) {
    assert_true(stub.n < ARRAY_SIZE(stub.calls));
    stub.calls[stub.n++] = (struct call){what, status, answer, NULL};
}

static void stub_reset(void) {
    for (size_t i = 0; i < ARRAY_SIZE(stub.calls); i++) {
        json_decref(stub.calls[i].answer);
        json_decref(stub.bodies[i]);
    }
    memset(&stub, 0, sizeof(stub));
}

/* Every scripted call was made. */
static void expect_done(void) {
    assert_int_equal(stub.at, stub.n);
}

struct fixture {
    struct swtpm sw;
    struct tpm *tpm;
    struct tpm_key ek, ak;
    char dir[64], sfs[128], list[192], count[192], boot[128], ak_path[300];
    struct agent_config cfg;
    struct agent a;
    struct ima_gen gen;
    size_t offs[64]; /* offs[i]: where entry i starts; offs[count] the end */
};

static struct fixture *fx; /* for the hooks */

static int group_setup(void **state) {
    static struct fixture f;

    setenv("TSS2_LOG", "all+none", 0);
    f.ek = (struct tpm_key)TPM_KEY_INIT;
    f.ak = (struct tpm_key)TPM_KEY_INIT;
    if (swtpm_start(&f.sw, false) < 0 || tpm_open(f.sw.tcti, &f.tpm) < 0 ||
        tpm_ek_load(f.tpm, TPM_KEY_RSA, &f.ek) < 0) {
        return -1;
    }
    snprintf(f.ak_path, sizeof(f.ak_path), "%s/ak.blob", f.sw.dir);
    if (tpm_ak_create(f.tpm, &f.ek, TPM_KEY_RSA, f.ak_path, &f.ak) < 0) {
        return -1;
    }
    fx = &f;
    *state = &f;
    return 0;
}

static int group_teardown(void **state) {
    struct fixture *f = *state;

    tpm_key_release(f->tpm, &f->ak);
    tpm_key_release(f->tpm, &f->ek);
    tpm_close(f->tpm);
    swtpm_stop(&f->sw);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    if (len > 0) {
        assert_int_equal(fwrite(data, 1, len, fp), len);
    }
    assert_int_equal(fclose(fp), 0);
}

static void write_list(struct fixture *f) {
    char n[32];

    write_file(f->list, f->gen.list.data, f->gen.list.len);
    snprintf(n, sizeof(n), "%llu\n", (unsigned long long)f->gen.count);
    write_file(f->count, n, strlen(n));
}

/* Append `n` ima-ng entries and write the list. */
static void add_entries(struct fixture *f, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t d[128], digest[32];
        char s[64], path[32];
        struct gen_field fields[2];

        memset(digest, (int)f->gen.count + 1, sizeof(digest));
        snprintf(path, sizeof(path), "/usr/bin/file%llu", (unsigned long long)f->gen.count);
        fields[0] = gen_dng(d, "sha256:", digest, sizeof(digest));
        fields[1] = gen_str(s, path);
        assert_int_equal(ima_gen_add(&f->gen, 10, "ima-ng", fields, 2, false), 0);
        f->offs[f->gen.count] = f->gen.list.len;
    }
    write_list(f);
}

/* A new boot: a new list of `n` entries. */
static void new_list(struct fixture *f, int n) {
    ima_gen_free(&f->gen);
    ima_gen_init(&f->gen, 20, 1u << 20);
    f->offs[0] = 0;
    add_entries(f, n);
}

static int setup(void **state) {
    struct fixture *f = *state;
    char ima[160];

    snprintf(f->dir, sizeof(f->dir), "/tmp/kima-test-agent-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sfs, sizeof(f->sfs), "%s/sfs", f->dir);
    snprintf(ima, sizeof(ima), "%s/ima", f->sfs);
    assert_int_equal(mkdir(f->sfs, 0700), 0);
    assert_int_equal(mkdir(ima, 0700), 0);
    snprintf(f->list, sizeof(f->list), "%s/binary_runtime_measurements", ima);
    snprintf(f->count, sizeof(f->count), "%s/runtime_measurements_count", ima);
    snprintf(f->boot, sizeof(f->boot), "%s/boot_id", f->dir);
    write_file(f->boot, "boot-a\n", 7);
    ima_gen_init(&f->gen, 20, 1u << 20);
    f->offs[0] = 0;
    add_entries(f, 0);

    f->cfg = (struct agent_config){.node = NODE,
                                   .securityfs = f->sfs,
                                   .state_dir = f->dir,
                                   .boot_id_file = f->boot,
                                   .ak_alg = "rsa",
                                   .interval_ms = 2000,
                                   .min_interval_ms = 200};
    f->a = (struct agent){.cfg = &f->cfg, .tpm = f->tpm, .ek = f->ek, .ak = f->ak};
    position_init(&f->a.pos, f->sfs);
    stub_reset();
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    char cmd[128];

    position_free(&f->a.pos);
    ima_gen_free(&f->gen);
    stub_reset();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static const uint8_t nonce[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static json_t *challenge_answer(uint64_t next) {
    return json_pack("{s:o,s:s,s:I}", "nonce", json_base64(nonce, sizeof(nonce)), "pcr_selection",
                     "sha256:10", "ima_next_index", (json_int_t)next);
}

static json_t *verdict_answer(const char *verdict, uint64_t next) {
    return json_pack("{s:s,s:I,s:s}", "verdict", verdict, "ima_next_index", (json_int_t)next,
                     "reason", "test");
}

/* A round's two calls. */
static void expect_round(uint64_t next, int status, json_t *answer) {
    expect("challenges", 200, challenge_answer(next));
    expect("evidence", status, answer);
}

/* The evidence sent in call `i` carries the list from entry `from`: the
 * bytes from offs[from] to the end, the nonce, the boot id, a quote and
 * PCR 10 of the sha256 bank. */
static void check_evidence(struct fixture *f, size_t i, uint64_t from, const char *boot_id) {
    const json_t *body = stub.bodies[i], *ima = json_object_get(body, "ima");
    _cleanup_free_ uint8_t *entries = NULL;
    size_t len;
    char err[128], want_nonce[64];

    assert_non_null(ima);
    assert_int_equal(json_integer_value(json_object_get(ima, "from")), from);
    assert_int_equal(json_integer_value(json_object_get(ima, "digest_size")), 20);
    assert_int_equal(json_get_base64(ima, "entries", 1u << 20, &entries, &len, err, sizeof(err)),
                     0);
    assert_int_equal(len, f->gen.list.len - f->offs[from]);
    assert_memory_equal(entries, f->gen.list.data + f->offs[from], len);
    base64_encode(nonce, sizeof(nonce), want_nonce);
    assert_string_equal(json_string_value(json_object_get(body, "nonce")), want_nonce);
    assert_string_equal(json_string_value(json_object_get(body, "boot_id")), boot_id);
    assert_non_null(json_string_value(json_object_get(json_object_get(body, "quote"), "attest")));
    assert_int_equal(strlen(json_string_value(json_object_get(
                             json_object_get(json_object_get(body, "pcrs"), "sha256"), "10"))),
                     64);
}

/* state-dir/position as the agent wrote it. */
static void check_position_file(struct fixture *f, uint64_t index, uint64_t offset,
                                const char *boot_id) {
    char path[128], want[128];
    _cleanup_free_ uint8_t *d = NULL;
    size_t len;

    snprintf(path, sizeof(path), "%s/position", f->dir);
    assert_int_equal(read_file_capped(path, 4096, &d, &len), 0);
    snprintf(want, sizeof(want), "%llu %llu %s\n", (unsigned long long)index,
             (unsigned long long)offset, boot_id);
    assert_string_equal((char *)d, want);
}

/* Overwrite entry 0's PCR index with garbage (the file keeps its length): a
 * parse of the list from the start now fails, only remembered offsets
 * still find later entries. */
static void corrupt_entry0(void) {
    FILE *fp = fopen(fx->list, "r+");

    assert_non_null(fp);
    assert_int_equal(fwrite("\xff\xff\xff\xff\xff\xff\xff\xff", 1, 8, fp), 8);
    assert_int_equal(fclose(fp), 0);
}

static void test_round_from_zero_then_increments(void **state) {
    struct fixture *f = *state;

    add_entries(f, 3);
    expect_round(0, 200, verdict_answer("trusted", 3));
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    check_evidence(f, 1, 0, "boot-a");
    assert_int_equal(f->a.pos.known_index, 3);
    assert_int_equal(f->a.pos.known_offset, f->offs[3]);
    check_position_file(f, 3, f->offs[3], "boot-a");

    /* Two more: only they are read and sent. */
    add_entries(f, 2);
    stub_reset();
    expect_round(3, 200, verdict_answer("trusted", 5));
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    check_evidence(f, 1, 3, "boot-a");
    check_position_file(f, 5, f->offs[5], "boot-a");

    /* Nothing new: an empty batch from the end. */
    stub_reset();
    expect_round(5, 200, verdict_answer("trusted", 5));
    assert_int_equal(agent_round(&f->a), 1);
    check_evidence(f, 1, 5, "boot-a");
}

static void test_round_untrusted(void **state) {
    struct fixture *f = *state;

    add_entries(f, 2);
    expect_round(0, 200, verdict_answer("untrusted", 2));
    assert_int_equal(agent_round(&f->a), 0);
    expect_done();
    /* The verifier has the entries all the same. */
    assert_int_equal(f->a.pos.known_index, 2);
    check_position_file(f, 2, f->offs[2], "boot-a");
}

/* The verifier took only part of the batch (its next index is inside it):
 * the offset comes from the batch's index, not from parsing the list. */
static void test_round_partial_coverage(void **state) {
    struct fixture *f = *state;

    add_entries(f, 4);
    expect_round(0, 200, verdict_answer("trusted", 2));
    stub.calls[1].hook = corrupt_entry0;
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    assert_int_equal(f->a.pos.known_index, 2);
    assert_int_equal(f->a.pos.known_offset, f->offs[2]);
    check_position_file(f, 2, f->offs[2], "boot-a");

    stub_reset();
    expect_round(2, 200, verdict_answer("trusted", 4));
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    memcpy(f->gen.list.data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8); /* as the file now is */
    check_evidence(f, 1, 2, "boot-a");
    assert_int_equal(f->a.pos.known_offset, f->offs[4]);
}

/* A 409 with the verifier's next index: the round failed (back off), and
 * the next challenge's index, inside the batch sent, is found from it. */
static void test_round_409_new_index(void **state) {
    struct fixture *f = *state;

    add_entries(f, 4);
    expect_round(0, 409,
                 json_pack("{s:s,s:s,s:i}", "error", "wrong IMA index", "detail", "test",
                           "ima_next_index", 3));
    assert_int_equal(agent_round(&f->a), -EAGAIN);
    expect_done();
    assert_int_equal(f->a.pos.known_index, 0); /* only a 200 moves the position */

    corrupt_entry0();
    memcpy(f->gen.list.data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    stub_reset();
    expect_round(3, 200, verdict_answer("trusted", 4));
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    check_evidence(f, 1, 3, "boot-a");
    check_position_file(f, 4, f->offs[4], "boot-a");
}

/* After a reboot the list is shorter than the verifier's position: it is
 * sent from entry 0, with the new boot id. */
static void test_round_reboot(void **state) {
    struct fixture *f = *state;

    add_entries(f, 5);
    expect_round(0, 200, verdict_answer("trusted", 5));
    assert_int_equal(agent_round(&f->a), 1);
    assert_int_equal(f->a.pos.known_index, 5);

    new_list(f, 2);
    write_file(f->boot, "boot-b\n", 7);
    stub_reset();
    expect_round(5, 200, verdict_answer("trusted", 2));
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    check_evidence(f, 1, 0, "boot-b");
    assert_int_equal(f->a.pos.known_index, 2);
    check_position_file(f, 2, f->offs[2], "boot-b");
}

/* A challenge quoting PCR 10 of `bank`. */
static void expect_bank_round(const char *bank, uint64_t next, uint64_t verdict_next) {
    char sel[32];

    snprintf(sel, sizeof(sel), "%s:10", bank);
    expect("challenges", 200,
           json_pack("{s:o,s:s,s:I}", "nonce", json_base64(nonce, sizeof(nonce)), "pcr_selection",
                     sel, "ima_next_index", (json_int_t)next));
    expect("evidence", 200, verdict_answer("trusted", verdict_next));
}

/* The evidence of call `i` holds `want` (len bytes) with digest_size `size`. */
static void check_sent_list(size_t i, uint64_t from, const void *want, size_t len, int size) {
    const json_t *ima = json_object_get(stub.bodies[i], "ima");
    _cleanup_free_ uint8_t *entries = NULL;
    size_t got;
    char err[128];

    assert_int_equal(json_integer_value(json_object_get(ima, "from")), from);
    assert_int_equal(json_integer_value(json_object_get(ima, "digest_size")), size);
    assert_int_equal(json_get_base64(ima, "entries", 1u << 20, &entries, &got, err, sizeof(err)),
                     0);
    assert_int_equal(got, len);
    assert_memory_equal(entries, want, len);
}

/* Linux >= 6.10 writes a list per bank: the agent reads the one of the bank
 * the verifier has it quote, switches list when the selection changes (the
 * offsets then start again: they are the other list's), and reads the SHA-1
 * list for a bank the kernel has no list of. */
static void test_round_per_bank_list(void **state) {
    struct fixture *f = *state;
    struct ima_gen g32;
    char sha256[256];
    size_t off32[4] = {0};
    uint8_t d[128], digest[32] = {7};
    char s[64];

    add_entries(f, 3);
    ima_gen_init(&g32, 32, 1u << 20);
    for (int i = 0; i < 3; i++) {
        struct gen_field fields[2] = {gen_dng(d, "sha256:", digest, sizeof(digest)),
                                      gen_str(s, "/usr/bin/x")};
        assert_int_equal(ima_gen_add(&g32, 10, "ima-ng", fields, 2, false), 0);
        off32[i + 1] = g32.list.len;
    }
    snprintf(sha256, sizeof(sha256), "%s_sha256", f->list);
    write_file(sha256, g32.list.data, g32.list.len);
    assert_int_equal(f->a.pos.digest_len, 20); /* no per-bank list at start */

    expect_bank_round("sha256", 0, 2);
    assert_int_equal(agent_round(&f->a), 1);
    check_sent_list(1, 0, g32.list.data, g32.list.len, 32);
    assert_string_equal(f->a.pos.list_path, sha256);
    assert_int_equal(f->a.pos.known_offset, off32[2]);

    /* The verifier now quotes SHA-1: the legacy list, from entry 2. */
    stub_reset();
    expect_bank_round("sha1", 2, 3);
    assert_int_equal(agent_round(&f->a), 1);
    check_sent_list(1, 2, f->gen.list.data + f->offs[2], f->gen.list.len - f->offs[2], 20);
    assert_string_equal(f->a.pos.list_path, f->list);
    assert_int_equal(f->a.pos.known_offset, f->offs[3]);

    /* SHA-384: no such list, the SHA-1 one stays with its offsets. */
    stub_reset();
    expect_bank_round("sha384", 3, 3);
    assert_false(position_use_bank(&f->a.pos, f->sfs, IMA_HASH_SHA384));
    assert_int_equal(agent_round(&f->a), 1);
    check_sent_list(1, 3, NULL, 0, 20);
    expect_done();
    ima_gen_free(&g32);
}

/* After a restart without a saved position the list is parsed once. */
static void test_round_after_restart(void **state) {
    struct fixture *f = *state;

    add_entries(f, 6);
    expect_round(4, 200, verdict_answer("trusted", 6));
    assert_int_equal(agent_round(&f->a), 1);
    expect_done();
    check_evidence(f, 1, 4, "boot-a");
}

static void test_round_refusals(void **state) {
    struct fixture *f = *state;
    static const struct {
        const char *what;
        int status, want;
    } cases[] = {
            {"challenges", 404, -ENOENT},
            {"challenges", 403, -ENOENT},
            {"challenges", 429, -EAGAIN},
            {"challenges", 503, -EAGAIN},
            {"challenges", -ECONNREFUSED, -ECONNREFUSED},
            {"evidence", 404, -ENOENT},
            {"evidence", 400, -EAGAIN},
            {"evidence", -ETIMEDOUT, -ETIMEDOUT},
    };

    add_entries(f, 1);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        stub_reset();
        if (strcmp(cases[i].what, "evidence") == 0) {
            expect("challenges", 200, challenge_answer(0));
        }
        expect(cases[i].what, cases[i].status,
               cases[i].status > 0 ? json_pack("{s:s}", "detail", "test") : NULL);
        assert_int_equal(agent_round(&f->a), cases[i].want);
        expect_done();
        assert_int_equal(f->a.pos.known_index, 0);
    }

    /* A challenge without a nonce or a selection is malformed. */
    stub_reset();
    expect("challenges", 200,
           json_pack("{s:s,s:i}", "pcr_selection", "sha256:10", "ima_next_index", 0));
    assert_int_equal(agent_round(&f->a), -EBADMSG);
    stub_reset();
    expect("challenges", 200,
           json_pack("{s:o,s:s}", "nonce", json_base64(nonce, sizeof(nonce)), "pcr_selection",
                     "sha999:10"));
    assert_int_equal(agent_round(&f->a), -EBADMSG);
}

static uint8_t cred[32] = {0xc0, 0xff, 0xee};

/* The verifier's answer to a registration: a credential for the AK. */
static void expect_registration(struct fixture *f, const TPM2B_NAME *name, int activation_status) {
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    uint8_t bb[sizeof(blob)], sb[sizeof(secret)];
    size_t bl = 0, sl = 0;

    assert_int_equal(
            tpm_make_credential(&f->ek.public.publicArea, name, cred, sizeof(cred), &blob, &secret),
            0);
    assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, bb, sizeof(bb), &bl), 0);
    assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&secret, sb, sizeof(sb), &sl), 0);
    expect("registration", 201,
           json_pack("{s:o,s:o}", "credential_blob", json_base64(bb, bl), "secret",
                     json_base64(sb, sl)));
    expect("activation", activation_status, json_object());
}

/* The registration sends both public areas; the activation proves the
 * credential: HMAC-SHA256(credential, node name || AK name). */
static void check_registration(struct fixture *f, size_t i) {
    uint8_t akbuf[sizeof(TPM2B_PUBLIC)], msg[1024], proof[32];
    _cleanup_free_ uint8_t *got = NULL, *ak = NULL;
    size_t aklen = 0, len, n = strlen(f->cfg.node);
    unsigned int plen;
    char err[128];

    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&f->ak.public, akbuf, sizeof(akbuf), &aklen), 0);
    assert_int_equal(json_get_base64(stub.bodies[i], "ak_pub", 4096, &ak, &len, err, sizeof(err)),
                     0);
    assert_int_equal(len, aklen);
    assert_memory_equal(ak, akbuf, len);
    assert_non_null(json_object_get(stub.bodies[i], "ek_pub"));

    assert_true(n + f->ak.name.size <= sizeof(msg));
    memcpy(msg, f->cfg.node, n);
    memcpy(msg + n, f->ak.name.name, f->ak.name.size);
    HMAC(EVP_sha256(), cred, sizeof(cred), msg, n + f->ak.name.size, proof, &plen);
    assert_int_equal(json_get_base64(stub.bodies[i + 1], "proof", 64, &got, &len, err, sizeof(err)),
                     0);
    assert_int_equal(len, plen);
    assert_memory_equal(got, proof, len);
}

static void test_register(void **state) {
    struct fixture *f = *state;
    TPM2B_NAME other = f->ak.name;

    expect_registration(f, &f->ak.name, 200);
    assert_int_equal(agent_register(&f->a), 0);
    expect_done();
    check_registration(f, 0);

    /* Refused, malformed, not activated. */
    stub_reset();
    expect("registration", 403, json_pack("{s:s}", "detail", "no"));
    assert_int_equal(agent_register(&f->a), -EACCES);
    stub_reset();
    expect("registration", -ECONNREFUSED, NULL);
    assert_int_equal(agent_register(&f->a), -ECONNREFUSED);
    stub_reset();
    expect("registration", 201, json_pack("{s:s}", "credential_blob", "AAAA"));
    assert_int_equal(agent_register(&f->a), -EBADMSG);
    stub_reset();
    expect_registration(f, &f->ak.name, 409);
    assert_int_equal(agent_register(&f->a), -EACCES);
    expect_done();

    /* A credential for another key: the TPM refuses to activate it. */
    stub_reset();
    other.name[other.size - 1] ^= 1;
    expect_registration(f, &other, 200);
    stub.n--; /* no activation is sent */
    assert_int_equal(agent_register(&f->a), -EIO);
    expect_done();
}

/* Node names: the longest a verifier takes (253 bytes) registers with the
 * right proof; a longer one is sent nowhere (before, a name of about 480
 * bytes overflowed the activation's buffer). */
static void test_long_node_name(void **state) {
    struct fixture *f = *state;
    char name[600];

    memset(name, 'n', sizeof(name));
    name[AGENT_NODE_NAME_MAX] = 0;
    f->cfg.node = stub.node = name;
    expect_registration(f, &f->ak.name, 200);
    assert_int_equal(agent_register(&f->a), 0);
    expect_done();
    check_registration(f, 0);

    /* One byte more, and the length that overflowed: no request at all. */
    for (size_t len = AGENT_NODE_NAME_MAX + 1; len <= 485; len += 485 - AGENT_NODE_NAME_MAX - 1) {
        stub_reset();
        memset(name, 'n', sizeof(name));
        name[len] = 0;
        assert_int_equal(agent_register(&f->a), -ENAMETOOLONG);
        assert_int_equal(agent_round(&f->a), -ENAMETOOLONG);
        expect_done();
    }
    f->cfg.node = NODE;
}

/* What the agent logs about the verifier's answers: the detail or reason
 * when there is one, a clear text when there is none, never "(null)". */
static void test_log_answers(void **state) {
    struct fixture *f = *state;
    char path[128];
    uint8_t *text = NULL;
    size_t len;
    FILE *log;

    snprintf(path, sizeof(path), "%s/agent.log", f->dir);
    log = fopen(path, "w+");
    assert_non_null(log);
    log_set_stream(log);
    add_entries(f, 1);
    expect("registration", 403, json_pack("{s:s}", "detail", "go away"));
    assert_int_equal(agent_register(&f->a), -EACCES);
    expect("registration", 503, json_object());
    assert_int_equal(agent_register(&f->a), -EACCES);
    expect("registration", -ECONNREFUSED, NULL);
    assert_int_equal(agent_register(&f->a), -ECONNREFUSED);
    expect_done();
    stub_reset();
    expect_round(0, 409, json_pack("{s:i}", "ima_next_index", 0));
    assert_int_equal(agent_round(&f->a), -EAGAIN);
    expect_round(0, 200, json_pack("{s:s,s:i}", "verdict", "untrusted", "ima_next_index", 1));
    assert_int_equal(agent_round(&f->a), 0);
    expect_round(1, 200, json_pack("{s:i}", "ima_next_index", 1));
    assert_int_equal(agent_round(&f->a), 0);
    expect_done();
    log_set_stream(NULL);
    assert_int_equal(fclose(log), 0);

    assert_int_equal(read_file_capped(path, 1 << 20, &text, &len), 0);
    assert_non_null(strstr((char *)text, "registration refused: 403 go away"));
    assert_non_null(strstr((char *)text, "registration refused: 503 (no detail given)"));
    assert_non_null(strstr((char *)text, "registration refused: -111 no answer"));
    assert_non_null(strstr((char *)text, "evidence refused: 409 (no detail given)"));
    assert_non_null(strstr((char *)text, "the verifier says untrusted: (no reason given)"));
    assert_non_null(strstr((char *)text, "the verifier says no verdict: (no reason given)"));
    assert_null(strstr((char *)text, "(null)"));
    free(text);
}

/* A round answered 404: the next step registers again, from position 0,
 * and the one after that attests. */
static void test_step_registers_again(void **state) {
    struct fixture *f = *state;
    struct agent_loop l;

    add_entries(f, 3);
    agent_loop_init(&l, true);
    f->a.pos.known_index = 2;
    f->a.pos.known_offset = f->offs[2];
    expect("challenges", 404, json_pack("{s:s}", "detail", "unknown node"));
    assert_int_equal(agent_loop_step(&f->a, &l, 1000, 3), -ENOENT);
    expect_done();
    assert_false(l.registered);
    assert_int_equal(f->a.pos.known_index, 0);
    assert_int_equal(f->a.pos.known_offset, 0);
    assert_int_equal(l.last_round, 1000);
    assert_int_equal(l.last_count, 3);

    stub_reset();
    expect_registration(f, &f->ak.name, 200);
    assert_int_equal(agent_loop_step(&f->a, &l, 3000, 3), 0);
    expect_done();
    assert_true(l.registered);
    assert_int_equal(l.last_round, 1000); /* a registration is not a round */

    stub_reset();
    expect_round(0, 200, verdict_answer("trusted", 3));
    assert_int_equal(agent_loop_step(&f->a, &l, 3000, 3), 1);
    expect_done();
    check_evidence(f, 1, 0, "boot-a");

    /* A failed registration stays unregistered. With one URL, a 503 only
     * closes the kept-alive connection (behind a Service the next one may
     * reach another replica). */
    stub_reset();
    l.registered = false;
    expect("registration", 503, json_pack("{s:s}", "detail", "busy"));
    stub.disconnected = (struct client *)&l;
    assert_true(agent_loop_step(&f->a, &l, 4000, 3) < 0);
    expect_done();
    assert_false(l.registered);
    assert_null(stub.disconnected); /* the fixture's client, NULL */
}

/* 409 "node changed" (another verifier of the deployment wrote the node
 * while this one checked the round, and recorded nothing of it): the round
 * is -ESTALE, the position stays, the next round is due at once and goes
 * to the same verifier (a 409 is an answer, not an unavailable verifier);
 * a second conflict in a row backs off; a round that goes through resets
 * that. Another 409 (a bad nonce) stays -EAGAIN. */
static void test_round_node_changed(void **state) {
    struct fixture *f = *state;
    static char stand_in[2];
    struct client *A = (struct client *)&stand_in[0], *B = (struct client *)&stand_in[1];
    struct agent_loop l;

    f->a.urls = (struct verifier_urls){{(char *)"https://a", (char *)"https://b"}, 2};
    f->a.clients[0] = A;
    f->a.clients[1] = B;
    f->a.n_clients = 2;
    f->a.client = A;
    f->a.switch_log = (struct ratelimit)RATELIMIT_INIT(60000, 10);
    add_entries(f, 3);
    agent_loop_init(&l, true);

    expect_round(0, 409,
                 json_pack("{s:s,s:s}", "error", "node changed", "detail", "start a new round"));
    assert_int_equal(agent_loop_step(&f->a, &l, 1000, 3), -ESTALE);
    expect_done();
    assert_ptr_equal(stub.to[0], A);
    assert_ptr_equal(stub.to[1], A);
    assert_int_equal(f->a.current, 0);
    assert_int_equal(f->a.pos.known_index, 0);
    assert_false(agent_loop_due(&l, &f->cfg, 1001, 3));
    assert_true(agent_loop_again_now(&l, true, -ESTALE));
    assert_true(agent_loop_due(&l, &f->cfg, 1001, 3));

    /* The new round, on A again: a second conflict backs off. */
    stub_reset();
    expect_round(0, 409, json_pack("{s:s}", "error", "node changed"));
    assert_int_equal(agent_loop_step(&f->a, &l, 1001, 3), -ESTALE);
    expect_done();
    assert_ptr_equal(stub.to[0], A);
    assert_false(agent_loop_again_now(&l, true, -ESTALE));
    assert_false(agent_loop_due(&l, &f->cfg, 1002, 3));

    stub_reset();
    expect_round(0, 200, verdict_answer("trusted", 3));
    assert_int_equal(agent_loop_step(&f->a, &l, 5000, 3), 1);
    expect_done();
    assert_int_equal(f->a.pos.known_index, 3);
    assert_false(agent_loop_again_now(&l, true, 1));
    assert_true(agent_loop_again_now(&l, true, -ESTALE)); /* at once again */

    stub_reset();
    expect_round(3, 409, json_pack("{s:s}", "error", "bad nonce"));
    assert_int_equal(agent_round(&f->a), -EAGAIN);
    expect_done();
}

/* Three verifier URLs (A, B, C; stand-in clients, client_post() is the
 * stub): a step stays on one verifier, moves to the next one only when the
 * verifier is unavailable (no answer, 502/503/504, "draining") and starts
 * there from a new challenge, at most once around the list; a 403 is an
 * answer and never asked again elsewhere. */
static void test_verifier_list(void **state) {
    struct fixture *f = *state;
    static char stand_in[3];
    struct client *A = (struct client *)&stand_in[0], *B = (struct client *)&stand_in[1],
                  *C = (struct client *)&stand_in[2];
    struct agent_loop l;
    char path[128];
    uint8_t *text = NULL;
    size_t len;
    FILE *log;

    snprintf(path, sizeof(path), "%s/agent.log", f->dir);
    log = fopen(path, "w+");
    assert_non_null(log);
    log_set_stream(log);
    f->a.urls = (struct verifier_urls){
            {(char *)"https://a", (char *)"https://b", (char *)"https://c"}, 3};
    f->a.clients[0] = A;
    f->a.clients[1] = B;
    f->a.clients[2] = C;
    f->a.n_clients = 3;
    f->a.client = A;
    f->a.switch_log = (struct ratelimit)RATELIMIT_INIT(60000, 10);
    add_entries(f, 3);
    agent_loop_init(&l, true);

    /* A takes the challenge, then is unavailable for the evidence: the
     * round starts again on B with B's challenge. */
    expect("challenges", 200, challenge_answer(0));
    expect("evidence", 503, json_pack("{s:s}", "error", "draining"));
    expect_round(0, 200, verdict_answer("trusted", 3));
    assert_int_equal(agent_loop_step(&f->a, &l, 1000, 3), 1);
    expect_done();
    assert_ptr_equal(stub.to[0], A);
    assert_ptr_equal(stub.to[1], A);
    assert_ptr_equal(stub.to[2], B);
    assert_ptr_equal(stub.to[3], B);
    assert_ptr_equal(stub.disconnected, A);
    assert_int_equal(f->a.current, 1);

    /* The agent sticks to B. */
    stub_reset();
    expect_round(3, 200, verdict_answer("trusted", 3));
    assert_int_equal(agent_loop_step(&f->a, &l, 3000, 3), 1);
    expect_done();
    assert_ptr_equal(stub.to[0], B);
    assert_ptr_equal(stub.to[1], B);

    /* A 403 is B's answer: no other verifier is asked. */
    stub_reset();
    expect("challenges", 403, json_pack("{s:s}", "error", "forbidden"));
    assert_int_equal(agent_loop_step(&f->a, &l, 5000, 3), -ENOENT);
    expect_done();
    assert_false(l.registered);
    stub_reset();
    expect("registration", 403, json_pack("{s:s}", "detail", "no"));
    assert_int_equal(agent_loop_step(&f->a, &l, 7000, 3), -EACCES);
    expect_done();
    assert_int_equal(f->a.current, 1);
    assert_null(stub.disconnected);

    /* Registration follows the same rule: B refuses connections, C
     * registers and activates the node. */
    stub_reset();
    expect("registration", -ECONNREFUSED, NULL);
    expect_registration(f, &f->ak.name, 200);
    assert_int_equal(agent_loop_step(&f->a, &l, 9000, 3), 0);
    expect_done();
    assert_ptr_equal(stub.to[0], B);
    assert_ptr_equal(stub.to[1], C);
    assert_ptr_equal(stub.to[2], C);
    assert_true(l.registered);
    assert_int_equal(f->a.current, 2);

    /* All three unavailable: once around the list, then the loop's
     * backoff; the next step starts where this one did. */
    stub_reset();
    expect("challenges", 504, json_object());
    expect("challenges", -ETIMEDOUT, NULL);
    expect("challenges", 502, json_object());
    assert_true(agent_loop_step(&f->a, &l, 11000, 3) < 0);
    expect_done();
    assert_ptr_equal(stub.to[0], C);
    assert_ptr_equal(stub.to[1], A);
    assert_ptr_equal(stub.to[2], B);
    assert_int_equal(f->a.current, 2);

    log_set_stream(NULL);
    assert_int_equal(fclose(log), 0);
    assert_int_equal(read_file_capped(path, 1 << 20, &text, &len), 0);
    assert_non_null(strstr((char *)text, "verifier URL https://b after https://a failed: "
                                         "draining (HTTP 503)"));
    assert_non_null(strstr((char *)text, "verifier URL https://c after https://b failed: "
                                         "no answer (Connection refused)"));
    assert_non_null(
            strstr((char *)text, "verifier URL https://a after https://c failed: HTTP 504"));
    assert_null(strstr((char *)text, "after https://b failed: HTTP 403"));
    free(text);
    f->a.urls.n = 0; /* the strings are not the list's to free */
}

static void test_schedule(void **state) {
    struct fixture *f = *state;
    struct agent_loop l;

    agent_loop_init(&l, false);
    assert_false(l.registered);
    assert_int_equal(l.backoff_ms, BACKOFF_MIN_MS);
    l.last_round = 10000;
    l.last_count = 7;
    /* Every interval (2000), or on a new count but not within 200 ms. */
    assert_false(agent_loop_due(&l, &f->cfg, 11999, 7));
    assert_true(agent_loop_due(&l, &f->cfg, 12000, 7));
    assert_false(agent_loop_due(&l, &f->cfg, 10199, 8));
    assert_true(agent_loop_due(&l, &f->cfg, 10200, 8));
    /* A fresh loop is due at once. */
    agent_loop_init(&l, true);
    assert_true(agent_loop_due(&l, &f->cfg, 5000, 0));
}

static void test_backoff(void **state) {
    uint64_t b = BACKOFF_MIN_MS;
    const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        b = backoff_next_ms(b);
        assert_int_equal(b, want[i]);
    }
    /* Half the backoff, plus jitter up to the other half. */
    assert_int_equal(backoff_delay_ms(500, 0), 250);
    assert_int_equal(backoff_delay_ms(500, 250), 500);
    assert_int_equal(backoff_delay_ms(500, 251), 250);
    for (uint32_t j = 0; j < 100000; j += 997) {
        uint64_t d = backoff_delay_ms(30000, j * 40503u);
        assert_true(d >= 15000 && d <= 30000);
    }
    assert_int_equal(backoff_delay_ms(30000, UINT32_MAX), 15000 + UINT32_MAX % 15001);
}

static void test_position_file(void **state) {
    struct fixture *f = *state;
    struct list_position p;
    char sha256[256];

    f->a.pos.known_index = 12;
    f->a.pos.known_offset = 3456;
    position_save(&f->a.pos, f->dir, "boot-a");
    check_position_file(f, 12, 3456, "boot-a");

    position_init(&p, f->sfs);
    assert_int_equal(p.digest_len, 20);
    assert_string_equal(p.list_path, f->list);
    position_load(&p, f->dir, "boot-b"); /* another boot: not taken */
    assert_int_equal(p.known_index, 0);
    position_load(&p, f->dir, "boot-a");
    assert_int_equal(p.known_index, 12);
    assert_int_equal(p.known_offset, 3456);
    position_free(&p);

    /* The per-bank SHA-256 list wins when the kernel has it. */
    snprintf(sha256, sizeof(sha256), "%s_sha256", f->list);
    write_file(sha256, "", 0);
    position_init(&p, f->sfs);
    assert_int_equal(p.digest_len, 32);
    assert_string_equal(p.list_path, sha256);

    /* The count, and the boot id cut at its newline. */
    add_entries(f, 2);
    assert_int_equal(position_read_count(&f->a.pos), 2);
    {
        char id[80];
        position_boot_id(f->boot, id, sizeof(id));
        assert_string_equal(id, "boot-a");
        position_boot_id("/nonexistent", id, sizeof(id));
        assert_string_equal(id, "unknown");
    }
}

static void test_offsets(void **state) {
    struct fixture *f = *state;
    uint64_t off;

    add_entries(f, 5);
    /* Parsed from the start. */
    assert_int_equal(position_offset_of(&f->a.pos, 3, &off), 0);
    assert_int_equal(off, f->offs[3]);
    assert_int_equal(position_offset_of(&f->a.pos, 5, &off), 0);
    assert_int_equal(off, f->offs[5]);
    assert_int_equal(position_offset_of(&f->a.pos, 6, &off), -ERANGE);

    /* From here on only remembered offsets find entries. */
    corrupt_entry0();
    assert_true(position_offset_of(&f->a.pos, 3, &off) < 0);
    /* The verifier's known position (as loaded from state-dir/position)... */
    f->a.pos.known_index = 3;
    f->a.pos.known_offset = f->offs[3];
    assert_int_equal(position_offset_of(&f->a.pos, 3, &off), 0);
    assert_int_equal(off, f->offs[3]);
    assert_true(position_offset_of(&f->a.pos, 4, &off) < 0);
    /* ...and every entry of the last batch, up to its end. */
    position_index_batch(&f->a.pos, 1, f->offs[1], f->gen.list.data + f->offs[1],
                         f->gen.list.len - f->offs[1]);
    assert_int_equal(f->a.pos.batch_from, 1);
    assert_int_equal(f->a.pos.batch_n, 4);
    for (uint64_t i = 1; i <= 5; i++) {
        assert_int_equal(position_offset_of(&f->a.pos, i, &off), 0);
        assert_int_equal(off, f->offs[i]);
    }

    /* A list shorter than a remembered offset is a new list: the offset
     * does not hold there. */
    assert_int_equal(truncate(f->list, (off_t)f->offs[3] - 1), 0);
    assert_true(position_offset_of(&f->a.pos, 3, &off) < 0);
    assert_true(position_offset_of(&f->a.pos, 4, &off) < 0);
    assert_int_equal(position_offset_of(&f->a.pos, 2, &off), 0);
    assert_int_equal(off, f->offs[2]);

    position_restart(&f->a.pos);
    assert_null(f->a.pos.batch_offsets);
    assert_int_equal(f->a.pos.known_index, 0);
    assert_true(position_offset_of(&f->a.pos, 2, &off) < 0);
    assert_int_equal(position_offset_of(&f->a.pos, 0, &off), 0);
    assert_int_equal(off, 0);
}

static void test_health(void **state) {
    struct fixture *f = *state;
    enum agent_probe probe;
    char path[256];
    time_t now = time(NULL);

    assert_int_equal(agent_probe_from_string("live", &probe), 0);
    assert_int_equal(probe, AGENT_PROBE_LIVE);
    assert_int_equal(agent_probe_from_string("ready", &probe), 0);
    assert_int_equal(probe, AGENT_PROBE_READY);
    assert_int_equal(agent_probe_from_string("dead", &probe), -EINVAL);

    assert_int_equal(agent_health_check(f->dir, AGENT_PROBE_LIVE, 2000, now, path, sizeof(path)),
                     -ENOENT);
    assert_true(strstr(path, "/heartbeat") != NULL);
    agent_heartbeat(f->dir);
    assert_int_equal(agent_health_check(f->dir, AGENT_PROBE_LIVE, 2000, now, path, sizeof(path)),
                     0);
    assert_int_equal(
            agent_health_check(f->dir, AGENT_PROBE_LIVE, 2000, now + 62, path, sizeof(path)),
            -ESTALE);

    /* Ready: evidence accepted within 3 intervals and 10 s. */
    assert_int_equal(agent_health_check(f->dir, AGENT_PROBE_READY, 500, now, path, sizeof(path)),
                     -ENOENT);
    position_save(&f->a.pos, f->dir, "boot-a");
    assert_int_equal(
            agent_health_check(f->dir, AGENT_PROBE_READY, 500, now + 10, path, sizeof(path)), 0);
    assert_int_equal(
            agent_health_check(f->dir, AGENT_PROBE_READY, 500, now + 13, path, sizeof(path)),
            -ESTALE);
    assert_int_equal(
            agent_health_check(f->dir, AGENT_PROBE_READY, 5000, now + 24, path, sizeof(path)), 0);
}

/* A verifier that does not know the node: registered again at once the
 * first time, with the backoff after that until a round goes through
 * (review finding R16-A4: a verifier answering every challenge 404 made a
 * hot loop, and --once never ended). */
static void test_reregistration_backoff(void **state) {
    struct agent_loop l;
    (void)state;

    agent_loop_init(&l, true);
    assert_true(agent_loop_again_now(&l, true, -ENOENT));
    assert_false(agent_loop_again_now(&l, false, 0)); /* the registration */
    assert_false(agent_loop_again_now(&l, true, -ENOENT));
    assert_false(agent_loop_again_now(&l, true, -ENOENT));
    assert_false(agent_loop_again_now(&l, true, 0)); /* a round went through */
    assert_true(agent_loop_again_now(&l, true, -ENOENT));
    assert_false(agent_loop_again_now(&l, true, -EIO));
    assert_false(agent_loop_again_now(&l, false, -ENOENT)); /* not a round */
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_round_from_zero_then_increments, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_untrusted, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_partial_coverage, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_409_new_index, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_node_changed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_reboot, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_after_restart, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_per_bank_list, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_refusals, setup, teardown),
            cmocka_unit_test_setup_teardown(test_register, setup, teardown),
            cmocka_unit_test_setup_teardown(test_long_node_name, setup, teardown),
            cmocka_unit_test_setup_teardown(test_log_answers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_step_registers_again, setup, teardown),
            cmocka_unit_test_setup_teardown(test_verifier_list, setup, teardown),
            cmocka_unit_test_setup_teardown(test_schedule, setup, teardown),
            cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
            cmocka_unit_test_setup_teardown(test_position_file, setup, teardown),
            cmocka_unit_test_setup_teardown(test_offsets, setup, teardown),
            cmocka_unit_test_setup_teardown(test_health, setup, teardown),
            cmocka_unit_test(test_reregistration_backoff),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
