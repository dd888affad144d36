/* SPDX-License-Identifier: Apache-2.0 */

/* Replay is hash-bound: a list entry costs two digests per bank. OpenSSL 3's
 * low-level SHA*_Init/Update/Final calls are deprecated but run about 1.6x
 * faster here than EVP with a pre-fetched algorithm and 5x faster than the
 * EVP-backed one-shot SHA256() (see tests/bench/bench_ima.c), so they are used
 * for the banks while OpenSSL still ships them, with EVP as the fallback. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "hash-alg.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#ifdef OPENSSL_NO_SM3
#define EVP_SM3_OR_NULL NULL
#else
#define EVP_SM3_OR_NULL EVP_sm3
#endif

static const struct {
    const char *name;
    size_t size;
    uint16_t tpm_id;
    const EVP_MD *(*evp)(void);
} algs[HASH_ALG_COUNT] = {
        [HASH_ALG_SHA1] = {"sha1", 20, 0x0004, EVP_sha1},
        [HASH_ALG_SHA256] = {"sha256", 32, 0x000b, EVP_sha256},
        [HASH_ALG_SHA384] = {"sha384", 48, 0x000c, EVP_sha384},
        [HASH_ALG_SHA512] = {"sha512", 64, 0x000d, EVP_sha512},
        [HASH_ALG_SM3] = {"sm3", 32, 0x0012, EVP_SM3_OR_NULL},
};

_Static_assert(HASH_ALG_BANK_COUNT == HASH_ALG_SM3, "the banks come first");

static bool known(enum hash_alg alg) {
    return (unsigned)alg < HASH_ALG_COUNT;
}

size_t hash_alg_size(enum hash_alg alg) {
    return known(alg) ? algs[alg].size : 0;
}

const char *hash_alg_name(enum hash_alg alg) {
    return known(alg) ? algs[alg].name : "unknown";
}

uint16_t hash_alg_tpm_id(enum hash_alg alg) {
    return known(alg) ? algs[alg].tpm_id : 0;
}

const EVP_MD *hash_alg_evp_md(enum hash_alg alg) {
    return known(alg) && algs[alg].evp ? algs[alg].evp() : NULL;
}

bool hash_alg_is_bank(enum hash_alg alg) {
    return (unsigned)alg < HASH_ALG_BANK_COUNT;
}

int hash_alg_from_name(const char *name, size_t len, enum hash_alg *ret_alg) {
    for (int i = 0; i < HASH_ALG_COUNT; i++) {
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0) {
            *ret_alg = (enum hash_alg)i;
            return 0;
        }
    }
    return -ENOENT;
}

int hash_alg_from_tpm_id(uint16_t id, enum hash_alg *ret_alg) {
    for (int i = 0; i < HASH_ALG_BANK_COUNT; i++) {
        if (algs[i].tpm_id == id) {
            *ret_alg = (enum hash_alg)i;
            return 0;
        }
    }
    return -ENOENT;
}

/* The EVP way, for sm3 and for an OpenSSL without the low-level calls; the
 * algorithm is fetched once (an implicit fetch per digest costs more than
 * the digest of a list entry). */
static void digest_evp(enum hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
                       uint8_t *out) {
    static EVP_MD *mds[HASH_ALG_COUNT];
    EVP_MD_CTX *c;

    if (!mds[alg]) {
        mds[alg] = EVP_MD_fetch(NULL, algs[alg].name, NULL);
    }
    c = mds[alg] ? EVP_MD_CTX_new() : NULL;
    if (!c || !EVP_DigestInit_ex(c, mds[alg], NULL) || !EVP_DigestUpdate(c, a, alen) ||
        (blen && !EVP_DigestUpdate(c, b, blen)) || !EVP_DigestFinal_ex(c, out, NULL)) {
        /* Out of memory inside OpenSSL, or no such digest: a digest that
         * matches nothing. */
        memset(out, 0, algs[alg].size);
    }
    EVP_MD_CTX_free(c);
}

void hash_alg_digest2(enum hash_alg alg, const void *a, size_t alen, const void *b, size_t blen,
                      uint8_t *out) {
    if (!known(alg)) {
        memset(out, 0, HASH_ALG_DIGEST_MAX);
        return;
    }
#ifndef OPENSSL_NO_DEPRECATED_3_0
    switch (alg) {
    case HASH_ALG_SHA1: {
        SHA_CTX c;
        SHA1_Init(&c);
        SHA1_Update(&c, a, alen);
        if (blen) {
            SHA1_Update(&c, b, blen);
        }
        SHA1_Final(out, &c);
        return;
    }
    case HASH_ALG_SHA256: {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, a, alen);
        if (blen) {
            SHA256_Update(&c, b, blen);
        }
        SHA256_Final(out, &c);
        return;
    }
    case HASH_ALG_SHA384: {
        SHA512_CTX c;
        SHA384_Init(&c);
        SHA384_Update(&c, a, alen);
        if (blen) {
            SHA384_Update(&c, b, blen);
        }
        SHA384_Final(out, &c);
        return;
    }
    case HASH_ALG_SHA512: {
        SHA512_CTX c;
        SHA512_Init(&c);
        SHA512_Update(&c, a, alen);
        if (blen) {
            SHA512_Update(&c, b, blen);
        }
        SHA512_Final(out, &c);
        return;
    }
    default:
        break;
    }
#endif
    digest_evp(alg, a, alen, b, blen, out);
}
