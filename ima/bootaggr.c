/* SPDX-License-Identifier: Apache-2.0 */
#include "bootaggr.h"

#include <errno.h>
#include <string.h>

const char *ima_bootaggr_result_name(enum ima_bootaggr_result r) {
    switch (r) {
    case IMA_BOOTAGGR_MATCH:
        return "match";
    case IMA_BOOTAGGR_MATCH_PCR0_7:
        return "match-pcr0-7";
    case IMA_BOOTAGGR_MISMATCH:
        return "mismatch";
    case IMA_BOOTAGGR_NO_TPM:
        return "no-tpm";
    case IMA_BOOTAGGR_NOT_BOOT_AGGREGATE:
        return "not-boot-aggregate";
    case IMA_BOOTAGGR_BANK_MISSING:
        return "bank-missing";
    }
    return "?";
}

void ima_boot_aggregate(enum ima_hash_alg alg, const uint8_t pcrs[][IMA_DIGEST_MAX], unsigned n,
                        uint8_t *out) {
    uint8_t cat[IMA_BOOT_PCRS * IMA_DIGEST_MAX];
    size_t sz = ima_hash_size(alg);

    if (n > IMA_BOOT_PCRS) {
        n = IMA_BOOT_PCRS;
    }
    for (unsigned i = 0; i < n; i++) {
        memcpy(cat + i * sz, pcrs[i], sz);
    }
    ima_hash(alg, cat, n * sz, out);
}

int ima_entry_check_boot_aggregate(
        const struct ima_entry *e,
        const uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS][IMA_DIGEST_MAX], unsigned banks,
        enum ima_bootaggr_result *ret_result) {
    const struct ima_field *df, *nf;
    struct ima_digest_field d;
    uint8_t want[IMA_DIGEST_MAX];
    enum ima_hash_alg alg;
    const char *name;
    size_t name_len;
    bool zero = true;

    if (!e || !pcrs || !ret_result) {
        return -EINVAL;
    }
    nf = ima_entry_field(e, e->legacy ? IMA_FIELD_N : IMA_FIELD_N_NG);
    if (!nf) {
        nf = ima_entry_field(e, IMA_FIELD_N);
    }
    df = ima_entry_field(e, e->legacy ? IMA_FIELD_D : IMA_FIELD_D_NG);
    if (!df) {
        df = ima_entry_field(e, IMA_FIELD_D_NGV2);
    }
    if (!nf || !df) {
        *ret_result = IMA_BOOTAGGR_NOT_BOOT_AGGREGATE;
        return 0;
    }
    ima_field_string(nf, &name, &name_len);
    if (name_len != strlen("boot_aggregate") || memcmp(name, "boot_aggregate", name_len) != 0) {
        *ret_result = IMA_BOOTAGGR_NOT_BOOT_AGGREGATE;
        return 0;
    }
    if (ima_field_decode_digest(df, &d, NULL) < 0 ||
        ima_hash_from_name(d.algo, d.algo_len, &alg) < 0) {
        *ret_result = IMA_BOOTAGGR_MISMATCH;
        return 0;
    }
    for (size_t i = 0; i < d.digest_len; i++) {
        zero &= d.digest[i] == 0;
    }
    if (zero) {
        *ret_result = IMA_BOOTAGGR_NO_TPM;
        return 0;
    }
    if (!(banks & IMA_BANK(alg))) {
        *ret_result = IMA_BOOTAGGR_BANK_MISSING;
        return 0;
    }
    ima_boot_aggregate(alg, pcrs[alg], alg == IMA_HASH_SHA1 ? 8 : 10, want);
    if (memcmp(want, d.digest, d.digest_len) == 0) {
        *ret_result = IMA_BOOTAGGR_MATCH;
        return 0;
    }
    if (alg != IMA_HASH_SHA1) {
        ima_boot_aggregate(alg, pcrs[alg], 8, want);
        if (memcmp(want, d.digest, d.digest_len) == 0) {
            *ret_result = IMA_BOOTAGGR_MATCH_PCR0_7;
            return 0;
        }
    }
    *ret_result = IMA_BOOTAGGR_MISMATCH;
    return 0;
}
