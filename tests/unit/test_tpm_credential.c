/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "credential.h"
#include "hex.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_proof_known_answer),
            cmocka_unit_test(test_proof_binds_every_input),
            cmocka_unit_test(test_proof_arguments),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
