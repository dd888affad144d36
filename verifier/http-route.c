/* SPDX-License-Identifier: Apache-2.0 */
#include "http-route.h"

#include <stdio.h>
#include <string.h>

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

/* The agent's actions on its node: POST /v1/nodes/{node}/{action}. */
static const struct {
    const char *action;
    enum http_route_id id;
    uint64_t body_max;
} agent_actions[] = {
        {"registration", HTTP_ROUTE_REGISTRATION, HTTP_BODY_MAX},
        {"activation", HTTP_ROUTE_ACTIVATION, HTTP_BODY_MAX},
        {"challenges", HTTP_ROUTE_CHALLENGES, HTTP_BODY_MAX},
        {"evidence", HTTP_ROUTE_EVIDENCE, HTTP_EVIDENCE_BODY_MAX},
};

/* A route the path names when `method` is `want`, else 405 naming `allow`. */
static void by_method(struct http_route *r, const char *method, const char *want,
                      enum http_route_id id, const char *allow) {
    if (strcmp(method, want) == 0) {
        r->id = id;
        r->body_max = strcmp(want, "POST") == 0 ? HTTP_BODY_MAX : 0;
    } else {
        r->id = HTTP_ROUTE_BAD_METHOD;
        r->allow = allow;
    }
}

/* /v1/nodes/{node}/{action}: the agent of that node's, whatever the action
 * (another node's agent and operators get 403, not a map of the API). */
static void agent_route(struct http_route *r, const char *method, const char *node,
                        const char *action) {
    r->role = ROLE_AGENT;
    snprintf(r->node, sizeof(r->node), "%s", node);
    for (size_t i = 0; i < sizeof(agent_actions) / sizeof(agent_actions[0]); i++) {
        if (strcmp(action, agent_actions[i].action) == 0) {
            by_method(r, method, "POST", agent_actions[i].id, "POST");
            if (r->id == agent_actions[i].id) {
                r->body_max = agent_actions[i].body_max;
            }
            return;
        }
    }
}

/* /v1/... other than an agent's: the operators'. */
static void operator_route(struct http_route *r, const char *method,
                           char p[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX], int n) {
    bool get = strcmp(method, "GET") == 0;

    r->role = ROLE_OPERATOR;
    if (n == 2 && strcmp(p[1], "nodes") == 0) {
        by_method(r, method, "GET", HTTP_ROUTE_NODES, "GET");
    } else if (n == 3 && strcmp(p[1], "nodes") == 0) {
        snprintf(r->node, sizeof(r->node), "%s", p[2]);
        if (strcmp(method, "DELETE") == 0) {
            r->id = HTTP_ROUTE_NODE_DELETE;
        } else {
            by_method(r, method, "GET", HTTP_ROUTE_NODE, "GET, DELETE");
        }
    } else if (n == 2 && strcmp(p[1], "pods") == 0) {
        by_method(r, method, "GET", HTTP_ROUTE_PODS, "GET");
    } else if (n == 4 && strcmp(p[1], "pods") == 0) {
        /* GET names a pod (one called "reset" too); POST .../reset a UID. */
        bool reset = strcmp(p[3], "reset") == 0;
        if (reset && strcmp(method, "POST") == 0) {
            r->id = HTTP_ROUTE_POD_RESET;
            r->body_max = HTTP_BODY_MAX;
            snprintf(r->arg[0], sizeof(r->arg[0]), "%s", p[2]);
        } else if (get) {
            r->id = HTTP_ROUTE_POD;
            snprintf(r->arg[0], sizeof(r->arg[0]), "%s", p[2]);
            snprintf(r->arg[1], sizeof(r->arg[1]), "%s", p[3]);
        } else {
            r->id = HTTP_ROUTE_BAD_METHOD;
            r->allow = reset ? "GET, POST" : "GET";
        }
    } else if (n == 5 && strcmp(p[1], "pods") == 0 && strcmp(p[4], "measurements") == 0) {
        by_method(r, method, "GET", HTTP_ROUTE_POD_MEASUREMENTS, "GET");
        if (r->id == HTTP_ROUTE_POD_MEASUREMENTS) {
            snprintf(r->arg[0], sizeof(r->arg[0]), "%s", p[2]);
            snprintf(r->arg[1], sizeof(r->arg[1]), "%s", p[3]);
        }
    } else if (n == 2 && strcmp(p[1], "policies") == 0) {
        by_method(r, method, "GET", HTTP_ROUTE_POLICIES, "GET");
    } else if (n == 3 && strcmp(p[1], "audit") == 0 && strcmp(p[2], "head") == 0) {
        by_method(r, method, "GET", HTTP_ROUTE_AUDIT_HEAD, "GET");
    }
}

void http_route(const char *method, const char *url, struct http_route *r) {
    char p[HTTP_PATH_PARTS][HTTP_PATH_PART_MAX];
    int n = http_split_path(url, p);

    memset(r, 0, sizeof(*r));
    r->id = HTTP_ROUTE_NOT_FOUND;
    r->role = ROLE_NONE;
    if (n == 1 && (strcmp(p[0], "healthz") == 0 || strcmp(p[0], "readyz") == 0)) {
        by_method(r, method, "GET", p[0][0] == 'h' ? HTTP_ROUTE_HEALTHZ : HTTP_ROUTE_READYZ, "GET");
        r->anonymous = r->id != HTTP_ROUTE_BAD_METHOD;
    } else if (n == 1 && strcmp(p[0], "metrics") == 0) {
        r->role = ROLE_OPERATOR;
        r->metrics = true;
        by_method(r, method, "GET", HTTP_ROUTE_METRICS, "GET");
    } else if (n >= 2 && strcmp(p[0], "v1") == 0) {
        if (n == 4 && strcmp(p[1], "nodes") == 0) {
            agent_route(r, method, p[2], p[3]);
        } else {
            operator_route(r, method, p, n);
        }
    }
}
