/* SPDX-License-Identifier: Apache-2.0 */
#include "http-admit.h"

#include <stdio.h>
#include <string.h>

#include "parse.h"

int http_split_path(const char *url, char parts[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX]) {
    int n = 0;
    const char *p = url;

    while (*p == '/') {
        p++;
    }
    while (*p && n < HTTP_PATH_PARTS) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= HTTP_PATH_PART_MAX) {
            return -1;
        }
        memcpy(parts[n], p, len);
        parts[n][len] = 0;
        n++;
        p = slash ? slash + 1 : p + len;
    }
    return *p ? -1 : n;
}

static void refuse(struct http_admission *a, int status, const char *error, const char *detail) {
    a->status = status;
    a->error = error;
    snprintf(a->detail, sizeof(a->detail), "%s", detail);
}

/* The role check and the cap of the route. False when refused. */
static bool route(const struct http_head *h, struct http_admission *a) {
    char parts[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX];
    int n = http_split_path(h->url, parts);
    bool get = strcmp(h->method, "GET") == 0, post = strcmp(h->method, "POST") == 0;

    a->body_max = post ? HTTP_BODY_MAX : 0;
    if (n == 1 && get && (strcmp(parts[0], "healthz") == 0 || strcmp(parts[0], "readyz") == 0)) {
        return true;
    }
    if (h->no_roles) {
        if (n == 4 && post && strcmp(parts[0], "v1") == 0 && strcmp(parts[1], "nodes") == 0 &&
            strcmp(parts[3], "evidence") == 0) {
            a->body_max = HTTP_EVIDENCE_BODY_MAX;
        }
        return true;
    }
    if (h->role == ROLE_REVOKED) {
        refuse(a, 401, "unauthenticated", "the client certificate is revoked");
        return false;
    }
    if (h->role == ROLE_NONE) {
        refuse(a, 401, "unauthenticated",
               "a client certificate of the trusted CA with OU kima-agent or kima-operator is "
               "required");
        return false;
    }
    if (n < 2 || strcmp(parts[0], "v1") != 0) {
        return true; /* /metrics (operators) or not found */
    }
    /* Agent endpoints: /v1/nodes/{node}/{action}, the node's own only. */
    if (n == 4 && strcmp(parts[1], "nodes") == 0) {
        if (h->role != ROLE_AGENT || !h->cn || strcmp(h->cn, parts[2]) != 0) {
            refuse(a, 403, "forbidden", "an agent may only act on its own node");
            return false;
        }
        if (post && strcmp(parts[3], "evidence") == 0) {
            a->body_max = HTTP_EVIDENCE_BODY_MAX;
        }
        return true;
    }
    if (h->role != ROLE_OPERATOR) {
        refuse(a, 403, "forbidden", "operator endpoints need an operator certificate");
        return false;
    }
    return true;
}

void http_admit(const struct http_head *h, struct http_admission *a) {
    uint64_t len = 0;

    memset(a, 0, sizeof(*a));
    if (!route(h, a)) {
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
