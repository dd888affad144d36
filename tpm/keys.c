/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "fileio.h"
#include "log.h"

/* TCG EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256. */
static const uint8_t ek_policy_a[32] = {
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
        0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
        0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

#define EK_ATTRS                                                                        \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | \
     TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)
#define AK_ATTRS                                                                        \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | \
     TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)

/* AK blob file: magic, then the marshalled TPM2B_PUBLIC and TPM2B_PRIVATE. */
static const char ak_magic[8] = "KIMA-AK1";

void tpm_ek_template(enum tpm_key_type type, TPM2B_PUBLIC *ret) {
    TPMT_PUBLIC *p = &ret->publicArea;

    memset(ret, 0, sizeof(*ret));
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = EK_ATTRS;
    p->authPolicy.size = sizeof(ek_policy_a);
    memcpy(p->authPolicy.buffer, ek_policy_a, sizeof(ek_policy_a));
    if (type == TPM_KEY_ECC) {
        p->type = TPM2_ALG_ECC;
        p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
        p->parameters.eccDetail.symmetric.keyBits.aes = 128;
        p->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
        p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        p->unique.ecc.x.size = 32;
        p->unique.ecc.y.size = 32;
    } else {
        p->type = TPM2_ALG_RSA;
        p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
        p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
        p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
        p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        p->parameters.rsaDetail.keyBits = 2048;
        p->parameters.rsaDetail.exponent = 0;
        p->unique.rsa.size = 256;
    }
}

void tpm_ak_template(enum tpm_key_type type, TPM2B_PUBLIC *ret) {
    TPMT_PUBLIC *p = &ret->publicArea;

    memset(ret, 0, sizeof(*ret));
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = AK_ATTRS;
    if (type == TPM_KEY_ECC) {
        p->type = TPM2_ALG_ECC;
        p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
        p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    } else {
        p->type = TPM2_ALG_RSA;
        p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
        p->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
        p->parameters.rsaDetail.keyBits = 2048;
        p->parameters.rsaDetail.exponent = 0;
    }
}

/* Fill public and name of a loaded handle. */
static int read_public(struct tpm *t, struct tpm_key *k) {
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_NAME *name = NULL;
    int r;

    r = tpm_rc(Esys_ReadPublic(t->esys, k->handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub,
                               &name, NULL),
               "TPM2_ReadPublic");
    if (r == 0) {
        k->public = *pub;
        k->name = *name;
    }
    Esys_Free(pub);
    Esys_Free(name);
    return r;
}

void tpm_key_release(struct tpm *t, struct tpm_key *k) {
    if (!t || !k || k->handle == ESYS_TR_NONE) {
        return;
    }
    if (k->transient) {
        tpm_flush(t, k->handle);
    } else {
        (void)tpm_rc(Esys_TR_Close(t->esys, &k->handle), "closing a TPM handle");
    }
    k->handle = ESYS_TR_NONE;
}

static bool matches_ek_template(const TPMT_PUBLIC *have, const TPMT_PUBLIC *want) {
    return have->type == want->type && have->nameAlg == want->nameAlg &&
           have->objectAttributes == want->objectAttributes &&
           have->authPolicy.size == want->authPolicy.size &&
           memcmp(have->authPolicy.buffer, want->authPolicy.buffer, want->authPolicy.size) == 0 &&
           (have->type != TPM2_ALG_ECC ||
            have->parameters.eccDetail.curveID == want->parameters.eccDetail.curveID) &&
           (have->type != TPM2_ALG_RSA ||
            have->parameters.rsaDetail.keyBits == want->parameters.rsaDetail.keyBits);
}

int tpm_ek_public_check(const TPMT_PUBLIC *pub, const char **ret_why) {
    TPM2B_PUBLIC want;
    const TPMS_RSA_PARMS *have = &pub->parameters.rsaDetail, *w;

    tpm_ek_template(TPM_KEY_RSA, &want);
    w = &want.publicArea.parameters.rsaDetail;
    if (pub->type != TPM2_ALG_RSA) {
        *ret_why = "the EK is not the TPM's RSA EK";
    } else if (!matches_ek_template(pub, &want.publicArea)) {
        *ret_why = "the EK's attributes, policy, name algorithm or size are not those of the TCG "
                   "RSA EK template L-1";
    } else if (have->symmetric.algorithm != w->symmetric.algorithm ||
               have->symmetric.keyBits.aes != w->symmetric.keyBits.aes ||
               have->symmetric.mode.aes != w->symmetric.mode.aes ||
               have->scheme.scheme != w->scheme.scheme ||
               (have->exponent != 0 && have->exponent != 65537)) {
        *ret_why = "the EK's parameters are not those of the TCG RSA EK template L-1";
    } else {
        return 0;
    }
    return -EPERM;
}

int tpm_ek_load(struct tpm *t, enum tpm_key_type type, struct tpm_key *ret) {
    struct tpm_key k = TPM_KEY_INIT;
    TPM2B_PUBLIC tmpl, *out_pub = NULL;
    static const TPM2B_SENSITIVE_CREATE empty_sensitive = {0};
    static const TPM2B_DATA empty_data = {0};
    static const TPML_PCR_SELECTION no_pcrs = {0};
    TPM2_HANDLE persistent = type == TPM_KEY_ECC ? TPM_EK_ECC_HANDLE : TPM_EK_RSA_HANDLE;
    TSS2_RC rc;
    int r;

    tpm_ek_template(type, &tmpl);
    /* A persistent EK, if provisioned. A missing handle is normal. */
    rc = Esys_TR_FromTPMPublic(t->esys, persistent, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               &k.handle);
    if (rc == TSS2_RC_SUCCESS) {
        if (read_public(t, &k) == 0 &&
            matches_ek_template(&k.public.publicArea, &tmpl.publicArea)) {
            *ret = k;
            return 0;
        }
        log_warn("persistent handle 0x%08x is not a default-template EK; creating the EK",
                 persistent);
        tpm_key_release(t, &k);
    }
    k.handle = ESYS_TR_NONE;
    r = tpm_rc(Esys_CreatePrimary(t->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &empty_sensitive, &tmpl, &empty_data, &no_pcrs,
                                  &k.handle, &out_pub, NULL, NULL, NULL),
               "creating the EK (TPM2_CreatePrimary)");
    Esys_Free(out_pub);
    if (r < 0) {
        return r;
    }
    k.transient = true;
    r = read_public(t, &k);
    if (r < 0) {
        tpm_key_release(t, &k);
        return r;
    }
    *ret = k;
    return 0;
}

static uint16_t nv_buffer_max(struct tpm *t) {
    TPMS_CAPABILITY_DATA *cap = NULL;
    uint16_t max = 512;

    if (Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                           TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, NULL,
                           &cap) == TSS2_RC_SUCCESS &&
        cap->data.tpmProperties.count == 1 &&
        cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
        cap->data.tpmProperties.tpmProperty[0].value > 0) {
        uint32_t v = cap->data.tpmProperties.tpmProperty[0].value;
        max = v > sizeof(((TPM2B_MAX_NV_BUFFER *)0)->buffer)
                      ? sizeof(((TPM2B_MAX_NV_BUFFER *)0)->buffer)
                      : (uint16_t)v;
    }
    Esys_Free(cap);
    return max;
}

int tpm_ek_read_cert(struct tpm *t, enum tpm_key_type type, uint8_t **ret_der, size_t *ret_len) {
    TPM2_HANDLE index = type == TPM_KEY_ECC ? TPM_EK_CERT_ECC_INDEX : TPM_EK_CERT_RSA_INDEX;
    ESYS_TR nv = ESYS_TR_NONE;
    TPM2B_NV_PUBLIC *nvpub = NULL;
    _cleanup_free_ uint8_t *der = NULL;
    uint16_t size, chunk;
    TSS2_RC rc;
    int r;

    rc = Esys_TR_FromTPMPublic(t->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
    if (rc != TSS2_RC_SUCCESS) {
        log_debug("no EK certificate at NV index 0x%08x", index);
        return -ENOENT;
    }
    r = tpm_rc(
            Esys_NV_ReadPublic(t->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nvpub, NULL),
            "reading the EK certificate's NV public area");
    if (r < 0) {
        goto out;
    }
    size = nvpub->nvPublic.dataSize;
    if (size == 0 || size > TPM_EK_CERT_MAX) {
        log_error("EK certificate NV index 0x%08x holds %u bytes (1-%d expected)", index, size,
                  TPM_EK_CERT_MAX);
        r = -EBADMSG;
        goto out;
    }
    der = malloc(size);
    if (!der) {
        r = -ENOMEM;
        goto out;
    }
    chunk = nv_buffer_max(t);
    for (uint16_t off = 0; off < size;) {
        TPM2B_MAX_NV_BUFFER *data = NULL;
        uint16_t n = (uint16_t)(size - off) < chunk ? (uint16_t)(size - off) : chunk;
        /* EK certificate indices are owner-readable (TCG EK profile);
         * fall back to the index's own (empty) authorization. */
        rc = Esys_NV_Read(t->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                          ESYS_TR_NONE, n, off, &data);
        if (rc != TSS2_RC_SUCCESS) {
            rc = Esys_NV_Read(t->esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off,
                              &data);
        }
        r = tpm_rc(rc, "reading the EK certificate (TPM2_NV_Read)");
        if (r < 0) {
            goto out;
        }
        if (data->size != n) {
            Esys_Free(data);
            r = -EIO;
            goto out;
        }
        memcpy(der + off, data->buffer, n);
        Esys_Free(data);
        off += n;
    }
    *ret_der = TAKE_PTR(der);
    *ret_len = size;
    r = 0;
out:
    Esys_Free(nvpub);
    (void)Esys_TR_Close(t->esys, &nv);
    return r;
}

static int load_blobs(struct tpm *t, const struct tpm_key *ek, const TPM2B_PUBLIC *pub,
                      const TPM2B_PRIVATE *priv, struct tpm_key *ret) {
    struct tpm_key k = TPM_KEY_INIT;
    ESYS_TR session;
    int r;

    r = tpm_ek_policy_session(t, &session);
    if (r < 0) {
        return r;
    }
    r = tpm_rc(Esys_Load(t->esys, ek->handle, session, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub,
                         &k.handle),
               "loading the AK (TPM2_Load)");
    if (r < 0) {
        tpm_flush(t, session);
        return r;
    }
    k.transient = true;
    r = read_public(t, &k);
    if (r < 0) {
        tpm_key_release(t, &k);
        return r;
    }
    *ret = k;
    return 0;
}

static int save_blobs(const char *path, const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv) {
    uint8_t buf[sizeof(ak_magic) + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE)];
    size_t off = sizeof(ak_magic);

    memcpy(buf, ak_magic, sizeof(ak_magic));
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Marshal(priv, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
        return -EINVAL;
    }
    return write_file_atomic(path, buf, off, 0600);
}

int tpm_ak_create(struct tpm *t, const struct tpm_key *ek, enum tpm_key_type type,
                  const char *blob_path, struct tpm_key *ret) {
    static const TPM2B_SENSITIVE_CREATE empty_sensitive = {0};
    static const TPM2B_DATA empty_data = {0};
    static const TPML_PCR_SELECTION no_pcrs = {0};
    TPM2B_PUBLIC tmpl, *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    ESYS_TR session;
    int r;

    tpm_ak_template(type, &tmpl);
    r = tpm_ek_policy_session(t, &session);
    if (r < 0) {
        return r;
    }
    r = tpm_rc(Esys_Create(t->esys, ek->handle, session, ESYS_TR_NONE, ESYS_TR_NONE,
                           &empty_sensitive, &tmpl, &empty_data, &no_pcrs, &priv, &pub, NULL, NULL,
                           NULL),
               "creating the AK (TPM2_Create)");
    if (r < 0) {
        tpm_flush(t, session);
        return r;
    }
    if (blob_path) {
        r = save_blobs(blob_path, pub, priv);
        if (r < 0) {
            log_error("cannot save the AK to %s: %s", blob_path, strerror(-r));
        }
    }
    if (r == 0) {
        r = load_blobs(t, ek, pub, priv, ret);
    }
    Esys_Free(pub);
    Esys_Free(priv);
    return r;
}

int tpm_ak_load(struct tpm *t, const struct tpm_key *ek, const char *blob_path,
                struct tpm_key *ret) {
    _cleanup_free_ uint8_t *buf = NULL;
    TPM2B_PUBLIC pub = {0};
    TPM2B_PRIVATE priv = {0};
    size_t len, off = sizeof(ak_magic);
    int r;

    r = read_file_capped(blob_path, sizeof(ak_magic) + sizeof(pub) + sizeof(priv), &buf, &len);
    if (r < 0) {
        return r == -EFBIG ? -EBADMSG : r;
    }
    if (len < sizeof(ak_magic) || memcmp(buf, ak_magic, sizeof(ak_magic)) != 0 ||
        Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &pub) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, len, &off, &priv) != TSS2_RC_SUCCESS || off != len) {
        log_error("%s is not a kima AK file", blob_path);
        return -EBADMSG;
    }
    return load_blobs(t, ek, &pub, &priv, ret);
}

int tpm_activate_credential(struct tpm *t, const struct tpm_key *ak, const struct tpm_key *ek,
                            const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret,
                            uint8_t *ret_cred, size_t *ret_len) {
    TPM2B_DIGEST *cert = NULL;
    ESYS_TR session;
    int r;

    r = tpm_ek_policy_session(t, &session);
    if (r < 0) {
        return r;
    }
    r = tpm_rc(Esys_ActivateCredential(t->esys, ak->handle, ek->handle, ESYS_TR_PASSWORD, session,
                                       ESYS_TR_NONE, blob, secret, &cert),
               "TPM2_ActivateCredential");
    if (r < 0) {
        tpm_flush(t, session);
        return r;
    }
    memcpy(ret_cred, cert->buffer, cert->size);
    *ret_len = cert->size;
    Esys_Free(cert);
    return 0;
}
