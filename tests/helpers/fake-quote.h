/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_FAKE_QUOTE_H
#define KIMA_TESTS_FAKE_QUOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

/* A software "TPM" for negative tests: an AK whose private key the test
 * holds, so it can sign quotes that break exactly one rule each. Real TPMs
 * will not produce those; the verifier must still name the broken rule. */

struct fake_ak {
    EVP_PKEY *key;
    TPMT_PUBLIC pub; /* restricted signing key, RSASSA-SHA256 or ECDSA-P256-SHA256 */
};

int fake_ak_new(struct fake_ak *ak, bool ecc);
/* The AK for an existing RSA-2048 or P-256 key, which it takes over (freed
 * by fake_ak_free(), also on failure). 0 or -1. */
int fake_ak_from_key(struct fake_ak *ak, EVP_PKEY *key);
void fake_ak_free(struct fake_ak *ak);

/* A well-formed quote structure: magic, type, nonce, selection, pcrDigest
 * over `pcrs` (values in selection order, concatenated) with SHA-256, clock. */
void fake_attest_init(TPMS_ATTEST *a, const uint8_t *nonce, size_t nonce_len,
                      const TPML_PCR_SELECTION *sel, const uint8_t *pcr_cat, size_t cat_len);

/* Marshal `a`, let `patch` (may be NULL) change the bytes, then sign them
 * with `scheme`/`hash` (RSASSA, RSAPSS or ECDSA). 0 or -1. */
int fake_quote(const struct fake_ak *ak, const TPMS_ATTEST *a, void (*patch)(uint8_t *, size_t),
               TPMI_ALG_SIG_SCHEME scheme, TPMI_ALG_HASH hash, uint8_t *attest, size_t *attest_len,
               uint8_t *sig, size_t *sig_len);

#endif
