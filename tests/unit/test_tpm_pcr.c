/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "pcr.h"

static void test_parse_and_format(void **state) {
    TPML_PCR_SELECTION s;
    char out[256];
    (void)state;

    assert_int_equal(tpm_pcr_selection_parse("sha256:0-9,10+sha1:10", &s), 0);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.pcrSelections[0].hash, TPM2_ALG_SHA256);
    assert_int_equal(s.pcrSelections[0].sizeofSelect, 3);
    assert_int_equal(s.pcrSelections[0].pcrSelect[0], 0xff);
    assert_int_equal(s.pcrSelections[0].pcrSelect[1], 0x07);
    assert_int_equal(tpm_pcr_selection_count(&s), 12);
    assert_string_equal(tpm_pcr_selection_format(&s, out, sizeof(out)),
                        "sha256:0,1,2,3,4,5,6,7,8,9,10+sha1:10");
    assert_int_equal(tpm_pcr_selection_parse("sha512:23", &s), 0);
    assert_true(tpm_pcr_selected(&s.pcrSelections[0], 23));

    static const char *const bad[] = {
            "",          "sha256",      "sha256:",   "sha256:24", "sha256:1-",         "sha256:5-2",
            "md5:1",     "sha256:1,",   "sha256:1+", "sha256:x",  "sha256:1+sha256:2", "+sha1:1",
            "sha256:-1", "sha256:1,,2", "sha256 :1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tpm_pcr_selection_parse(bad[i], &s) != -EINVAL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
    }
}

static void test_check_and_equal(void **state) {
    TPML_PCR_SELECTION a, b;
    const char *why = NULL;
    (void)state;

    tpm_pcr_selection_parse("sha256:0,10+sha1:10", &a);
    tpm_pcr_selection_parse("sha1:10+sha256:10,0", &b);
    assert_true(tpm_pcr_selection_equal(&a, &b));
    /* Trailing zero bitmap bytes do not matter. */
    b.pcrSelections[0].sizeofSelect = 4;
    assert_true(tpm_pcr_selection_equal(&a, &b));
    b.pcrSelections[1].pcrSelect[1] |= 0x08; /* + PCR 11 */
    assert_false(tpm_pcr_selection_equal(&a, &b));
    tpm_pcr_selection_parse("sha256:0,10", &b);
    assert_false(tpm_pcr_selection_equal(&a, &b));

    /* Untrusted selections: duplicates, unknown banks, bitmap sizes, PCR > 23. */
    b = a;
    b.pcrSelections[1].hash = TPM2_ALG_SHA256;
    assert_int_equal(tpm_pcr_selection_check(&b, &why), -EBADMSG);
    assert_string_equal(why, "a PCR bank is listed twice");
    assert_false(tpm_pcr_selection_equal(&b, &b));
    b = a;
    b.pcrSelections[0].hash = TPM2_ALG_SM3_256;
    assert_int_equal(tpm_pcr_selection_check(&b, &why), -EBADMSG);
    b = a;
    b.pcrSelections[0].sizeofSelect = 5;
    assert_int_equal(tpm_pcr_selection_check(&b, &why), -EBADMSG);
    b = a;
    b.pcrSelections[0].sizeofSelect = 4;
    b.pcrSelections[0].pcrSelect[3] = 1;
    assert_int_equal(tpm_pcr_selection_check(&b, &why), -EBADMSG);
    assert_string_equal(why, "PCR index above 23 selected");
    b = a;
    b.count = 17;
    assert_int_equal(tpm_pcr_selection_check(&b, &why), -EBADMSG);
}

static void test_digest_in_selection_order(void **state) {
    TPML_PCR_SELECTION s;
    struct tpm_pcr_values v = {0};
    uint8_t a[32], b[32], c[20], cat[84], want[32], got[64];
    size_t len;
    unsigned int n;
    (void)state;

    memset(a, 1, 32);
    memset(b, 2, 32);
    memset(c, 3, 20);
    tpm_pcr_selection_parse("sha1:10+sha256:0,10", &s);
    /* Values given in any order; the digest follows the selection. */
    assert_int_equal(tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 10, b, 32), 0);
    assert_int_equal(tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 0, a, 32), 0);
    assert_int_equal(tpm_pcr_values_set(&v, TPM2_ALG_SHA1, 10, c, 20), 0);
    memcpy(cat, c, 20);
    memcpy(cat + 20, a, 32);
    memcpy(cat + 52, b, 32);
    EVP_Digest(cat, sizeof(cat), want, &n, EVP_sha256(), NULL);
    assert_int_equal(tpm_pcr_digest(&s, &v, TPM2_ALG_SHA256, got, &len), 0);
    assert_int_equal(len, 32);
    assert_memory_equal(got, want, 32);
    /* A missing value, a wrong size, an unknown hash. */
    tpm_pcr_selection_parse("sha1:10+sha256:0,10,11", &s);
    assert_int_equal(tpm_pcr_digest(&s, &v, TPM2_ALG_SHA256, got, &len), -ENOENT);
    assert_int_equal(tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 1, c, 20), -EINVAL);
    assert_int_equal(tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 24, a, 32), -EINVAL);
    assert_int_equal(tpm_pcr_digest(&s, &v, TPM2_ALG_SM3_256, got, &len), -EINVAL);
    /* Setting again replaces. */
    assert_int_equal(tpm_pcr_values_set(&v, TPM2_ALG_SHA256, 0, b, 32), 0);
    assert_int_equal(v.n, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_and_format),
            cmocka_unit_test(test_check_and_equal),
            cmocka_unit_test(test_digest_in_selection_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
