/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_LIMITS_H
#define KIMA_VERIFIER_HTTP_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http-admit.h"

/* Bookkeeping of what clients hold in the HTTP front (http.c), so that no
 * client can take it all:
 * - connections that have not shown a valid client certificate yet, in all
 *   and per source address: a new one is refused at accept when either is
 *   full, which leaves the other slots to authenticated clients;
 * - connections that have, per client certificate identity (an agent's
 *   node, an operator's CN), whatever addresses they come from: one stolen
 *   certificate cannot hold the slots every other agent needs;
 * - the memory of request bodies in flight, one budget for all connections.
 * The connection tables are not thread-safe (http.c holds its lock); the
 * body budget is atomic. */

/* Connections: at most HTTP_CONNECTIONS_DEFAULT (or --max-connections),
 * fewer when the open-file limit (raised to its hard limit at start) leaves
 * less after HTTP_FDS_RESERVED for the store, the logs and the Kubernetes
 * client. The default holds 10,000 agents with kept-alive connections, an
 * operator's and the unauthenticated pool, with room to spare; it needs an
 * open-file limit of HTTP_CONNECTIONS_DEFAULT + HTTP_FDS_RESERVED. */
#define HTTP_CONNECTIONS_DEFAULT 16384
#define HTTP_CONNECTIONS_MIN     16
#define HTTP_CONNECTIONS_MAX     1000000
#define HTTP_FDS_RESERVED        64
/* libmicrohttpd's memory pool of one connection, from accept to close: the
 * request's headers (an agent's 200 bytes and over 1 KB more fit; several
 * KB is 431, the connection closed), its read buffer and the answer's
 * headers. Bodies are copied out as they arrive (http.c) and answers are
 * sent from their own buffer, so neither needs room here. Its default,
 * 32 KB, was most of what an idle kept-alive connection cost
 * (docs/verifier.md, "Many nodes"). */
#define HTTP_CONNECTION_MEMORY 2048
/* A request's head (its line and header fields, each counted with
 * HTTP_HEAD_FIELD_COST bytes of libmicrohttpd's bookkeeping) beyond this is
 * answered 431 before anything is done: past it, the pool might not hold
 * the answer's headers, and libmicrohttpd would close the connection with
 * no answer after the request was carried out (review finding R16-2). */
#define HTTP_HEAD_FIELD_COST  48
#define HTTP_REQUEST_HEAD_MAX (HTTP_CONNECTION_MEMORY - 512)
/* With agent tokens (--agent-auth token|either) the pool has room for a
 * bearer token of AGENT_AUTH_TOKEN_MAX bytes (agent-auth.h) besides the
 * rest of an agent's head: every connection costs this much more. */
#define HTTP_CONNECTION_MEMORY_TOKEN 8192
#define HTTP_REQUEST_HEAD_MAX_TOKEN  (HTTP_CONNECTION_MEMORY_TOKEN - 512)
/* Connections without a valid client certificate yet (being accepted, in
 * the TLS handshake or before their first request): this share of all, at
 * most HTTP_UNAUTH_MAX, and at most this many from one address; more are
 * refused at accept, so that authenticated agents keep the rest. The
 * unauthenticated ones are the only ones counted per address: many nodes
 * behind one address (SNAT) hold their authenticated connections bounded by
 * their certificates and the total only. */
#define HTTP_UNAUTH_SHARE_PERCENT 50
#define HTTP_UNAUTH_MAX           4096
#define HTTP_UNAUTH_PER_ADDRESS   64
/* Authenticated connections of one client certificate identity at once (or
 * --max-connections-per-cert); a request that would open one more is 429
 * and its connection closed. An agent needs one. */
#define HTTP_CONNECTIONS_PER_CERT_DEFAULT 8
#define HTTP_CONNECTIONS_PER_CERT_MIN     1
#define HTTP_CONNECTIONS_PER_CERT_MAX     HTTP_CONNECTIONS_MAX
/* From accept to the first request's headers, whatever the peer trickles. */
#define HTTP_HANDSHAKE_DEADLINE_MS 5000
/* The idle timeout between requests. A connection without a valid client
 * certificate is closed once answered (http.c close_unless_authenticated). */
#define HTTP_IDLE_TIMEOUT_S 60
/* Bytes of request bodies all connections may hold at once (or
 * --max-body-memory); over it a request is 503 with Retry-After. */
#define HTTP_BODY_MEMORY_DEFAULT (256ull << 20)
#define HTTP_BODY_MEMORY_MIN     HTTP_BODY_MAX
#define HTTP_BODY_MEMORY_MAX     (1ull << 40)
#define HTTP_RETRY_AFTER_S       2
/* A body must arrive within a base time plus its length at a minimum rate,
 * so that a stalled upload cannot hold the budget for ever. */
#define HTTP_BODY_DEADLINE_BASE_MS 10000
#define HTTP_BODY_MIN_BYTES_PER_MS 1024 /* 1 MB/s */
/* Lines a peer can provoke (libmicrohttpd's messages, refused and expired
 * connections): this many per interval, then one line with the count left
 * out. */
#define HTTP_LOG_BURST       10
#define HTTP_LOG_INTERVAL_MS 10000

/* A source address: IPv4 is kept as ::ffff:a.b.c.d. */
struct http_addr {
    uint8_t b[16];
};

/* 0, or -EAFNOSUPPORT for an address that is not IPv4 or IPv6. */
int http_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct http_addr *ret);
/* For logs: "127.0.0.1" or an IPv6 text form. */
void http_addr_format(const struct http_addr *a, char *out, size_t outsz);

enum http_unauth_verdict {
    HTTP_UNAUTH_OK,
    HTTP_UNAUTH_FULL,         /* all unauthenticated slots are taken */
    HTTP_UNAUTH_ADDRESS_FULL, /* this address has its share */
};

struct http_unauth;

/* A table for at most `max` unauthenticated connections, `per_address` of
 * them from one address (both >= 1). 0 or -EINVAL/-ENOMEM; free with
 * http_unauth_free(). */
int http_unauth_new(unsigned max, unsigned per_address, struct http_unauth **ret);
void http_unauth_free(struct http_unauth *u);

/* Whether a new connection from `a` may be accepted. */
enum http_unauth_verdict http_unauth_admit(const struct http_unauth *u, const struct http_addr *a);
/* Count one (after it was admitted); 0, or -ENOSPC when the table has no room
 * (more addresses than 2 * max: admissions that raced past the cap). */
int http_unauth_add(struct http_unauth *u, const struct http_addr *a);
/* Forget one: it authenticated or closed. It must have been added. */
void http_unauth_del(struct http_unauth *u, const struct http_addr *a);
unsigned http_unauth_count(const struct http_unauth *u);
unsigned http_unauth_count_addr(const struct http_unauth *u, const struct http_addr *a);

/* Authenticated connections by client identity: a string naming the role
 * and the certificate's CN ("agent:node-1", "operator:alice"), at most
 * HTTP_CLIENT_ID_MAX bytes with its NUL. */
#define HTTP_CLIENT_ID_MAX 272

struct http_clients;

/* A table for the connections of at most `max_clients` identities (the
 * connection limit does), `per_client` connections each (both >= 1). 0 or
 * -EINVAL/-ENOMEM; free with http_clients_free(). */
int http_clients_new(unsigned max_clients, unsigned per_client, struct http_clients **ret);
void http_clients_free(struct http_clients *t);
/* Count one more connection of `id`: 0; -EBUSY when it has per_client
 * already; -EINVAL for an id too long; -ENOSPC with max_clients
 * identities in the table; -ENOMEM. Nothing is counted on failure. */
int http_clients_add(struct http_clients *t, const char *id);
/* Forget one connection of `id`. It must have been added. */
void http_clients_del(struct http_clients *t, const char *id);
unsigned http_clients_count(const struct http_clients *t, const char *id);
/* Identities with at least one connection. */
unsigned http_clients_size(const struct http_clients *t);

/* The connection limits for an open-file limit: `wanted` (0: the default)
 * within what the fds leave after HTTP_FDS_RESERVED, the unauthenticated
 * share of it (at most HTTP_UNAUTH_MAX) and one address's part of that. */
struct http_conn_limits {
    unsigned max, unauth_max, unauth_per_address;
    bool clamped; /* wanted (or the default) was more than the fds allow */
};
void http_conn_limits(unsigned wanted, uint64_t open_files, struct http_conn_limits *ret);

/* Bytes of request bodies reserved by requests in flight, at most max. */
struct http_budget {
    uint64_t max;
    _Atomic uint64_t used;
};

void http_budget_init(struct http_budget *b, uint64_t max);
/* Reserve n bytes; false (nothing reserved) when that would pass max. */
bool http_budget_take(struct http_budget *b, uint64_t n);
/* Give back n bytes taken before. */
void http_budget_give(struct http_budget *b, uint64_t n);

#endif
