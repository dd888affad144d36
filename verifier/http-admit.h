/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_ADMIT_H
#define KIMA_VERIFIER_HTTP_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "agent-auth.h"
#include "http-route.h"

/* Whether the verifier reads a request at all, decided from the request line,
 * the headers and the client certificate alone, before a byte of the body:
 * the route (http-route.h), the role it needs and the largest body it takes.
 * What passes is run by the dispatcher (http.c) on the route decided here;
 * this keeps a client from making the verifier buffer or parse what it would
 * refuse anyway. */

/* Values one request's JSON may hold: an evidence has about 40 (4 banks of
 * PCRs at most), a registration 4. */
#define HTTP_JSON_VALUES_MAX 1024

struct http_head {
    const char *method, *url;
    enum role role;
    const char *cn; /* an agent's node name */
    bool no_roles;  /* --insecure-plain-http */
    /* --agent-auth: which credentials an agent may show (for the 401's
     * detail; the token itself is checked before, in http.c) */
    enum agent_auth_mode agent_auth;
    const char *content_length; /* the header's value, or NULL */
    bool chunked;               /* a Transfer-Encoding header */
};

struct http_admission {
    int status;              /* 0: read the body, else answer this at once */
    const char *error;       /* with a status: the answer's error and detail */
    char detail[160];        /* the detail (admitted: empty) */
    const char *allow;       /* with 405: the methods the path takes (an Allow header) */
    uint64_t body_len;       /* admitted: the body's length */
    uint64_t body_max;       /* the route's cap on it */
    struct http_route route; /* what the dispatcher runs when admitted */
};

/* Decide. The checks go in this order: a certificate (401, except /healthz
 * and /readyz), the route's role (403: an agent route of another node, an
 * operator route), the route itself (404 no such path, 405 another
 * method), then the body: none on a route that takes none, a
 * Content-Length (411 for chunked uploads: every kima client sends one)
 * within the route's cap (413). With no_roles only the route and the body
 * are checked. */
void http_admit(const struct http_head *h, struct http_admission *ret);

#endif
