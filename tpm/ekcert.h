/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_EKCERT_H
#define KIMA_TPM_EKCERT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <tss2/tss2_tpm2_types.h>

/* EK certificates: the TPM manufacturer's statement that an EK is a real
 * TPM's. Verified against a directory of trusted CA certificates. */

/* Load every certificate (PEM, possibly several a file, or DER) of the
 * regular files in `dir` as trust anchors. Fails when none loads. The caller
 * frees with X509_STORE_free(). */
int tpm_ekcert_store_load(const char *dir, X509_STORE **ret_store);

/* Verify a DER EK certificate: it chains to the store (intermediates may be
 * in the store too) and its public key is the EK's. Returns 0; -EBADMSG for
 * an unreadable certificate; -EACCES when the chain does not verify;
 * -EKEYREJECTED when the key is another; -EINVAL, -ENOMEM. `why` (when
 * whysz > 0) always ends up a string: the reason, or "valid" on success. */
int tpm_ekcert_verify(X509_STORE *store, const uint8_t *der, size_t len, const TPMT_PUBLIC *ek,
                      char *why, size_t whysz);

#endif
