/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_CLI_CERTS_H
#define KIMA_CLI_CERTS_H

#include <limits.h>
#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* What `kimactl certs init` (cmd-certs.c) and `kimactl certs revoke`
 * (certs-revoke.c) share: the layout of DIR (ca.crt, ca.key, verifier/,
 * operators/NAME/, agents/NODE/, crl.pem, revoked/) and its CA. */

/* A buffer for a path in DIR (DIR/agents/NODE/tls.crt, ...). Longer than
 * PATH_MAX, so that a path snprintf() cuts short is still one the kernel
 * refuses, never the name of another file. */
#define CERTS_PATH_MAX (PATH_MAX + 104)

/* A host, node or user name that is safe as one path component. */
bool certs_safe_name(const char *s);

/* Read DIR/ca.crt and DIR/ca.key and check that they belong together.
 * Returns 0, -ENOENT when DIR/ca.key does not exist (nothing printed), or
 * -EINVAL when they are not a CA and its key (printed). On success the caller
 * frees *ret_ca with X509_free() and *ret_key with EVP_PKEY_free(). */
int certs_read_ca(const char *dir, X509 **ret_ca, EVP_PKEY **ret_key);

/* kimactl certs revoke ARGS (argv[0] is "revoke"): an exit code. */
int certs_revoke(int argc, char **argv);

#endif
