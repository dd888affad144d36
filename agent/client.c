/* SPDX-License-Identifier: Apache-2.0 */
/* HTTPS over OpenSSL's libssl, which the agent links anyway for its crypto.
 * The agent speaks to one server, POSTs JSON and reads JSON: this is the
 * whole of HTTP/1.1 it needs. libcurl did this before; with Debian's build
 * it loads 28 more shared libraries (GnuTLS, Kerberos, LDAP, SSH, ...) and
 * about 4 MB of resident memory into every node's agent (docs/agent.md). */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http-parse.h"
#include "token.h"
#include "json-util.h"
#include "log.h"
#include "time-util.h"
#include "macro.h"

#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_S       30

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    struct client_url u;
    char *buf; /* response bytes */
    size_t len;
    /* The last TLS session the verifier gave a ticket for, offered at the
     * next connect while younger than CLIENT_SESSION_MAX_S; saved once per
     * connection, after its first answer (a TLS 1.3 ticket comes after the
     * handshake). */
    SSL_SESSION *session;
    bool session_saved;
    struct client_stats stats;
    unsigned deadline_ms_per_request;
    int64_t deadline_ms;       /* of the request under way, monotonic */
    bool cut_to_deadline;      /* the socket's timeouts are what is left of it */
    struct agent_token *token; /* Authorization: Bearer, or NULL (borrowed) */
};

/* Before each read or write of a request: the socket's timeouts cut to
 * what is left of the request's deadline, so that trickled bytes cannot
 * hold the agent (each read's own timeout would not). -ETIMEDOUT once the
 * deadline passed. */
static int arm_deadline(struct client *c) {
    int64_t left = c->deadline_ms - time_mono_ms();
    struct timeval tv;

    if (left <= 0) {
        return -ETIMEDOUT;
    }
    c->cut_to_deadline = left < IO_TIMEOUT_S * 1000;
    if (!c->cut_to_deadline) {
        left = IO_TIMEOUT_S * 1000;
    }
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

void client_set_token(struct client *c, struct agent_token *t) {
    c->token = t;
}

void client_set_request_deadline_ms(struct client *c, unsigned ms) {
    c->deadline_ms_per_request = ms;
}

static void ssl_error(const char *what, const char *url) {
    unsigned long e = ERR_get_error();
    char msg[256] = "";

    if (e) {
        ERR_error_string_n(e, msg, sizeof(msg));
    }
    ERR_clear_error();
    log_warn("%s%s%s: %s", what, url ? " " : "", url ? url : "", msg[0] ? msg : strerror(errno));
}

/* https://host[:port][/prefix], host a name, an IPv4 address or [IPv6]. */
int client_url_parse(const char *url, struct client_url *ret, char *err, size_t errsz) {
    const char *h, *end, *colon, *slash;
    struct client_url u = {0};
    struct in6_addr a6;
    struct in_addr a4;
    size_t hl;

    if (strncmp(url, "https://", 8) != 0) {
        snprintf(err, errsz, "does not start with https://");
        return -EINVAL;
    }
    /* The host and prefix go into the request line and Host header. */
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(err, errsz, "a blank, control or non-ASCII byte at offset %zu",
                     (size_t)(p - url));
            return -EINVAL;
        }
    }
    /* A user name (and so a password), a query or a fragment has no place
     * in a verifier's URL: refused, not sent in SNI or the Host header. */
    if (strpbrk(url, "@?#")) {
        snprintf(err, errsz, "a user name, query or fragment (@, ? or #) has no place here");
        return -EINVAL;
    }
    h = url + 8;
    slash = strchr(h, '/');
    end = slash ? slash : h + strlen(h);
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) {
            snprintf(err, errsz, "bad IPv6 address");
            return -EINVAL;
        }
        hl = (size_t)(rb - h - 1);
        h++;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != end) {
            snprintf(err, errsz, "bad IPv6 address");
            return -EINVAL;
        }
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        hl = (size_t)((colon ? colon : end) - h);
    }
    if (hl == 0 || hl >= sizeof(u.host) || memchr(h, ',', hl)) {
        snprintf(err, errsz, "bad host");
        return -EINVAL;
    }
    memcpy(u.host, h, hl);
    snprintf(u.port, sizeof(u.port), "443");
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        char *e;
        long p;
        if (pl == 0 || pl >= sizeof(u.port)) {
            snprintf(err, errsz, "bad port");
            return -EINVAL;
        }
        memcpy(u.port, colon + 1, pl);
        u.port[pl] = 0;
        p = strtol(u.port, &e, 10);
        if (*e || p < 1 || p > 65535) {
            snprintf(err, errsz, "bad port");
            return -EINVAL;
        }
    }
    if (slash && strlen(slash) >= sizeof(u.prefix)) {
        snprintf(err, errsz, "path longer than %zu bytes", sizeof(u.prefix) - 1);
        return -EINVAL;
    }
    snprintf(u.prefix, sizeof(u.prefix), "%s", slash ? slash : "");
    while (u.prefix[0] && u.prefix[strlen(u.prefix) - 1] == '/') {
        u.prefix[strlen(u.prefix) - 1] = 0;
    }
    u.host_is_ip = inet_pton(AF_INET, u.host, &a4) == 1 || inet_pton(AF_INET6, u.host, &a6) == 1;
    *ret = u;
    return 0;
}

int client_new(const char *base_url, const char *cert, const char *key, const char *cacert,
               struct client **ret) {
    struct client *c = calloc(1, sizeof(*c));
    char err[128];
    int r;

    if (!c) {
        return -ENOMEM;
    }
    c->fd = -1;
    r = client_url_parse(base_url, &c->u, err, sizeof(err));
    if (r < 0) {
        log_error("the verifier URL %s: %s", base_url, err);
        client_free(c);
        return r;
    }
    c->ctx = SSL_CTX_new(TLS_client_method());
    c->buf = malloc(CLIENT_RESPONSE_MAX + HTTP_HEADERS_MAX);
    if (!c->ctx || !c->buf) {
        client_free(c);
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if ((cacert ? SSL_CTX_load_verify_locations(c->ctx, cacert, NULL)
                : SSL_CTX_set_default_verify_paths(c->ctx)) != 1) {
        ssl_error("cannot load the CA certificates", cacert);
        client_free(c);
        return -EINVAL;
    }
    if ((cert && SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1) ||
        (key && SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1) ||
        (cert && key && SSL_CTX_check_private_key(c->ctx) != 1)) {
        ssl_error("cannot load the client certificate and key", cert);
        client_free(c);
        return -EINVAL;
    }
    *ret = c;
    return 0;
}

static void disconnect(struct client *c) {
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

void client_disconnect(struct client *c) {
    if (c) {
        disconnect(c);
    }
}

void client_free(struct client *c) {
    if (!c) {
        return;
    }
    disconnect(c);
    SSL_SESSION_free(c->session);
    SSL_CTX_free(c->ctx);
    free(c->buf);
    free(c);
}

/* A TCP connection within CONNECT_TIMEOUT_MS, then blocking with I/O timeouts. */
static int tcp_connect(struct client *c) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai, *a;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int r = getaddrinfo(c->u.host, c->u.port, &hints, &ai), fd = -1;

    if (r != 0) {
        log_warn("cannot resolve %s: %s", c->u.host, gai_strerror(r));
        return -EHOSTUNREACH;
    }
    r = -ECONNREFUSED;
    for (a = ai; a && fd < 0; a = a->ai_next) {
        struct pollfd pfd;
        int err = 0;
        socklen_t el = sizeof(err);

        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            r = -errno;
        } else {
            pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
                break;
            }
            r = err ? -err : -ETIMEDOUT;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        log_warn("cannot connect to %s port %s: %s", c->u.host, c->u.port, strerror(-r));
        return r;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* Requests are single writes answered at once: no Nagle delay. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    c->fd = fd;
    return 0;
}

/* The saved session, on a new SSL before its handshake, while it is young
 * enough: the verifier checks the certificate it holds on every request
 * anyway, this only spares the handshake. An old one is dropped. */
static void offer_session(struct client *c) {
    time_t now = time(NULL);
    time_t made;

    if (!c->session) {
        return;
    }
    made = (time_t)SSL_SESSION_get_time(c->session);
    if (now < made || now - made >= CLIENT_SESSION_MAX_S || !SSL_SESSION_is_resumable(c->session) ||
        SSL_set_session(c->ssl, c->session) != 1) {
        SSL_SESSION_free(c->session);
        c->session = NULL;
    }
}

/* Keep this connection's session for the next connect, once it can be
 * resumed (TLS 1.3: once a ticket came, with the first answer). */
static void save_session(struct client *c) {
    SSL_SESSION *sess;

    if (c->session_saved || !c->ssl) {
        return;
    }
    /* A copy: OpenSSL marks a connection's own session not resumable when
     * the connection is freed without a TLS shutdown, which is how a
     * kept-alive connection the server closed ends here. */
    sess = SSL_get0_session(c->ssl) ? SSL_SESSION_dup(SSL_get0_session(c->ssl)) : NULL;
    if (!sess) {
        return;
    }
    if (!SSL_SESSION_is_resumable(sess)) {
        SSL_SESSION_free(sess);
        return;
    }
    SSL_SESSION_free(c->session);
    c->session = sess;
    c->session_saved = true;
}

static int tls_connect_once(struct client *c) {
    int r = tcp_connect(c);

    if (r < 0) {
        return r;
    }
    c->session_saved = false;
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        disconnect(c);
        return -ENOMEM;
    }
    /* The verifier's certificate must name the host we asked for. */
    if (c->u.host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->u.host) != 1) {
            disconnect(c);
            return -EINVAL;
        }
    } else if (SSL_set_tlsext_host_name(c->ssl, c->u.host) != 1 ||
               SSL_set1_host(c->ssl, c->u.host) != 1) {
        disconnect(c);
        return -EINVAL;
    }
    offer_session(c);
    if (SSL_connect(c->ssl) != 1) {
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK) {
            log_warn("TLS with %s: the verifier's certificate is refused: %s", c->u.host,
                     X509_verify_cert_error_string(v));
        } else {
            ssl_error("TLS handshake with", c->u.host);
        }
        /* Whatever went wrong, the next try starts from scratch. */
        SSL_SESSION_free(c->session);
        c->session = NULL;
        disconnect(c);
        return -ECONNREFUSED;
    }
    c->stats.connections++;
    if (SSL_session_reused(c->ssl)) {
        c->stats.resumed++;
    }
    log_info("connected to %s port %s: %s (%llu of %llu connections resumed)", c->u.host, c->u.port,
             SSL_session_reused(c->ssl) ? "TLS session resumed" : "full TLS handshake",
             (unsigned long long)c->stats.resumed, (unsigned long long)c->stats.connections);
    return 0;
}

/* A handshake that offered a session and failed is tried once more with a
 * full one (the failure dropped the session): a server that mishandles
 * resumption costs a reconnect, not a round. */
static int tls_connect(struct client *c) {
    bool offered = c->session != NULL;
    int r = tls_connect_once(c);

    if (r == -ECONNREFUSED && offered) {
        log_info("connecting to %s again with a full TLS handshake", c->u.host);
        r = tls_connect_once(c);
    }
    return r;
}

static int write_all(struct client *c, const char *p, size_t n) {
    while (n > 0) {
        int k;
        if (arm_deadline(c) < 0) {
            return -ETIMEDOUT;
        }
        k = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        if (k <= 0) {
            return -EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read one whole response into c->buf. On success the body starts at
 * *ret_body with *ret_len bytes. -EPIPE: the connection was closed before
 * any byte came (a kept-alive connection the server had dropped). */
static int read_response(struct client *c, struct http_response *h, char **ret_body,
                         size_t *ret_len, const char **why) {
    size_t cap = CLIENT_RESPONSE_MAX + HTTP_HEADERS_MAX;
    bool have_head = false;

    c->len = 0;
    for (;;) {
        int k, r;

        if (!have_head) {
            r = http_parse_head(c->buf, c->len, h, why);
            if (r < 0) {
                return r;
            }
            have_head = r == 1;
            if (have_head && h->content_length > (long long)CLIENT_RESPONSE_MAX) {
                *why = "response body too big";
                return -E2BIG;
            }
        }
        if (have_head) {
            char *body = c->buf + h->header_len;
            size_t blen = c->len - h->header_len, used;
            if (h->chunked) {
                r = http_dechunk(body, blen, CLIENT_RESPONSE_MAX, ret_len, &used, why);
                if (r < 0) {
                    return r;
                }
                if (r == 1) {
                    *ret_body = body;
                    return 0;
                }
            } else if (h->content_length >= 0 && blen >= (size_t)h->content_length) {
                *ret_body = body;
                *ret_len = (size_t)h->content_length;
                return 0;
            } else if (h->status == 204 || h->status == 304 || h->status < 200) {
                *ret_body = body;
                *ret_len = 0;
                return 0;
            }
        }
        if (c->len == cap) {
            *why = "response too big";
            return -E2BIG;
        }
        if (arm_deadline(c) < 0) {
            *why = "no whole answer within the request's deadline";
            return -ETIMEDOUT;
        }
        k = SSL_read(c->ssl, c->buf + c->len, (int)(cap - c->len));
        if (k <= 0) {
            /* On this blocking socket a read that wants more timed out. */
            int e = SSL_get_error(c->ssl, k);
            bool timed_out = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
            if ((timed_out && c->cut_to_deadline) || time_mono_ms() >= c->deadline_ms) {
                *why = "no whole answer within the request's deadline";
                return -ETIMEDOUT;
            }
            if (have_head && !h->chunked && h->content_length < 0 && !timed_out) {
                /* Delimited by the end of the connection. */
                h->keep_alive = false;
                *ret_body = c->buf + h->header_len;
                *ret_len = c->len - h->header_len;
                return 0;
            }
            if (c->len == 0) {
                return -EPIPE;
            }
            *why = "the connection ended within the response";
            return -EIO;
        }
        c->len += (size_t)k;
    }
}

int client_post(struct client *c, const char *path, const json_t *body, json_t **ret) {
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    _cleanup_free_ char *req = NULL, *head = NULL;
    char perr[256], auth[32 + AGENT_TOKEN_MAX] = "";
    size_t tl, headsz = 2048 + sizeof(auth);
    const char *token;
    struct http_response h;
    const char *why = "";
    char *rbody = NULL;
    size_t rlen = 0;
    int hl, r = -EIO;

    *ret = NULL;
    head = malloc(headsz);
    if (!text || !head) {
        return -ENOMEM;
    }
    /* The token as the file has it now: sent only on a connection whose
     * server certificate verified (tls_connect()). */
    if (c->token) {
        r = agent_token_get(c->token, time_mono_ms(), &token);
        if (r < 0) {
            return r;
        }
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    }
    hl = snprintf(head, headsz,
                  "POST %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: kima-agent\r\n"
                  "%sContent-Type: application/json\r\nAccept: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  c->u.prefix, path, c->u.host_is_ip && strchr(c->u.host, ':') ? "[" : "",
                  c->u.host, c->u.host_is_ip && strchr(c->u.host, ':') ? "]" : "", c->u.port, auth,
                  strlen(text));
    explicit_bzero(auth, sizeof(auth));
    if (hl < 0 || (size_t)hl >= headsz) {
        return -E2BIG;
    }
    /* One write, one TLS record for small requests. */
    tl = strlen(text);
    req = malloc((size_t)hl + tl);
    if (!req) {
        return -ENOMEM;
    }
    memcpy(req, head, (size_t)hl);
    memcpy(req + hl, text, tl);
    /* A kept-alive connection may have been closed by the server meanwhile:
     * then connect again once. */
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = c->ssl != NULL;

        c->deadline_ms = time_mono_ms() + (c->deadline_ms_per_request ? c->deadline_ms_per_request
                                                                      : CLIENT_REQUEST_DEADLINE_MS);
        if (!c->ssl && (r = tls_connect(c)) < 0) {
            return r;
        }
        r = write_all(c, req, (size_t)hl + tl);
        if (r == 0) {
            r = read_response(c, &h, &rbody, &rlen, &why);
        }
        if (r == 0) {
            break;
        }
        disconnect(c);
        ERR_clear_error();
        if (!reused || (r != -EIO && r != -EPIPE) || (r == -EIO && why[0])) {
            break;
        }
    }
    if (r < 0) {
        log_warn("POST %s%s to %s: %s", c->u.prefix, path, c->u.host,
                 why[0] ? why : "no answer (connection failed)");
        return r == -EPIPE ? -EIO : r;
    }
    save_session(c);
    if (!h.keep_alive) {
        disconnect(c);
    }
    if (json_parse_bounded(rbody, rlen, 16, 1u << 16, ret, perr, sizeof(perr)) < 0 ||
        !json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        if (h.status < 200 || h.status > 299) {
            /* A refusal in another format (a proxy's HTML 502, say): its
             * status is the answer, with an empty object. */
            *ret = json_object();
            return *ret ? h.status : -ENOMEM;
        }
        log_warn("POST %s%s: %d with an answer that is not a JSON object", c->u.prefix, path,
                 h.status);
        return -EBADMSG;
    }
    return h.status;
}

void client_get_stats(const struct client *c, struct client_stats *ret) {
    *ret = c->stats;
}
