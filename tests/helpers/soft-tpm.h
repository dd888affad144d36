/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_SOFT_TPM_H
#define KIMA_TESTS_SOFT_TPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

/* The endorsement side of a TPM in software, for tests and the load
 * generator: an EK of the TCG default shape (template L-1 RSA-2048 or L-2
 * ECC P-256, AES-128-CFB) whose private key the caller holds, and
 * TPM2_ActivateCredential done with it: the inverse of
 * tpm_make_credential(). Not a TPM: nothing here is protected. */

struct soft_ek {
    EVP_PKEY *key; /* owned; soft_ek_free() */
    TPMT_PUBLIC pub;
};

/* A new EK: RSA-2048 or ECC P-256. 0 or -ENOMEM. */
int soft_ek_new(struct soft_ek *ret, bool ecc);
/* The EK for an existing private key (RSA-2048 or P-256), which it takes
 * over (freed by soft_ek_free(), also on failure). 0, -EOPNOTSUPP for another
 * key, -ENOMEM. */
int soft_ek_from_key(struct soft_ek *ret, EVP_PKEY *key);
void soft_ek_free(struct soft_ek *ek);

/* ActivateCredential: the seed from `secret` (RSA-OAEP with label
 * "IDENTITY", or ECDH with the ephemeral point and KDFe), the keys from the
 * seed with KDFa, the integrity HMAC over encIdentity and `name` checked,
 * the credential decrypted into ret_cred (at most 64 bytes, *ret_len).
 * 0, -EBADMSG (a blob or secret of the wrong shape, or for another EK or
 * name: the HMAC does not match), -EOPNOTSUPP, -ENOMEM. */
int soft_activate_credential(const struct soft_ek *ek, const TPM2B_NAME *name,
                             const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret,
                             uint8_t *ret_cred, size_t *ret_len);

#endif
