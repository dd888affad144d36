/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "credential.h"
#include "device.h"
#include "ekcert.h"
#include "keys.h"
#include "log.h"
#include "pubkey.h"
#include "quote-verify.h"
#include "quote.h"
#include "swtpm.h"

/* Round trips against a real TPM 2.0 (swtpm): the agent-side calls make
 * keys, quotes and activations; the verifier-side code, which never talks to
 * a TPM, must accept exactly what the TPM produced. */

struct fixture {
    struct swtpm sw;
    struct tpm *tpm;
    char ak_path[300];
};

static int setup_plain(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || swtpm_start(&f->sw, false) < 0 || tpm_open(f->sw.tcti, &f->tpm) < 0) {
        return -1;
    }
    snprintf(f->ak_path, sizeof(f->ak_path), "%s/ak.blob", f->sw.dir);
    *state = f;
    return 0;
}

static int setup_certs(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || swtpm_start(&f->sw, true) < 0 || tpm_open(f->sw.tcti, &f->tpm) < 0) {
        return -1;
    }
    snprintf(f->ak_path, sizeof(f->ak_path), "%s/ak.blob", f->sw.dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    tpm_close(f->tpm);
    swtpm_stop(&f->sw);
    free(f);
    return 0;
}

/* Quote with a fresh AK of `type` and verify on the verifier side. */
static void quote_roundtrip(struct fixture *f, enum tpm_key_type type) {
    struct tpm_key ek = TPM_KEY_INIT, ak = TPM_KEY_INIT, ak2 = TPM_KEY_INIT;
    struct tpm_quote q1, q2;
    struct tpm_verify_key vk;
    struct tpm_quote_result res;
    TPML_PCR_SELECTION sel;
    TPM2B_NAME name;
    uint8_t nonce[32];
    const char *why;

    for (size_t i = 0; i < sizeof(nonce); i++) {
        nonce[i] = (uint8_t)(i * 13 + type);
    }
    assert_int_equal(tpm_ek_load(f->tpm, TPM_KEY_RSA, &ek), 0);
    assert_int_equal(tpm_ak_create(f->tpm, &ek, type, f->ak_path, &ak), 0);
    /* The verifier's view of the AK: attributes, name. */
    assert_int_equal(tpm_ak_public_check(&ak.public.publicArea, &why), 0);
    assert_int_equal(tpm_public_name(&ak.public.publicArea, &name), 0);
    assert_int_equal(name.size, ak.name.size);
    assert_memory_equal(name.name, ak.name.name, name.size);

    /* 8+ PCRs across two banks: PCR_Read's 8-digest limit is looped over. */
    assert_int_equal(tpm_pcr_selection_parse("sha256:0-9,10+sha1:10", &sel), 0);
    assert_int_equal(tpm_quote(f->tpm, &ak, nonce, sizeof(nonce), &sel, &q1), 0);
    assert_int_equal(q1.pcrs.n, 12);
    assert_int_equal(tpm_verify_key_from_public(&ak.public.publicArea, &vk), 0);
    struct tpm_quote_expect e = {
            .nonce = nonce, .nonce_len = sizeof(nonce), .selection = &sel, .pcrs = &q1.pcrs};
    assert_int_equal(tpm_quote_verify(&vk, q1.attest, q1.attest_len, q1.sig, q1.sig_len, &e, &res),
                     0);
    if (res.failed) {
        fail_msg("quote from swtpm refused: %s: %s", tpm_quote_check_name(res.failed), res.why);
    }
    assert_int_equal(res.attest.clockInfo.safe, 1);

    /* Reloaded from its blob, the AK is the same key and quotes again; the
     * second quote is accepted after the first, the first not after the
     * second (its clock is older: a replay). */
    tpm_key_release(f->tpm, &ak);
    assert_int_equal(tpm_ak_load(f->tpm, &ek, f->ak_path, &ak2), 0);
    assert_memory_equal(&ak2.name, &name, sizeof(name.size) + name.size);
    usleep(5000);
    assert_int_equal(tpm_quote(f->tpm, &ak2, nonce, sizeof(nonce), &sel, &q2), 0);
    struct tpm_clock_state first = res.clock, second;
    e.pcrs = &q2.pcrs;
    e.previous = &first;
    assert_int_equal(tpm_quote_verify(&vk, q2.attest, q2.attest_len, q2.sig, q2.sig_len, &e, &res),
                     0);
    assert_int_equal(res.failed, TPM_QUOTE_OK);
    second = res.clock;
    e.pcrs = &q1.pcrs;
    e.previous = &second;
    assert_int_equal(tpm_quote_verify(&vk, q1.attest, q1.attest_len, q1.sig, q1.sig_len, &e, &res),
                     0);
    assert_int_equal(res.failed, TPM_QUOTE_CLOCK_BACK);

    /* Another nonce, another AK: refused. */
    e.previous = NULL;
    nonce[0] ^= 1;
    assert_int_equal(tpm_quote_verify(&vk, q1.attest, q1.attest_len, q1.sig, q1.sig_len, &e, &res),
                     0);
    assert_int_equal(res.failed, TPM_QUOTE_NONCE);
    nonce[0] ^= 1;
    tpm_verify_key_free(&vk);
    {
        struct tpm_key ak3 = TPM_KEY_INIT;
        char other[320];
        snprintf(other, sizeof(other), "%s.other", f->ak_path);
        assert_int_equal(tpm_ak_create(f->tpm, &ek, type, other, &ak3), 0);
        assert_int_equal(tpm_verify_key_from_public(&ak3.public.publicArea, &vk), 0);
        assert_int_equal(
                tpm_quote_verify(&vk, q1.attest, q1.attest_len, q1.sig, q1.sig_len, &e, &res), 0);
        assert_int_equal(res.failed, TPM_QUOTE_SIGNATURE);
        tpm_verify_key_free(&vk);
        tpm_key_release(f->tpm, &ak3);
        unlink(other);
    }
    tpm_key_release(f->tpm, &ak2);
    tpm_key_release(f->tpm, &ek);
}

static void test_quote_rsa(void **state) {
    quote_roundtrip(*state, TPM_KEY_RSA);
}

static void test_quote_ecc(void **state) {
    quote_roundtrip(*state, TPM_KEY_ECC);
}

/* MakeCredential in software, ActivateCredential in the TPM. */
static void activate(struct fixture *f, enum tpm_key_type ek_type, enum tpm_key_type ak_type) {
    struct tpm_key ek = TPM_KEY_INIT, ak = TPM_KEY_INIT;
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    uint8_t cred[32], got[64];
    size_t got_len = 0;
    TPM2B_NAME wrong;

    for (size_t i = 0; i < sizeof(cred); i++) {
        cred[i] = (uint8_t)(0x40 + i + ek_type * 3);
    }
    assert_int_equal(tpm_ek_load(f->tpm, ek_type, &ek), 0);
    assert_int_equal(tpm_ak_create(f->tpm, &ek, ak_type, NULL, &ak), 0);
    assert_int_equal(tpm_make_credential(&ek.public.publicArea, &ak.name, cred, sizeof(cred), &blob,
                                         &secret),
                     0);
    assert_int_equal(tpm_activate_credential(f->tpm, &ak, &ek, &blob, &secret, got, &got_len), 0);
    assert_int_equal(got_len, sizeof(cred));
    assert_memory_equal(got, cred, sizeof(cred));

    /* Bound to another name: the TPM refuses to release it. */
    wrong = ak.name;
    wrong.name[5] ^= 1;
    assert_int_equal(
            tpm_make_credential(&ek.public.publicArea, &wrong, cred, sizeof(cred), &blob, &secret),
            0);
    assert_true(tpm_activate_credential(f->tpm, &ak, &ek, &blob, &secret, got, &got_len) < 0);
    tpm_key_release(f->tpm, &ak);
    tpm_key_release(f->tpm, &ek);
}

static void test_activate_rsa_ek(void **state) {
    activate(*state, TPM_KEY_RSA, TPM_KEY_RSA);
    activate(*state, TPM_KEY_RSA, TPM_KEY_ECC);
}

static void test_activate_ecc_ek(void **state) {
    activate(*state, TPM_KEY_ECC, TPM_KEY_ECC);
    activate(*state, TPM_KEY_ECC, TPM_KEY_RSA);
}

/* A self-signed CA certificate that has nothing to do with the TPM. */
static void write_unrelated_ca(const char *dir) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    char path[400];
    FILE *fp;

    assert_non_null(k);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"unrelated CA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    PEM_write_X509(fp, x);
    fclose(fp);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_ek_certificate(void **state) {
    struct fixture *f = *state;
    struct tpm_key ek = TPM_KEY_INIT, ecc = TPM_KEY_INIT;
    _cleanup_free_ uint8_t *der = NULL;
    size_t len = 0;
    X509_STORE *store = NULL, *bad = NULL;
    char why[256], dir[300];

    /* swtpm_setup persisted the RSA EK: it is loaded, not re-created. */
    assert_int_equal(tpm_ek_load(f->tpm, TPM_KEY_RSA, &ek), 0);
    assert_false(ek.transient);
    assert_int_equal(tpm_ek_read_cert(f->tpm, TPM_KEY_RSA, &der, &len), 0);
    assert_true(len > 500);
    assert_int_equal(tpm_ekcert_store_load(f->sw.ca_dir, &store), 0);
    snprintf(why, sizeof(why), "stale stack bytes");
    if (tpm_ekcert_verify(store, der, len, &ek.public.publicArea, why, sizeof(why)) != 0) {
        fail_msg("swtpm EK certificate refused: %s", why);
    }
    /* The engine audits `why` on success too. */
    assert_string_equal(why, "valid");
    /* The certificate of this EK is not the certificate of another key. */
    assert_int_equal(tpm_ek_load(f->tpm, TPM_KEY_ECC, &ecc), 0);
    assert_int_equal(tpm_ekcert_verify(store, der, len, &ecc.public.publicArea, why, sizeof(why)),
                     -EKEYREJECTED);
    assert_non_null(strstr(why, "another key"));
    /* From a CA that is not trusted. */
    snprintf(dir, sizeof(dir), "%s/untrusted", f->sw.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_unrelated_ca(dir);
    assert_int_equal(tpm_ekcert_store_load(dir, &bad), 0);
    assert_int_equal(tpm_ekcert_verify(bad, der, len, &ek.public.publicArea, why, sizeof(why)),
                     -EACCES);
    assert_non_null(strstr(why, "does not chain"));
    /* Not a certificate at all, and no ECC P-256 EK certificate here. */
    assert_int_equal(
            tpm_ekcert_verify(store, der, len - 1, &ek.public.publicArea, why, sizeof(why)),
            -EBADMSG);
    {
        uint8_t *none = NULL;
        size_t nlen;
        assert_int_equal(tpm_ek_read_cert(f->tpm, TPM_KEY_ECC, &none, &nlen), -ENOENT);
    }
    X509_STORE_free(store);
    X509_STORE_free(bad);
    tpm_key_release(f->tpm, &ecc);
    tpm_key_release(f->tpm, &ek);
}

static void test_open_errors(void **state) {
    struct tpm *t = NULL;
    (void)state;
    assert_true(tpm_open("swtpm:path=/nonexistent/kima.sock", &t) < 0);
    assert_null(t);
}

int main(void) {
    /* A fresh swtpm for every test: a failed test cannot leave objects loaded
     * in the next one's TPM. */
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_quote_rsa, setup_plain, teardown),
            cmocka_unit_test_setup_teardown(test_quote_ecc, setup_plain, teardown),
            cmocka_unit_test_setup_teardown(test_activate_rsa_ek, setup_plain, teardown),
            cmocka_unit_test_setup_teardown(test_activate_ecc_ek, setup_plain, teardown),
            cmocka_unit_test(test_open_errors),
            cmocka_unit_test_setup_teardown(test_ek_certificate, setup_certs, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
