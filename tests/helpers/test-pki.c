/* SPDX-License-Identifier: Apache-2.0 */
#include "test-pki.h"

#include <stdio.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (!e) {
        return -1;
    }
    ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

static int add_exts(struct test_pki *p, const struct test_pki *issuer, const char *eku,
                    const char *san) {
    X509V3_CTX ctx;
    int rc = 0;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer->crt : p->crt, p->crt, NULL, NULL, 0);
    if (!issuer) {
        rc |= add_ext(p->crt, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        rc |= add_ext(p->crt, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        return rc;
    }
    rc |= add_ext(p->crt, &ctx, NID_basic_constraints, "CA:FALSE");
    rc |= add_ext(p->crt, &ctx, NID_key_usage, "critical,digitalSignature");
    if (eku) {
        rc |= add_ext(p->crt, &ctx, NID_ext_key_usage, eku);
    }
    if (san) {
        rc |= add_ext(p->crt, &ctx, NID_subject_alt_name, san);
    }
    return rc;
}

int test_pki_issue(struct test_pki *p, const char *ou, const char *cn,
                   const struct test_pki *issuer, const char *eku, const char *san) {
    static long serial = 1;
    X509_NAME *name;

    p->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    p->crt = X509_new();
    if (!p->key || !p->crt) {
        goto fail;
    }
    X509_set_version(p->crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(p->crt), serial++);
    X509_gmtime_adj(X509_getm_notBefore(p->crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(p->crt), 86400);
    X509_set_pubkey(p->crt, p->key);
    name = X509_get_subject_name(p->crt);
    if (ou) {
        X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, (const unsigned char *)ou, -1, -1, 0);
    }
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(p->crt, issuer ? X509_get_subject_name(issuer->crt) : name);
    if (add_exts(p, issuer, eku, san) < 0 ||
        X509_sign(p->crt, issuer ? issuer->key : p->key, EVP_sha256()) <= 0) {
        goto fail;
    }
    return 0;
fail:
    test_pki_free(p);
    return -1;
}

static int write_pem(const char *path, const struct test_pki *p, int key) {
    FILE *f = fopen(path, "w");
    int ok;

    if (!f) {
        return -1;
    }
    ok = key ? PEM_write_PrivateKey(f, p->key, NULL, NULL, 0, NULL, NULL)
             : PEM_write_X509(f, p->crt);
    if (fclose(f) != 0) {
        ok = 0;
    }
    return ok == 1 ? 0 : -1;
}

int test_pki_save(const struct test_pki *p, const char *dir, const char *name, char *pem,
                  size_t pemsz) {
    char path[512];
    int n;

    n = snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path) || write_pem(path, p, 1) < 0) {
        return -1;
    }
    n = snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path) || write_pem(path, p, 0) < 0) {
        return -1;
    }
    if (pem) {
        n = snprintf(pem, pemsz, "%s", path);
        if (n < 0 || (size_t)n >= pemsz) {
            return -1;
        }
    }
    return 0;
}

void test_pki_free(struct test_pki *p) {
    EVP_PKEY_free(p->key);
    X509_free(p->crt);
    p->key = NULL;
    p->crt = NULL;
}
