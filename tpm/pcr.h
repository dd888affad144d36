/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_PCR_H
#define KIMA_TPM_PCR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

/* PCR selections and reported PCR values, shared by the agent (what it reads
 * and quotes) and the verifier (what it checks). Only the sha1, sha256,
 * sha384 and sha512 banks and PCRs 0-23 are accepted. */

#define TPM_PCR_COUNT      24
#define TPM_PCR_VALUES_MAX (4 * TPM_PCR_COUNT)

struct tpm_pcr_value {
    uint16_t alg; /* TPM_ALG_ID of the bank */
    uint8_t pcr;
    uint8_t size;
    uint8_t digest[64];
};

struct tpm_pcr_values {
    size_t n;
    struct tpm_pcr_value v[TPM_PCR_VALUES_MAX];
};

/* "sha256:0-9,10+sha1:10" (banks joined by '+', PCRs by ',' or ranges).
 * 0 or -EINVAL. */
int tpm_pcr_selection_parse(const char *s, TPML_PCR_SELECTION *ret);
/* The same form; returns out. */
char *tpm_pcr_selection_format(const TPML_PCR_SELECTION *sel, char *out, size_t outsz);

/* Validate an untrusted selection: known banks, each at most once,
 * sizeofSelect 1-4, no PCR above 23. 0 or -EBADMSG with a reason. */
int tpm_pcr_selection_check(const TPML_PCR_SELECTION *sel, const char **ret_why);
/* Same PCRs in the same banks (bank order and trailing zero bytes aside). */
bool tpm_pcr_selection_equal(const TPML_PCR_SELECTION *a, const TPML_PCR_SELECTION *b);
size_t tpm_pcr_selection_count(const TPML_PCR_SELECTION *sel);
bool tpm_pcr_selected(const TPMS_PCR_SELECTION *s, unsigned pcr);

const struct tpm_pcr_value *tpm_pcr_values_find(const struct tpm_pcr_values *vals, uint16_t alg,
                                                unsigned pcr);
/* Add (or replace) a value. 0, -E2BIG or -EINVAL (unknown bank, bad size). */
int tpm_pcr_values_set(struct tpm_pcr_values *vals, uint16_t alg, unsigned pcr,
                       const uint8_t *digest, size_t size);

/* H_hashalg over the values of every selected PCR, in selection order (bank
 * by bank as listed, index ascending): the quote's pcrDigest. -ENOENT when a
 * selected PCR has no value (the name of the first one in *ret_missing_*),
 * -EINVAL for an unknown hash. */
int tpm_pcr_digest(const TPML_PCR_SELECTION *sel, const struct tpm_pcr_values *vals,
                   uint16_t hash_alg, uint8_t *out, size_t *ret_len);

#endif
