/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "credential.h"
#include "soft-tpm.h"
#include "hex.h"
#include "keys.h"

/* The key 00 01 .. 1f, node "node-1", an AK name of sha256 (00 0b) and 32
 * bytes of aa. Expected values from Python's hmac module. */
static uint8_t secret[32], ak_name[34];

static int setup(void **state) {
    (void)state;
    for (int i = 0; i < 32; i++) {
        secret[i] = (uint8_t)i;
    }
    ak_name[0] = 0x00;
    ak_name[1] = 0x0b;
    memset(ak_name + 2, 0xaa, 32);
    return 0;
}

static void test_proof_known_answer(void **state) {
    uint8_t proof[TPM_ACTIVATION_PROOF_SIZE];
    char hex[2 * TPM_ACTIVATION_PROOF_SIZE + 1];
    (void)state;

    assert_int_equal(TPM_ACTIVATION_PROOF_SIZE, 32);
    assert_int_equal(
            tpm_activation_proof(secret, sizeof(secret), "node-1", ak_name, sizeof(ak_name), proof),
            0);
    assert_string_equal(hex_encode(proof, sizeof(proof), hex),
                        "6d42424dad5cf26ae758bcbc9eefd7ccaa8e401b56b33da6860d95ecf5cd5773");
    /* Without an AK name: HMAC over the node name alone. */
    assert_int_equal(tpm_activation_proof(secret, sizeof(secret), "node-1", NULL, 0, proof), 0);
    assert_string_equal(hex_encode(proof, sizeof(proof), hex),
                        "381d867840059044c8ff6a7ad825ce7c64d3e7cec72748ef5dd5bfbd880e6ee2");
}

/* Another secret, node or AK gives another proof. */
static void test_proof_binds_every_input(void **state) {
    uint8_t base[32], other[32], s2[32], n2[34];
    (void)state;

    assert_int_equal(
            tpm_activation_proof(secret, sizeof(secret), "node-1", ak_name, sizeof(ak_name), base),
            0);
    memcpy(s2, secret, sizeof(s2));
    s2[31] ^= 1;
    assert_int_equal(
            tpm_activation_proof(s2, sizeof(s2), "node-1", ak_name, sizeof(ak_name), other), 0);
    assert_memory_not_equal(base, other, sizeof(base));
    assert_int_equal(
            tpm_activation_proof(secret, sizeof(secret), "node-2", ak_name, sizeof(ak_name), other),
            0);
    assert_memory_not_equal(base, other, sizeof(base));
    memcpy(n2, ak_name, sizeof(n2));
    n2[33] ^= 1;
    assert_int_equal(tpm_activation_proof(secret, sizeof(secret), "node-1", n2, sizeof(n2), other),
                     0);
    assert_memory_not_equal(base, other, sizeof(base));
}

static void test_proof_arguments(void **state) {
    uint8_t proof[TPM_ACTIVATION_PROOF_SIZE];
    (void)state;

    assert_int_equal(tpm_activation_proof(NULL, 32, "n", ak_name, sizeof(ak_name), proof), -EINVAL);
    assert_int_equal(tpm_activation_proof(secret, 32, NULL, ak_name, sizeof(ak_name), proof),
                     -EINVAL);
    assert_int_equal(tpm_activation_proof(secret, 32, "n", NULL, 34, proof), -EINVAL);
    assert_int_equal(tpm_activation_proof(secret, 32, "n", ak_name, sizeof(ak_name), NULL),
                     -EINVAL);
}

/* An RSA-2048 EK public area (nameAlg sha256, AES-`bits`-CFB) for key. */
static void rsa_ek(EVP_PKEY *key, UINT16 bits, TPMT_PUBLIC *ret) {
    BIGNUM *n = NULL;

    memset(ret, 0, sizeof(*ret));
    ret->type = TPM2_ALG_RSA;
    ret->nameAlg = TPM2_ALG_SHA256;
    ret->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    ret->parameters.rsaDetail.symmetric.keyBits.aes = bits;
    ret->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    ret->parameters.rsaDetail.keyBits = 2048;
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(BN_bn2binpad(n, ret->unique.rsa.buffer, 256), 256);
    ret->unique.rsa.size = 256;
    BN_free(n);
}

/* What the TPM does in ActivateCredential, with the EK's private key
 * (tests/helpers/soft-tpm.c): the credential back, or an error. */
static void recover(EVP_PKEY *key, const TPMT_PUBLIC *ek, const TPM2B_NAME *name,
                    const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *sec,
                    uint8_t *ret_cred, size_t *ret_len) {
    struct soft_ek s = {.key = key, .pub = *ek};

    assert_int_equal(soft_activate_credential(&s, name, blob, sec, ret_cred, ret_len), 0);
}

static void test_make_credential_rsa(void **state) {
    EVP_PKEY *key = EVP_RSA_gen(2048);
    static const UINT16 bits[] = {128, 256};
    TPM2B_NAME name = {.size = 34};
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET sec;
    TPMT_PUBLIC ek;
    uint8_t got[64];
    size_t got_len;
    (void)state;

    assert_non_null(key);
    memcpy(name.name, ak_name, sizeof(ak_name));
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        rsa_ek(key, bits[i], &ek);
        assert_int_equal(tpm_make_credential(&ek, &name, secret, 20, &blob, &sec), 0);
        assert_int_equal(sec.size, 256);
        assert_int_equal(blob.size, 2 + 32 + 2 + 20);
        recover(key, &ek, &name, &blob, &sec, got, &got_len);
        assert_int_equal(got_len, 20);
        assert_memory_equal(got, secret, 20);
    }
    EVP_PKEY_free(key);
}

/* An ECC P-256 EK (template L-2): the seed by ECDH and KDFe; the
 * credential comes back for this EK and name only. */
static void test_make_credential_ecc(void **state) {
    struct soft_ek ek, other;
    TPM2B_NAME name = {.size = 34};
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET sec;
    uint8_t got[64];
    size_t got_len = 0;
    (void)state;

    assert_int_equal(soft_ek_new(&ek, true), 0);
    assert_int_equal(soft_ek_new(&other, true), 0);
    assert_int_equal(ek.pub.type, TPM2_ALG_ECC);
    memcpy(name.name, ak_name, sizeof(ak_name));
    assert_int_equal(tpm_make_credential(&ek.pub, &name, secret, 32, &blob, &sec), 0);
    assert_int_equal(sec.size, 2 + 32 + 2 + 32);
    assert_int_equal(soft_activate_credential(&ek, &name, &blob, &sec, got, &got_len), 0);
    assert_int_equal(got_len, 32);
    assert_memory_equal(got, secret, 32);
    /* Another TPM, another AK name, a changed blob: the HMAC fails. */
    assert_int_equal(soft_activate_credential(&other, &name, &blob, &sec, got, &got_len), -EBADMSG);
    name.name[33] ^= 1;
    assert_int_equal(soft_activate_credential(&ek, &name, &blob, &sec, got, &got_len), -EBADMSG);
    name.name[33] ^= 1;
    blob.credential[blob.size - 1] ^= 1;
    assert_int_equal(soft_activate_credential(&ek, &name, &blob, &sec, got, &got_len), -EBADMSG);
    /* A secret that is not a P-256 point. */
    blob.credential[blob.size - 1] ^= 1;
    sec.size = 10;
    assert_int_equal(soft_activate_credential(&ek, &name, &blob, &sec, got, &got_len), -EBADMSG);
    soft_ek_free(&ek);
    soft_ek_free(&other);
}

/* The RSA EK of template L-1 from soft_ek_new(): a wrong name is refused. */
static void test_soft_ek_rsa(void **state) {
    struct soft_ek ek;
    TPM2B_NAME name = {.size = 34};
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET sec;
    const char *why = NULL;
    uint8_t got[64];
    size_t got_len = 0;
    (void)state;

    assert_int_equal(soft_ek_new(&ek, false), 0);
    assert_int_equal(tpm_ek_public_check(&ek.pub, &why), 0);
    memcpy(name.name, ak_name, sizeof(ak_name));
    assert_int_equal(tpm_make_credential(&ek.pub, &name, secret, 32, &blob, &sec), 0);
    assert_int_equal(soft_activate_credential(&ek, &name, &blob, &sec, got, &got_len), 0);
    assert_memory_equal(got, secret, 32);
    name.name[2] ^= 1;
    assert_int_equal(soft_activate_credential(&ek, &name, &blob, &sec, got, &got_len), -EBADMSG);
    soft_ek_free(&ek);
}

static void test_make_credential_refusals(void **state) {
    EVP_PKEY *key = EVP_RSA_gen(2048);
    TPM2B_NAME name = {.size = 34};
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET sec;
    TPMT_PUBLIC ek;
    (void)state;

    assert_non_null(key);
    memcpy(name.name, ak_name, sizeof(ak_name));
    rsa_ek(key, 128, &ek);
    assert_int_equal(tpm_make_credential(NULL, &name, secret, 32, &blob, &sec), -EINVAL);
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, NULL, &sec), -EINVAL);
    /* 1 to the nameAlg's digest size bytes, for a name. */
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 0, &blob, &sec), -EINVAL);
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 33, &blob, &sec), -EINVAL);
    name.size = 0;
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, &blob, &sec), -EINVAL);
    name.size = 34;
    ek.nameAlg = TPM2_ALG_NULL;
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, &blob, &sec), -EOPNOTSUPP);
    ek.nameAlg = TPM2_ALG_SHA256;
    /* The credential is protected with AES-128 or -256 in CFB mode only. */
    ek.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CTR;
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, &blob, &sec), -EOPNOTSUPP);
    rsa_ek(key, 192, &ek);
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, &blob, &sec), -EOPNOTSUPP);
    rsa_ek(key, 128, &ek);
    ek.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, &blob, &sec), -EOPNOTSUPP);
    /* A public area that is not a key. */
    rsa_ek(key, 128, &ek);
    ek.unique.rsa.size = 0;
    assert_int_equal(tpm_make_credential(&ek, &name, secret, 32, &blob, &sec), -EBADMSG);
    EVP_PKEY_free(key);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_proof_known_answer),
            cmocka_unit_test(test_proof_binds_every_input),
            cmocka_unit_test(test_proof_arguments),
            cmocka_unit_test(test_make_credential_rsa),
            cmocka_unit_test(test_make_credential_ecc),
            cmocka_unit_test(test_soft_ek_rsa),
            cmocka_unit_test(test_make_credential_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
