/* SPDX-License-Identifier: Apache-2.0 */
#include "pubkey.h"

#include <errno.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "hash-alg.h"

int tpm_public_unmarshal(const uint8_t *buf, size_t len, TPM2B_PUBLIC *ret) {
    TPM2B_PUBLIC pub = {0};
    size_t off = 0;

    if (!buf || !ret || Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &pub) != TSS2_RC_SUCCESS ||
        off != len) {
        return -EBADMSG;
    }
    *ret = pub;
    return 0;
}

static const struct {
    TPM2_ECC_CURVE id;
    const char *name;
    size_t size;
} curves[] = {
        {TPM2_ECC_NIST_P256, "P-256", 32},
        {TPM2_ECC_NIST_P384, "P-384", 48},
        {TPM2_ECC_NIST_P521, "P-521", 66},
};

static int rsa_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret) {
    const TPMS_RSA_PARMS *p = &pub->parameters.rsaDetail;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *n = NULL, *e = NULL;
    int r = -ENOMEM;

    if (pub->unique.rsa.size == 0 || pub->unique.rsa.size != p->keyBits / 8) {
        OSSL_PARAM_BLD_free(bld);
        return -EBADMSG;
    }
    n = BN_bin2bn(pub->unique.rsa.buffer, pub->unique.rsa.size, NULL);
    e = BN_new();
    if (!bld || !n || !e || !BN_set_word(e, p->exponent ? p->exponent : 65537) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) <= 0) {
        goto out;
    }
    r = EVP_PKEY_fromdata(ctx, ret, EVP_PKEY_PUBLIC_KEY, params) > 0 ? 0 : -EBADMSG;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return r;
}

static int ecc_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret) {
    const TPMS_ECC_POINT *q = &pub->unique.ecc;
    uint8_t point[1 + 2 * 66];
    const char *group = NULL;
    size_t size = 0;
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx;
    int r;

    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (curves[i].id == pub->parameters.eccDetail.curveID) {
            group = curves[i].name;
            size = curves[i].size;
        }
    }
    if (!group) {
        return -EOPNOTSUPP;
    }
    if (q->x.size == 0 || q->y.size == 0 || q->x.size > size || q->y.size > size) {
        return -EBADMSG;
    }
    /* Uncompressed point, coordinates left-padded to the field size. */
    memset(point, 0, sizeof(point));
    point[0] = 0x04;
    memcpy(point + 1 + size - q->x.size, q->x.buffer, q->x.size);
    memcpy(point + 1 + 2 * size - q->y.size, q->y.buffer, q->y.size);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size);
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        return -ENOMEM;
    }
    /* fromdata checks that the point is on the curve. */
    r = EVP_PKEY_fromdata(ctx, ret, EVP_PKEY_PUBLIC_KEY, params) > 0 ? 0 : -EBADMSG;
    EVP_PKEY_CTX_free(ctx);
    return r;
}

int tpm_public_to_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret) {
    if (!pub || !ret) {
        return -EINVAL;
    }
    switch (pub->type) {
    case TPM2_ALG_RSA:
        return rsa_pkey(pub, ret);
    case TPM2_ALG_ECC:
        return ecc_pkey(pub, ret);
    default:
        return -EOPNOTSUPP;
    }
}

int tpm_public_name(const TPMT_PUBLIC *pub, TPM2B_NAME *ret) {
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t off = 0;
    enum hash_alg alg;

    if (!pub || !ret || hash_alg_from_tpm_id(pub->nameAlg, &alg) < 0) {
        return -EINVAL;
    }
    if (Tss2_MU_TPMT_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
        return -EBADMSG;
    }
    ret->size = (UINT16)(2 + hash_alg_size(alg));
    ret->name[0] = (uint8_t)(pub->nameAlg >> 8);
    ret->name[1] = (uint8_t)pub->nameAlg;
    hash_alg_digest(alg, buf, off, ret->name + 2);
    return 0;
}

int tpm_ak_public_check(const TPMT_PUBLIC *pub, const char **ret_why) {
    static const struct {
        TPMA_OBJECT bit;
        bool want;
        const char *why;
    } rules[] = {
            {TPMA_OBJECT_RESTRICTED, true, "AK is not restricted"},
            {TPMA_OBJECT_SIGN_ENCRYPT, true, "AK cannot sign"},
            {TPMA_OBJECT_DECRYPT, false, "AK can decrypt"},
            {TPMA_OBJECT_FIXEDTPM, true, "AK is not fixedTPM"},
            {TPMA_OBJECT_FIXEDPARENT, true, "AK is not fixedParent"},
            {TPMA_OBJECT_SENSITIVEDATAORIGIN, true, "AK was not generated in the TPM"},
    };
    TPMI_ALG_SIG_SCHEME scheme;
    TPMI_ALG_HASH hash;
    const char *why = NULL;

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]) && !why; i++) {
        if (!!(pub->objectAttributes & rules[i].bit) != rules[i].want) {
            why = rules[i].why;
        }
    }
    if (!why) {
        if (pub->type == TPM2_ALG_RSA) {
            scheme = pub->parameters.rsaDetail.scheme.scheme;
            hash = pub->parameters.rsaDetail.scheme.details.anySig.hashAlg;
            if (scheme != TPM2_ALG_RSASSA && scheme != TPM2_ALG_RSAPSS) {
                why = "RSA AK scheme is not RSASSA or RSAPSS";
            } else if (pub->parameters.rsaDetail.keyBits < 2048) {
                why = "RSA AK is shorter than 2048 bits";
            }
        } else if (pub->type == TPM2_ALG_ECC) {
            scheme = pub->parameters.eccDetail.scheme.scheme;
            hash = pub->parameters.eccDetail.scheme.details.anySig.hashAlg;
            if (scheme != TPM2_ALG_ECDSA) {
                why = "ECC AK scheme is not ECDSA";
            }
        } else {
            why = "AK is neither RSA nor ECC";
        }
        if (!why && hash != TPM2_ALG_SHA256 && hash != TPM2_ALG_SHA384 && hash != TPM2_ALG_SHA512) {
            why = "AK signs with a hash weaker than SHA-256";
        }
    }
    if (why) {
        if (ret_why) {
            *ret_why = why;
        }
        return -EPERM;
    }
    return 0;
}

int tpm_verify_key_from_public(const TPMT_PUBLIC *pub, struct tpm_verify_key *ret) {
    struct tpm_verify_key k = {.has_public = true, .pub = *pub};
    int r = tpm_public_to_pkey(pub, &k.pkey);

    if (r < 0) {
        return r;
    }
    *ret = k;
    return 0;
}

int tpm_verify_key_load(const uint8_t *buf, size_t len, struct tpm_verify_key *ret) {
    TPM2B_PUBLIC pub;
    BIO *bio;
    EVP_PKEY *pkey;

    if (tpm_public_unmarshal(buf, len, &pub) == 0) {
        return tpm_verify_key_from_public(&pub.publicArea, ret);
    }
    if (len > 10 && memcmp(buf, "-----BEGIN", 10) == 0 && len < 65536) {
        bio = BIO_new_mem_buf(buf, (int)len);
        pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (pkey) {
            memset(ret, 0, sizeof(*ret));
            ret->pkey = pkey;
            return 0;
        }
    }
    return -EBADMSG;
}

void tpm_verify_key_free(struct tpm_verify_key *k) {
    if (k) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
    }
}

int tpm_public_key_fingerprint(const TPMT_PUBLIC *pub, char ret[65]) {
    EVP_PKEY *k = NULL;
    unsigned char *der = NULL;
    uint8_t md[32];
    unsigned int mdlen = 0;
    int len, r = tpm_public_to_pkey(pub, &k);

    if (r < 0) {
        return r;
    }
    len = i2d_PUBKEY(k, &der);
    EVP_PKEY_free(k);
    if (len <= 0) {
        return -ENOMEM;
    }
    r = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
    OPENSSL_free(der);
    if (r == 0) {
        static const char hexd[] = "0123456789abcdef";
        for (unsigned int i = 0; i < 32; i++) {
            ret[2 * i] = hexd[md[i] >> 4];
            ret[2 * i + 1] = hexd[md[i] & 15];
        }
        ret[64] = 0;
    }
    return r;
}
