/* SPDX-License-Identifier: Apache-2.0 */
#include "soft-tpm.h"

#include <errno.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "credential.h"
#include "keys.h"

void soft_ek_free(struct soft_ek *ek) {
    if (ek) {
        EVP_PKEY_free(ek->key);
        ek->key = NULL;
    }
}

int soft_ek_from_key(struct soft_ek *ret, EVP_PKEY *key) {
    TPM2B_PUBLIC t;

    memset(ret, 0, sizeof(*ret));
    ret->key = key;
    if (EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) == 2048) {
        BIGNUM *n = NULL;
        tpm_ek_template(TPM_KEY_RSA, &t);
        if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ||
            BN_bn2binpad(n, t.publicArea.unique.rsa.buffer, 256) != 256) {
            BN_free(n);
            soft_ek_free(ret);
            return -ENOMEM;
        }
        BN_free(n);
    } else if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) == 256) {
        uint8_t point[65];
        size_t plen = 0;
        tpm_ek_template(TPM_KEY_ECC, &t);
        if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                             &plen) ||
            plen != 65 || point[0] != 0x04) {
            soft_ek_free(ret);
            return -EOPNOTSUPP;
        }
        memcpy(t.publicArea.unique.ecc.x.buffer, point + 1, 32);
        memcpy(t.publicArea.unique.ecc.y.buffer, point + 33, 32);
    } else {
        soft_ek_free(ret);
        return -EOPNOTSUPP;
    }
    ret->pub = t.publicArea;
    return 0;
}

int soft_ek_new(struct soft_ek *ret, bool ecc) {
    EVP_PKEY *key = ecc ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                        : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

    if (!key) {
        memset(ret, 0, sizeof(*ret));
        return -ENOMEM;
    }
    return soft_ek_from_key(ret, key);
}

/* RSA EK: the seed is RSA-OAEP(SHA-256, label "IDENTITY") of the secret. */
static int rsa_seed(const struct soft_ek *ek, const TPM2B_ENCRYPTED_SECRET *s, uint8_t *seed,
                    size_t *seed_len) {
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(ek->key, NULL);
    unsigned char *label = OPENSSL_memdup("IDENTITY", 9);
    int r = -ENOMEM;

    if (c && label && EVP_PKEY_decrypt_init(c) > 0 &&
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0 &&
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) > 0 &&
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) > 0 &&
        EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, 9) > 0) {
        label = NULL; /* the context's now */
        r = EVP_PKEY_decrypt(c, seed, seed_len, s->secret, s->size) > 0 ? 0 : -EBADMSG;
    }
    OPENSSL_free(label);
    EVP_PKEY_CTX_free(c);
    return r;
}

/* The ephemeral public point of an ECC secret (TPMS_ECC_POINT: u16 size x,
 * u16 size y, each 32 bytes on P-256) as an OpenSSL key. */
static int ecc_peer(const TPM2B_ENCRYPTED_SECRET *s, EVP_PKEY **ret) {
    uint8_t point[65];
    char group[] = "P-256";
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *c;
    int r = -EBADMSG;

    if (s->size != 2 + 32 + 2 + 32 || s->secret[0] != 0 || s->secret[1] != 32 ||
        s->secret[34] != 0 || s->secret[35] != 32) {
        return -EBADMSG;
    }
    point[0] = 0x04;
    memcpy(point + 1, s->secret + 2, 32);
    memcpy(point + 33, s->secret + 36, 32);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
    params[2] = OSSL_PARAM_construct_end();
    c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    *ret = NULL;
    if (c && EVP_PKEY_fromdata_init(c) > 0 &&
        EVP_PKEY_fromdata(c, ret, EVP_PKEY_PUBLIC_KEY, params) > 0) {
        r = 0;
    }
    EVP_PKEY_CTX_free(c);
    return r;
}

/* ECC EK: Z = ECDH(EK private, ephemeral point); seed = KDFe(Z, "IDENTITY",
 * ephemeral x, EK x), 256 bits. */
static int ecc_seed(const struct soft_ek *ek, const TPM2B_ENCRYPTED_SECRET *s, uint8_t *seed,
                    size_t *seed_len) {
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *c = NULL;
    uint8_t z[32];
    size_t z_len = sizeof(z);
    int r = ecc_peer(s, &peer);

    if (r == 0) {
        c = EVP_PKEY_CTX_new(ek->key, NULL);
        r = c && EVP_PKEY_derive_init(c) > 0 && EVP_PKEY_derive_set_peer(c, peer) > 0 &&
                            EVP_PKEY_derive(c, z, &z_len) > 0 && z_len == 32
                    ? 0
                    : -EBADMSG;
    }
    if (r == 0) {
        r = tpm_kdfe(TPM2_ALG_SHA256, z, z_len, "IDENTITY", s->secret + 2, 32,
                     ek->pub.unique.ecc.x.buffer, 32, 256, seed);
        *seed_len = 32;
    }
    OPENSSL_cleanse(z, sizeof(z));
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(peer);
    return r;
}

/* With the seed: check the integrity HMAC, then decrypt encIdentity. */
static int unwrap(const uint8_t *seed, size_t key_bits, const TPM2B_NAME *name,
                  const TPM2B_ID_OBJECT *blob, uint8_t *ret_cred, size_t *ret_len) {
    static const uint8_t iv[16];
    uint8_t sym_key[32], hmac_key[32], msg[2 + 64 + sizeof(name->name)], mac[32], plain[2 + 64];
    const uint8_t *enc = blob->credential + 2 + 32;
    size_t enc_len, cred_len;
    unsigned int mac_len = 0;
    EVP_CIPHER_CTX *cc;
    int n = 0, fin = 0, r = -EBADMSG;

    if (blob->size < 2 + 32 + 2 + 1 || blob->size > 2 + 32 + 2 + 64 ||
        (blob->credential[0] << 8 | blob->credential[1]) != 32) {
        return -EBADMSG;
    }
    enc_len = blob->size - 2u - 32u;
    if (tpm_kdfa(TPM2_ALG_SHA256, seed, 32, "STORAGE", name->name, name->size, NULL, 0, key_bits,
                 sym_key) < 0 ||
        tpm_kdfa(TPM2_ALG_SHA256, seed, 32, "INTEGRITY", NULL, 0, NULL, 0, 256, hmac_key) < 0) {
        return -ENOMEM;
    }
    memcpy(msg, enc, enc_len);
    memcpy(msg + enc_len, name->name, name->size);
    if (!HMAC(EVP_sha256(), hmac_key, 32, msg, enc_len + name->size, mac, &mac_len) ||
        mac_len != 32 || CRYPTO_memcmp(mac, blob->credential + 2, 32) != 0) {
        return -EBADMSG;
    }
    cc = EVP_CIPHER_CTX_new();
    if (cc &&
        EVP_DecryptInit_ex(cc, key_bits == 128 ? EVP_aes_128_cfb128() : EVP_aes_256_cfb128(), NULL,
                           sym_key, iv) &&
        EVP_DecryptUpdate(cc, plain, &n, enc, (int)enc_len) &&
        EVP_DecryptFinal_ex(cc, plain + n, &fin) && (size_t)(n + fin) == enc_len) {
        cred_len = (size_t)(plain[0] << 8 | plain[1]);
        if (cred_len + 2 == enc_len) {
            memcpy(ret_cred, plain + 2, cred_len);
            *ret_len = cred_len;
            r = 0;
        }
    }
    EVP_CIPHER_CTX_free(cc);
    OPENSSL_cleanse(sym_key, sizeof(sym_key));
    OPENSSL_cleanse(plain, sizeof(plain));
    return r;
}

int soft_activate_credential(const struct soft_ek *ek, const TPM2B_NAME *name,
                             const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret,
                             uint8_t *ret_cred, size_t *ret_len) {
    const TPMT_SYM_DEF_OBJECT *sym;
    uint8_t seed[256];
    size_t seed_len = sizeof(seed);
    int r;

    if (!ek || !ek->key || !name || !blob || !secret || !ret_cred || !ret_len ||
        name->size > sizeof(name->name)) {
        return -EINVAL;
    }
    sym = ek->pub.type == TPM2_ALG_RSA ? &ek->pub.parameters.rsaDetail.symmetric
                                       : &ek->pub.parameters.eccDetail.symmetric;
    if (ek->pub.nameAlg != TPM2_ALG_SHA256 || sym->algorithm != TPM2_ALG_AES ||
        sym->mode.aes != TPM2_ALG_CFB || (sym->keyBits.aes != 128 && sym->keyBits.aes != 256)) {
        return -EOPNOTSUPP;
    }
    r = ek->pub.type == TPM2_ALG_RSA ? rsa_seed(ek, secret, seed, &seed_len)
                                     : ecc_seed(ek, secret, seed, &seed_len);
    if (r == 0 && seed_len != 32) {
        r = -EBADMSG;
    }
    if (r == 0) {
        r = unwrap(seed, sym->keyBits.aes, name, blob, ret_cred, ret_len);
    }
    OPENSSL_cleanse(seed, sizeof(seed));
    return r;
}
