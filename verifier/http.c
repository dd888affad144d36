/* SPDX-License-Identifier: Apache-2.0 */
#include "http.h"

#include "engine-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "buf.h"
#include "crl.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"

struct http_server {
    struct MHD_Daemon *d;
    struct engine *e;
    struct crl_set *crl;
    bool plain;
    uint16_t port;
    char *cert, *key, *ca;
};

struct request {
    struct kbuf body;
    bool too_large;
};

enum role {
    ROLE_NONE,
    ROLE_AGENT,
    ROLE_OPERATOR,
    ROLE_REVOKED, /* a certificate of the trusted CA that a CRL revokes: 401 */
};

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    log_msgv(LOG_LEVEL_WARN, fmt, ap);
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result ret;

    json_decref(body);
    if (!text) {
        return MHD_NO;
    }
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *text,
                                 const char *type) {
    struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", type);
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *error,
                                  const char *detail) {
    json_t *j;
    engine_error(&j, status, error, detail);
    return send_json(c, status, j);
}

/* The peer's role and, for agents, its node name (the CN). A certificate
 * that does not verify as a TLS client certificate of the trusted CA, or
 * none, gives no role; a revoked one (or one --crl cannot check) gives
 * ROLE_REVOKED. */
static enum role peer_role(struct http_server *s, struct MHD_Connection *c, char *cn, size_t cnsz) {
    const union MHD_ConnectionInfo *ci;
    gnutls_session_t session;
    const gnutls_datum_t *certs;
    unsigned int ncerts = 0, status = 0;
    gnutls_x509_crt_t crt;
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (void *)GNUTLS_KP_TLS_WWW_CLIENT};
    char ou[128];
    size_t oulen = sizeof(ou), len = cnsz;
    enum role role = ROLE_NONE;

    if (s->plain) {
        cn[0] = 0;
        return ROLE_OPERATOR;
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) {
        return ROLE_NONE;
    }
    session = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_verify_peers(session, &purpose, 1, &status) != 0 || status != 0) {
        return ROLE_NONE;
    }
    certs = gnutls_certificate_get_peers(session, &ncerts);
    if (!certs || ncerts == 0 || gnutls_x509_crt_init(&crt) != 0) {
        return ROLE_NONE;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME, 0, 0, ou,
                                      &oulen) == 0 &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) == 0) {
        if (strcmp(ou, "kima-agent") == 0 && engine_valid_node_name(cn)) {
            role = ROLE_AGENT;
        } else if (strcmp(ou, "kima-operator") == 0) {
            role = ROLE_OPERATOR;
        }
    }
    if (role != ROLE_NONE && crl_check(s->crl, crt) != 0) {
        role = ROLE_REVOKED;
    }
    gnutls_x509_crt_deinit(crt);
    return role;
}

/* Split "/v1/nodes/NAME/ACTION" and the like into parts (at most 5). */
static int split_path(const char *url, char parts[5][256]) {
    int n = 0;
    const char *p = url;

    while (*p == '/') {
        p++;
    }
    while (*p && n < 5) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= 256) {
            return -1;
        }
        memcpy(parts[n], p, len);
        parts[n][len] = 0;
        n++;
        p = slash ? slash + 1 : p + len;
    }
    return *p ? -1 : n;
}

static enum MHD_Result dispatch(struct http_server *s, struct MHD_Connection *c, const char *method,
                                const char *url, struct request *rq) {
    char parts[5][256], cn[256] = "";
    enum role role = peer_role(s, c, cn, sizeof(cn));
    json_auto_t *req = NULL;
    json_t *resp = NULL;
    int n = split_path(url, parts), status;
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;

    if (n == 1 && get && (strcmp(parts[0], "healthz") == 0 || strcmp(parts[0], "readyz") == 0)) {
        return send_text(c, 200, "ok\n", "text/plain");
    }
    if (role == ROLE_REVOKED) {
        return send_error(c, 401, "unauthenticated", "the client certificate is revoked");
    }
    if (role == ROLE_NONE) {
        return send_error(c, 401, "unauthenticated",
                          "a client certificate of the trusted CA with OU kima-agent or "
                          "kima-operator is required");
    }
    if (n < 2 || strcmp(parts[0], "v1") != 0) {
        if (n == 1 && get && strcmp(parts[0], "metrics") == 0 && role == ROLE_OPERATOR) {
            char *text = NULL;
            enum MHD_Result r;
            if (engine_metrics(s->e, &text) < 0) {
                return send_error(c, 500, "internal", "metrics");
            }
            r = send_text(c, 200, text, "text/plain; version=0.0.4");
            free(text);
            return r;
        }
        return send_error(c, 404, "not found", url);
    }
    if (rq->body.len) {
        char err[256];
        if (json_parse_bounded((const char *)rq->body.data, rq->body.len, JSON_DEPTH_MAX,
                               HTTP_JSON_VALUES_MAX, &req, err, sizeof(err)) < 0) {
            return send_error(c, 400, "malformed JSON", err);
        }
    } else {
        req = json_object();
    }
    /* Agent endpoints: /v1/nodes/{node}/{registration,activation,challenges,evidence} */
    if (n == 4 && strcmp(parts[1], "nodes") == 0) {
        const char *node = parts[2], *action = parts[3];
        if (!post) {
            return send_error(c, 405, "method not allowed", "POST");
        }
        if (!s->plain && (role != ROLE_AGENT || strcmp(cn, node) != 0)) {
            return send_error(c, 403, "forbidden", "an agent may only act on its own node");
        }
        if (strcmp(action, "registration") == 0) {
            status = engine_registration(s->e, node, req, &resp);
        } else if (strcmp(action, "activation") == 0) {
            status = engine_activation(s->e, node, req, &resp);
        } else if (strcmp(action, "challenges") == 0) {
            status = engine_challenge(s->e, node, &resp);
        } else if (strcmp(action, "evidence") == 0) {
            status = engine_evidence(s->e, node, req, &resp);
        } else {
            return send_error(c, 404, "not found", url);
        }
        return send_json(c, status, resp);
    }
    if (role != ROLE_OPERATOR) {
        return send_error(c, 403, "forbidden", "operator endpoints need an operator certificate");
    }
    if (n == 2 && get && strcmp(parts[1], "nodes") == 0) {
        status = engine_nodes(s->e, &resp);
    } else if (n == 3 && strcmp(parts[1], "nodes") == 0 && get) {
        status = engine_node(s->e, parts[2], &resp);
    } else if (n == 3 && strcmp(parts[1], "nodes") == 0 && strcmp(method, "DELETE") == 0) {
        status = engine_node_delete(s->e, parts[2], cn, &resp);
    } else if (n == 2 && get && strcmp(parts[1], "pods") == 0) {
        status = engine_pods(s->e, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state"),
                             &resp);
    } else if (n == 4 && get && strcmp(parts[1], "pods") == 0) {
        status = engine_pod(s->e, parts[2], parts[3], &resp);
    } else if (n == 4 && post && strcmp(parts[1], "pods") == 0 && strcmp(parts[3], "reset") == 0) {
        status = engine_pod_reset(s->e, parts[2], req, cn, &resp);
    } else if (n == 2 && get && strcmp(parts[1], "policies") == 0) {
        status = engine_policies(s->e, &resp);
    } else {
        return send_error(c, 404, "not found", url);
    }
    return send_json(c, status, resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
    struct http_server *s = cls;
    struct request *rq = *con_cls;
    (void)version;

    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq) {
            return MHD_NO;
        }
        kbuf_init(&rq->body, strstr(url, "/evidence") ? HTTP_EVIDENCE_BODY_MAX : HTTP_BODY_MAX);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*data_size) {
        if (!rq->too_large && kbuf_append(&rq->body, data, *data_size) < 0) {
            rq->too_large = true;
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (rq->too_large) {
        return send_error(c, 413, "request too large", "the body is over its cap");
    }
    return dispatch(s, c, method, url, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct request *rq = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (rq) {
        kbuf_free(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static int parse_listen(const char *listen, struct sockaddr_in *sa) {
    const char *colon = strrchr(listen, ':');
    char host[64];
    uint64_t port;

    if (!colon || (size_t)(colon - listen) >= sizeof(host) ||
        parse_u64_range(colon + 1, 0, 65535, &port) < 0) {
        return -EINVAL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1) {
        return -EINVAL;
    }
    return 0;
}

static char *read_pem(const char *path) {
    uint8_t *data = NULL;
    size_t len;
    if (!path || read_file_capped(path, 1u << 20, &data, &len) < 0) {
        return NULL;
    }
    return (char *)data;
}

int http_start(const struct http_config *cfg, struct engine *e, struct http_server **ret) {
    struct http_server *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa;
    unsigned flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    const union MHD_DaemonInfo *di;

    if (!s) {
        return -ENOMEM;
    }
    if (parse_listen(cfg->listen, &sa) < 0) {
        log_error("--listen %s is not ADDR:PORT (IPv4)", cfg->listen);
        free(s);
        return -EINVAL;
    }
    s->e = e;
    s->crl = cfg->crl;
    s->plain = cfg->insecure_plain_http;
    if (s->plain) {
        s->d = MHD_start_daemon(
                flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
                cfg->threads ? cfg->threads : 2, MHD_OPTION_CONNECTION_LIMIT, 1024,
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, 256, MHD_OPTION_CONNECTION_TIMEOUT, 30,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    } else {
        s->cert = read_pem(cfg->tls_cert);
        s->key = read_pem(cfg->tls_key);
        s->ca = read_pem(cfg->client_ca);
        if (!s->cert || !s->key || !s->ca) {
            log_error("TLS needs --tls-cert, --tls-key and --client-ca (readable PEM files)");
            http_stop(s);
            return -EINVAL;
        }
        s->d = MHD_start_daemon(
                flags | MHD_USE_TLS, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                mhd_logger, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
                cfg->threads ? cfg->threads : 2, MHD_OPTION_CONNECTION_LIMIT, 1024,
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, 256, MHD_OPTION_CONNECTION_TIMEOUT, 30,
                MHD_OPTION_HTTPS_MEM_CERT, s->cert, MHD_OPTION_HTTPS_MEM_KEY, s->key,
                MHD_OPTION_HTTPS_MEM_TRUST, s->ca, MHD_OPTION_HTTPS_PRIORITIES,
                "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_NOTIFY_COMPLETED,
                on_completed, s, MHD_OPTION_END);
    }
    if (!s->d) {
        log_error("cannot listen on %s", cfg->listen);
        http_stop(s);
        return -EADDRINUSE;
    }
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    *ret = s;
    return 0;
}

void http_stop(struct http_server *s) {
    if (!s) {
        return;
    }
    if (s->d) {
        /* Stop accepting, then give requests in flight up to 10 s. */
        MHD_quiesce_daemon(s->d);
        for (int i = 0; i < 100; i++) {
            const union MHD_DaemonInfo *di =
                    MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
            struct timespec ts = {0, 100 * 1000 * 1000};
            if (!di || di->num_connections == 0) {
                break;
            }
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(s->d);
    }
    free(s->cert);
    if (s->key) {
        memset(s->key, 0, strlen(s->key));
    }
    free(s->key);
    free(s->ca);
    free(s);
}

uint16_t http_port(const struct http_server *s) {
    return s->port;
}
