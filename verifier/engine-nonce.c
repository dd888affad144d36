/* SPDX-License-Identifier: Apache-2.0 */
/* Nonces that any verifier of one store can check (docs/design.md,
 * "Nonces across replicas"): 8 random bytes, the expiry (ms since the
 * epoch, big-endian) and the first 16 bytes of HMAC-SHA256 under the
 * store's "nonce-key" over "kima-nonce-v1", the node's name, a NUL, the
 * random bytes and the expiry. A nonce so made says by itself which node it
 * was issued to, by a verifier of this store, and until when; that it is
 * used once is the store's single-use record (store_nonce_use), written
 * with the round. */
#include "engine-internal.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define NONCE_RAND_LEN 8
#define NONCE_MAC_OFF  (NONCE_RAND_LEN + 8)
#define NONCE_MAC_LEN  (NONCE_LEN - NONCE_MAC_OFF)
#define NONCE_CONTEXT  "kima-nonce-v1"

_Static_assert(NONCE_MAC_LEN == 16, "a 16-byte MAC");

/* The MAC of the nonce's first NONCE_MAC_OFF bytes for `node`. */
static int nonce_mac(const struct engine *e, const char *node, const uint8_t *nonce,
                     uint8_t ret[NONCE_MAC_LEN]) {
    uint8_t msg[sizeof(NONCE_CONTEXT) - 1 + STORE_NAME_MAX + 1 + NONCE_MAC_OFF];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t nlen = strnlen(node, STORE_NAME_MAX + 1), off = 0;

    if (nlen > STORE_NAME_MAX) {
        return -EINVAL;
    }
    memcpy(msg, NONCE_CONTEXT, sizeof(NONCE_CONTEXT) - 1);
    off += sizeof(NONCE_CONTEXT) - 1;
    memcpy(msg + off, node, nlen + 1); /* with its NUL: the name's end is unambiguous */
    off += nlen + 1;
    memcpy(msg + off, nonce, NONCE_MAC_OFF);
    off += NONCE_MAC_OFF;
    if (!HMAC(EVP_sha256(), e->nonce_key, sizeof(e->nonce_key), msg, off, md, &mdlen) ||
        mdlen < NONCE_MAC_LEN) {
        return -ENOMEM;
    }
    memcpy(ret, md, NONCE_MAC_LEN);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

int engine_nonce_make(const struct engine *e, const char *node, int64_t expires_ms,
                      uint8_t out[NONCE_LEN]) {
    uint64_t x = (uint64_t)expires_ms;

    if (RAND_bytes(out, NONCE_RAND_LEN) != 1) {
        return -EIO;
    }
    for (int i = 0; i < 8; i++) {
        out[NONCE_RAND_LEN + i] = (uint8_t)(x >> (56 - 8 * i));
    }
    return nonce_mac(e, node, out, out + NONCE_MAC_OFF);
}

int engine_nonce_check(const struct engine *e, const char *node, const uint8_t *nonce, size_t len,
                       int64_t now_ms, int64_t *ret_expires_ms) {
    uint8_t mac[NONCE_MAC_LEN];
    uint64_t x = 0;
    int r;

    if (len != NONCE_LEN) {
        return -EMSGSIZE;
    }
    r = nonce_mac(e, node, nonce, mac);
    if (r < 0) {
        return r;
    }
    if (CRYPTO_memcmp(mac, nonce + NONCE_MAC_OFF, NONCE_MAC_LEN) != 0) {
        return -EBADMSG;
    }
    for (int i = 0; i < 8; i++) {
        x = x << 8 | nonce[NONCE_RAND_LEN + i];
    }
    /* A genuine expiry is at most now + the TTL, so it fits an int64_t. */
    if (x > INT64_MAX || (int64_t)x <= now_ms) {
        return -ETIME;
    }
    *ret_expires_ms = (int64_t)x;
    return 0;
}
