/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_ADMIT_H
#define KIMA_VERIFIER_HTTP_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Whether the verifier reads a request at all, decided from the request line,
 * the headers and the client certificate alone, before a byte of the body:
 * the role the route needs and the largest body it takes. What passes is
 * judged in full by the dispatcher (http.c); this keeps a client from making
 * the verifier buffer or parse what it would refuse anyway. */

#define HTTP_BODY_MAX          (64u * 1024)
#define HTTP_EVIDENCE_BODY_MAX (96u << 20)
/* Values one request's JSON may hold: an evidence has about 40 (4 banks of
 * PCRs at most), a registration 4. */
#define HTTP_JSON_VALUES_MAX 1024

/* What a client certificate makes its holder (http.c peer_role()). */
enum role {
    ROLE_NONE,
    ROLE_AGENT,
    ROLE_OPERATOR,
    ROLE_REVOKED, /* a certificate of the trusted CA that a CRL revokes: 401 */
};

/* "/v1/nodes/NAME/ACTION" and the like: at most HTTP_PATH_PARTS parts, each
 * shorter than HTTP_PATH_PART_MAX. */
#define HTTP_PATH_PARTS    5
#define HTTP_PATH_PART_MAX 256

/* Split a path into its parts. The count, or -1 when it has an empty part, a
 * part too long or too many. */
int http_split_path(const char *url, char parts[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX]);

struct http_head {
    const char *method, *url;
    enum role role;
    const char *cn;             /* an agent's node name */
    bool no_roles;              /* --insecure-plain-http */
    const char *content_length; /* the header's value, or NULL */
    bool chunked;               /* a Transfer-Encoding header */
};

struct http_admission {
    int status;        /* 0: read the body, else answer this at once */
    const char *error; /* with a status: the answer's error and detail */
    char detail[160];  /* the detail (admitted: empty) */
    uint64_t body_len; /* admitted: the body's length */
    uint64_t body_max; /* the route's cap on it */
};

/* Decide. The checks go in this order: a certificate (401, except /healthz
 * and /readyz), the route's role (403), then the body: none on a route
 * that takes none, a Content-Length (411 for chunked uploads: every kima
 * client sends one) within the route's cap (413). Routes unknown here are
 * admitted with the cap of their method; the dispatcher answers 404. */
void http_admit(const struct http_head *h, struct http_admission *ret);

#endif
