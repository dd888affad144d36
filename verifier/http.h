/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_H
#define KIMA_VERIFIER_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

/* The verifier's HTTPS front (libmicrohttpd, GnuTLS): client certificates
 * give the role. An agent certificate has OU "kima-agent" and the node name
 * as CN and may only use its own /v1/nodes/{node}/... endpoints; an operator
 * certificate has OU "kima-operator". No certificate, another CA, a revoked
 * certificate or the wrong role is refused (401/403). /healthz and /readyz
 * need none. */

#define HTTP_BODY_MAX          (64u * 1024)
#define HTTP_EVIDENCE_BODY_MAX (96u << 20)
/* Values one request's JSON may hold: an evidence has about 40 (4 banks of
 * PCRs at most), a registration 4. */
#define HTTP_JSON_VALUES_MAX 1024

struct crl_set;

struct http_config {
    const char *listen;                         /* "ADDR:PORT" */
    const char *tls_cert, *tls_key, *client_ca; /* PEM files */
    bool insecure_plain_http;                   /* demos only: no TLS, no roles */
    unsigned threads;
    struct crl_set *crl; /* revoked client certificates, or NULL (borrowed) */
};

struct http_server;

int http_start(const struct http_config *cfg, struct engine *e, struct http_server **ret);
/* Stop accepting, finish requests in flight, free. */
void http_stop(struct http_server *s);
/* The bound port (useful with port 0). */
uint16_t http_port(const struct http_server *s);

#endif
