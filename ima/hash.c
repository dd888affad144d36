/* SPDX-License-Identifier: Apache-2.0 */
/* IMA's view of common/hash-alg.c: the banks only. */
#include "hash.h"

#include <errno.h>
#include <string.h>

static bool bank(enum ima_hash_alg alg) {
    return (unsigned)alg < IMA_HASH_COUNT;
}

size_t ima_hash_size(enum ima_hash_alg alg) {
    return bank(alg) ? hash_alg_size((enum hash_alg)alg) : 0;
}

const char *ima_hash_name(enum ima_hash_alg alg) {
    return bank(alg) ? hash_alg_name((enum hash_alg)alg) : "unknown";
}

uint16_t ima_hash_tpm_alg(enum ima_hash_alg alg) {
    return bank(alg) ? hash_alg_tpm_id((enum hash_alg)alg) : 0;
}

int ima_hash_from_tpm_alg(uint16_t id, enum ima_hash_alg *ret_alg) {
    enum hash_alg a;

    if (hash_alg_from_tpm_id(id, &a) < 0 || !hash_alg_is_bank(a)) {
        return -ENOENT;
    }
    *ret_alg = (enum ima_hash_alg)a;
    return 0;
}

int ima_hash_from_name(const char *name, size_t len, enum ima_hash_alg *ret_alg) {
    enum hash_alg a;

    if (hash_alg_from_name(name, len, &a) < 0 || !hash_alg_is_bank(a)) {
        return -ENOENT;
    }
    *ret_alg = (enum ima_hash_alg)a;
    return 0;
}

int ima_hash_from_size(size_t size, enum ima_hash_alg *ret_alg) {
    for (int i = 0; i < IMA_HASH_COUNT; i++) {
        if (ima_hash_size((enum ima_hash_alg)i) == size) {
            *ret_alg = (enum ima_hash_alg)i;
            return 0;
        }
    }
    return -EINVAL;
}

void ima_hash2(enum ima_hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
               uint8_t *out) {
    if (!bank(alg)) {
        memset(out, 0, IMA_DIGEST_MAX);
        return;
    }
    hash_alg_digest2((enum hash_alg)alg, a, alen, b, blen, out);
}
