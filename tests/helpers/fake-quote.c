/* SPDX-License-Identifier: Apache-2.0 */
#include "fake-quote.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

int fake_ak_from_key(struct fake_ak *ak, EVP_PKEY *key) {
    TPMT_PUBLIC *p = &ak->pub;
    bool ecc = EVP_PKEY_is_a(key, "EC");

    memset(ak, 0, sizeof(*ak));
    ak->key = key;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    if (ecc) {
        uint8_t point[65];
        size_t plen = 0;
        if (!EVP_PKEY_get_octet_string_param(ak->key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                             &plen) ||
            plen != 65) {
            return -1;
        }
        p->type = TPM2_ALG_ECC;
        p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
        p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        p->unique.ecc.x.size = 32;
        memcpy(p->unique.ecc.x.buffer, point + 1, 32);
        p->unique.ecc.y.size = 32;
        memcpy(p->unique.ecc.y.buffer, point + 33, 32);
    } else {
        BIGNUM *n = NULL;
        if (EVP_PKEY_get_bits(key) != 2048 ||
            !EVP_PKEY_get_bn_param(ak->key, OSSL_PKEY_PARAM_RSA_N, &n)) {
            return -1;
        }
        p->type = TPM2_ALG_RSA;
        p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
        p->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
        p->parameters.rsaDetail.keyBits = 2048;
        p->unique.rsa.size = 256;
        BN_bn2binpad(n, p->unique.rsa.buffer, 256);
        BN_free(n);
    }
    return 0;
}

int fake_ak_new(struct fake_ak *ak, bool ecc) {
    EVP_PKEY *key = ecc ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                        : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

    if (!key) {
        memset(ak, 0, sizeof(*ak));
        return -1;
    }
    return fake_ak_from_key(ak, key);
}

void fake_ak_free(struct fake_ak *ak) {
    EVP_PKEY_free(ak->key);
    ak->key = NULL;
}

void fake_attest_init(TPMS_ATTEST *a, const uint8_t *nonce, size_t nonce_len,
                      const TPML_PCR_SELECTION *sel, const uint8_t *pcr_cat, size_t cat_len) {
    unsigned int n;

    memset(a, 0, sizeof(*a));
    a->magic = TPM2_GENERATED_VALUE;
    a->type = TPM2_ST_ATTEST_QUOTE;
    a->qualifiedSigner.size = 34;
    a->qualifiedSigner.name[1] = 0x0b;
    a->extraData.size = (UINT16)nonce_len;
    memcpy(a->extraData.buffer, nonce, nonce_len);
    a->clockInfo.clock = 1000000;
    a->clockInfo.resetCount = 5;
    a->clockInfo.restartCount = 2;
    a->clockInfo.safe = TPM2_YES;
    a->firmwareVersion = 0x2023;
    a->attested.quote.pcrSelect = *sel;
    a->attested.quote.pcrDigest.size = 32;
    EVP_Digest(pcr_cat, cat_len, a->attested.quote.pcrDigest.buffer, &n, EVP_sha256(), NULL);
}

static const EVP_MD *md_of(TPMI_ALG_HASH h) {
    return h == TPM2_ALG_SHA1     ? EVP_sha1()
           : h == TPM2_ALG_SHA384 ? EVP_sha384()
           : h == TPM2_ALG_SHA512 ? EVP_sha512()
                                  : EVP_sha256();
}

int fake_quote(const struct fake_ak *ak, const TPMS_ATTEST *a, void (*patch)(uint8_t *, size_t),
               TPMI_ALG_SIG_SCHEME scheme, TPMI_ALG_HASH hash, uint8_t *attest, size_t *attest_len,
               uint8_t *sig, size_t *sig_len) {
    const EVP_MD *md = md_of(hash);
    uint8_t digest[64], raw[512];
    size_t off = 0, rawlen = sizeof(raw);
    unsigned int dlen;
    TPMT_SIGNATURE s = {.sigAlg = scheme};
    EVP_PKEY_CTX *c;
    int ok;

    if (Tss2_MU_TPMS_ATTEST_Marshal(a, attest, sizeof(TPMS_ATTEST), &off) != TSS2_RC_SUCCESS) {
        return -1;
    }
    *attest_len = off;
    if (patch) {
        patch(attest, off);
    }
    EVP_Digest(attest, off, digest, &dlen, md, NULL);
    c = EVP_PKEY_CTX_new(ak->key, NULL);
    ok = c && EVP_PKEY_sign_init(c) > 0 && EVP_PKEY_CTX_set_signature_md(c, md) > 0;
    if (ok && scheme == TPM2_ALG_RSASSA) {
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0;
    } else if (ok && scheme == TPM2_ALG_RSAPSS) {
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, (int)dlen) > 0;
    }
    ok = ok && EVP_PKEY_sign(c, raw, &rawlen, digest, dlen) > 0;
    EVP_PKEY_CTX_free(c);
    if (!ok) {
        return -1;
    }
    if (scheme == TPM2_ALG_ECDSA) {
        const uint8_t *p = raw;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)rawlen);
        const BIGNUM *r, *sv;
        if (!es) {
            return -1;
        }
        ECDSA_SIG_get0(es, &r, &sv);
        s.signature.ecdsa.hash = hash;
        s.signature.ecdsa.signatureR.size = 32;
        s.signature.ecdsa.signatureS.size = 32;
        BN_bn2binpad(r, s.signature.ecdsa.signatureR.buffer, 32);
        BN_bn2binpad(sv, s.signature.ecdsa.signatureS.buffer, 32);
        ECDSA_SIG_free(es);
    } else {
        s.signature.rsassa.hash = hash;
        s.signature.rsassa.sig.size = (UINT16)rawlen;
        memcpy(s.signature.rsassa.sig.buffer, raw, rawlen);
    }
    off = 0;
    if (Tss2_MU_TPMT_SIGNATURE_Marshal(&s, sig, sizeof(TPMT_SIGNATURE), &off) != TSS2_RC_SUCCESS) {
        return -1;
    }
    *sig_len = off;
    return 0;
}
