/* SPDX-License-Identifier: Apache-2.0 */
#include "http.h"

#include "engine-internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "agent-auth.h"
#include "buf.h"
#include "crl.h"
#include "fileio.h"
#include "http-limits.h"
#include "http-tls.h"
#include "json-util.h"
#include "hex.h"
#include "log.h"
#include "parse.h"
#include "ratelimit.h"
#include "time-util.h"

/* Retry-After of a draining verifier's 503: another replica answers at once. */
#define HTTP_DRAIN_RETRY_AFTER "1"

/* How often the deadline of connections without a request is checked. */
#define HTTP_WATCHDOG_TICK_MS 100

/* peer_role()'s verdict on a certificate, kept on its connection: valid
 * while the connection shows the same certificate (its SHA-256), the CRL
 * set is the one it was checked against (crl_generation()) and the
 * certificate has not expired. The CA list does not change while the
 * verifier runs. */
struct peer_verdict {
    bool valid;
    enum role role;
    uint8_t fingerprint[32];
    uint64_t crl_generation;
    time_t not_after;
    char *cn; /* malloc'd */
};

/* A connection from accept to close: libmicrohttpd's socket context. */
struct conn {
    struct conn *prev, *next; /* in http_server.waiting while its deadline runs */
    struct http_addr addr;
    int fd;
    int64_t deadline_ms;
    bool waiting; /* in the list: no request yet */
    bool unauth;  /* counted in http_server.unauth: no valid certificate yet */
    /* Counted in http_server.clients under this identity (client_id(),
     * malloc'd) once a request showed a valid certificate; NULL before. The
     * strings are allocated only when needed: ten thousand kept-alive
     * connections hold this struct each (docs/verifier.md, "Many nodes"). */
    char *client;
    /* While a body is read: in http_server.uploading, with its deadline and
     * the agent's node (one upload a node at a time). */
    struct conn *uprev, *unext;
    bool uploading;
    int64_t body_deadline_ms;
    char *cn; /* malloc'd; "" for an operator */
    /* The verdict of peer_role() on this connection's client certificate,
     * kept while nothing it rests on changed (peer_role_cached()). Only the
     * thread serving the connection touches it. */
    struct peer_verdict verdict;
};

struct http_server {
    struct MHD_Daemon *d;
    struct engine *e;
    struct crl_set *crl;
    struct agent_auth *auth; /* agents by token too, or NULL (borrowed) */
    size_t head_max;         /* HTTP_REQUEST_HEAD_MAX, or _TOKEN with tokens */
    bool plain;
    uint16_t port;
    char *cert, *key, *ca;
    struct http_tickets *tickets; /* session resumption; NULL without TLS */
    struct http_budget budget;

    /* Guards unauth, the waiting list and the list fields of every conn.
     * While a conn is on the list its fd is open and its own: libmicrohttpd
     * reports a connection closed (which takes it off) before it closes the
     * fd, so the watchdog may shut down a listed fd under the lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the watchdog's tick, or stop */
    bool stopping;
    struct http_unauth *unauth;
    struct http_clients *clients;             /* authenticated, by certificate */
    struct conn *waiting_head, *waiting_tail; /* by deadline */
    struct conn *uploading;                   /* bodies being read, any order */
    unsigned unauth_max, unauth_per_address, per_client;
    pthread_t watchdog;
    bool watchdog_started, lock_ready;

    pthread_mutex_t log_lock;
    struct ratelimit log_limit;
};

struct request {
    struct kbuf body;
    uint64_t reserved; /* bytes of the body budget this request holds */
    struct json_scan scan;
    enum role role;
    char cn[256];
    struct http_route route; /* admitted: what dispatch() runs */
    int refused;             /* the body broke a cap while arriving: this status */
    const char *refused_error;
    char refused_detail[200];
};

/* A line a peer can provoke: through the rate limit, and the count of lines
 * left out comes first when a new interval opens. */
static void log_noisy(struct http_server *s, const char *fmt, ...) _printf_(2, 3);
static void log_noisy(struct http_server *s, const char *fmt, ...) {
    uint64_t held;
    bool show;
    va_list ap;

    pthread_mutex_lock(&s->log_lock);
    show = ratelimit_allow(&s->log_limit, time_mono_ms(), &held);
    pthread_mutex_unlock(&s->log_lock);
    if (held) {
        log_warn("%llu more lines about connections were left out (at most %u per %d s)",
                 (unsigned long long)held, HTTP_LOG_BURST, HTTP_LOG_INTERVAL_MS / 1000);
    }
    if (show) {
        va_start(ap, fmt);
        log_msgv(LOG_LEVEL_WARN, fmt, ap);
        va_end(ap);
    }
}

static void log_noisy_flush(struct http_server *s) {
    uint64_t held;

    pthread_mutex_lock(&s->log_lock);
    held = ratelimit_flush(&s->log_limit, time_mono_ms());
    pthread_mutex_unlock(&s->log_lock);
    if (held) {
        log_warn("%llu more lines about connections were left out (at most %u per %d s)",
                 (unsigned long long)held, HTTP_LOG_BURST, HTTP_LOG_INTERVAL_MS / 1000);
    }
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        msg[--n] = 0;
    }
    log_noisy(cls, "libmicrohttpd: %s", msg);
}

/* A connection no valid certificate has spoken on yet is closed once it
 * is answered: the clients without one (probes, refused requests) have no
 * need to keep it, and every connection then has the one idle timeout that
 * libmicrohttpd keeps in order (a timeout of its own per connection puts it
 * on a list libmicrohttpd scans in full at every turn of its loop: with
 * thousands of agents that scan was a third of the verifier's CPU). Only
 * the thread serving the connection writes k->unauth. */
static void close_unless_authenticated(struct MHD_Connection *c, struct MHD_Response *r) {
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const struct conn *k = ci ? ci->socket_context : NULL;

    if (k && k->unauth) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    }
}

/* retry_after: seconds for a Retry-After header, 0 for none; allow: an
 * Allow header, or NULL. Takes body. */
static enum MHD_Result queue_json(struct MHD_Connection *c, int status, json_t *body,
                                  unsigned retry_after, const char *allow) {
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result ret;

    json_decref(body);
    if (!text) {
        return MHD_NO;
    }
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after) {
        char v[16];
        snprintf(v, sizeof(v), "%u", retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (allow) {
        MHD_add_response_header(r, "Allow", allow);
    }
    close_unless_authenticated(c, r);
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *body) {
    return queue_json(c, status, body, 0, NULL);
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *text,
                                 const char *type) {
    struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", type);
    close_unless_authenticated(c, r);
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *error,
                                  const char *detail) {
    return send_json(c, status, json_pack("{s:s,s:s}", "error", error, "detail", detail));
}

/* A draining verifier's refusal (ENGINE_DRAINING): 503, a retry soon,
 * and the connection closed, so that an agent's next request goes through
 * the Service again, to a replica that is not draining. Takes body. */
static enum MHD_Result send_draining(struct MHD_Connection *c, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result ret;

    json_decref(body);
    r = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Retry-After", HTTP_DRAIN_RETRY_AFTER);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(c, 503, r);
    MHD_destroy_response(r);
    return ret;
}

/* http_admit()'s refusal; a 405 names the methods the path takes. */
static enum MHD_Result send_refusal(struct MHD_Connection *c, const struct http_admission *a) {
    return queue_json(c, a->status, json_pack("{s:s,s:s}", "error", a->error, "detail", a->detail),
                      0, a->allow);
}

/* The one place an engine status becomes an HTTP status. */
static int http_status(enum engine_status st) {
    switch (st) {
    case ENGINE_OK:
        return 200;
    case ENGINE_CREATED:
        return 201;
    case ENGINE_MALFORMED:
        return 400;
    case ENGINE_REFUSED:
        return 403;
    case ENGINE_NOT_FOUND:
        return 404;
    case ENGINE_CONFLICT:
        return 409;
    case ENGINE_TOO_LARGE:
        return 413;
    case ENGINE_TOO_SOON:
        return 429;
    case ENGINE_DRAINING:
        return 503;
    case ENGINE_FAILED:
        break;
    }
    return 500;
}

/* The peer's role and, for agents, its node name (the CN). A certificate
 * that does not verify as a TLS client certificate of the trusted CA, or
 * none, gives no role; a revoked one (or one --crl cannot check) gives
 * ROLE_REVOKED. */
static enum role peer_role(struct http_server *s, struct MHD_Connection *c, char *cn, size_t cnsz,
                           time_t *ret_not_after) {
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
        } else if (strcmp(ou, "kima-metrics") == 0) {
            role = ROLE_METRICS;
        }
        *ret_not_after = gnutls_x509_crt_get_expiration_time(crt);
    }
    if (role != ROLE_NONE && crl_check(s->crl, crt) != 0) {
        uint8_t serial[64];
        size_t slen = sizeof(serial);
        char hex[2 * sizeof(serial) + 1] = "?";
        gnutls_datum_t dn = {0};
        gnutls_x509_crt_get_dn3(crt, &dn, 0);
        if (gnutls_x509_crt_get_serial(crt, serial, &slen) == 0) {
            hex_encode(serial, slen, hex);
        }
        log_noisy(s, "client certificate refused: %s (serial %s) is revoked",
                  dn.data ? (const char *)dn.data : "?", hex);
        gnutls_free(dn.data);
        role = ROLE_REVOKED;
    }
    gnutls_x509_crt_deinit(crt);
    return role;
}

/* The connection's own state (conn_started()), or NULL. */
static struct conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The SHA-256 of the client certificate the connection's TLS session
 * holds; false when there is none. */
static bool peer_fingerprint(struct MHD_Connection *c, uint8_t fp[32]) {
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    const gnutls_datum_t *certs;
    unsigned int n = 0;

    if (!ci || !ci->tls_session) {
        return false;
    }
    certs = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n);
    return certs && n > 0 &&
           gnutls_hash_fast(GNUTLS_DIG_SHA256, certs[0].data, certs[0].size, fp) == 0;
}

static void verdict_clear(struct peer_verdict *v) {
    free(v->cn);
    *v = (struct peer_verdict){0};
}

#define HTTP_VERDICT_KEEP_S 3600

/* peer_role() for a request of connection k: its verdict on the
 * connection's certificate is taken again while it holds (struct
 * peer_verdict; an hour at most), so that an agent's kept-alive connection does not verify
 * its certificate chain at every round. A certificate revoked since is
 * caught: a new CRL set makes every verdict stale. */
static enum role peer_role_cached(struct http_server *s, struct MHD_Connection *c, struct conn *k,
                                  char *cn, size_t cnsz) {
    struct peer_verdict *v = k ? &k->verdict : NULL;
    uint64_t generation = crl_generation(s->crl);
    time_t not_after = 0;
    uint8_t fp[32];
    enum role role;

    if (!v || s->plain || !peer_fingerprint(c, fp)) {
        return peer_role(s, c, cn, cnsz, &not_after);
    }
    if (v->valid && v->crl_generation == generation && time(NULL) < v->not_after &&
        memcmp(v->fingerprint, fp, sizeof(fp)) == 0) {
        snprintf(cn, cnsz, "%s", v->cn);
        return v->role;
    }
    verdict_clear(v);
    role = peer_role(s, c, cn, cnsz, &not_after);
    if (role == ROLE_NONE || not_after <= 0) {
        return role; /* decided again at the next request */
    }
    v->cn = strdup(cn);
    if (v->cn) {
        v->valid = true;
        v->role = role;
        memcpy(v->fingerprint, fp, sizeof(fp));
        v->crl_generation = generation;
        /* At most an hour: the leaf's expiry alone would keep a verdict
         * whose chain stopped verifying (a CA that expires first). */
        v->not_after = not_after < time(NULL) + HTTP_VERDICT_KEEP_S
                               ? not_after
                               : time(NULL) + HTTP_VERDICT_KEEP_S;
    }
    return role;
}

/* The body as JSON: an empty object when there is none. Only admitted
 * requests get here: their role was checked before a byte of the body was
 * read (on_headers), so this parses for a caller who may send it. */
static int request_json(const struct request *rq, json_t **ret, char *err, size_t errsz) {
    if (rq->body.len == 0) {
        *ret = json_object();
        return *ret ? 0 : -ENOMEM;
    }
    return json_parse_bounded((const char *)rq->body.data, rq->body.len, JSON_DEPTH_MAX,
                              HTTP_JSON_VALUES_MAX, ret, err, errsz);
}

/* Run the route http_admit() chose (rq->route) and answer. Reached only for
 * an admitted request: the caller's certificate and role are checked. */
static enum MHD_Result dispatch(struct http_server *s, struct MHD_Connection *c,
                                const struct request *rq) {
    const struct http_route *r = &rq->route;
    json_auto_t *req = NULL;
    json_t *resp = NULL;
    enum engine_status st;
    char err[256];

    switch (r->id) {
    case HTTP_ROUTE_HEALTHZ:
        return send_text(c, 200, "ok\n", "text/plain");
    case HTTP_ROUTE_READYZ:
        /* Draining: the Service sends new connections elsewhere. */
        return engine_draining(s->e) ? send_text(c, 503, "draining\n", "text/plain")
                                     : send_text(c, 200, "ok\n", "text/plain");
    case HTTP_ROUTE_METRICS: {
        char *text = NULL;
        enum MHD_Result ret;
        if (engine_metrics(s->e, &text) < 0) {
            return send_error(c, 500, "internal", "metrics");
        }
        ret = send_text(c, 200, text, "text/plain; version=0.0.4");
        free(text);
        return ret;
    }
    case HTTP_ROUTE_NOT_FOUND:
    case HTTP_ROUTE_BAD_METHOD:
        /* http_admit() answered these; never here. */
        return send_error(c, 404, "not found", "no such route");
    default:
        break;
    }
    if (request_json(rq, &req, err, sizeof(err)) < 0) {
        return send_error(c, 400, "malformed JSON", err);
    }
    switch (r->id) {
    case HTTP_ROUTE_REGISTRATION:
        st = engine_registration(s->e, r->node, req, &resp);
        break;
    case HTTP_ROUTE_ACTIVATION:
        st = engine_activation(s->e, r->node, req, &resp);
        break;
    case HTTP_ROUTE_CHALLENGES:
        st = engine_challenge(s->e, r->node, &resp);
        break;
    case HTTP_ROUTE_EVIDENCE:
        st = engine_evidence(s->e, r->node, req, &resp);
        break;
    case HTTP_ROUTE_NODES:
        st = engine_nodes(s->e, &resp);
        break;
    case HTTP_ROUTE_NODE:
        st = engine_node(s->e, r->node, &resp);
        break;
    case HTTP_ROUTE_NODE_DELETE:
        st = engine_node_delete(s->e, r->node, rq->cn, &resp);
        break;
    case HTTP_ROUTE_PODS:
        st = engine_pods(s->e, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state"),
                         &resp);
        break;
    case HTTP_ROUTE_POD:
        st = engine_pod(s->e, r->arg[0], r->arg[1], &resp);
        break;
    case HTTP_ROUTE_POD_MEASUREMENTS:
        st = engine_pod_measurements(s->e, r->arg[0], r->arg[1], &resp);
        break;
    case HTTP_ROUTE_POD_RESET:
        st = engine_pod_reset(s->e, r->arg[0], req, rq->cn, &resp);
        break;
    case HTTP_ROUTE_POLICIES:
        st = engine_policies(s->e, &resp);
        break;
    case HTTP_ROUTE_AUDIT_HEAD:
        st = engine_audit_head(s->e, &resp);
        break;
    default:
        return send_error(c, 404, "not found", "no such route");
    }
    if (st == ENGINE_DRAINING) {
        return send_draining(c, resp);
    }
    return send_json(c, http_status(st), resp);
}

/* Connections, from accept to close. A new one counts as unauthenticated
 * (http-limits.h) and has HTTP_HANDSHAKE_DEADLINE_MS to send its first
 * request's headers; a request with a valid client certificate makes it
 * authenticated for good (a TLS session keeps its peer). */

static void waiting_unlink(struct http_server *s, struct conn *k) {
    if (!k->waiting) {
        return;
    }
    if (k->prev) {
        k->prev->next = k->next;
    } else {
        s->waiting_head = k->next;
    }
    if (k->next) {
        k->next->prev = k->prev;
    } else {
        s->waiting_tail = k->prev;
    }
    k->prev = k->next = NULL;
    k->waiting = false;
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len) {
    struct http_server *s = cls;
    enum http_unauth_verdict v;
    struct http_addr a;
    char text[64];

    if (http_addr_from_sockaddr(sa, len, &a) < 0) {
        return MHD_NO;
    }
    pthread_mutex_lock(&s->lock);
    v = http_unauth_admit(s->unauth, &a);
    pthread_mutex_unlock(&s->lock);
    if (v == HTTP_UNAUTH_OK) {
        return MHD_YES;
    }
    http_addr_format(&a, text, sizeof(text));
    if (v == HTTP_UNAUTH_FULL) {
        log_noisy(s,
                  "refused a connection from %s: all %u slots for connections without a "
                  "client certificate yet are taken",
                  text, s->unauth_max);
    } else {
        log_noisy(s,
                  "refused a connection from %s: it has %u connections without a client "
                  "certificate yet",
                  text, s->unauth_per_address);
    }
    return MHD_NO;
}

/* Session tickets on a new connection's GnuTLS session: libmicrohttpd
 * reports the connection before its handshake starts. Without them the
 * connection still works, with a full handshake. */
static void conn_tls(struct http_server *s, struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci;

    if (!s->tickets) {
        return;
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session ||
        http_tickets_enable(s->tickets, (gnutls_session_t)ci->tls_session) < 0) {
        log_noisy(s, "a connection without TLS session tickets: it cannot resume later");
    }
}

static void conn_started(struct http_server *s, struct MHD_Connection *c, void **socket_context) {
    const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *peer =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct conn *k = calloc(1, sizeof(*k));
    int r = -ENOMEM;

    if (!fd || !peer) {
        free(k);
        return; /* cannot happen for an accepted socket: nothing to track */
    }
    if (k && (r = http_addr_from_sockaddr(peer->client_addr, sizeof(struct sockaddr_in6),
                                          &k->addr)) == 0) {
        k->fd = fd->connect_fd;
        pthread_mutex_lock(&s->lock);
        r = http_unauth_add(s->unauth, &k->addr);
        if (r == 0) {
            k->unauth = true;
            k->waiting = true;
            k->deadline_ms = time_mono_ms() + HTTP_HANDSHAKE_DEADLINE_MS;
            k->prev = s->waiting_tail;
            if (s->waiting_tail) {
                s->waiting_tail->next = k;
            } else {
                s->waiting_head = k;
            }
            s->waiting_tail = k;
        }
        pthread_mutex_unlock(&s->lock);
    }
    if (r < 0) {
        /* Untracked, it could hold its slot without a deadline: end it now
         * (this is the thread that owns the fd). */
        shutdown(fd->connect_fd, SHUT_RDWR);
        log_noisy(s, "closed a new connection: it cannot be tracked (%s)", strerror(-r));
        free(k);
        return;
    }
    *socket_context = k;
    conn_tls(s, c);
}

static void upload_unlink(struct http_server *s, struct conn *k) {
    if (!k->uploading) {
        return;
    }
    if (k->uprev) {
        k->uprev->unext = k->unext;
    } else {
        s->uploading = k->unext;
    }
    if (k->unext) {
        k->unext->uprev = k->uprev;
    }
    k->uprev = k->unext = NULL;
    k->uploading = false;
    free(k->cn);
    k->cn = NULL;
}

/* A body of `len` bytes starts: it must arrive by its deadline (a base plus
 * a minimum rate), and an agent's node may have one body being received at
 * a time, so that one certificate cannot hold the shared budget with
 * stalled uploads. 0, -EBUSY when that node has one already, or -ENOMEM.
 * The slot is free again once the body is in (upload_end()). */
static int upload_start(struct http_server *s, struct MHD_Connection *c, const struct request *rq,
                        uint64_t len) {
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *k = ci ? ci->socket_context : NULL;
    char *cn;
    bool ok = true;

    if (!k) {
        return 0;
    }
    cn = strdup(rq->role == ROLE_AGENT ? rq->cn : "");
    if (!cn) {
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->lock);
    for (struct conn *o = s->uploading; o && rq->role == ROLE_AGENT; o = o->unext) {
        if (strcmp(o->cn, rq->cn) == 0) {
            ok = false;
            break;
        }
    }
    if (ok && !k->uploading) {
        k->cn = cn;
        cn = NULL;
        k->body_deadline_ms = time_mono_ms() + HTTP_BODY_DEADLINE_BASE_MS +
                              (int64_t)(len / HTTP_BODY_MIN_BYTES_PER_MS);
        k->uprev = NULL;
        k->unext = s->uploading;
        if (s->uploading) {
            s->uploading->uprev = k;
        }
        s->uploading = k;
        k->uploading = true;
    }
    pthread_mutex_unlock(&s->lock);
    free(cn);
    return ok ? 0 : -EBUSY;
}

static void upload_end(struct http_server *s, struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *k = ci ? ci->socket_context : NULL;

    if (k) {
        pthread_mutex_lock(&s->lock);
        upload_unlink(s, k);
        pthread_mutex_unlock(&s->lock);
    }
}

static void conn_closed(struct http_server *s, struct conn *k) {
    pthread_mutex_lock(&s->lock);
    waiting_unlink(s, k);
    upload_unlink(s, k);
    if (k->unauth) {
        http_unauth_del(s->unauth, &k->addr);
    }
    if (k->client) {
        http_clients_del(s->clients, k->client);
    }
    pthread_mutex_unlock(&s->lock);
    free(k->client);
    verdict_clear(&k->verdict);
    free(k);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_started(cls, c, socket_context);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_closed(cls, *socket_context);
        *socket_context = NULL;
    }
}

static const char *role_name(enum role role) {
    return role == ROLE_AGENT ? "agent" : role == ROLE_METRICS ? "metrics" : "operator";
}

/* The identity a client certificate's connections are counted under: the
 * role and the CN, so that an operator named like a node is another
 * client. */
static void client_id(enum role role, const char *cn, char out[HTTP_CLIENT_ID_MAX]) {
    snprintf(out, HTTP_CLIENT_ID_MAX, "%s:%s", role_name(role), cn);
}

/* A request's headers arrived: the deadline is met. The first request with
 * a valid certificate moves the connection out of the unauthenticated pool,
 * gives it the longer idle timeout and counts it for its certificate
 * (--max-connections-per-cert). 0, or -EBUSY when that certificate has its
 * connections already (or another negative errno: it cannot be counted);
 * the connection then stays unauthenticated, and the caller's answer
 * closes it. */
static int conn_request(struct http_server *s, struct MHD_Connection *c, const struct request *rq) {
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *k = ci ? ci->socket_context : NULL;
    bool authenticated =
            rq->role == ROLE_AGENT || rq->role == ROLE_OPERATOR || rq->role == ROLE_METRICS;
    char id[HTTP_CLIENT_ID_MAX] = "", *kept = NULL;
    int r = 0;

    if (!k) {
        return 0;
    }
    if (authenticated && !s->plain && k->unauth) {
        client_id(rq->role, rq->cn, id);
        kept = strdup(id);
        if (!kept) {
            r = -ENOMEM;
        }
    }
    pthread_mutex_lock(&s->lock);
    waiting_unlink(s, k);
    if (r == 0 && authenticated && k->unauth) {
        /* Without TLS there is no certificate to count by. */
        r = s->plain ? 0 : http_clients_add(s->clients, id);
        if (r == 0) {
            http_unauth_del(s->unauth, &k->addr);
            k->unauth = false;
            k->client = kept;
            kept = NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(kept);
    if (r < 0) {
        char addr[64];
        http_addr_format(&k->addr, addr, sizeof(addr));
        if (r == -EBUSY) {
            log_noisy(s,
                      "refused a request from %s: the %s certificate CN=%s has %u connections "
                      "open already (--max-connections-per-cert)",
                      addr, role_name(rq->role), rq->cn, s->per_client);
        } else {
            log_noisy(s, "refused a request from %s: its connection cannot be counted (%s)", addr,
                      strerror(-r));
        }
    }
    return r;
}

/* Ends connections past their deadline. The idle timeout alone would let a
 * peer that trickles a byte now and then keep its slot for ever. */
static void *watchdog(void *arg) {
    struct http_server *s = arg;

    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        int64_t now = time_mono_ms(), next = now + HTTP_WATCHDOG_TICK_MS;
        unsigned ended = 0;
        struct timespec until;

        unsigned slow = 0;

        while (s->waiting_head && s->waiting_head->deadline_ms <= now) {
            struct conn *k = s->waiting_head;
            /* Listed, so the fd is still this connection's (see the lock). */
            shutdown(k->fd, SHUT_RDWR);
            waiting_unlink(s, k);
            ended++;
        }
        for (struct conn *k = s->uploading, *nk; k; k = nk) {
            nk = k->unext;
            if (k->body_deadline_ms <= now) {
                shutdown(k->fd, SHUT_RDWR);
                upload_unlink(s, k);
                slow++;
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (ended) {
            log_noisy(s, "closed %u connections that sent no request within %d ms of connecting",
                      ended, HTTP_HANDSHAKE_DEADLINE_MS);
        }
        if (slow) {
            log_noisy(s,
                      "closed %u connections whose body came slower than %d bytes/ms (after "
                      "%d ms)",
                      slow, HTTP_BODY_MIN_BYTES_PER_MS, HTTP_BODY_DEADLINE_BASE_MS);
        }
        log_noisy_flush(s);
        until.tv_sec = (time_t)(next / 1000);
        until.tv_nsec = (long)(next % 1000) * 1000000;
        pthread_mutex_lock(&s->lock);
        if (!s->stopping) {
            pthread_cond_timedwait(&s->wake, &s->lock, &until);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* The first call, when the headers are in and no byte of the body is read:
 * authenticate, admit (role, then the body's length against the route's
 * cap and the shared budget), or answer at once. An answer queued now makes
 * libmicrohttpd close the connection after it without reading the body. */
static enum MHD_Result add_field_cost(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    size_t *sum = cls;
    (void)kind;
    *sum += strlen(key) + (value ? strlen(value) : 0) + 4 + HTTP_HEAD_FIELD_COST;
    return MHD_YES;
}

/* What the request's head holds in the connection's pool, about. */
static size_t request_head_bytes(struct MHD_Connection *c, const char *url, const char *method) {
    size_t sum = strlen(method) + strlen(url) + 12;
    MHD_get_connection_values(c, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_field_cost, &sum);
    return sum;
}

static enum MHD_Result count_authorization(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value) {
    unsigned *n = cls;
    (void)kind;
    (void)value;
    *n += strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0;
    return MHD_YES;
}

/* With --agent-auth token|either, the caller of an agent route by its
 * bearer token (agent-auth.h): no token leaves the certificate's verdict
 * as it is; a token bound to the route's node makes a caller without a
 * certificate that node's agent; with an agent certificate too, both must
 * hold (admit then checks the certificate's CN against the node as ever).
 * With --agent-auth token an agent certificate counts for nothing. Routes
 * other than an agent's never look at a token: it opens no operator route.
 * More than one Authorization header is 401 whatever they hold: which one
 * a proxy in front would have read is not known.
 * 0 to go on (rq->role, rq->cn set), or the status to answer with detail. */
static int token_identity(struct http_server *s, struct MHD_Connection *c, const char *url,
                          const char *method, struct request *rq, char *detail, size_t detailsz) {
    const char *authz =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const struct conn *k = conn_of(c);
    unsigned n = 0;
    struct http_route route;
    enum agent_auth_result res;

    _Static_assert(sizeof(k->addr.b) == AGENT_AUTH_CLIENT_LEN, "an address as agent-auth takes it");
    http_route(method, url, &route);
    if (route.role != ROLE_AGENT) {
        return 0;
    }
    if (rq->role == ROLE_AGENT && agent_auth_mode(s->auth) == AGENT_AUTH_TOKEN) {
        rq->role = ROLE_NONE;
        rq->cn[0] = 0;
    }
    if (!authz || (rq->role != ROLE_NONE && rq->role != ROLE_AGENT)) {
        return 0;
    }
    if (MHD_get_connection_values(c, MHD_HEADER_KIND, count_authorization, &n) > 1 && n > 1) {
        snprintf(detail, detailsz, "the request has more than one Authorization header");
        log_noisy(s, "refused an agent's token: %s", detail);
        return 401;
    }
    res = agent_auth_check(s->auth, authz, route.node, k ? k->addr.b : NULL, time_mono_ms(),
                           (int64_t)time(NULL), detail, detailsz);
    switch (res) {
    case AGENT_AUTH_OK:
        if (rq->role == ROLE_NONE) {
            rq->role = ROLE_AGENT;
            snprintf(rq->cn, sizeof(rq->cn), "%s", route.node);
        }
        return 0;
    case AGENT_AUTH_UNAUTHENTICATED:
        log_noisy(s, "refused an agent's token: %s", detail);
        return 401;
    case AGENT_AUTH_FORBIDDEN:
        log_noisy(s, "refused an agent's token: %s", detail);
        return 403;
    case AGENT_AUTH_THROTTLED:
        log_noisy(s, "refused an agent's token without a review: %s", detail);
        return 429;
    case AGENT_AUTH_UNAVAILABLE:
        break;
    }
    log_noisy(s, "an agent's token cannot be checked now (answered 503): %s", detail);
    return 503;
}

/* The headers are here: the handshake deadline is met (before a token
 * review, which may take up to AGENT_AUTH_REVIEW_TIMEOUT_MS and must end in
 * an answer, 503, not in a closed connection). */
static void headers_arrived(struct http_server *s, struct MHD_Connection *c) {
    struct conn *k = conn_of(c);

    if (k) {
        pthread_mutex_lock(&s->lock);
        waiting_unlink(s, k);
        pthread_mutex_unlock(&s->lock);
    }
}

static enum MHD_Result on_headers(struct http_server *s, struct MHD_Connection *c, const char *url,
                                  const char *method, struct request *rq) {
    struct http_admission a;
    int r;
    struct http_head h = {
            .method = method,
            .url = url,
            .cn = rq->cn,
            .no_roles = s->plain,
            .content_length =
                    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
            .chunked = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL,
    };

    if (request_head_bytes(c, url, method) > s->head_max) {
        char detail[160];
        snprintf(detail, sizeof(detail),
                 "the request line and header fields take more than the %zu bytes a request "
                 "may have here",
                 s->head_max);
        log_noisy(s, "refused a request: its header fields are too large");
        return send_error(c, 431, "request header fields too large", detail);
    }
    rq->role = h.role = peer_role_cached(s, c, conn_of(c), rq->cn, sizeof(rq->cn));
    if (s->auth) {
        char detail[200];
        headers_arrived(s, c);
        r = token_identity(s, c, url, method, rq, detail, sizeof(detail));
        if (r > 0) {
            return queue_json(c, r,
                              json_pack("{s:s,s:s}", "error",
                                        r == 401   ? "unauthenticated"
                                        : r == 403 ? "forbidden"
                                        : r == 429 ? "too many requests"
                                                   : "unavailable",
                                        "detail", detail),
                              r == 503   ? HTTP_RETRY_AFTER_S
                              : r == 429 ? AGENT_AUTH_CLIENT_WINDOW_MS / 1000
                                         : 0,
                              NULL);
        }
        h.role = rq->role;
        h.agent_auth = agent_auth_mode(s->auth);
    }
    r = conn_request(s, c, rq);
    if (r < 0) {
        json_t *j = json_pack("{s:s,s:s}", "error", "busy", "detail",
                              r == -EBUSY ? "this client certificate has as many connections "
                                            "open as it may (--max-connections-per-cert); "
                                            "use one of them"
                                          : "the connection cannot be counted; try again");
        return queue_json(c, r == -EBUSY ? 429 : 503, j, HTTP_RETRY_AFTER_S, NULL);
    }
    http_admit(&h, &a);
    if (a.status) {
        return send_refusal(c, &a);
    }
    rq->route = a.route;
    if (rq->route.anonymous) {
        /* /healthz or /readyz: answered now, so the connection closes. */
        return dispatch(s, c, rq);
    }
    if (a.body_len > s->budget.max) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "a body of %llu bytes is more than all requests may hold at once "
                 "(--max-body-memory %llu)",
                 (unsigned long long)a.body_len, (unsigned long long)s->budget.max);
        return send_error(c, 413, "request too large", detail);
    }
    if (a.body_len > 0) {
        if (!http_budget_take(&s->budget, a.body_len)) {
            json_t *j;
            j = json_pack("{s:s,s:s}", "error", "busy", "detail",
                          "request bodies in flight fill the verifier's memory budget "
                          "(--max-body-memory); try again");
            return queue_json(c, 503, j, HTTP_RETRY_AFTER_S, NULL);
        }
        r = upload_start(s, c, rq, a.body_len);
        if (r < 0) {
            json_t *j;
            http_budget_give(&s->budget, a.body_len);
            j = json_pack("{s:s,s:s}", "error", "busy", "detail",
                          r == -EBUSY ? "this node is sending another request body already"
                                      : "out of memory; try again");
            return queue_json(c, r == -EBUSY ? 429 : 503, j, HTTP_RETRY_AFTER_S, NULL);
        }
        rq->reserved = a.body_len;
    }
    kbuf_init(&rq->body, (size_t)a.body_len);
    json_scan_init(&rq->scan);
    return MHD_YES;
}

/* A piece of the body (never more than its Content-Length). JSON too deep
 * or too wide is refused as soon as it shows, and the rest is read and
 * dropped: libmicrohttpd answers only once the request is in. */
static void on_body(struct http_server *s, struct request *rq, const char *data, size_t len) {
    int r;

    if (rq->refused) {
        return;
    }
    json_scan_feed(&rq->scan, data, len);
    r = json_scan_check(&rq->scan, JSON_DEPTH_MAX, HTTP_JSON_VALUES_MAX, rq->refused_detail,
                        sizeof(rq->refused_detail));
    if (r == 0) {
        r = kbuf_append(&rq->body, data, len);
        if (r < 0) {
            snprintf(rq->refused_detail, sizeof(rq->refused_detail), "the body: %s", strerror(-r));
        }
    }
    if (r < 0) {
        rq->refused = r == -EBADMSG ? 400 : r == -E2BIG ? 413 : 503;
        rq->refused_error = r == -EBADMSG ? "malformed JSON"
                            : r == -E2BIG ? "request too large"
                                          : "busy";
        kbuf_free(&rq->body);
        http_budget_give(&s->budget, rq->reserved);
        rq->reserved = 0;
    }
}

/* The body and its part of the budget, given back. Again is harmless. */
static void request_release(struct http_server *s, struct request *rq) {
    kbuf_free(&rq->body);
    http_budget_give(&s->budget, rq->reserved);
    rq->reserved = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
    struct http_server *s = cls;
    struct request *rq = *con_cls;
    enum MHD_Result ret;
    (void)version;

    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq) {
            return MHD_NO;
        }
        *con_cls = rq; /* on_completed frees it, whatever happens next */
        return on_headers(s, c, url, method, rq);
    }
    if (*data_size) {
        on_body(s, rq, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    /* The body is in: the node's upload slot is free from here on, so that
     * a connection that stalls after its upload (in the engine, or not
     * reading its answer) does not refuse the node's next request; and once
     * answered the body's memory goes back to the budget. */
    upload_end(s, c);
    if (rq->refused) {
        return send_error(c, rq->refused, rq->refused_error, rq->refused_detail);
    }
    ret = dispatch(s, c, rq);
    request_release(s, rq);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct http_server *s = cls;
    struct request *rq = *con_cls;
    (void)c;
    (void)toe;
    if (rq) {
        /* Ended before or after its body was in: both are idempotent. */
        upload_end(s, c);
        request_release(s, rq);
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

/* The soft limit of open files raised to the hard one: the connection
 * limit is sized from it. Returns the limit in force. */
static uint64_t raise_fd_limit(void) {
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_warn("open files: getrlimit: %s; assuming 1024", strerror(errno));
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            log_info("open files: soft limit raised from %llu to the hard limit %llu",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max);
        } else {
            log_warn("open files: cannot raise the soft limit %llu to %llu: %s",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = was;
        }
    } else {
        log_info("open files: limit %llu", (unsigned long long)rl.rlim_cur);
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

/* The lock, the tables and the watchdog, before the daemon can accept. */
static int guard_start(struct http_server *s, const struct http_conn_limits *lim) {
    pthread_condattr_t ca;
    int r;

    s->log_limit = (struct ratelimit)RATELIMIT_INIT(HTTP_LOG_INTERVAL_MS, HTTP_LOG_BURST);
    s->unauth_max = lim->unauth_max;
    s->unauth_per_address = lim->unauth_per_address;
    r = http_unauth_new(lim->unauth_max, lim->unauth_per_address, &s->unauth);
    if (r == 0) {
        r = http_clients_new(lim->max, s->per_client, &s->clients);
    }
    if (r < 0) {
        return r;
    }
    if (pthread_condattr_init(&ca) != 0) {
        return -ENOMEM;
    }
    /* The watchdog's deadlines are monotonic. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    r = pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0) {
        return -r;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->log_lock, NULL);
    s->lock_ready = true;
    r = pthread_create(&s->watchdog, NULL, watchdog, s);
    if (r != 0) {
        return -r;
    }
    s->watchdog_started = true;
    return 0;
}

static void guard_stop(struct http_server *s) {
    if (s->lock_ready) {
        if (s->watchdog_started) {
            pthread_mutex_lock(&s->lock);
            s->stopping = true;
            pthread_cond_signal(&s->wake);
            pthread_mutex_unlock(&s->lock);
            pthread_join(s->watchdog, NULL);
        }
        log_noisy_flush(s);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->log_lock);
    }
    http_unauth_free(s->unauth);
    http_clients_free(s->clients);
}

/* The server's certificate and key, the client CA and the ticket key.
 * 0, or a negative errno (logged). */
static int tls_load(struct http_server *s, const struct http_config *cfg) {
    s->cert = read_pem(cfg->tls_cert);
    s->key = read_pem(cfg->tls_key);
    s->ca = read_pem(cfg->client_ca);
    if (!s->cert || !s->key || !s->ca) {
        log_error("TLS needs --tls-cert, --tls-key and --client-ca (readable PEM files)");
        return -EINVAL;
    }
    if (http_tickets_new(&s->tickets) < 0) {
        log_error("TLS session tickets: no key");
        return -EIO;
    }
    return 0;
}

int http_start(const struct http_config *cfg, struct engine *e, struct http_server **ret) {
    struct http_server *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa;
    unsigned flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    const union MHD_DaemonInfo *di;
    struct http_conn_limits lim;
    struct MHD_OptionItem o[24];
    size_t n = 0;
    int r;

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
    s->auth = s->plain ? NULL : cfg->agent_auth;
    s->head_max = s->auth ? HTTP_REQUEST_HEAD_MAX_TOKEN : HTTP_REQUEST_HEAD_MAX;
    s->per_client = cfg->max_connections_per_cert ? cfg->max_connections_per_cert
                                                  : HTTP_CONNECTIONS_PER_CERT_DEFAULT;
    http_budget_init(&s->budget,
                     cfg->max_body_memory ? cfg->max_body_memory : HTTP_BODY_MEMORY_DEFAULT);
    http_conn_limits(cfg->max_connections, raise_fd_limit(), &lim);
    if (lim.clamped) {
        log_warn("open files: the limit leaves room for %u connections, fewer than the %u "
                 "%s; raise the hard limit of open files to %llu or more (systemd "
                 "LimitNOFILE=, the container runtime's nofile ulimit; docs/verifier.md, "
                 "\"Many nodes\")",
                 lim.max, cfg->max_connections ? cfg->max_connections : HTTP_CONNECTIONS_DEFAULT,
                 cfg->max_connections ? "--max-connections asks for" : "of the default",
                 (unsigned long long)(cfg->max_connections ? cfg->max_connections
                                                           : HTTP_CONNECTIONS_DEFAULT) +
                         HTTP_FDS_RESERVED);
    }
    log_info("connections: at most %u, of which %u without a client certificate yet (%u per "
             "address), %u per client certificate; request bodies: at most %llu bytes in all",
             lim.max, lim.unauth_max, lim.unauth_per_address, s->per_client,
             (unsigned long long)s->budget.max);
    r = guard_start(s, &lim);
    if (r < 0) {
        log_error("HTTP front: %s", strerror(-r));
        http_stop(s);
        return r;
    }

#define OPT(opt, value, ptr) o[n++] = (struct MHD_OptionItem){(opt), (intptr_t)(value), (ptr)}
    OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s);
    OPT(MHD_OPTION_SOCK_ADDR, 0, &sa);
    OPT(MHD_OPTION_THREAD_POOL_SIZE, cfg->threads ? cfg->threads : 8, NULL);
    OPT(MHD_OPTION_CONNECTION_LIMIT, lim.max, NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(s->auth ? HTTP_CONNECTION_MEMORY_TOKEN : HTTP_CONNECTION_MEMORY), NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)256, NULL);
    /* No per-address limit of libmicrohttpd's: it would count authenticated
     * connections too, and refuse nodes behind one address (SNAT). The
     * unauthenticated ones are counted per address in on_accept(). */
    /* One idle timeout for all (see close_unless_authenticated): before its
     * first request a connection is bounded by the watchdog's deadline. */
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, HTTP_IDLE_TIMEOUT_S, NULL);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
    if (!s->plain) {
        r = tls_load(s, cfg);
        if (r < 0) {
            http_stop(s);
            return r;
        }
        flags |= MHD_USE_TLS;
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key);
        OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->ca);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    assert(n <= ARRAY_SIZE(o));
    s->d = MHD_start_daemon(flags, 0, on_accept, s, on_request, s, MHD_OPTION_ARRAY, o,
                            MHD_OPTION_END);
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
    /* Every connection is closed now, and off the lists. */
    guard_stop(s);
    free(s->cert);
    if (s->key) {
        memset(s->key, 0, strlen(s->key));
    }
    free(s->key);
    free(s->ca);
    http_tickets_free(s->tickets);
    free(s);
}

uint16_t http_port(const struct http_server *s) {
    return s->port;
}
