/* SPDX-License-Identifier: Apache-2.0 */

/* Replay is hash-bound: a list entry costs two digests per bank. OpenSSL 3's
 * low-level SHA*_Init/Update/Final calls are deprecated but run about 1.6x
 * faster here than EVP with a pre-fetched algorithm and 5x faster than the
 * EVP-backed one-shot SHA256() (see tests/bench/bench_ima.c), so they are used
 * while OpenSSL still ships them, with EVP as the fallback. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "hash.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const struct {
    const char *name;
    size_t size;
    uint16_t tpm_alg;
} algs[IMA_HASH_COUNT] = {
        [IMA_HASH_SHA1] = {"sha1", 20, 0x0004},
        [IMA_HASH_SHA256] = {"sha256", 32, 0x000b},
        [IMA_HASH_SHA384] = {"sha384", 48, 0x000c},
        [IMA_HASH_SHA512] = {"sha512", 64, 0x000d},
};

size_t ima_hash_size(enum ima_hash_alg alg) {
    return (unsigned)alg < IMA_HASH_COUNT ? algs[alg].size : 0;
}

const char *ima_hash_name(enum ima_hash_alg alg) {
    return (unsigned)alg < IMA_HASH_COUNT ? algs[alg].name : "unknown";
}

uint16_t ima_hash_tpm_alg(enum ima_hash_alg alg) {
    return (unsigned)alg < IMA_HASH_COUNT ? algs[alg].tpm_alg : 0;
}

int ima_hash_from_tpm_alg(uint16_t id, enum ima_hash_alg *ret_alg) {
    for (int i = 0; i < IMA_HASH_COUNT; i++) {
        if (algs[i].tpm_alg == id) {
            *ret_alg = (enum ima_hash_alg)i;
            return 0;
        }
    }
    return -ENOENT;
}

int ima_hash_from_name(const char *name, size_t len, enum ima_hash_alg *ret_alg) {
    for (int i = 0; i < IMA_HASH_COUNT; i++) {
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0) {
            *ret_alg = (enum ima_hash_alg)i;
            return 0;
        }
    }
    return -ENOENT;
}

int ima_hash_from_size(size_t size, enum ima_hash_alg *ret_alg) {
    for (int i = 0; i < IMA_HASH_COUNT; i++) {
        if (algs[i].size == size) {
            *ret_alg = (enum ima_hash_alg)i;
            return 0;
        }
    }
    return -EINVAL;
}

#ifndef OPENSSL_NO_DEPRECATED_3_0
void ima_hash2(enum ima_hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
               uint8_t *out) {
    switch (alg) {
    case IMA_HASH_SHA1: {
        SHA_CTX c;
        SHA1_Init(&c);
        SHA1_Update(&c, a, alen);
        if (blen) {
            SHA1_Update(&c, b, blen);
        }
        SHA1_Final(out, &c);
        break;
    }
    case IMA_HASH_SHA256: {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, a, alen);
        if (blen) {
            SHA256_Update(&c, b, blen);
        }
        SHA256_Final(out, &c);
        break;
    }
    case IMA_HASH_SHA384: {
        SHA512_CTX c;
        SHA384_Init(&c);
        SHA384_Update(&c, a, alen);
        if (blen) {
            SHA384_Update(&c, b, blen);
        }
        SHA384_Final(out, &c);
        break;
    }
    case IMA_HASH_SHA512: {
        SHA512_CTX c;
        SHA512_Init(&c);
        SHA512_Update(&c, a, alen);
        if (blen) {
            SHA512_Update(&c, b, blen);
        }
        SHA512_Final(out, &c);
        break;
    }
    default:
        memset(out, 0, IMA_DIGEST_MAX);
        break;
    }
}
#else
void ima_hash2(enum ima_hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
               uint8_t *out) {
    static const EVP_MD *mds[IMA_HASH_COUNT];
    EVP_MD_CTX *c;

    if ((unsigned)alg >= IMA_HASH_COUNT) {
        memset(out, 0, IMA_DIGEST_MAX);
        return;
    }
    if (!mds[alg]) {
        mds[alg] = EVP_MD_fetch(NULL, algs[alg].name, NULL);
    }
    c = EVP_MD_CTX_new();
    if (!c || !mds[alg] || !EVP_DigestInit_ex(c, mds[alg], NULL) || !EVP_DigestUpdate(c, a, alen) ||
        (blen && !EVP_DigestUpdate(c, b, blen)) || !EVP_DigestFinal_ex(c, out, NULL)) {
        /* Out of memory inside OpenSSL: a digest that matches nothing. */
        memset(out, 0, algs[alg].size);
    }
    EVP_MD_CTX_free(c);
}
#endif
