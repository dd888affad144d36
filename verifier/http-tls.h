/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_TLS_H
#define KIMA_VERIFIER_HTTP_TLS_H

#include <stdint.h>

#include <gnutls/gnutls.h>

/* TLS session resumption for the HTTPS front (http.c): GnuTLS session
 * tickets, TLS 1.3 and 1.2, so that an agent that reconnects skips the
 * certificate exchange and its verification. libmicrohttpd 0.9.75 sets no
 * ticket key and no session cache on its GnuTLS sessions, so without this
 * every reconnect is a full handshake.
 *
 * The master key is random, made at start, held in memory only (never
 * written anywhere) and wiped at stop: a ticket from another run of the
 * verifier does not decrypt, and the client falls back to a full handshake.
 * GnuTLS derives the key that encrypts tickets from the master key and the
 * time, and rotates it every 3 ticket lifetimes (keeping the one before,
 * for tickets issued just before a rotation); a ticket older than its
 * lifetime is refused.
 *
 * A ticket carries the client's certificate, not a verdict on it: the
 * front verifies the certificate (chain, role, CN, CRL) on every request,
 * resumed or not (http.c peer_role()). */

/* Seconds a ticket is accepted after it was issued. */
#define HTTP_TICKET_LIFETIME_S 3600

struct http_tickets;

/* A fresh master key. 0 or -ENOMEM/-EIO; free with http_tickets_free(). */
int http_tickets_new(struct http_tickets **ret);
/* Wipes the key. NULL is fine. */
void http_tickets_free(struct http_tickets *t);

/* Let a server session, before its handshake, issue and accept tickets of
 * this key. 0, or -EINVAL (a session already handshaken, or the key
 * refused by GnuTLS). */
int http_tickets_enable(const struct http_tickets *t, gnutls_session_t session);

#endif
