/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_QUOTE_VERIFY_H
#define KIMA_TPM_QUOTE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "pcr.h"
#include "pubkey.h"

/* Verifier-side quote checks (docs/design.md section 5). Each failure is named by
 * its own check, so an operator and a test can tell which rule a quote
 * broke. Needs no TPM. */

enum tpm_quote_check {
    TPM_QUOTE_OK = 0,
    TPM_QUOTE_MALFORMED,    /* not a TPMS_ATTEST / TPMT_SIGNATURE */
    TPM_QUOTE_MAGIC,        /* magic != TPM_GENERATED_VALUE */
    TPM_QUOTE_TYPE,         /* type != TPM_ST_ATTEST_QUOTE */
    TPM_QUOTE_SIG_SCHEME,   /* signature scheme or hash not the AK's */
    TPM_QUOTE_SIGNATURE,    /* does not verify with the AK */
    TPM_QUOTE_NONCE,        /* extraData != the nonce */
    TPM_QUOTE_SELECTION,    /* selection empty, malformed or not the requested one */
    TPM_QUOTE_PCR_VALUES,   /* reported values do not cover the selection exactly */
    TPM_QUOTE_PCR_DIGEST,   /* pcrDigest != H(reported values) */
    TPM_QUOTE_RESET_BACK,   /* resetCount went back */
    TPM_QUOTE_RESTART_BACK, /* restartCount went back within one reset */
    TPM_QUOTE_CLOCK_BACK,   /* clock did not advance within one reset and restart */
};

const char *tpm_quote_check_name(enum tpm_quote_check c);

struct tpm_clock_state {
    uint64_t clock;
    uint32_t reset_count;
    uint32_t restart_count;
};

struct tpm_quote_expect {
    const uint8_t *nonce; /* required */
    size_t nonce_len;
    /* The requested selection and the reported values. NULL selection: the
     * selection and pcrDigest are not checked (kimactl without --pcr). */
    const TPML_PCR_SELECTION *selection;
    const struct tpm_pcr_values *pcrs;
    /* The previous accepted quote of this AK, NULL for the first. */
    const struct tpm_clock_state *previous;
};

struct tpm_quote_result {
    enum tpm_quote_check failed;
    char why[200];
    bool decoded; /* attest holds the decoded structure */
    TPMS_ATTEST attest;
    struct tpm_clock_state clock;
    bool reset;   /* resetCount advanced: the TPM was reset (reboot); replay restarts */
    bool restart; /* restartCount advanced: resume from hibernation */
    bool unsafe;  /* clockInfo.safe == 0: the TPM lost power without an orderly
                   * shutdown; reported, not a failure (docs/tpm.md) */
};

/* Run every check. Returns 0 when the checks ran (the verdict is in
 * result->failed), or -EINVAL for missing arguments. */
int tpm_quote_verify(const struct tpm_verify_key *ak, const uint8_t *attest, size_t attest_len,
                     const uint8_t *sig, size_t sig_len, const struct tpm_quote_expect *expect,
                     struct tpm_quote_result *result);

/* Decode a TPMS_ATTEST that fills `len` exactly. The Debian tpm2-tss 3.2
 * unmarshaller does not check the magic: this does, and the type too.
 * Returns TPM_QUOTE_OK, MALFORMED, MAGIC or TYPE, with a reason. */
enum tpm_quote_check tpm_attest_decode(const uint8_t *buf, size_t len, TPMS_ATTEST *ret,
                                       const char **ret_why);

#endif
