/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_HASH_ALG_H
#define KIMA_COMMON_HASH_ALG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* The hash algorithms kima knows, in one table: name, digest size,
 * TPM_ALG_ID and OpenSSL digest.
 *
 * sha1 .. sha512 come first and in this order: they are the banks, the PCR
 * banks kima quotes and replays (the order is the bit order of IMA's bank
 * masks) and the only hashes it takes from a TPM (PCR banks, key names,
 * signatures, credentials). sm3 is known by name because the kernel can log
 * sm3 file digests and a policy may list them; kima takes no SM3 bank. */
enum hash_alg {
    HASH_ALG_SHA1 = 0,
    HASH_ALG_SHA256 = 1,
    HASH_ALG_SHA384 = 2,
    HASH_ALG_SHA512 = 3,
    HASH_ALG_SM3 = 4,
    HASH_ALG_COUNT
};

#define HASH_ALG_BANK_COUNT 4
/* The largest digest of any algorithm above (sha512). */
#define HASH_ALG_DIGEST_MAX 64

/* 0 for an algorithm outside the table. */
size_t hash_alg_size(enum hash_alg alg);
/* "sha1", "sha256", "sha384", "sha512", "sm3": the kernel's hash_algo_name[]
 * spelling; "unknown" outside the table. Static storage. */
const char *hash_alg_name(enum hash_alg alg);
/* TPM_ALG_ID (0x0004, 0x000b, 0x000c, 0x000d; sm3: TPM_ALG_SM3_256, 0x0012);
 * 0 outside the table. */
uint16_t hash_alg_tpm_id(enum hash_alg alg);
/* OpenSSL's digest; NULL outside the table, and for sm3 when OpenSSL was
 * built without it. Not to be freed. */
const EVP_MD *hash_alg_evp_md(enum hash_alg alg);
/* sha1 .. sha512 (see above). */
bool hash_alg_is_bank(enum hash_alg alg);

/* Exact name match on `len` bytes (no NUL needed), any algorithm above.
 * 0 or -ENOENT. */
int hash_alg_from_name(const char *name, size_t len, enum hash_alg *ret_alg);
/* The bank of a TPM_ALG_ID: banks only, since kima accepts no other hash
 * from a TPM (TPM_ALG_SM3_256 is -ENOENT). 0 or -ENOENT. */
int hash_alg_from_tpm_id(uint16_t id, enum hash_alg *ret_alg);

/* out = H(a || b); b may be NULL with blen 0. `out` holds hash_alg_size(alg)
 * bytes (HASH_ALG_DIGEST_MAX outside the table, then zeroed). A digest
 * OpenSSL cannot compute (out of memory, sm3 missing) is all zeros: it
 * matches nothing a TPM or a kernel wrote. */
void hash_alg_digest2(enum hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
                      uint8_t *out);

static inline void hash_alg_digest(enum hash_alg alg, const void *data, size_t len, uint8_t *out) {
    hash_alg_digest2(alg, data, len, NULL, 0, out);
}

#endif
