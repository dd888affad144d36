/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_CRL_H
#define KIMA_VERIFIER_CRL_H

#include <stdint.h>
#include <time.h>

#include <gnutls/x509.h>

/* Revocation of agent and operator certificates (--crl FILE): the file holds
 * one or more CRLs (PEM, or one in DER), each of which must be signed by a
 * CA of --client-ca. The file is re-read when it changes (device, inode,
 * size, mtime or ctime; a Kubernetes volume swaps a symlink). A file that is
 * refused (unreadable, malformed, signed by another CA, over a cap) leaves
 * the last good set in force; each change is logged once with the reason. A
 * CRL whose nextUpdate has passed is still enforced, with a warning: an old
 * list is better than none. crl_check() may run on any thread while the
 * owner thread calls crl_refresh(). */

#define CRL_FILE_MAX    (16u << 20)
#define CRL_LISTS_MAX   64u      /* CRLs in one file */
#define CRL_ENTRIES_MAX 1000000u /* revoked serial numbers, all CRLs together */
/* RFC 5280 4.1.2.2 caps serial numbers at 20 octets; some CAs overshoot. */
#define CRL_SERIAL_MAX 32u

struct crl_set;

/* Watch `path` for CRLs of the CAs in the PEM file `ca_path`, and load it
 * now. A missing file is not an error (nothing is revoked until it appears;
 * logged). Returns 0, or -errno when the CA file is unreadable or holds no
 * certificate, or when the CRL file exists but is refused (logged): at
 * start-up there is no previous set to fall back on. On success the caller
 * frees *ret_set with crl_free(). */
int crl_open(const char *path, const char *ca_path, time_t now, struct crl_set **ret_set);

/* Re-read the file if it changed since the last attempt. Returns 1 when a new
 * set is in force, 0 when nothing changed, -errno when the changed file was
 * refused (the previous set stays; logged once per change). Also warns, once
 * per loaded set, when a CRL's nextUpdate passes. Call it from one thread,
 * about once a second: each call is one stat(). */
int crl_refresh(struct crl_set *s, time_t now);

/* Is `crt` revoked by a CRL in force for its issuer? 1 revoked (logged), 0
 * not, -E2BIG for a serial number over CRL_SERIAL_MAX, -ENOMEM or -EINVAL.
 * Callers refuse on anything but 0. A NULL set revokes nothing. */
int crl_check(struct crl_set *s, gnutls_x509_crt_t crt);

/* Counts the sets put in force: a verdict of crl_check() taken when it
 * returned g holds while it still returns g. 0 for a NULL set. Any thread. */
uint64_t crl_generation(struct crl_set *s);

/* Revoked serial numbers in force (all CRLs together). */
size_t crl_count(struct crl_set *s);

/* NULL is fine. */
void crl_free(struct crl_set *s);

#endif
