/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_HASH_H
#define KIMA_IMA_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash-alg.h"

/* The PCR banks kima replays: the banks of common/hash-alg.h, with the same
 * values. The order is the bit order of bank masks. */
enum ima_hash_alg {
    IMA_HASH_SHA1 = HASH_ALG_SHA1,
    IMA_HASH_SHA256 = HASH_ALG_SHA256,
    IMA_HASH_SHA384 = HASH_ALG_SHA384,
    IMA_HASH_SHA512 = HASH_ALG_SHA512,
    IMA_HASH_COUNT = HASH_ALG_BANK_COUNT
};

#define IMA_DIGEST_MAX HASH_ALG_DIGEST_MAX
#define IMA_BANK(alg)  (1u << (alg))
#define IMA_BANKS_ALL  ((1u << IMA_HASH_COUNT) - 1)

size_t ima_hash_size(enum ima_hash_alg alg);
/* "sha1", "sha256", ... as the kernel's hash_algo_name[] spells them. */
const char *ima_hash_name(enum ima_hash_alg alg);
/* TPM_ALG_ID of the bank (0x0004, 0x000b, 0x000c, 0x000d). */
uint16_t ima_hash_tpm_alg(enum ima_hash_alg alg);
int ima_hash_from_tpm_alg(uint16_t id, enum ima_hash_alg *ret_alg);
/* Exact name match on `len` bytes, banks only. 0 or -ENOENT. */
int ima_hash_from_name(const char *name, size_t len, enum ima_hash_alg *ret_alg);
/* A template digest width: 20, 32, 48 or 64 -> sha1 .. sha512. 0 or -EINVAL. */
int ima_hash_from_size(size_t size, enum ima_hash_alg *ret_alg);

/* out = H(a || b); b may be NULL with blen 0. `out` holds ima_hash_size(alg). */
void ima_hash2(enum ima_hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
               uint8_t *out);

static inline void ima_hash(enum ima_hash_alg alg, const void *data, size_t len, uint8_t *out) {
    ima_hash2(alg, data, len, NULL, 0, out);
}

#endif
