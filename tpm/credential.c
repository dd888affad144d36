/* SPDX-License-Identifier: Apache-2.0 */
#include "credential.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "hash-alg.h"
#include "pubkey.h"

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int tpm_kdfa(TPMI_ALG_HASH hash, const uint8_t *key, size_t key_len, const char *label,
             const uint8_t *ctx_u, size_t u_len, const uint8_t *ctx_v, size_t v_len, size_t bits,
             uint8_t *out) {
    enum hash_alg alg;
    const EVP_MD *md = hash_alg_from_tpm_id(hash, &alg) == 0 ? hash_alg_evp_md(alg) : NULL;
    size_t hlen, need = bits / 8, done = 0;
    uint8_t ctr[4], nbits[4], block[EVP_MAX_MD_SIZE];

    if (!md || bits % 8 || !label) {
        return -EINVAL;
    }
    hlen = (size_t)EVP_MD_get_size(md);
    be32(nbits, (uint32_t)bits);
    for (uint32_t i = 1; done < need; i++) {
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)EVP_MD_get0_name(md), 0),
                OSSL_PARAM_construct_end(),
        };
        size_t n = 0;
        int ok;

        be32(ctr, i);
        ok = c && EVP_MAC_init(c, key, key_len, params) && EVP_MAC_update(c, ctr, 4) &&
             EVP_MAC_update(c, (const uint8_t *)label, strlen(label) + 1) &&
             (!u_len || EVP_MAC_update(c, ctx_u, u_len)) &&
             (!v_len || EVP_MAC_update(c, ctx_v, v_len)) && EVP_MAC_update(c, nbits, 4) &&
             EVP_MAC_final(c, block, &n, sizeof(block)) && n == hlen;
        EVP_MAC_CTX_free(c);
        EVP_MAC_free(mac);
        if (!ok) {
            return -ENOMEM;
        }
        n = need - done < hlen ? need - done : hlen;
        memcpy(out + done, block, n);
        done += n;
    }
    return 0;
}

int tpm_kdfe(TPMI_ALG_HASH hash, const uint8_t *z, size_t z_len, const char *label,
             const uint8_t *party_u, size_t u_len, const uint8_t *party_v, size_t v_len,
             size_t bits, uint8_t *out) {
    enum hash_alg alg;
    const EVP_MD *md = hash_alg_from_tpm_id(hash, &alg) == 0 ? hash_alg_evp_md(alg) : NULL;
    size_t hlen, need = bits / 8, done = 0;
    uint8_t ctr[4], block[EVP_MAX_MD_SIZE];

    if (!md || bits % 8 || !label) {
        return -EINVAL;
    }
    hlen = (size_t)EVP_MD_get_size(md);
    for (uint32_t i = 1; done < need; i++) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        size_t n;
        int ok;

        be32(ctr, i);
        ok = c && EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, ctr, 4) &&
             EVP_DigestUpdate(c, z, z_len) && EVP_DigestUpdate(c, label, strlen(label) + 1) &&
             EVP_DigestUpdate(c, party_u, u_len) && EVP_DigestUpdate(c, party_v, v_len) &&
             EVP_DigestFinal_ex(c, block, NULL);
        EVP_MD_CTX_free(c);
        if (!ok) {
            return -ENOMEM;
        }
        n = need - done < hlen ? need - done : hlen;
        memcpy(out + done, block, n);
        done += n;
    }
    return 0;
}

/* RSA EK: seed encrypted with OAEP(nameAlg), label "IDENTITY" and its NUL. */
static int rsa_seed(EVP_PKEY *ek, const EVP_MD *md, const uint8_t *seed, size_t seed_len,
                    TPM2B_ENCRYPTED_SECRET *ret) {
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(ek, NULL);
    unsigned char *label = OPENSSL_memdup("IDENTITY", 9);
    size_t out_len = sizeof(ret->secret);
    int r = -ENOMEM;

    if (c && label && EVP_PKEY_encrypt_init(c) > 0 &&
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0 &&
        EVP_PKEY_CTX_set_rsa_oaep_md(c, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) > 0 &&
        EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, 9) > 0) {
        label = NULL; /* owned by the context */
        if (EVP_PKEY_encrypt(c, ret->secret, &out_len, seed, seed_len) > 0) {
            ret->size = (UINT16)out_len;
            r = 0;
        }
    }
    OPENSSL_free(label);
    EVP_PKEY_CTX_free(c);
    return r;
}

/* ECC EK: an ephemeral key on the EK's curve; seed = KDFe(Z, "IDENTITY",
 * ephemeral x, EK x); the secret is the ephemeral public point. */
static int ecc_seed(const TPMT_PUBLIC *pub, EVP_PKEY *ek, size_t seed_len, uint8_t *seed,
                    TPM2B_ENCRYPTED_SECRET *ret) {
    EVP_PKEY *eph = NULL;
    EVP_PKEY_CTX *c = NULL;
    uint8_t z[66], point[1 + 2 * 66];
    size_t z_len = sizeof(z), plen = 0, fsize;
    char group[32];
    int r = -ENOMEM;

    if (!EVP_PKEY_get_utf8_string_param(ek, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        !(eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group)) || !(c = EVP_PKEY_CTX_new(eph, NULL)) ||
        EVP_PKEY_derive_init(c) <= 0 || EVP_PKEY_derive_set_peer(c, ek) <= 0 ||
        EVP_PKEY_derive(c, z, &z_len) <= 0 ||
        !EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                         &plen) ||
        plen < 3 || point[0] != 0x04) {
        goto out;
    }
    fsize = (plen - 1) / 2;
    if (fsize != z_len) {
        goto out;
    }
    r = tpm_kdfe(pub->nameAlg, z, z_len, "IDENTITY", point + 1, fsize, pub->unique.ecc.x.buffer,
                 pub->unique.ecc.x.size, seed_len * 8, seed);
    if (r < 0) {
        goto out;
    }
    /* TPMS_ECC_POINT: u16 size | x | u16 size | y, big-endian. */
    ret->size = (UINT16)(4 + 2 * fsize);
    ret->secret[0] = (uint8_t)(fsize >> 8);
    ret->secret[1] = (uint8_t)fsize;
    memcpy(ret->secret + 2, point + 1, fsize);
    ret->secret[2 + fsize] = (uint8_t)(fsize >> 8);
    ret->secret[3 + fsize] = (uint8_t)fsize;
    memcpy(ret->secret + 4 + fsize, point + 1 + fsize, fsize);
    r = 0;
out:
    OPENSSL_cleanse(z, sizeof(z));
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(eph);
    return r;
}

/* The EK's symmetric scheme, which protects the credential: AES-128 or
 * AES-256 in CFB mode. Its key size in bytes, or -EOPNOTSUPP. */
static int ek_aes_key_bytes(const TPMT_PUBLIC *ek, size_t *ret_bytes) {
    const TPMT_SYM_DEF_OBJECT *sym = ek->type == TPM2_ALG_RSA ? &ek->parameters.rsaDetail.symmetric
                                                              : &ek->parameters.eccDetail.symmetric;

    if (sym->algorithm != TPM2_ALG_AES || sym->mode.aes != TPM2_ALG_CFB ||
        (sym->keyBits.aes != 128 && sym->keyBits.aes != 256)) {
        return -EOPNOTSUPP;
    }
    *ret_bytes = sym->keyBits.aes / 8;
    return 0;
}

/* A fresh seed of seed_len bytes and the secret that carries it to the
 * EK's TPM. */
static int make_seed(const TPMT_PUBLIC *ek, EVP_PKEY *pkey, const EVP_MD *md, size_t seed_len,
                     uint8_t *seed, TPM2B_ENCRYPTED_SECRET *ret) {
    if (ek->type == TPM2_ALG_RSA) {
        return RAND_bytes(seed, (int)seed_len) == 1 ? rsa_seed(pkey, md, seed, seed_len, ret)
                                                    : -EIO;
    }
    return ecc_seed(ek, pkey, seed_len, seed, ret);
}

/* encIdentity = AES-CFB(symKey, IV 0, TPM2B_DIGEST(credential)) into enc
 * (2 + cred_len bytes, *ret_len). */
static int encrypt_identity(const uint8_t *sym_key, size_t key_bytes, const uint8_t *cred,
                            size_t cred_len, uint8_t *enc, size_t *ret_len) {
    static const uint8_t iv[16];
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    uint8_t plain[2 + 64];
    int n = 0, fin = 0, r = -ENOMEM;

    plain[0] = (uint8_t)(cred_len >> 8);
    plain[1] = (uint8_t)cred_len;
    memcpy(plain + 2, cred, cred_len);
    if (cc &&
        EVP_EncryptInit_ex(cc, key_bytes == 16 ? EVP_aes_128_cfb128() : EVP_aes_256_cfb128(), NULL,
                           sym_key, iv) &&
        EVP_EncryptUpdate(cc, enc, &n, plain, (int)(2 + cred_len)) &&
        EVP_EncryptFinal_ex(cc, enc + n, &fin)) {
        *ret_len = (size_t)(n + fin);
        r = 0;
    }
    EVP_CIPHER_CTX_free(cc);
    return r;
}

/* outerHMAC = HMAC(hmacKey, encIdentity || name), of the nameAlg's size. */
static int outer_hmac(const EVP_MD *md, const uint8_t *hmac_key, size_t dsize, const uint8_t *enc,
                      size_t enc_len, const TPM2B_NAME *name, uint8_t *ret_hmac) {
    uint8_t msg[2 + 64 + sizeof(name->name)];
    unsigned int hmac_len = 0;

    memcpy(msg, enc, enc_len);
    memcpy(msg + enc_len, name->name, name->size);
    if (!HMAC(md, hmac_key, (int)dsize, msg, enc_len + name->size, ret_hmac, &hmac_len) ||
        hmac_len != dsize) {
        return -ENOMEM;
    }
    return 0;
}

int tpm_make_credential(const TPMT_PUBLIC *ek, const TPM2B_NAME *name, const uint8_t *cred,
                        size_t cred_len, TPM2B_ID_OBJECT *ret_blob,
                        TPM2B_ENCRYPTED_SECRET *ret_secret) {
    enum hash_alg alg;
    const EVP_MD *md;
    EVP_PKEY *pkey = NULL;
    uint8_t seed[64], sym_key[32], hmac_key[64], hmac[64], *enc;
    TPM2B_ENCRYPTED_SECRET secret = {0};
    TPM2B_ID_OBJECT blob = {0};
    size_t dsize, key_bytes, enc_len = 0;
    int r;

    if (!ek || !name || !cred || !ret_blob || !ret_secret) {
        return -EINVAL;
    }
    md = hash_alg_from_tpm_id(ek->nameAlg, &alg) == 0 ? hash_alg_evp_md(alg) : NULL;
    if (!md) {
        return -EOPNOTSUPP;
    }
    dsize = (size_t)EVP_MD_get_size(md);
    if (cred_len == 0 || cred_len > dsize || name->size == 0) {
        return -EINVAL;
    }
    if ((r = ek_aes_key_bytes(ek, &key_bytes)) < 0 || (r = tpm_public_to_pkey(ek, &pkey)) < 0) {
        return r;
    }
    /* The ID object: the integrity HMAC (a TPM2B_DIGEST), then encIdentity. */
    enc = blob.credential + 2 + dsize;
    r = make_seed(ek, pkey, md, dsize, seed, &secret);
    if (r == 0) {
        r = tpm_kdfa(ek->nameAlg, seed, dsize, "STORAGE", name->name, name->size, NULL, 0,
                     key_bytes * 8, sym_key);
    }
    if (r == 0) {
        r = tpm_kdfa(ek->nameAlg, seed, dsize, "INTEGRITY", NULL, 0, NULL, 0, dsize * 8, hmac_key);
    }
    if (r == 0) {
        r = encrypt_identity(sym_key, key_bytes, cred, cred_len, enc, &enc_len);
    }
    if (r == 0) {
        r = outer_hmac(md, hmac_key, dsize, enc, enc_len, name, hmac);
    }
    if (r == 0) {
        blob.credential[0] = (uint8_t)(dsize >> 8);
        blob.credential[1] = (uint8_t)dsize;
        memcpy(blob.credential + 2, hmac, dsize);
        blob.size = (UINT16)(2 + dsize + enc_len);
        *ret_blob = blob;
        *ret_secret = secret;
    }
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(sym_key, sizeof(sym_key));
    OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
    EVP_PKEY_free(pkey);
    return r;
}

int tpm_activation_proof(const uint8_t *secret, size_t len, const char *node,
                         const uint8_t *ak_name, size_t ak_name_len,
                         uint8_t ret[TPM_ACTIVATION_PROOF_SIZE]) {
    EVP_MAC *mac;
    EVP_MAC_CTX *c;
    OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end(),
    };
    uint8_t out[EVP_MAX_MD_SIZE];
    size_t n = 0;
    int ok;

    if (!secret || !node || (!ak_name && ak_name_len) || !ret) {
        return -EINVAL;
    }
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    ok = c && EVP_MAC_init(c, secret, len, params) &&
         EVP_MAC_update(c, (const uint8_t *)node, strlen(node)) &&
         (!ak_name_len || EVP_MAC_update(c, ak_name, ak_name_len)) &&
         EVP_MAC_final(c, out, &n, sizeof(out)) && n == TPM_ACTIVATION_PROOF_SIZE;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(mac);
    if (ok) {
        memcpy(ret, out, TPM_ACTIVATION_PROOF_SIZE);
    }
    OPENSSL_cleanse(out, sizeof(out));
    return ok ? 0 : -ENOMEM;
}
