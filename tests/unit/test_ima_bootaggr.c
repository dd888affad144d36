/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "bootaggr.h"
#include "ima-gen.h"

static uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS][IMA_DIGEST_MAX];

static int setup(void **state) {
    (void)state;
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        for (int i = 0; i < IMA_BOOT_PCRS; i++) {
            for (int k = 0; k < IMA_DIGEST_MAX; k++) {
                pcrs[b][i][k] = (uint8_t)(b * 31 + i * 7 + k);
            }
        }
    }
    return 0;
}

/* The expected aggregate, computed here with EVP over the concatenation. */
static void expected(int bank, unsigned n, uint8_t *out) {
    uint8_t cat[IMA_BOOT_PCRS * 64];
    size_t sz = gen_bank_size(bank);

    for (unsigned i = 0; i < n; i++) {
        memcpy(cat + i * sz, pcrs[bank][i], sz);
    }
    gen_hash(bank, cat, n * sz, out);
}

static enum ima_bootaggr_result check_entry(const char *tmpl, const char *prefix,
                                            const uint8_t *digest, size_t dlen, const char *name,
                                            unsigned banks) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    enum ima_bootaggr_result res;
    char s[64];
    uint8_t d[128];
    struct gen_field f[2];

    ima_gen_init(&g, 20, 1 << 16);
    if (strcmp(tmpl, "ima") == 0) {
        f[0] = (struct gen_field){digest, 20};
        f[1] = (struct gen_field){name, strlen(name)};
    } else {
        f[0] = gen_dng(d, prefix, digest, dlen);
        f[1] = gen_str(s, name);
    }
    assert_int_equal(ima_gen_add(&g, 10, tmpl, f, 2, false), 0);
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, g.list.data, g.list.len, &e) > 0);
    assert_int_equal(ima_entry_check_boot_aggregate(&e, pcrs, banks, &res), 0);
    ima_gen_free(&g);
    return res;
}

static void test_every_bank(void **state) {
    static const char *const prefixes[] = {"sha1:", "sha256:", "sha384:", "sha512:"};
    uint8_t want[64];
    (void)state;

    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        /* SHA-1 covers PCR 0-7; other banks PCR 0-9 (Linux >= 5.8). */
        expected(b, b == 0 ? 8 : 10, want);
        assert_int_equal(check_entry("ima-ng", prefixes[b], want, gen_bank_size(b),
                                     "boot_aggregate", IMA_BANKS_ALL),
                         IMA_BOOTAGGR_MATCH);
        assert_int_equal(check_entry("ima-ng", prefixes[b], want, gen_bank_size(b),
                                     "boot_aggregate", IMA_BANKS_ALL & ~IMA_BANK(b)),
                         IMA_BOOTAGGR_BANK_MISSING);
        want[3] ^= 1;
        assert_int_equal(check_entry("ima-ng", prefixes[b], want, gen_bank_size(b),
                                     "boot_aggregate", IMA_BANKS_ALL),
                         IMA_BOOTAGGR_MISMATCH);
    }
    {
        uint8_t out[64];
        expected(1, 10, want);
        ima_boot_aggregate(IMA_HASH_SHA256, pcrs[1], 10, out);
        assert_memory_equal(out, want, 32);
    }
}

static void test_variants(void **state) {
    uint8_t want[64], zero[64] = {0};
    (void)state;

    /* Kernels with the bank switch but not PCR 8-9 (old stable backports). */
    expected(1, 8, want);
    assert_int_equal(check_entry("ima-ng", "sha256:", want, 32, "boot_aggregate", IMA_BANKS_ALL),
                     IMA_BOOTAGGR_MATCH_PCR0_7);
    /* The `ima` template's d is the SHA-1 aggregate. */
    expected(0, 8, want);
    assert_int_equal(check_entry("ima", NULL, want, 20, "boot_aggregate", IMA_BANKS_ALL),
                     IMA_BOOTAGGR_MATCH);
    /* No TPM at IMA start: zeros, which is not a match. */
    assert_int_equal(check_entry("ima-ng", "sha256:", zero, 32, "boot_aggregate", IMA_BANKS_ALL),
                     IMA_BOOTAGGR_NO_TPM);
    assert_int_equal(check_entry("ima-ng", "sha256:", want, 32, "/bin/sh", IMA_BANKS_ALL),
                     IMA_BOOTAGGR_NOT_BOOT_AGGREGATE);
    /* A bank kima does not replay. */
    assert_int_equal(check_entry("ima-ng", "sm3:", want, 32, "boot_aggregate", IMA_BANKS_ALL),
                     IMA_BOOTAGGR_MISMATCH);
    assert_string_equal(ima_bootaggr_result_name(IMA_BOOTAGGR_NO_TPM), "no-tpm");
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_bank),
            cmocka_unit_test(test_variants),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
