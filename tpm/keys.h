/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_KEYS_H
#define KIMA_TPM_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_esys.h>

#include "device.h"

/* The agent's two keys: the endorsement key (TCG default template) and the
 * attestation key, a restricted signing key created under the EK, so it is
 * in the endorsement hierarchy and its quotes show the real reset and
 * restart counts (keys of other hierarchies get them obfuscated). */

enum tpm_key_type {
    TPM_KEY_RSA = 0, /* EK: RSA-2048 (template L-1); AK: RSASSA-SHA256 */
    TPM_KEY_ECC = 1, /* EK: NIST P-256 (template L-2); AK: ECDSA-P256-SHA256 */
};

#define TPM_EK_RSA_HANDLE     0x81010001u
#define TPM_EK_ECC_HANDLE     0x81010002u
#define TPM_EK_CERT_RSA_INDEX 0x01c00002u
#define TPM_EK_CERT_ECC_INDEX 0x01c0000au
#define TPM_EK_CERT_MAX       8192

struct tpm_key {
    ESYS_TR handle;
    bool transient; /* created or loaded by us: flushed on release */
    TPM2B_PUBLIC public;
    TPM2B_NAME name;
};

#define TPM_KEY_INIT \
    { .handle = ESYS_TR_NONE }

/* The TCG EK Credential Profile default template (L-1 RSA, L-2 ECC). */
void tpm_ek_template(enum tpm_key_type type, TPM2B_PUBLIC *ret);
/* Is pub the TPM's default RSA EK: the TCG EK Credential Profile's template
 * L-1 (RSA 2048, AES-128-CFB, PolicySecret(endorsement), these attributes)?
 * A TPM can hold several certified endorsement keys (an ECC one, the
 * high-range RSA templates), each able to activate a credential: only one
 * template, so one TPM registers one node. 0 or -EPERM with why. */
int tpm_ek_public_check(const TPMT_PUBLIC *pub, const char **ret_why);
/* The AK template: restricted, sign, fixedTPM, fixedParent,
 * sensitiveDataOrigin, userWithAuth; RSASSA-SHA256 or ECDSA-P256-SHA256. */
void tpm_ak_template(enum tpm_key_type type, TPM2B_PUBLIC *ret);

/* Use the persistent EK at its TCG handle when it is there and matches the
 * default template's type, attributes and policy; else create the primary
 * (transient, flushed by tpm_key_release()). */
int tpm_ek_load(struct tpm *t, enum tpm_key_type type, struct tpm_key *ret);

/* Read the EK certificate from its NV index. Returns 0 with a DER buffer the
 * caller frees, -ENOENT when there is none, or another negative errno. */
int tpm_ek_read_cert(struct tpm *t, enum tpm_key_type type, uint8_t **ret_der, size_t *ret_len);

/* Create a new AK under the EK. Its private and public parts (the TPM's
 * wrapped blobs) are written to `blob_path` atomically (mode 0600), so the
 * same AK is loaded again after a restart; an existing file is replaced. */
int tpm_ak_create(struct tpm *t, const struct tpm_key *ek, enum tpm_key_type type,
                  const char *blob_path, struct tpm_key *ret);

/* Load the AK saved by tpm_ak_create(). -ENOENT when the file is missing;
 * -EBADMSG when it is malformed; the TPM refuses a blob of another TPM. */
int tpm_ak_load(struct tpm *t, const struct tpm_key *ek, const char *blob_path,
                struct tpm_key *ret);

/* Flush a transient key or close the ESAPI handle of a persistent one. */
void tpm_key_release(struct tpm *t, struct tpm_key *k);

/* TPM2_ActivateCredential: the AK proves to the EK's owner that it lives in
 * the same TPM. Returns the decrypted credential (at most 64 bytes). */
int tpm_activate_credential(struct tpm *t, const struct tpm_key *ak, const struct tpm_key *ek,
                            const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret,
                            uint8_t *ret_cred, size_t *ret_len);

#endif
