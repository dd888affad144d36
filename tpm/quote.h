/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_QUOTE_H
#define KIMA_TPM_QUOTE_H

#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "device.h"
#include "keys.h"
#include "pcr.h"

/* Agent side: read PCRs and quote them. */

struct tpm_quote {
    uint8_t attest[sizeof(TPMS_ATTEST)]; /* the marshalled TPMS_ATTEST, as signed */
    size_t attest_len;
    uint8_t sig[sizeof(TPMT_SIGNATURE)]; /* the marshalled TPMT_SIGNATURE */
    size_t sig_len;
    struct tpm_pcr_values pcrs; /* the quoted PCRs' values */
};

/* Read every selected PCR (TPM2_PCR_Read returns at most 8 a call: this
 * loops). 0 or a negative errno. */
int tpm_pcr_read(struct tpm *t, const TPML_PCR_SELECTION *sel, struct tpm_pcr_values *ret);

/* Quote the selection with qualifying data = nonce (at most 64 bytes) and
 * read the values. PCRs read after the quote may have moved on (IMA extends
 * all the time): the values are checked against the quote's pcrDigest here
 * and the quote retried a few times, so the verifier gets a consistent set.
 * -EAGAIN when the PCRs never held still. */
int tpm_quote(struct tpm *t, const struct tpm_key *ak, const uint8_t *nonce, size_t nonce_len,
              const TPML_PCR_SELECTION *sel, struct tpm_quote *ret);

/* The banks (TPM_ALG_IDs, at most TPM2_NUM_PCR_BANKS) in which `pcr` is
 * allocated, from TPM2_GetCapability(TPM_CAP_PCRS): the banks the kernel
 * extends. Returns the count or a negative errno. */
int tpm_pcr_banks(struct tpm *t, unsigned pcr, uint16_t *algs, size_t max);

/* TPM2_PCR_Extend of one PCR with one digest per bank given (as the kernel
 * extends PCR 10 for each IMA entry; used to stand in for it in tests). */
int tpm_pcr_extend(struct tpm *t, unsigned pcr, const struct tpm_pcr_values *digests);

#endif
