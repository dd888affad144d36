/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_TEST_PKI_H
#define KIMA_TESTS_TEST_PKI_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Certificates made by the tests themselves: P-256 keys, SHA-256
 * signatures, valid from an hour ago for a day. */

struct test_pki {
    EVP_PKEY *key;
    X509 *crt;
};

/* A key and its certificate. With `issuer` NULL, a CA of its own
 * (critical CA:TRUE, keyCertSign and cRLSign); otherwise a leaf of
 * `issuer` (CA:FALSE, digitalSignature) with the extended key usage `eku`
 * and subject alt names `san` (OpenSSL config syntax, each may be NULL).
 * `ou` may be NULL. 0, or -1 with nothing left to free. */
int test_pki_issue(struct test_pki *p, const char *ou, const char *cn,
                   const struct test_pki *issuer, const char *eku, const char *san);

/* Write dir/NAME.key (the private key) and dir/NAME.pem (the
 * certificate); with `pem`, the certificate's path goes there. 0 or -1. */
int test_pki_save(const struct test_pki *p, const char *dir, const char *name, char *pem,
                  size_t pemsz);

void test_pki_free(struct test_pki *p);

#endif
