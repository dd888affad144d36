/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_BOOTAGGR_H
#define KIMA_IMA_BOOTAGGR_H

#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "list.h"

/* boot_aggregate (docs/formats.md section 3; kernel ima_calc_boot_aggregate): the
 * first entry's file digest is H_bank(PCR0 || ... || PCR7), and since Linux
 * 5.8 also || PCR8 || PCR9 for banks other than SHA-1. The bank is the one the
 * entry's digest prefix names (the `ima` template's d: SHA-1). */

#define IMA_BOOT_PCRS 10

enum ima_bootaggr_result {
    IMA_BOOTAGGR_MATCH = 0,    /* equals the aggregate of PCR 0-9 (0-7 for SHA-1) */
    IMA_BOOTAGGR_MATCH_PCR0_7, /* equals the pre-5.8-backport SHA-256 PCR 0-7 form */
    IMA_BOOTAGGR_MISMATCH,
    IMA_BOOTAGGR_NO_TPM,             /* all-zero: no TPM when IMA started */
    IMA_BOOTAGGR_NOT_BOOT_AGGREGATE, /* the entry is not named boot_aggregate */
    IMA_BOOTAGGR_BANK_MISSING,       /* the PCR values of the entry's bank were not given */
};

const char *ima_bootaggr_result_name(enum ima_bootaggr_result r);

/* out = H_alg(pcrs[0] || ... || pcrs[n-1]), n = 8 or 10; every value is
 * ima_hash_size(alg) bytes. */
void ima_boot_aggregate(enum ima_hash_alg alg, const uint8_t pcrs[][IMA_DIGEST_MAX], unsigned n,
                        uint8_t *out);

/* Compare a boot_aggregate entry with PCR 0-9 values. pcrs[alg][i] is PCR i of
 * bank alg; `banks` says which banks are filled in. Returns 0 and the result,
 * or -EINVAL for bad arguments. */
int ima_entry_check_boot_aggregate(
        const struct ima_entry *e,
        const uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS][IMA_DIGEST_MAX], unsigned banks,
        enum ima_bootaggr_result *ret_result);

#endif
