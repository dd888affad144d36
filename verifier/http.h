/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_H
#define KIMA_VERIFIER_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "http-admit.h"
#include "http-limits.h"

/* The verifier's HTTPS front (libmicrohttpd, GnuTLS): client certificates
 * give the role. An agent certificate has OU "kima-agent" and the node name
 * as CN and may only use its own /v1/nodes/{node}/... endpoints; an operator
 * certificate has OU "kima-operator". No certificate, another CA or the
 * wrong role is refused (401/403) before a byte of the body is read
 * (http-admit.h). /healthz and /readyz need none. With an agent_auth,
 * an agent may show a projected ServiceAccount token instead (or, with
 * --agent-auth token, must): it is reviewed before the body is read too,
 * and only ever opens the agent routes of the node it is bound to. */

struct crl_set;

struct http_config {
    const char *listen;                         /* "ADDR:PORT" */
    const char *tls_cert, *tls_key, *client_ca; /* PEM files */
    bool insecure_plain_http;                   /* demos only: no TLS, no roles */
    unsigned threads;
    unsigned max_connections; /* 0: HTTP_CONNECTIONS_DEFAULT */
    /* Authenticated connections of one client certificate (its role and
     * CN); 0: HTTP_CONNECTIONS_PER_CERT_DEFAULT. None without TLS. */
    unsigned max_connections_per_cert;
    uint64_t max_body_memory; /* 0: HTTP_BODY_MEMORY_DEFAULT */
    struct crl_set *crl;      /* revoked client certificates, or NULL (borrowed) */
    /* Agents by bearer token (--agent-auth token|either, agent-auth.h), or
     * NULL: by client certificate only. Borrowed. */
    struct agent_auth *agent_auth;
};

struct http_server;

int http_start(const struct http_config *cfg, struct engine *e, struct http_server **ret);
/* Stop accepting, finish requests in flight, free. */
void http_stop(struct http_server *s);
/* The bound port (useful with port 0). */
uint16_t http_port(const struct http_server *s);

#endif
