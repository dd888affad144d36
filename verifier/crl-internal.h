/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_CRL_INTERNAL_H
#define KIMA_VERIFIER_CRL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/x509.h>

#include "crl.h"

/* A serial number without its leading zero octets, so that the DER forms of
 * the certificate and of the CRL entry compare equal. */
struct crl_serial {
    uint8_t len;
    uint8_t b[CRL_SERIAL_MAX];
};

/* What kima keeps of one CRL: its issuer, its sorted revoked serials and
 * nextUpdate. Immutable once built, so readers need no more than the set's
 * read lock. */
struct crl_list {
    gnutls_datum_t issuer; /* raw DER of the issuer's name (gnutls_free) */
    char *issuer_text;     /* RFC 4514, for logs (gnutls_free) */
    char number[48];       /* the CRL number in decimal (0x hex past 64 bits), or "-" */
    struct crl_serial *serials;
    size_t n;
    time_t next_update; /* -1: none */
};

struct crl_snapshot {
    struct crl_list *lists;
    size_t n;
    size_t entries;     /* serials, all lists together */
    time_t next_update; /* the earliest, -1: none */
};

/* Import the CRLs of (data, len) (PEM: up to CRL_LISTS_MAX; or one DER),
 * keep what crl_list holds, then check that each is signed by one of `cas`.
 * Returns 0, -EBADMSG for input that is not CRLs, -E2BIG over a cap,
 * -EKEYREJECTED when a CRL is not signed by a CA of `cas`, -ENOMEM; on
 * failure `why` says why (in words fit for a log) and *ret_snap is
 * untouched. On success the caller frees *ret_snap with
 * crl_snapshot_free(). Pure: no file, no log. */
int crl_snapshot_parse(const uint8_t *data, size_t len, const gnutls_x509_crt_t *cas, unsigned ncas,
                       struct crl_snapshot **ret_snap, char *why, size_t whysz);

/* 1 when the snapshot revokes the certificate of this issuer (raw DER name)
 * and serial (leading zeros stripped), else 0. */
int crl_snapshot_revokes(const struct crl_snapshot *snap, const gnutls_datum_t *issuer,
                         const struct crl_serial *serial);

/* NULL is fine. */
void crl_snapshot_free(struct crl_snapshot *snap);

#endif
