/* SPDX-License-Identifier: Apache-2.0 */
/* agent/client.c against a real TLS server: OpenSSL in a thread of this
 * test, on 127.0.0.1 port 0, with certificates made here. One connection
 * carries every request (keep-alive); a kept-alive connection the server
 * closed is retried once, and only once; a response over the cap, or not a
 * JSON object, is refused; a server certificate of another CA, or one that
 * does not name the address asked, is refused. A reconnect resumes the
 * last TLS session (a server restart or a refused session costs one full
 * handshake, never the request). */
#include "test-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client.h"
#include "test-pki.h"
#include "log.h"
#include "token.h"

/* ---- certificates ---- */

static char dir[64];
static struct test_pki ca, other_ca, server, server_other, server_no_ip, agent;

static void make(struct test_pki *p, const char *ou, const char *cn, const struct test_pki *issuer,
                 const char *eku, const char *san) {
    assert_int_equal(test_pki_issue(p, ou, cn, issuer, eku, san), 0);
}

/* dir/NAME.pem (the certificate, its path into buf) and dir/NAME.key. */
static void save(const struct test_pki *p, const char *name, char *buf, size_t bufsz) {
    assert_int_equal(test_pki_save(p, dir, name, buf, bufsz), 0);
}

static char ca_pem[160], other_ca_pem[160], agent_pem[160], agent_key[160];

/* ---- the server ---- */

enum mode {
    ANSWER,                /* 200 and a small JSON object, keep-alive */
    CLOSE_AFTER_ONE,       /* answer the first request, then close the connection */
    FIRST_CONNECTION_ONLY, /* CLOSE_AFTER_ONE, later connections unanswered */
    NEVER_ANSWER,          /* read the request, close */
    SIZED,                 /* a JSON object of body_size bytes, Content-Length */
    HUGE_LENGTH,           /* Content-Length over the cap, few bytes sent */
    HUGE_CHUNKED,          /* chunks past the cap */
    HUGE_UNTIL_CLOSE,      /* no length: past the cap, then close */
    NOT_JSON,              /* 200 with text */
    AN_ARRAY,              /* 200 with an array */
    CONNECTION_CLOSE,      /* "Connection: close" with each answer */
    STATUS_409,            /* 409 with a JSON error */
    PROXY_502,             /* 502 with an HTML page, as a proxy sends */
    DRIP,                  /* an answer's head a byte every 100 ms, never whole */
};

struct server {
    int lfd;
    uint16_t port;
    pthread_t thread;
    SSL_CTX *ctx;
    enum mode mode;
    size_t body_size;
    pthread_mutex_t lock;
    bool stop;
    int accepted, handshakes_failed, requests, resumed;
    char method[16], path[256], host[128], peer_cn[64], content_type[64];
    char body[256], authorization[128];
};

static struct server srv;
/* Servers started while set fail a handshake that offers a session. */
static bool server_no_resumption;
/* Servers started while set take clients without a certificate too. */
static bool server_cert_optional;
/* Servers started while set listen on this port (a restart), else on any. */
static uint16_t server_port;

static bool stopping(struct server *s) {
    bool stop;
    pthread_mutex_lock(&s->lock);
    stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

static bool write_all(SSL *ssl, const char *p, size_t n) {
    while (n > 0) {
        int k = SSL_write(ssl, p, n > 65536 ? 65536 : (int)n);
        if (k <= 0) {
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool send_str(SSL *ssl, const char *s) {
    return write_all(ssl, s, strlen(s));
}

static const char *header(const char *head, const char *name, char *out, size_t outsz) {
    size_t nl = strlen(name);
    out[0] = 0;
    for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':') {
            const char *v = l + 3 + nl, *end = strstr(v, "\r\n");
            while (*v == ' ') {
                v++;
            }
            snprintf(out, outsz, "%.*s", (int)(end - v), v);
            break;
        }
    }
    return out;
}

/* Read one request; false at the end of the connection. */
static bool read_request(struct server *s, SSL *ssl) {
    char buf[8192] = "", value[64];
    size_t len = 0, want;
    char *end = NULL;
    int k;

    while (!(end = strstr(buf, "\r\n\r\n"))) {
        if (len == sizeof(buf) - 1) {
            return false;
        }
        k = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (k <= 0) {
            return false;
        }
        len += (size_t)k;
        buf[len] = 0;
    }
    end[2] = 0;
    want = strtoul(header(buf, "Content-Length", value, sizeof(value)), NULL, 10);
    end += 4;
    while ((size_t)(buf + len - end) < want) {
        if (len == sizeof(buf) - 1) {
            return false;
        }
        k = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (k <= 0) {
            return false;
        }
        len += (size_t)k;
    }
    pthread_mutex_lock(&s->lock);
    s->requests++;
    sscanf(buf, "%15s %255s", s->method, s->path);
    header(buf, "Host", s->host, sizeof(s->host));
    header(buf, "Content-Type", s->content_type, sizeof(s->content_type));
    header(buf, "Authorization", s->authorization, sizeof(s->authorization));
    snprintf(s->body, sizeof(s->body), "%.*s", (int)want, end);
    pthread_mutex_unlock(&s->lock);
    return true;
}

static void answer(SSL *ssl, int status, const char *extra, const char *body) {
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
             status, extra, strlen(body));
    if (write_all(ssl, head, strlen(head))) {
        write_all(ssl, body, strlen(body));
    }
}

/* What the mode says to this request; false: close the connection. */
static bool respond(struct server *s, SSL *ssl, int nconn) {
    static char filler[65536];
    char head[256];

    memset(filler, 'x', sizeof(filler));
    switch (s->mode) {
    case ANSWER:
        answer(ssl, 200, "", "{\"ok\":true}");
        return true;
    case CLOSE_AFTER_ONE:
        answer(ssl, 200, "", "{\"ok\":true}");
        return false;
    case FIRST_CONNECTION_ONLY:
        if (nconn == 1) {
            answer(ssl, 200, "", "{\"ok\":true}");
        }
        return false;
    case NEVER_ANSWER:
        return false;
    case SIZED: {
        /* {"a":"xxx...x"}: 8 bytes around the filler */
        size_t n = s->body_size - 8;
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n{\"a\":\"",
                 s->body_size);
        write_all(ssl, head, strlen(head));
        for (size_t done = 0; done < n;) {
            size_t k = n - done < sizeof(filler) ? n - done : sizeof(filler);
            if (!write_all(ssl, filler, k)) {
                return false;
            }
            done += k;
        }
        send_str(ssl, "\"}");
        return true;
    }
    case HUGE_LENGTH:
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n{\"a\":\"",
                 CLIENT_RESPONSE_MAX + 1);
        write_all(ssl, head, strlen(head));
        return true; /* the client hangs up */
    case HUGE_CHUNKED:
        send_str(ssl, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (unsigned sent = 0; sent <= CLIENT_RESPONSE_MAX; sent += sizeof(filler)) {
            if (!send_str(ssl, "10000\r\n") || !write_all(ssl, filler, sizeof(filler)) ||
                !send_str(ssl, "\r\n")) {
                return false;
            }
        }
        send_str(ssl, "0\r\n\r\n");
        return false;
    case HUGE_UNTIL_CLOSE:
        send_str(ssl, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        for (unsigned sent = 0; sent <= CLIENT_RESPONSE_MAX + 65536; sent += sizeof(filler)) {
            if (!write_all(ssl, filler, sizeof(filler))) {
                break;
            }
        }
        return false;
    case NOT_JSON:
        answer(ssl, 200, "", "ok\n");
        return true;
    case AN_ARRAY:
        answer(ssl, 200, "", "[1,2]");
        return true;
    case CONNECTION_CLOSE:
        answer(ssl, 200, "Connection: close\r\n", "{\"ok\":true}");
        return false;
    case STATUS_409:
        answer(ssl, 409, "", "{\"error\":\"conflict\",\"detail\":\"another node\"}");
        return true;
    case PROXY_502:
        answer(ssl, 502, "", "<html><body>502 Bad Gateway</body></html>\n");
        return true;
    case DRIP:
        /* Bounded: 60 s at most, or until the client hangs up. */
        for (int i = 0; i < 600 && !stopping(s); i++) {
            if (!write_all(ssl, "H", 1)) {
                break;
            }
            usleep(100 * 1000);
        }
        return false;
    }
    return false;
}

static void serve_connection(struct server *s, int fd, int nconn) {
    struct timeval tv = {.tv_sec = 10};
    SSL *ssl = SSL_new(s->ctx);
    X509 *peer;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        pthread_mutex_lock(&s->lock);
        s->handshakes_failed++;
        pthread_mutex_unlock(&s->lock);
        ERR_clear_error();
        SSL_free(ssl);
        return;
    }
    peer = SSL_get0_peer_certificate(ssl);
    if (SSL_session_reused(ssl)) {
        pthread_mutex_lock(&s->lock);
        s->resumed++;
        pthread_mutex_unlock(&s->lock);
    }
    if (peer) {
        pthread_mutex_lock(&s->lock);
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, s->peer_cn,
                                  sizeof(s->peer_cn));
        pthread_mutex_unlock(&s->lock);
    }
    while (read_request(s, ssl) && respond(s, ssl, nconn)) {
    }
    SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}

static void *serve(void *arg) {
    struct server *s = arg;
    int nconn = 0;

    while (!stopping(s)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        int fd;

        if (poll(&p, 1, 20) != 1) {
            continue;
        }
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        pthread_mutex_lock(&s->lock);
        nconn = ++s->accepted;
        pthread_mutex_unlock(&s->lock);
        serve_connection(s, fd, nconn);
        close(fd);
    }
    return NULL;
}

/* A ClientHello that offers a session (a TLS 1.3 PSK, or a TLS 1.2 ticket)
 * fails the handshake. */
static int refuse_offered_session(SSL *ssl, int *alert, void *arg) {
    const unsigned char *ext;
    size_t len = 0;
    (void)arg;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &ext, &len) == 1 ||
        (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_session_ticket, &ext, &len) == 1 && len > 0)) {
        *alert = SSL_AD_HANDSHAKE_FAILURE;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Serve with the certificate of `id`; agents' certificates of `ca` are
 * asked for and checked. */
static void server_start_sized(enum mode mode, const struct test_pki *id, size_t body_size) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);

    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.lock, NULL);
    srv.mode = mode;
    srv.body_size = body_size;
    srv.ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(srv.ctx);
    assert_int_equal(SSL_CTX_use_certificate(srv.ctx, id->crt), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(srv.ctx, id->key), 1);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(srv.ctx), ca.crt), 1);
    SSL_CTX_set_verify(
            srv.ctx, SSL_VERIFY_PEER | (server_cert_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
            NULL);
    /* OpenSSL resumes sessions of verified clients only with this. */
    assert_int_equal(SSL_CTX_set_session_id_context(srv.ctx, (const uint8_t *)"kima", 4), 1);
    if (server_no_resumption) {
        SSL_CTX_set_client_hello_cb(srv.ctx, refuse_offered_session, NULL);
    }
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv.lfd >= 0);
    sa.sin_port = htons(server_port);
    assert_int_equal(setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)), 0);
    assert_int_equal(bind(srv.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(srv.lfd, 8), 0);
    assert_int_equal(getsockname(srv.lfd, (struct sockaddr *)&sa, &sl), 0);
    srv.port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&srv.thread, NULL, serve, &srv), 0);
}

static void server_start(enum mode mode, const struct test_pki *id) {
    server_start_sized(mode, id, 0);
}

static void server_stop(void) {
    pthread_mutex_lock(&srv.lock);
    srv.stop = true;
    pthread_mutex_unlock(&srv.lock);
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    SSL_CTX_free(srv.ctx);
    pthread_mutex_destroy(&srv.lock);
}

static int accepted(void) {
    int n;
    pthread_mutex_lock(&srv.lock);
    n = srv.accepted;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

static int requests(void) {
    int n;
    pthread_mutex_lock(&srv.lock);
    n = srv.requests;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

/* ---- the client ---- */

static struct client *connect_to(const char *cacert, const char *prefix) {
    struct client *c = NULL;
    char url[128];

    snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", srv.port, prefix);
    assert_int_equal(client_new(url, agent_pem, agent_key, cacert, &c), 0);
    return c;
}

static int post(struct client *c, const char *path, json_t **ret) {
    json_auto_t *body = json_pack("{s:s}", "node", "node-1");
    return client_post(c, path, body, ret);
}

/* What the client logged since the last call. */
static FILE *log_file;
static char log_path[160];

static bool logged(const char *needle) {
    uint8_t *data = NULL;
    size_t len;
    bool found;

    fflush(log_file);
    assert_int_equal(read_file_capped(log_path, 1 << 20, &data, &len), 0);
    found = strstr((char *)data, needle) != NULL;
    free(data);
    assert_int_equal(ftruncate(fileno(log_file), 0), 0);
    rewind(log_file);
    return found;
}

/* ---- tests ---- */

/* One TLS connection carries every request; the request is what the
 * verifier expects; the agent's certificate is presented. */
static void test_keep_alive(void **state) {
    struct client *c;
    json_t *resp = NULL;
    char host[64];
    (void)state;

    server_start(ANSWER, &server);
    c = connect_to(ca_pem, "/base/");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post(c, "/v1/nodes/node-1/challenges", &resp), 200);
        assert_true(json_is_true(json_object_get(resp, "ok")));
        json_decref(resp);
        resp = NULL;
    }
    assert_int_equal(accepted(), 1);
    assert_int_equal(requests(), 3);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.method, "POST");
    assert_string_equal(srv.path, "/base/v1/nodes/node-1/challenges");
    snprintf(host, sizeof(host), "127.0.0.1:%u", srv.port);
    assert_string_equal(srv.host, host);
    assert_string_equal(srv.content_type, "application/json");
    assert_string_equal(srv.body, "{\"node\":\"node-1\"}");
    assert_string_equal(srv.peer_cn, "node-1");
    pthread_mutex_unlock(&srv.lock);

    /* No body: an empty object. */
    assert_int_equal(client_post(c, "/x", NULL, &resp), 200);
    json_decref(resp);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.body, "{}");
    pthread_mutex_unlock(&srv.lock);
    client_free(c);
    server_stop();
}

/* The server closes a kept-alive connection between requests: the next
 * request connects again, once, and gets its answer. */
static void test_closed_connection_retried(void **state) {
    struct client *c;
    json_t *resp = NULL;
    (void)state;

    server_start(CLOSE_AFTER_ONE, &server);
    c = connect_to(ca_pem, "");
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(post(c, "/v1/nodes/node-1/evidence", &resp), 200);
        json_decref(resp);
        resp = NULL;
        assert_int_equal(accepted(), i);
        assert_int_equal(requests(), i);
    }
    client_free(c);
    server_stop();
}

static int resumed(void) {
    int n;
    pthread_mutex_lock(&srv.lock);
    n = srv.resumed;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

/* A new connection offers the last session and resumes it (no full
 * handshake), with the node's certificate still known to the server; a
 * server that does not know the session any more (another key: a restart)
 * gets a full handshake, and the session after it resumes again. */
static void test_session_resumed(void **state) {
    struct client *c;
    struct client_stats st;
    json_t *resp = NULL;
    (void)state;

    server_start(CLOSE_AFTER_ONE, &server);
    c = connect_to(ca_pem, "");
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(post(c, "/v1/nodes/node-1/evidence", &resp), 200);
        json_decref(resp);
        resp = NULL;
        assert_true(logged(i == 1 ? "full TLS handshake (0 of 1 connections resumed)"
                                  : "TLS session resumed"));
    }
    client_get_stats(c, &st);
    assert_int_equal(st.connections, 3);
    assert_int_equal(st.resumed, 2);
    assert_int_equal(accepted(), 3);
    assert_int_equal(resumed(), 2);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.peer_cn, "node-1");
    pthread_mutex_unlock(&srv.lock);
    server_stop();

    /* Restarted on its port: a new ticket key. */
    server_port = srv.port;
    server_start(CLOSE_AFTER_ONE, &server);
    assert_int_equal(post(c, "/v1/nodes/node-1/evidence", &resp), 200);
    json_decref(resp);
    resp = NULL;
    assert_true(logged("full TLS handshake (2 of 4 connections resumed)"));
    assert_int_equal(resumed(), 0);
    assert_int_equal(post(c, "/v1/nodes/node-1/evidence", &resp), 200);
    json_decref(resp);
    client_get_stats(c, &st);
    assert_int_equal(st.connections, 5);
    assert_int_equal(st.resumed, 3);
    assert_int_equal(resumed(), 1);
    server_stop();

    /* A server that fails the handshake offering a session: a full one
     * right after, and the request is answered. */
    server_no_resumption = true;
    server_start(CLOSE_AFTER_ONE, &server);
    server_no_resumption = false;
    server_port = 0;
    resp = NULL;
    assert_int_equal(post(c, "/v1/nodes/node-1/evidence", &resp), 200);
    json_decref(resp);
    assert_true(logged("again with a full TLS handshake"));
    assert_int_equal(accepted(), 2);
    client_get_stats(c, &st);
    assert_int_equal(st.connections, 6);
    assert_int_equal(st.resumed, 3);
    client_free(c);
    server_stop();
}

/* Retried once only: when the new connection fails too, the request fails,
 * after two connections in all. */
static void test_retried_once_only(void **state) {
    struct client *c;
    json_t *resp = NULL;
    (void)state;

    server_start(FIRST_CONNECTION_ONLY, &server);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), 200);
    json_decref(resp);
    resp = NULL;
    assert_int_equal(post(c, "/b", &resp), -EIO);
    assert_null(resp);
    assert_int_equal(accepted(), 2);
    assert_int_equal(requests(), 2);
    assert_true(logged("no answer"));
    client_free(c);
    server_stop();

    /* A fresh connection that fails is not retried. */
    server_start(NEVER_ANSWER, &server);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), -EIO);
    assert_int_equal(accepted(), 1);
    assert_int_equal(requests(), 1);
    client_free(c);
    server_stop();
}

/* "Connection: close": the client does not reuse the connection. */
static void test_connection_close(void **state) {
    struct client *c;
    json_t *resp = NULL;
    (void)state;

    server_start(CONNECTION_CLOSE, &server);
    c = connect_to(ca_pem, "");
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(post(c, "/a", &resp), 200);
        json_decref(resp);
        resp = NULL;
    }
    assert_int_equal(accepted(), 2);
    assert_int_equal(requests(), 2);
    client_free(c);
    server_stop();
}

/* A body of exactly the cap is taken; one byte more, or chunks or a stream
 * past it, are refused. */
static void test_response_cap(void **state) {
    static const enum mode huge[] = {HUGE_LENGTH, HUGE_CHUNKED, HUGE_UNTIL_CLOSE};
    struct client *c;
    json_t *resp = NULL;
    (void)state;

    server_start_sized(SIZED, &server, CLIENT_RESPONSE_MAX);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), 200);
    assert_int_equal(json_string_length(json_object_get(resp, "a")), CLIENT_RESPONSE_MAX - 8);
    json_decref(resp);
    resp = NULL;
    client_free(c);
    server_stop();

    for (size_t i = 0; i < ARRAY_SIZE(huge); i++) {
        server_start(huge[i], &server);
        c = connect_to(ca_pem, "");
        if (post(c, "/a", &resp) != -E2BIG) {
            fail_msg("mode %d: not refused as too big", (int)huge[i]);
        }
        assert_null(resp);
        assert_true(logged("too big"));
        client_free(c);
        server_stop();
    }
}

/* The answer must be a JSON object; its status is passed on. */
static void test_answers(void **state) {
    struct client *c;
    json_t *resp = NULL;
    (void)state;

    server_start(NOT_JSON, &server);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), -EBADMSG);
    assert_null(resp);
    client_free(c);
    server_stop();

    server_start(AN_ARRAY, &server);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), -EBADMSG);
    assert_null(resp);
    client_free(c);
    server_stop();

    server_start(STATUS_409, &server);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), 409);
    assert_string_equal(json_string_value(json_object_get(resp, "error")), "conflict");
    json_decref(resp);
    client_free(c);
    server_stop();

    /* A refusal that is not JSON is still its status, with an empty
     * object: the agent can tell a proxy's 502 from a broken answer. */
    server_start(PROXY_502, &server);
    c = connect_to(ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), 502);
    assert_non_null(resp);
    assert_int_equal(json_object_size(resp), 0);
    json_decref(resp);
    client_free(c);
    server_stop();

    /* An answer trickled a byte at a time, each within the read timeout:
     * the request's deadline ends it (review finding R16-A1). */
    server_start(DRIP, &server);
    c = connect_to(ca_pem, "");
    client_set_request_deadline_ms(c, 700);
    assert_int_equal(post(c, "/a", &resp), -ETIMEDOUT);
    assert_null(resp);
    assert_true(logged("no whole answer within the request's deadline"));
    client_free(c);
    server_stop();
}

/* The verifier's certificate must come from the agent's CA and name the
 * address asked for; no request is sent otherwise. */
static void test_bad_certificate(void **state) {
    const struct test_pki *ids[] = {&server_other, &server_no_ip};
    struct client *c;
    json_t *resp = NULL;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        server_start(ANSWER, ids[i]);
        c = connect_to(ca_pem, "");
        assert_int_equal(post(c, "/a", &resp), -ECONNREFUSED);
        assert_null(resp);
        assert_true(logged("the verifier's certificate is refused"));
        assert_int_equal(requests(), 0);
        client_free(c);
        server_stop();
    }
    /* Trusting another CA: the right server is refused too. */
    server_start(ANSWER, &server);
    c = connect_to(other_ca_pem, "");
    assert_int_equal(post(c, "/a", &resp), -ECONNREFUSED);
    assert_true(logged("the verifier's certificate is refused"));
    assert_int_equal(requests(), 0);
    client_free(c);
    server_stop();
}

/* Write path's content by renaming a new file over it (a new inode). */
static void replace_file(const char *path, const char *text) {
    char tmp[200];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* --token-file: no client certificate, the token in an Authorization
 * header of every request, the new one once the file is replaced, none
 * sent when the file turned to garbage, and never to a server whose
 * certificate did not verify. */
static void test_token(void **state) {
    struct agent_token tok;
    struct client *c = NULL;
    json_t *resp = NULL;
    char url[128], path[160];
    (void)state;

    snprintf(path, sizeof(path), "%s/token", dir);
    replace_file(path, "tok-1\n");
    agent_token_init(&tok, path);
    server_cert_optional = true;
    server_start(ANSWER, &server);
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", srv.port);
    assert_int_equal(client_new(url, NULL, NULL, ca_pem, &c), 0);
    client_set_token(c, &tok);
    assert_int_equal(post(c, "/v1/nodes/node-1/challenges", &resp), 200);
    json_decref(resp);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.authorization, "Bearer tok-1");
    assert_string_equal(srv.peer_cn, "");
    pthread_mutex_unlock(&srv.lock);
    replace_file(path, "tok-2");
    assert_int_equal(post(c, "/v1/nodes/node-1/challenges", &resp), 200);
    json_decref(resp);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.authorization, "Bearer tok-2");
    pthread_mutex_unlock(&srv.lock);
    replace_file(path, "tok 3");
    assert_int_equal(post(c, "/v1/nodes/node-1/challenges", &resp), -EBADMSG);
    assert_null(resp);
    assert_int_equal(requests(), 2);
    client_free(c);
    server_stop();
    /* A server the CA does not vouch for never sees the token. */
    replace_file(path, "tok-4");
    server_start(ANSWER, &server_other);
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", srv.port);
    assert_int_equal(client_new(url, NULL, NULL, ca_pem, &c), 0);
    client_set_token(c, &tok);
    assert_int_equal(post(c, "/a", &resp), -ECONNREFUSED);
    assert_int_equal(requests(), 0);
    client_free(c);
    server_stop();
    server_cert_optional = false;
    agent_token_free(&tok);
    unlink(path);
}

static void test_new_errors(void **state) {
    static const char *const bad[] = {
            "http://127.0.0.1:8443", "https://",        "https://:8443", "https://127.0.0.1:",
            "https://h:0",           "https://h:65536", "https://h:12x", "https://[::1",
            "https://h:1234567",     "ftp://h",
    };
    struct client *c = NULL;
    char missing[200], wrong_key[200];
    int fd;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (client_new(bad[i], NULL, NULL, ca_pem, &c) != -EINVAL) {
            fail_msg("%s was taken", bad[i]);
        }
        assert_null(c);
    }
    assert_int_equal(client_new("https://[::1]:8443/v", NULL, NULL, ca_pem, &c), 0);
    client_free(c);
    c = NULL;
    snprintf(missing, sizeof(missing), "%s/none.pem", dir);
    assert_int_equal(client_new("https://127.0.0.1:1", NULL, NULL, missing, &c), -EINVAL);
    /* A key that is missing, or not the certificate's. */
    assert_int_equal(client_new("https://127.0.0.1:1", agent_pem, missing, ca_pem, &c), -EINVAL);
    snprintf(wrong_key, sizeof(wrong_key), "%s/ca.key", dir);
    assert_int_equal(client_new("https://127.0.0.1:1", agent_pem, wrong_key, ca_pem, &c), -EINVAL);
    assert_null(c);
    client_free(NULL);

    /* Nothing listens: no answer, a negative errno. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        char url[64];
        json_t *resp = NULL;
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u", ntohs(sa.sin_port));
        assert_int_equal(client_new(url, agent_pem, agent_key, ca_pem, &c), 0);
        assert_int_equal(post(c, "/a", &resp), -ECONNREFUSED);
        assert_null(resp);
        client_free(c);
    }
    close(fd);
}

static int setup(void **state) {
    (void)state;

    assert_int_equal(test_tmpdir_new("client", dir, sizeof(dir)), 0);
    make(&ca, NULL, "kima test CA", NULL, NULL, NULL);
    make(&other_ca, NULL, "some other CA", NULL, NULL, NULL);
    make(&server, NULL, "kima-verifier", &ca, "serverAuth", "IP:127.0.0.1,DNS:localhost");
    make(&server_other, NULL, "kima-verifier", &other_ca, "serverAuth", "IP:127.0.0.1");
    make(&server_no_ip, NULL, "kima-verifier", &ca, "serverAuth", "DNS:localhost");
    make(&agent, "kima-agent", "node-1", &ca, "clientAuth", NULL);
    save(&ca, "ca", ca_pem, sizeof(ca_pem));
    save(&other_ca, "other-ca", other_ca_pem, sizeof(other_ca_pem));
    save(&agent, "agent", agent_pem, sizeof(agent_pem));
    snprintf(agent_key, sizeof(agent_key), "%s/agent.key", dir);

    snprintf(log_path, sizeof(log_path), "%s/client.log", dir);
    log_file = fopen(log_path, "w+");
    assert_non_null(log_file);
    log_set_stream(log_file);
    /* A write to a connection the server closed must be an error, not a
     * signal (kima-agent ignores SIGPIPE the same way). */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    log_set_stream(NULL);
    fclose(log_file);
    test_pki_free(&ca);
    test_pki_free(&other_ca);
    test_pki_free(&server);
    test_pki_free(&server_other);
    test_pki_free(&server_no_ip);
    test_pki_free(&agent);
    return test_tmpdir_free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_keep_alive),
            cmocka_unit_test(test_closed_connection_retried),
            cmocka_unit_test(test_retried_once_only),
            cmocka_unit_test(test_session_resumed),
            cmocka_unit_test(test_connection_close),
            cmocka_unit_test(test_response_cap),
            cmocka_unit_test(test_answers),
            cmocka_unit_test(test_bad_certificate),
            cmocka_unit_test(test_token),
            cmocka_unit_test(test_new_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
