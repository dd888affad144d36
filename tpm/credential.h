/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_CREDENTIAL_H
#define KIMA_TPM_CREDENTIAL_H

#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

/* Verifier side of TPM2_MakeCredential, in software (TPM 2.0 Part 1,
 * "Credential Protection"): the credential can only be recovered by the TPM
 * holding the EK's private key, and only for a key with the given name
 * loaded in that TPM (TPM2_ActivateCredential). */

/* KDFa (SP800-108 counter mode with HMAC): `label` is a C string and its NUL
 * is part of the input, as in the TPM. `bits` a multiple of 8. */
int tpm_kdfa(TPMI_ALG_HASH hash, const uint8_t *key, size_t key_len, const char *label,
             const uint8_t *ctx_u, size_t u_len, const uint8_t *ctx_v, size_t v_len, size_t bits,
             uint8_t *out);

/* KDFe (SP800-56A concatenation KDF with the TPM's argument order). */
int tpm_kdfe(TPMI_ALG_HASH hash, const uint8_t *z, size_t z_len, const char *label,
             const uint8_t *party_u, size_t u_len, const uint8_t *party_v, size_t v_len,
             size_t bits, uint8_t *out);

/* Wrap `cred` (1 to the EK nameAlg's digest size bytes) for the EK whose
 * public area is `ek`, bound to the object `name` (the AK's name). RSA EKs:
 * the seed is encrypted with RSA-OAEP, label "IDENTITY"; ECC EKs: the seed
 * comes from ECDH with an ephemeral key and KDFe. The EK's symmetric
 * definition (AES-128-CFB for the default templates) protects the
 * credential, an HMAC its integrity. 0, -EINVAL, -EOPNOTSUPP or -ENOMEM. */
int tpm_make_credential(const TPMT_PUBLIC *ek, const TPM2B_NAME *name, const uint8_t *cred,
                        size_t cred_len, TPM2B_ID_OBJECT *ret_blob,
                        TPM2B_ENCRYPTED_SECRET *ret_secret);

#define TPM_ACTIVATION_PROOF_SIZE 32

/* What closes registration (docs/design.md section 3): the agent proves that
 * its TPM recovered the credential (`secret`, `len` bytes, as
 * TPM2_ActivateCredential returned it) for this node and this AK, and the
 * verifier computes the same to compare:
 *
 *   proof = HMAC-SHA256(secret, node || ak_name)
 *
 * `node` without its NUL, `ak_name` the AK's TPM name (nameAlg || digest,
 * `ak_name_len` bytes). Writes TPM_ACTIVATION_PROOF_SIZE bytes to ret.
 * 0, -EINVAL (a NULL argument) or -ENOMEM. */
int tpm_activation_proof(const uint8_t *secret, size_t len, const char *node,
                         const uint8_t *ak_name, size_t ak_name_len,
                         uint8_t ret[TPM_ACTIVATION_PROOF_SIZE]);

#endif
