/* SPDX-License-Identifier: Apache-2.0 */
#include "ekcert.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "fileio.h"
#include "log.h"
#include "pubkey.h"

#define CA_FILE_MAX (1u << 20)

/* Add the certificates of one file; returns how many. */
static int add_file(X509_STORE *store, const char *path) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    int n = 0;

    if (read_file_capped(path, CA_FILE_MAX, &data, &len) < 0 || len == 0 || len > INT32_MAX) {
        return 0;
    }
    if (len > 10 && strstr((const char *)data, "-----BEGIN CERTIFICATE-----")) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        X509 *x;
        while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
            n += X509_STORE_add_cert(store, x) == 1;
            X509_free(x);
        }
        BIO_free(bio);
    } else {
        const uint8_t *p = data;
        X509 *x = d2i_X509(NULL, &p, (long)len);
        if (x && p == data + len) {
            n += X509_STORE_add_cert(store, x) == 1;
        }
        X509_free(x);
    }
    ERR_clear_error();
    return n;
}

int tpm_ekcert_store_load(const char *dir, X509_STORE **ret_store) {
    X509_STORE *store;
    struct dirent **names = NULL;
    int count, loaded = 0;

    if (!dir || !ret_store) {
        return -EINVAL;
    }
    count = scandir(dir, &names, NULL, alphasort);
    if (count < 0) {
        return -errno;
    }
    store = X509_STORE_new();
    for (int i = 0; i < count; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (store && names[i]->d_name[0] != '.' &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < sizeof(path) &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            loaded += add_file(store, path);
        }
        free(names[i]);
    }
    free(names);
    if (!store) {
        return -ENOMEM;
    }
    if (loaded == 0) {
        X509_STORE_free(store);
        return -ENOENT;
    }
    *ret_store = store;
    return 0;
}

int tpm_ekcert_verify(X509_STORE *store, const uint8_t *der, size_t len, const TPMT_PUBLIC *ek,
                      char *why, size_t whysz) {
    const uint8_t *p = der;
    X509 *cert = NULL;
    X509_STORE_CTX *ctx = NULL;
    EVP_PKEY *ek_key = NULL, *cert_key;
    int r;

    /* Callers log and audit `why` on every path, success included. */
    if (why && whysz > 0) {
        snprintf(why, whysz, "%s", "cannot be checked (bad arguments or out of memory)");
    }
    if (!store || !der || !ek || !why || len == 0 || len > INT32_MAX) {
        return -EINVAL;
    }
    cert = d2i_X509(NULL, &p, (long)len);
    if (!cert || p != der + len) {
        snprintf(why, whysz, "EK certificate is not a DER X.509 certificate");
        r = -EBADMSG;
        goto out;
    }
    ctx = X509_STORE_CTX_new();
    if (!ctx || !X509_STORE_CTX_init(ctx, store, cert, NULL)) {
        r = -ENOMEM;
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        snprintf(why, whysz, "EK certificate does not chain to a trusted CA: %s",
                 X509_verify_cert_error_string(err));
        r = -EACCES;
        goto out;
    }
    r = tpm_public_to_pkey(ek, &ek_key);
    if (r < 0) {
        snprintf(why, whysz, "EK public area is not a usable key");
        goto out;
    }
    cert_key = X509_get0_pubkey(cert);
    if (!cert_key || EVP_PKEY_eq(cert_key, ek_key) != 1) {
        snprintf(why, whysz, "EK certificate is for another key than this EK");
        r = -EKEYREJECTED;
        goto out;
    }
    snprintf(why, whysz, "valid");
    r = 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(ek_key);
    X509_STORE_CTX_free(ctx);
    X509_free(cert);
    return r;
}
