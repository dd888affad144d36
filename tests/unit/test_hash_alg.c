/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "hash-alg.h"
#include "hex.h"

/* Known answers from Python's hashlib (FIPS 180 and GB/T 32905 vectors). */
static const struct {
    enum hash_alg alg;
    const char *name;
    size_t size;
    uint16_t tpm_id;
    const char *abc; /* H("abc") */
} want[] = {
        {HASH_ALG_SHA1, "sha1", 20, 0x0004, "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {HASH_ALG_SHA256, "sha256", 32, 0x000b,
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {HASH_ALG_SHA384, "sha384", 48, 0x000c,
         "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca1"
         "34c825a7"},
        {HASH_ALG_SHA512, "sha512", 64, 0x000d,
         "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a"
         "3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
        {HASH_ALG_SM3, "sm3", 32, 0x0012,
         "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"},
};

static void test_table(void **state) {
    (void)state;

    assert_int_equal(ARRAY_SIZE(want), HASH_ALG_COUNT);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        enum hash_alg a;
        assert_string_equal(hash_alg_name(want[i].alg), want[i].name);
        assert_int_equal(hash_alg_size(want[i].alg), want[i].size);
        assert_true(hash_alg_size(want[i].alg) <= HASH_ALG_DIGEST_MAX);
        assert_int_equal(hash_alg_tpm_id(want[i].alg), want[i].tpm_id);
        assert_int_equal(hash_alg_from_name(want[i].name, strlen(want[i].name), &a), 0);
        assert_int_equal(a, want[i].alg);
    }
    assert_int_equal(hash_alg_size(HASH_ALG_COUNT), 0);
    assert_string_equal(hash_alg_name(HASH_ALG_COUNT), "unknown");
    assert_int_equal(hash_alg_tpm_id(HASH_ALG_COUNT), 0);
    assert_null(hash_alg_evp_md(HASH_ALG_COUNT));
}

/* The banks are sha1 .. sha512, in the order of IMA's bank masks; sm3 is
 * not one, and no TPM_ALG_ID lookup finds it. */
static void test_banks(void **state) {
    enum hash_alg a = HASH_ALG_COUNT;
    (void)state;

    for (int i = 0; i < HASH_ALG_BANK_COUNT; i++) {
        assert_true(hash_alg_is_bank((enum hash_alg)i));
        assert_int_equal(hash_alg_from_tpm_id(want[i].tpm_id, &a), 0);
        assert_int_equal(a, want[i].alg);
    }
    assert_false(hash_alg_is_bank(HASH_ALG_SM3));
    assert_false(hash_alg_is_bank(HASH_ALG_COUNT));
    a = HASH_ALG_SHA1;
    assert_int_equal(hash_alg_from_tpm_id(0x0012, &a), -ENOENT); /* TPM_ALG_SM3_256 */
    assert_int_equal(hash_alg_from_tpm_id(0x0000, &a), -ENOENT);
    assert_int_equal(hash_alg_from_tpm_id(0x0010, &a), -ENOENT); /* TPM_ALG_NULL */
    assert_int_equal(a, HASH_ALG_SHA1);                          /* untouched on failure */
}

static void test_from_name_is_exact(void **state) {
    enum hash_alg a = HASH_ALG_SHA512;
    (void)state;

    assert_int_equal(hash_alg_from_name("sha2566", 6, &a), 0); /* the first 6 bytes */
    assert_int_equal(a, HASH_ALG_SHA256);
    a = HASH_ALG_SHA512;
    assert_int_equal(hash_alg_from_name("sha25", 5, &a), -ENOENT);
    assert_int_equal(hash_alg_from_name("SHA256", 6, &a), -ENOENT);
    assert_int_equal(hash_alg_from_name("sha256 ", 7, &a), -ENOENT);
    assert_int_equal(hash_alg_from_name("", 0, &a), -ENOENT);
    assert_int_equal(hash_alg_from_name("md5", 3, &a), -ENOENT);
    assert_int_equal(a, HASH_ALG_SHA512);
}

static void test_evp_md_matches_table(void **state) {
    (void)state;

    for (int i = 0; i < HASH_ALG_COUNT; i++) {
        const EVP_MD *md = hash_alg_evp_md((enum hash_alg)i);
        if (!md && i == HASH_ALG_SM3) {
            continue; /* an OpenSSL built without SM3 */
        }
        assert_non_null(md);
        assert_int_equal(EVP_MD_get_size(md), hash_alg_size((enum hash_alg)i));
    }
}

static void test_digest_known_answers(void **state) {
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        uint8_t one[HASH_ALG_DIGEST_MAX], two[HASH_ALG_DIGEST_MAX];
        char hex[2 * HASH_ALG_DIGEST_MAX + 1];
        if (!hash_alg_evp_md(want[i].alg)) {
            continue;
        }
        hash_alg_digest(want[i].alg, "abc", 3, one);
        assert_string_equal(hex_encode(one, want[i].size, hex), want[i].abc);
        /* H(a || b) is the digest of the concatenation, however it is split. */
        hash_alg_digest2(want[i].alg, "a", 1, "bc", 2, two);
        assert_memory_equal(one, two, want[i].size);
        hash_alg_digest2(want[i].alg, "abc", 3, NULL, 0, two);
        assert_memory_equal(one, two, want[i].size);
    }
}

static void test_digest_unknown_is_zero(void **state) {
    uint8_t out[HASH_ALG_DIGEST_MAX], zero[HASH_ALG_DIGEST_MAX] = {0};
    (void)state;

    memset(out, 0xaa, sizeof(out));
    hash_alg_digest(HASH_ALG_COUNT, "abc", 3, out);
    assert_memory_equal(out, zero, sizeof(out));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table),
            cmocka_unit_test(test_banks),
            cmocka_unit_test(test_from_name_is_exact),
            cmocka_unit_test(test_evp_md_matches_table),
            cmocka_unit_test(test_digest_known_answers),
            cmocka_unit_test(test_digest_unknown_is_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
