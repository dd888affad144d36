/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_HTTP_ROUTE_H
#define KIMA_VERIFIER_HTTP_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

/* The verifier's routes, from the method and the path alone (pure: no
 * certificate, no body, no state). http_admit() (http-admit.h) checks the
 * caller and the body's length against the route before a byte of the body
 * is read, and http.c's dispatch() calls the engine the route names: one
 * table, so that what is admitted and what is run cannot disagree. */

#define HTTP_BODY_MAX          (64u * 1024)
#define HTTP_EVIDENCE_BODY_MAX (96u << 20)

/* What a client certificate makes its holder (http.c peer_role()). */
enum role {
    ROLE_NONE,
    ROLE_AGENT,
    ROLE_OPERATOR,
    ROLE_METRICS, /* OU kima-metrics: GET /metrics only (a scraper) */
    ROLE_REVOKED, /* a certificate of the trusted CA that a CRL revokes: 401 */
};

/* "/v1/nodes/NAME/ACTION" and the like: at most HTTP_PATH_PARTS parts, each
 * shorter than HTTP_PATH_PART_MAX. */
#define HTTP_PATH_PARTS    5
#define HTTP_PATH_PART_MAX 256

/* Split a path into its parts. The count, or -1 when it has an empty part, a
 * part too long or too many. */
int http_split_path(const char *url, char parts[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX]);

enum http_route_id {
    HTTP_ROUTE_NOT_FOUND,  /* no such path: 404 */
    HTTP_ROUTE_BAD_METHOD, /* a path of the API, another method: 405 with `allow` */
    HTTP_ROUTE_HEALTHZ,    /* GET /healthz */
    HTTP_ROUTE_READYZ,     /* GET /readyz */
    HTTP_ROUTE_METRICS,    /* GET /metrics */
    /* POST /v1/nodes/{node}/{registration,activation,challenges,evidence} */
    HTTP_ROUTE_REGISTRATION,
    HTTP_ROUTE_ACTIVATION,
    HTTP_ROUTE_CHALLENGES,
    HTTP_ROUTE_EVIDENCE,
    HTTP_ROUTE_NODES,            /* GET /v1/nodes */
    HTTP_ROUTE_NODE,             /* GET /v1/nodes/{node} */
    HTTP_ROUTE_NODE_DELETE,      /* DELETE /v1/nodes/{node} */
    HTTP_ROUTE_PODS,             /* GET /v1/pods (?state=) */
    HTTP_ROUTE_POD,              /* GET /v1/pods/{namespace}/{name} */
    HTTP_ROUTE_POD_RESET,        /* POST /v1/pods/{uid}/reset */
    HTTP_ROUTE_POD_MEASUREMENTS, /* GET /v1/pods/{namespace}/{name}/measurements */
    HTTP_ROUTE_POLICIES,         /* GET /v1/policies */
    HTTP_ROUTE_AUDIT_HEAD,       /* GET /v1/audit/head */
};

struct http_route {
    enum http_route_id id;
    /* No certificate needed: /healthz and /readyz. */
    bool anonymous;
    /* Who may use it (also a 404 or 405 path, checked first): ROLE_AGENT the
     * agent whose CN is `node`, ROLE_OPERATOR an operator, ROLE_NONE any
     * valid certificate (a path outside the API: 404 to anyone). */
    enum role role;
    /* ROLE_OPERATOR routes a metrics certificate may use too: /metrics. */
    bool metrics;
    uint64_t body_max;             /* the largest body it takes; 0: none */
    const char *allow;             /* HTTP_ROUTE_BAD_METHOD: the methods the path takes */
    char node[HTTP_PATH_PART_MAX]; /* agent and node routes: the node in the path */
    /* HTTP_ROUTE_POD and HTTP_ROUTE_POD_MEASUREMENTS: the namespace and the
     * name; HTTP_ROUTE_POD_RESET: the UID, in arg[0]. */
    char arg[2][HTTP_PATH_PART_MAX];
};

/* The route of `method` on `url` (the path, without a query) into *ret. */
void http_route(const char *method, const char *url, struct http_route *ret);

#endif
