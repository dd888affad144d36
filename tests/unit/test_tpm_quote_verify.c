/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "fake-quote.h"
#include "pubkey.h"
#include "quote-verify.h"

/* One negative test per rule of docs/design.md section 5, each with a quote that
 * is otherwise valid and correctly signed (software AK), so the failure can
 * only come from the rule under test. */

static struct fake_ak rsa, ecc, other;
static const uint8_t nonce[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static TPML_PCR_SELECTION sel;
static struct tpm_pcr_values vals;
static uint8_t cat[64 + 20];

static int setup(void **state) {
    (void)state;
    assert_int_equal(fake_ak_new(&rsa, false), 0);
    assert_int_equal(fake_ak_new(&ecc, true), 0);
    assert_int_equal(fake_ak_new(&other, false), 0);
    /* sha256:0,10 + sha1:10 */
    assert_int_equal(tpm_pcr_selection_parse("sha256:0,10+sha1:10", &sel), 0);
    memset(cat, 0xa0, 32);      /* sha256 PCR 0 */
    memset(cat + 32, 0xaa, 32); /* sha256 PCR 10 */
    memset(cat + 64, 0x11, 20); /* sha1 PCR 10 */
    memset(&vals, 0, sizeof(vals));
    tpm_pcr_values_set(&vals, TPM2_ALG_SHA256, 0, cat, 32);
    tpm_pcr_values_set(&vals, TPM2_ALG_SHA256, 10, cat + 32, 32);
    tpm_pcr_values_set(&vals, TPM2_ALG_SHA1, 10, cat + 64, 20);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fake_ak_free(&rsa);
    fake_ak_free(&ecc);
    fake_ak_free(&other);
    return 0;
}

struct run {
    const struct fake_ak *signer;   /* who signs */
    const struct fake_ak *verifier; /* whose key verifies (default: signer) */
    TPMI_ALG_SIG_SCHEME scheme;
    TPMI_ALG_HASH hash;
    void (*patch)(uint8_t *, size_t);
    void (*edit)(TPMS_ATTEST *);
    const TPML_PCR_SELECTION *want_sel;
    const struct tpm_pcr_values *pcrs;
    const struct tpm_clock_state *previous;
    const uint8_t *nonce;
    bool flip_sig;
    void (*sig_edit)(TPMT_SIGNATURE *); /* after signing */
    bool pem;                           /* verify with the bare key, no public area */
};

static enum tpm_quote_check run(const struct run *x, struct tpm_quote_result *res) {
    TPMS_ATTEST a;
    uint8_t attest[sizeof(TPMS_ATTEST)], sig[sizeof(TPMT_SIGNATURE)];
    size_t alen, slen;
    struct tpm_verify_key key;
    const struct fake_ak *v = x->verifier ? x->verifier : x->signer;
    struct tpm_quote_expect e = {
            .nonce = x->nonce ? x->nonce : nonce,
            .nonce_len = 32,
            .selection = x->want_sel ? x->want_sel : &sel,
            .pcrs = x->pcrs ? x->pcrs : &vals,
            .previous = x->previous,
    };

    fake_attest_init(&a, nonce, sizeof(nonce), &sel, cat, sizeof(cat));
    if (x->edit) {
        x->edit(&a);
    }
    assert_int_equal(fake_quote(x->signer, &a, x->patch, x->scheme ? x->scheme : TPM2_ALG_RSASSA,
                                x->hash ? x->hash : TPM2_ALG_SHA256, attest, &alen, sig, &slen),
                     0);
    if (x->flip_sig) {
        sig[slen - 7] ^= 0x01;
    }
    if (x->sig_edit) {
        TPMT_SIGNATURE s;
        size_t off = 0;
        assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig, slen, &off, &s), TSS2_RC_SUCCESS);
        x->sig_edit(&s);
        slen = 0;
        assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Marshal(&s, sig, sizeof(sig), &slen),
                         TSS2_RC_SUCCESS);
    }
    assert_int_equal(tpm_verify_key_from_public(&v->pub, &key), 0);
    key.has_public = !x->pem;
    assert_int_equal(tpm_quote_verify(&key, attest, alen, sig, slen, &e, res), 0);
    tpm_verify_key_free(&key);
    return res->failed;
}

#define EXPECT(want, ...)                                                            \
    do {                                                                             \
        struct tpm_quote_result res_;                                                \
        struct run r_ = {__VA_ARGS__};                                               \
        enum tpm_quote_check got_ = run(&r_, &res_);                                 \
        if (got_ != (want)) {                                                        \
            fail_msg("got %s (%s), wanted %s", tpm_quote_check_name(got_), res_.why, \
                     tpm_quote_check_name(want));                                    \
        }                                                                            \
    } while (0)

static void test_valid_quotes(void **state) {
    struct tpm_quote_result res;
    struct run r = {.signer = &rsa};
    (void)state;

    assert_int_equal(run(&r, &res), TPM_QUOTE_OK);
    assert_true(res.decoded);
    assert_int_equal(res.clock.reset_count, 5);
    assert_false(res.reset);
    EXPECT(TPM_QUOTE_OK, .signer = &ecc, .scheme = TPM2_ALG_ECDSA);
    /* RSAPSS with salt = hash length, from a key without a fixed scheme. */
    EXPECT(TPM_QUOTE_OK, .signer = &rsa, .scheme = TPM2_ALG_RSAPSS, .pem = true);
    EXPECT(TPM_QUOTE_OK, .signer = &ecc, .scheme = TPM2_ALG_ECDSA, .pem = true);
}

static void patch_magic(uint8_t *b, size_t n) {
    (void)n;
    b[3] ^= 0x01;
}
static void patch_type(uint8_t *b, size_t n) {
    (void)n;
    b[5] = 0x17; /* TPM_ST_ATTEST_CERTIFY */
}
static void patch_truncate_field(uint8_t *b, size_t n) {
    b[n - 1] ^= 0; /* no change: trailing bytes are tested separately */
}

static void test_magic_and_type(void **state) {
    (void)state;
    EXPECT(TPM_QUOTE_MAGIC, .signer = &rsa, .patch = patch_magic);
    EXPECT(TPM_QUOTE_TYPE, .signer = &rsa, .patch = patch_type);
    EXPECT(TPM_QUOTE_OK, .signer = &rsa, .patch = patch_truncate_field);
}

static void test_signature(void **state) {
    (void)state;
    EXPECT(TPM_QUOTE_SIGNATURE, .signer = &rsa, .flip_sig = true);
    EXPECT(TPM_QUOTE_SIGNATURE, .signer = &ecc, .scheme = TPM2_ALG_ECDSA, .flip_sig = true);
    /* The right structure signed by another key. */
    EXPECT(TPM_QUOTE_SIGNATURE, .signer = &other, .verifier = &rsa);
    /* An ECDSA signature for an RSA AK, and a scheme or hash not the AK's. */
    EXPECT(TPM_QUOTE_SIG_SCHEME, .signer = &ecc, .verifier = &rsa, .scheme = TPM2_ALG_ECDSA);
    EXPECT(TPM_QUOTE_SIG_SCHEME, .signer = &rsa, .scheme = TPM2_ALG_RSAPSS);
    EXPECT(TPM_QUOTE_SIG_SCHEME, .signer = &rsa, .hash = TPM2_ALG_SHA1);
}

static void sig_short(TPMT_SIGNATURE *s) {
    s->signature.rsassa.sig.size--;
}
static void sig_hmac(TPMT_SIGNATURE *s) {
    s->sigAlg = TPM2_ALG_HMAC;
}
static void sig_hash_null(TPMT_SIGNATURE *s) {
    s->signature.rsassa.hash = TPM2_ALG_NULL;
}

/* Each way a signature can fail to fit the AK, with its reason. */
static void test_signature_reasons(void **state) {
    static const struct {
        struct run r;
        enum tpm_quote_check want;
        const char *why;
    } cases[] = {
            {{.signer = &rsa, .verifier = &ecc},
             TPM_QUOTE_SIG_SCHEME,
             "RSA signature but the AK is not an RSA key"},
            {{.signer = &ecc, .verifier = &rsa, .scheme = TPM2_ALG_ECDSA},
             TPM_QUOTE_SIG_SCHEME,
             "ECDSA signature but the AK is not an ECC key"},
            {{.signer = &rsa, .sig_edit = sig_hmac},
             TPM_QUOTE_SIG_SCHEME,
             "signature algorithm 0x0005 is not RSASSA, RSAPSS or ECDSA"},
            {{.signer = &rsa, .sig_edit = sig_short},
             TPM_QUOTE_SIGNATURE,
             "RSA signature of 255 bytes for a 256-byte key"},
            {{.signer = &rsa, .scheme = TPM2_ALG_RSAPSS},
             TPM_QUOTE_SIG_SCHEME,
             "signature scheme 0x0016/0x000b is not the AK's 0x0014/0x000b"},
            {{.signer = &rsa, .sig_edit = sig_hash_null, .pem = true},
             TPM_QUOTE_SIG_SCHEME,
             "signature hash 0x0010 is not supported"},
            {{.signer = &other, .verifier = &rsa},
             TPM_QUOTE_SIGNATURE,
             "signature does not verify with the AK"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tpm_quote_result res;
        enum tpm_quote_check got = run(&cases[i].r, &res);
        if (got != cases[i].want || strcmp(res.why, cases[i].why) != 0) {
            fail_msg("case %zu: got %s \"%s\", wanted %s \"%s\"", i, tpm_quote_check_name(got),
                     res.why, tpm_quote_check_name(cases[i].want), cases[i].why);
        }
    }
}

static void test_nonce(void **state) {
    static const uint8_t wrong[32] = {9};
    (void)state;
    EXPECT(TPM_QUOTE_NONCE, .signer = &rsa, .nonce = wrong);
}

static void edit_select_sha1_only(TPMS_ATTEST *a) {
    tpm_pcr_selection_parse("sha1:10", &a->attested.quote.pcrSelect);
}
static void edit_select_empty(TPMS_ATTEST *a) {
    a->attested.quote.pcrSelect.count = 0;
}
static void edit_select_empty_bitmap(TPMS_ATTEST *a) {
    memset(a->attested.quote.pcrSelect.pcrSelections[0].pcrSelect, 0, 4);
    memset(a->attested.quote.pcrSelect.pcrSelections[1].pcrSelect, 0, 4);
}
static void edit_digest(TPMS_ATTEST *a) {
    a->attested.quote.pcrDigest.buffer[0] ^= 1;
}

static void test_selection_and_digest(void **state) {
    TPML_PCR_SELECTION want_other;
    struct tpm_pcr_values missing = vals, extra = vals, changed = vals;
    uint8_t v[32] = {0};
    (void)state;

    EXPECT(TPM_QUOTE_SELECTION, .signer = &rsa, .edit = edit_select_sha1_only);
    EXPECT(TPM_QUOTE_SELECTION, .signer = &rsa, .edit = edit_select_empty, .want_sel = &sel);
    EXPECT(TPM_QUOTE_SELECTION, .signer = &rsa, .edit = edit_select_empty_bitmap);
    tpm_pcr_selection_parse("sha256:0,10,11+sha1:10", &want_other);
    EXPECT(TPM_QUOTE_SELECTION, .signer = &rsa, .want_sel = &want_other);
    /* Same PCRs in another bank order is the same selection. */
    tpm_pcr_selection_parse("sha1:10+sha256:10,0", &want_other);
    EXPECT(TPM_QUOTE_OK, .signer = &rsa, .want_sel = &want_other);

    EXPECT(TPM_QUOTE_PCR_DIGEST, .signer = &rsa, .edit = edit_digest);
    changed.v[1].digest[0] ^= 1;
    EXPECT(TPM_QUOTE_PCR_DIGEST, .signer = &rsa, .pcrs = &changed);
    missing.n = 2;
    EXPECT(TPM_QUOTE_PCR_VALUES, .signer = &rsa, .pcrs = &missing);
    tpm_pcr_values_set(&extra, TPM2_ALG_SHA256, 11, v, 32);
    EXPECT(TPM_QUOTE_PCR_VALUES, .signer = &rsa, .pcrs = &extra);
}

static void edit_unsafe(TPMS_ATTEST *a) {
    a->clockInfo.safe = TPM2_NO;
}

static void test_clock(void **state) {
    struct tpm_clock_state prev = {.clock = 999000, .reset_count = 5, .restart_count = 2};
    struct tpm_quote_result res;
    struct run r = {.signer = &rsa, .previous = &prev};
    (void)state;

    assert_int_equal(run(&r, &res), TPM_QUOTE_OK);
    assert_false(res.reset);
    assert_false(res.restart);
    assert_false(res.unsafe);
    /* safe == NO (power lost without a shutdown) is reported, not refused. */
    r.edit = edit_unsafe;
    assert_int_equal(run(&r, &res), TPM_QUOTE_OK);
    assert_true(res.unsafe);
    r.edit = NULL;

    /* Clock going back, and the same quote again (a replay). */
    prev.clock = 1000001;
    EXPECT(TPM_QUOTE_CLOCK_BACK, .signer = &rsa, .previous = &prev);
    prev.clock = 1000000;
    EXPECT(TPM_QUOTE_CLOCK_BACK, .signer = &rsa, .previous = &prev);

    /* resetCount going back; restartCount going back within one reset. */
    prev = (struct tpm_clock_state){.clock = 5, .reset_count = 6, .restart_count = 0};
    EXPECT(TPM_QUOTE_RESET_BACK, .signer = &rsa, .previous = &prev);
    prev = (struct tpm_clock_state){.clock = 5, .reset_count = 5, .restart_count = 3};
    EXPECT(TPM_QUOTE_RESTART_BACK, .signer = &rsa, .previous = &prev);

    /* A reset (reboot) is reported, and restartCount and Clock (restored
     * from NV after a power loss) may then be anything. */
    prev = (struct tpm_clock_state){.clock = 5, .reset_count = 4, .restart_count = 9};
    r.previous = &prev;
    assert_int_equal(run(&r, &res), TPM_QUOTE_OK);
    assert_true(res.reset);
    prev = (struct tpm_clock_state){.clock = 1000001, .reset_count = 4, .restart_count = 0};
    assert_int_equal(run(&r, &res), TPM_QUOTE_OK);
    assert_true(res.reset);
    prev = (struct tpm_clock_state){.clock = 5, .reset_count = 5, .restart_count = 1};
    assert_int_equal(run(&r, &res), TPM_QUOTE_OK);
    assert_true(res.restart);
}

static void test_malformed(void **state) {
    struct tpm_verify_key key;
    struct tpm_quote_result res;
    TPMS_ATTEST a;
    uint8_t attest[sizeof(TPMS_ATTEST) + 1], sig[sizeof(TPMT_SIGNATURE) + 1];
    size_t alen, slen;
    struct tpm_quote_expect e = {.nonce = nonce, .nonce_len = 32, .selection = &sel, .pcrs = &vals};
    (void)state;

    fake_attest_init(&a, nonce, 32, &sel, cat, sizeof(cat));
    assert_int_equal(
            fake_quote(&rsa, &a, NULL, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, attest, &alen, sig, &slen),
            0);
    assert_int_equal(tpm_verify_key_from_public(&rsa.pub, &key), 0);
    /* Truncated and trailing bytes, for both structures. */
    assert_int_equal(tpm_quote_verify(&key, attest, alen - 1, sig, slen, &e, &res), 0);
    assert_int_equal(res.failed, TPM_QUOTE_MALFORMED);
    attest[alen] = 0;
    assert_int_equal(tpm_quote_verify(&key, attest, alen + 1, sig, slen, &e, &res), 0);
    assert_int_equal(res.failed, TPM_QUOTE_MALFORMED);
    assert_int_equal(tpm_quote_verify(&key, attest, 3, sig, slen, &e, &res), 0);
    assert_int_equal(res.failed, TPM_QUOTE_MALFORMED);
    sig[slen] = 0;
    assert_int_equal(tpm_quote_verify(&key, attest, alen, sig, slen + 1, &e, &res), 0);
    assert_int_equal(res.failed, TPM_QUOTE_MALFORMED);
    assert_int_equal(tpm_quote_verify(&key, attest, alen, sig, 4, &e, &res), 0);
    assert_int_equal(res.failed, TPM_QUOTE_MALFORMED);
    assert_int_equal(tpm_quote_verify(&key, attest, alen, sig, slen, &e, &res), 0);
    assert_int_equal(res.failed, TPM_QUOTE_OK);
    assert_int_equal(tpm_quote_verify(NULL, attest, alen, sig, slen, &e, &res), -EINVAL);
    tpm_verify_key_free(&key);
}

static void test_ak_attributes(void **state) {
    static const struct {
        TPMA_OBJECT clear, set;
        const char *why;
    } cases[] = {
            {TPMA_OBJECT_RESTRICTED, 0, "AK is not restricted"},
            {TPMA_OBJECT_FIXEDTPM, 0, "AK is not fixedTPM"},
            {TPMA_OBJECT_FIXEDPARENT, 0, "AK is not fixedParent"},
            {TPMA_OBJECT_SENSITIVEDATAORIGIN, 0, "AK was not generated in the TPM"},
            {TPMA_OBJECT_SIGN_ENCRYPT, 0, "AK cannot sign"},
            {0, TPMA_OBJECT_DECRYPT, "AK can decrypt"},
    };
    const char *why = NULL;
    (void)state;

    assert_int_equal(tpm_ak_public_check(&rsa.pub, &why), 0);
    assert_int_equal(tpm_ak_public_check(&ecc.pub, &why), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TPMT_PUBLIC p = rsa.pub;
        p.objectAttributes = (p.objectAttributes & ~cases[i].clear) | cases[i].set;
        assert_int_equal(tpm_ak_public_check(&p, &why), -EPERM);
        assert_string_equal(why, cases[i].why);
    }
    {
        TPMT_PUBLIC p = rsa.pub;
        p.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA1;
        assert_int_equal(tpm_ak_public_check(&p, &why), -EPERM);
        p = rsa.pub;
        p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        assert_int_equal(tpm_ak_public_check(&p, &why), -EPERM);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_valid_quotes),  cmocka_unit_test(test_magic_and_type),
            cmocka_unit_test(test_signature),     cmocka_unit_test(test_signature_reasons),
            cmocka_unit_test(test_nonce),         cmocka_unit_test(test_selection_and_digest),
            cmocka_unit_test(test_clock),         cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_ak_attributes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
