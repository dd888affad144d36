/* SPDX-License-Identifier: Apache-2.0 */
#include "http-admit.h"

#include <stdio.h>
#include <string.h>

#include "parse.h"

static void refuse(struct http_admission *a, int status, const char *error, const char *detail) {
    a->status = status;
    a->error = error;
    snprintf(a->detail, sizeof(a->detail), "%s", detail);
}

/* The caller against the route: false (refused) without a certificate,
 * with a revoked one, or without the route's role. */
static bool caller_may(const struct http_head *h, const struct http_route *r,
                       struct http_admission *a) {
    if (r->anonymous || h->no_roles) {
        return true;
    }
    if (h->role == ROLE_REVOKED) {
        refuse(a, 401, "unauthenticated", "the client certificate is revoked");
        return false;
    }
    if (h->role == ROLE_METRICS) {
        /* A scraper's certificate: /metrics, and a 404 or 405 elsewhere
         * outside the API; nothing an operator or an agent may do. */
        if (r->metrics || r->role == ROLE_NONE) {
            return true;
        }
        refuse(a, 403, "forbidden",
               "a metrics certificate (OU kima-metrics) may only read /metrics");
        return false;
    }
    if (h->role != ROLE_AGENT && h->role != ROLE_OPERATOR && r->role == ROLE_AGENT &&
        h->agent_auth != AGENT_AUTH_CERT) {
        refuse(a, 401, "unauthenticated",
               h->agent_auth == AGENT_AUTH_TOKEN
                       ? "an agent needs a bearer token (its projected ServiceAccount token)"
                       : "an agent needs a bearer token (its projected ServiceAccount token) or "
                         "a client certificate of the trusted CA with OU kima-agent");
        return false;
    }
    if (h->role != ROLE_AGENT && h->role != ROLE_OPERATOR) {
        refuse(a, 401, "unauthenticated",
               "a client certificate of the trusted CA with OU kima-agent or kima-operator is "
               "required");
        return false;
    }
    if (r->role == ROLE_AGENT && (h->role != ROLE_AGENT || !h->cn || strcmp(h->cn, r->node) != 0)) {
        refuse(a, 403, "forbidden", "an agent may only act on its own node");
        return false;
    }
    if (r->role == ROLE_OPERATOR && h->role != ROLE_OPERATOR) {
        refuse(a, 403, "forbidden", "operator endpoints need an operator certificate");
        return false;
    }
    return true;
}

/* 404 or 405, once the caller may know. */
static bool route_exists(const struct http_head *h, const struct http_route *r,
                         struct http_admission *a) {
    if (r->id == HTTP_ROUTE_NOT_FOUND) {
        refuse(a, 404, "not found", h->url);
        return false;
    }
    if (r->id == HTTP_ROUTE_BAD_METHOD) {
        char detail[sizeof(a->detail)];
        snprintf(detail, sizeof(detail), "%s takes %s", h->url, r->allow);
        refuse(a, 405, "method not allowed", detail);
        a->allow = r->allow;
        return false;
    }
    return true;
}

void http_admit(const struct http_head *h, struct http_admission *a) {
    uint64_t len = 0;

    memset(a, 0, sizeof(*a));
    http_route(h->method, h->url, &a->route);
    a->body_max = a->route.body_max;
    if (!caller_may(h, &a->route, a) || !route_exists(h, &a->route, a)) {
        return;
    }
    if (h->chunked) {
        if (a->body_max == 0) {
            refuse(a, 413, "request too large", "this request takes no body");
        } else {
            refuse(a, 411, "length required",
                   "a request body needs a Content-Length (chunked uploads are not taken)");
        }
        return;
    }
    if (h->content_length && parse_u64(h->content_length, &len) < 0) {
        refuse(a, 400, "malformed request", "the Content-Length is not a number");
        return;
    }
    if (len > a->body_max) {
        char detail[sizeof(a->detail)];
        if (a->body_max == 0) {
            snprintf(detail, sizeof(detail), "this request takes no body");
        } else {
            snprintf(detail, sizeof(detail),
                     "a body of %llu bytes is over this request's cap of %llu bytes",
                     (unsigned long long)len, (unsigned long long)a->body_max);
        }
        refuse(a, 413, "request too large", detail);
        return;
    }
    a->body_len = len;
}
