/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_PUBKEY_H
#define KIMA_TPM_PUBKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

/* TPM public areas on the verifier side (no TPM needed): decoding, OpenSSL
 * keys, names, and the attribute rules an attestation key must follow. */

/* Unmarshal a TPM2B_PUBLIC that fills `len` exactly (no trailing bytes).
 * 0 or -EBADMSG. */
int tpm_public_unmarshal(const uint8_t *buf, size_t len, TPM2B_PUBLIC *ret);

/* The public key as an OpenSSL key: RSA (exponent 0 means 65537) or ECC on
 * NIST P-256/P-384/P-521 (X and Y left-padded to the field size). The caller
 * frees with EVP_PKEY_free(). 0, -EOPNOTSUPP (other types or curves),
 * -EBADMSG (sizes that do not fit the key) or -ENOMEM. */
int tpm_public_to_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret);

/* SHA-256 of the key's DER SubjectPublicKeyInfo, as 64 hex digits: the same
 * for the same key however its public area is written (an RSA exponent of
 * 0 or 65537, other attributes or policy). 0 or a negative errno. */
int tpm_public_key_fingerprint(const TPMT_PUBLIC *pub, char ret[65]);

/* name = nameAlg (big-endian) || H_nameAlg(marshalled TPMT_PUBLIC). */
int tpm_public_name(const TPMT_PUBLIC *pub, TPM2B_NAME *ret);

/* An attestation key must be restricted, sign-only (no decrypt), fixedTPM,
 * fixedParent and sensitiveDataOrigin, with a signing scheme of SHA-256 or
 * stronger (RSASSA, RSAPSS or ECDSA). 0 or -EPERM with the broken rule. */
int tpm_ak_public_check(const TPMT_PUBLIC *pub, const char **ret_why);

/* What a quote is verified with: the key, and its public area when known
 * (from a TPM2B_PUBLIC; not from a PEM file), whose scheme then binds the
 * signature's scheme and hash. */
struct tpm_verify_key {
    EVP_PKEY *pkey;
    bool has_public;
    TPMT_PUBLIC pub;
};

int tpm_verify_key_from_public(const TPMT_PUBLIC *pub, struct tpm_verify_key *ret);
/* A TPM2B_PUBLIC (as tpm2_createak -u writes) or a PEM public key. */
int tpm_verify_key_load(const uint8_t *buf, size_t len, struct tpm_verify_key *ret);
void tpm_verify_key_free(struct tpm_verify_key *k);

#endif
