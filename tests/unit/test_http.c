/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/http.c over real TLS on 127.0.0.1 port 0, with certificates made
 * here. The engine is its boundary (tests stub it, nothing below): engine_challenge,
 * engine_evidence and engine_nodes are wrapped (-Wl,--wrap) and answer 200
 * at once, or, for an evidence the test holds, only once it lets go. What is
 * tested is the front's own bookkeeping: connections per client
 * certificate, and one request body being received per node. */
#include "test-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "engine.h"
#include "http.h"
#include "log.h"
#include "test-pki.h"
#include "time-util.h"

/* ---- the engine, wrapped ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool hold;      /* the next evidence waits until released */
    bool held;      /* an evidence is waiting */
    bool release;   /* let it go */
    int evidences;  /* calls so far */
    int challenges; /* calls so far */
} eng = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false, 0, 0};

enum engine_status __wrap_engine_evidence(struct engine *e, const char *node, const json_t *req,
                                          json_t **resp);
enum engine_status __wrap_engine_challenge(struct engine *e, const char *node, json_t **resp);
enum engine_status __wrap_engine_nodes(struct engine *e, json_t **resp);

enum engine_status __wrap_engine_evidence(struct engine *e, const char *node, const json_t *req,
                                          json_t **resp) {
    (void)e;
    (void)req;
    pthread_mutex_lock(&eng.lock);
    eng.evidences++;
    if (eng.hold) {
        eng.hold = false;
        eng.held = true;
        pthread_cond_broadcast(&eng.cond);
        while (!eng.release) {
            pthread_cond_wait(&eng.cond, &eng.lock);
        }
        eng.held = false;
    }
    pthread_mutex_unlock(&eng.lock);
    *resp = json_pack("{s:s,s:s}", "node", node, "verdict", "trusted");
    return ENGINE_OK;
}

enum engine_status __wrap_engine_challenge(struct engine *e, const char *node, json_t **resp) {
    (void)e;
    pthread_mutex_lock(&eng.lock);
    eng.challenges++;
    pthread_mutex_unlock(&eng.lock);
    *resp = json_pack("{s:s}", "node", node);
    return ENGINE_OK;
}

enum engine_status __wrap_engine_nodes(struct engine *e, json_t **resp) {
    (void)e;
    *resp = json_pack("{s:[]}", "nodes");
    return ENGINE_OK;
}

/* Until an evidence is held (within 5 s). */
static bool wait_held(void) {
    int64_t until = time_mono_ms() + 5000;
    bool held;

    pthread_mutex_lock(&eng.lock);
    while (!eng.held && time_mono_ms() < until) {
        pthread_mutex_unlock(&eng.lock);
        usleep(1000);
        pthread_mutex_lock(&eng.lock);
    }
    held = eng.held;
    pthread_mutex_unlock(&eng.lock);
    return held;
}

static void release_held(void) {
    pthread_mutex_lock(&eng.lock);
    eng.release = true;
    pthread_cond_broadcast(&eng.cond);
    pthread_mutex_unlock(&eng.lock);
}

/* ---- certificates ---- */

static char dir[256];
static struct test_pki ca, server_pki;

static void issue(struct test_pki *p, const char *ou, const char *cn, const struct test_pki *issuer,
                  const char *eku, const char *san) {
    assert_int_equal(test_pki_issue(p, ou, cn, issuer, eku, san), 0);
}

/* dir/NAME.pem and dir/NAME.key. */
static void save(const struct test_pki *p, const char *name) {
    assert_int_equal(test_pki_save(p, dir, name, NULL, 0), 0);
}

/* The clients: two nodes, and an operator whose CN is a node's name. */
static const struct {
    const char *name, *ou, *cn;
} clients[] = {
        {"node-1", "kima-agent", "node-1"},
        {"node-2", "kima-agent", "node-2"},
        {"op-node-2", "kima-operator", "node-2"},
};

static int group_setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* a connection the verifier closed fails its test, not the run */
    assert_int_equal(test_tmpdir_new("http", dir, sizeof(dir)), 0);
    issue(&ca, NULL, "kima test CA", NULL, NULL, NULL);
    save(&ca, "ca");
    issue(&server_pki, NULL, "kima-verifier", &ca, "serverAuth", "IP:127.0.0.1");
    save(&server_pki, "server");
    for (size_t i = 0; i < ARRAY_SIZE(clients); i++) {
        struct test_pki p;
        issue(&p, clients[i].ou, clients[i].cn, &ca, "clientAuth", NULL);
        save(&p, clients[i].name);
        test_pki_free(&p);
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    test_pki_free(&ca);
    test_pki_free(&server_pki);
    assert_int_equal(test_tmpdir_free(dir), 0);
    return 0;
}

/* ---- the server under test ---- */

static struct http_server *srv;
static uint16_t port;
static char log_path[512];
static FILE *log_file;

static void server_start(unsigned per_cert) {
    char cert[512], key[512], cafile[512];
    struct http_config cfg = {
            .listen = "127.0.0.1:0",
            .tls_cert = cert,
            .tls_key = key,
            .client_ca = cafile,
            .threads = 4,
            .max_connections = 32,
            .max_connections_per_cert = per_cert,
    };

    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    snprintf(cafile, sizeof(cafile), "%s/ca.pem", dir);
    snprintf(log_path, sizeof(log_path), "%s/verifier.log", dir);
    log_file = fopen(log_path, "w");
    assert_non_null(log_file);
    setvbuf(log_file, NULL, _IOLBF, 0);
    log_set_stream(log_file);
    /* No engine: the wrapped calls never touch it. */
    assert_int_equal(http_start(&cfg, NULL, &srv), 0);
    port = http_port(srv);
    pthread_mutex_lock(&eng.lock);
    eng.hold = eng.held = eng.release = false;
    eng.evidences = eng.challenges = 0;
    pthread_mutex_unlock(&eng.lock);
}

static void server_stop(void) {
    http_stop(srv);
    srv = NULL;
    log_set_stream(stderr);
    fclose(log_file);
}

/* Whether the verifier's log has `text`. */
static bool logged(const char *text) {
    uint8_t *data = NULL;
    size_t len;
    bool found;

    assert_int_equal(read_file_capped(log_path, 1 << 20, &data, &len), 0);
    found = data && memmem(data, len, text, strlen(text)) != NULL;
    free(data);
    return found;
}

/* ---- a client ---- */

struct conn {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
};

/* A TLS connection with client `who`'s certificate; NULL when the verifier
 * does not take it. Reads and writes give up after 5 s. */
static struct conn *conn_open(const char *who) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {5, 0};
    struct conn *c = calloc(1, sizeof(*c));
    char path[512];

    assert_non_null(c);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, path, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    snprintf(path, sizeof(path), "%s/%s.pem", dir, who);
    assert_int_equal(SSL_CTX_use_certificate_file(c->ctx, path, SSL_FILETYPE_PEM), 1);
    snprintf(path, sizeof(path), "%s/%s.key", dir, who);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, path, SSL_FILETYPE_PEM), 1);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->ssl = SSL_new(c->ctx);
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || SSL_connect(c->ssl) != 1) {
        SSL_free(c->ssl);
        SSL_CTX_free(c->ctx);
        close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

static void conn_close(struct conn *c) {
    if (c) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        SSL_CTX_free(c->ctx);
        close(c->fd);
        free(c);
    }
}

static bool conn_send(struct conn *c, const char *data, size_t len) {
    return SSL_write(c->ssl, data, (int)len) == (int)len;
}

/* Send the request line, the headers (with a Content-Length of `len`) and
 * the first `sent` bytes of body. */
static bool send_request(struct conn *c, const char *method, const char *path, const char *body,
                         size_t len, size_t sent) {
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, len);

    return conn_send(c, head, (size_t)n) && (sent == 0 || conn_send(c, body, sent));
}

struct answer {
    int status; /* 0: none came (closed or timed out) */
    bool retry_after, close;
    char allow[32]; /* the Allow header's value */
    char body[512];
};

/* One response: its status, whether it has Retry-After or
 * "Connection: close", and its body. */
static void read_answer(struct conn *c, struct answer *a) {
    char buf[4096];
    size_t len = 0, body_len = 0;
    char *end = NULL, *cl;
    int k;

    memset(a, 0, sizeof(*a));
    buf[0] = 0;
    while (!(end = strstr(buf, "\r\n\r\n")) && len < sizeof(buf) - 1) {
        k = SSL_read(c->ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (k <= 0) {
            return;
        }
        len += (size_t)k;
        buf[len] = 0;
    }
    if (!end || sscanf(buf, "HTTP/1.1 %d", &a->status) != 1) {
        a->status = 0;
        return;
    }
    *end = 0;
    a->retry_after = strcasestr(buf, "\r\nRetry-After:") != NULL;
    a->close = strcasestr(buf, "\r\nConnection: close") != NULL;
    if ((cl = strcasestr(buf, "\r\nAllow: ")) != NULL) {
        snprintf(a->allow, sizeof(a->allow), "%.*s", (int)strcspn(cl + 9, "\r"), cl + 9);
    }
    cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl) {
        body_len = strtoul(cl + 17, NULL, 10);
    }
    len -= (size_t)(end + 4 - buf);
    memmove(buf, end + 4, len);
    while (len < body_len && len < sizeof(buf) - 1) {
        k = SSL_read(c->ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (k <= 0) {
            break;
        }
        len += (size_t)k;
    }
    buf[len] = 0;
    snprintf(a->body, sizeof(a->body), "%.*s", (int)(sizeof(a->body) - 1), buf);
}

/* A request without a body and its answer's status. */
static int ask(struct conn *c, const char *method, const char *path, struct answer *a) {
    if (!send_request(c, method, path, NULL, 0, 0)) {
        return 0;
    }
    read_answer(c, a);
    return a->status;
}

/* The verifier ended the connection: nothing more comes. */
static bool ended(struct conn *c) {
    char b;
    return SSL_read(c->ssl, &b, 1) <= 0;
}

/* ---- connections per client certificate ---- */

/* One certificate holds at most --max-connections-per-cert connections;
 * the request that would open one more is 429 with Retry-After and its
 * connection closed; other certificates, an operator with the node's CN
 * included, are not touched; a closed connection gives its place back. */
static void test_cert_cap(void **state) {
    struct conn *a[3], *b, *op, *again = NULL;
    struct answer ans;
    int64_t until;
    (void)state;

    server_start(2);
    for (int i = 0; i < 3; i++) {
        a[i] = conn_open("node-2");
        assert_non_null(a[i]);
    }
    assert_int_equal(ask(a[0], "POST", "/v1/nodes/node-2/challenges", &ans), 200);
    assert_int_equal(ask(a[1], "POST", "/v1/nodes/node-2/challenges", &ans), 200);
    assert_false(ans.close);
    assert_int_equal(ask(a[2], "POST", "/v1/nodes/node-2/challenges", &ans), 429);
    assert_true(ans.retry_after);
    assert_non_null(strstr(ans.body, "--max-connections-per-cert"));
    assert_true(ended(a[2]));
    /* The refused request never reached the engine. */
    assert_int_equal(eng.challenges, 2);
    assert_true(logged("the agent certificate CN=node-2 has 2 connections open already"));

    /* Other clients: another node, an operator whose CN is "node-2". */
    b = conn_open("node-1");
    op = conn_open("op-node-2");
    assert_non_null(b);
    assert_non_null(op);
    assert_int_equal(ask(b, "POST", "/v1/nodes/node-1/challenges", &ans), 200);
    assert_int_equal(ask(op, "GET", "/v1/nodes", &ans), 200);

    /* node-2's kept connections still serve it. */
    assert_int_equal(ask(a[0], "POST", "/v1/nodes/node-2/challenges", &ans), 200);
    assert_int_equal(ask(a[1], "POST", "/v1/nodes/node-2/challenges", &ans), 200);

    /* One closes: node-2 may open one again (once the verifier has seen the
     * close), and then no more. */
    conn_close(a[0]);
    until = time_mono_ms() + 3000;
    while (time_mono_ms() < until) {
        again = conn_open("node-2");
        assert_non_null(again);
        if (ask(again, "POST", "/v1/nodes/node-2/challenges", &ans) == 200) {
            break;
        }
        assert_int_equal(ans.status, 429);
        conn_close(again);
        again = NULL;
        usleep(10000);
    }
    assert_non_null(again);
    a[0] = conn_open("node-2");
    assert_non_null(a[0]);
    assert_int_equal(ask(a[0], "POST", "/v1/nodes/node-2/challenges", &ans), 429);

    conn_close(a[0]);
    conn_close(a[1]);
    conn_close(a[2]);
    conn_close(again);
    conn_close(b);
    conn_close(op);
    server_stop();
}

/* ---- one body in flight per node ---- */

/* A node's second body while its first is still arriving is 429; once the
 * first is in, the slot is free, even while that request is still in the
 * engine (held here) and has not been answered: a connection stuck after
 * its upload does not lock its node out. */
static void test_upload_slot(void **state) {
    static const char body[] = "{\"nonce\": \"AAAA\"}";
    const size_t len = sizeof(body) - 1;
    struct conn *first, *second, *stuck, *next;
    struct answer ans;
    (void)state;

    server_start(8);
    /* While the first body arrives: the slot is taken. */
    first = conn_open("node-2");
    second = conn_open("node-2");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(send_request(first, "POST", "/v1/nodes/node-2/evidence", body, len, 5));
    usleep(100000); /* the verifier reads the headers (no answer to wait for) */
    /* Headers only: the answer comes before the body, and closes. */
    assert_true(send_request(second, "POST", "/v1/nodes/node-2/evidence", body, len, 0));
    read_answer(second, &ans);
    assert_int_equal(ans.status, 429);
    assert_true(ans.retry_after);
    assert_non_null(strstr(ans.body, "another request body"));
    /* Another node is not concerned. */
    next = conn_open("node-1");
    assert_non_null(next);
    assert_true(send_request(next, "POST", "/v1/nodes/node-1/evidence", body, len, len));
    read_answer(next, &ans);
    assert_int_equal(ans.status, 200);
    conn_close(next);
    /* The rest of the first body: answered, and the slot is free. */
    assert_true(conn_send(first, body + 5, len - 5));
    read_answer(first, &ans);
    assert_int_equal(ans.status, 200);
    conn_close(second);

    /* A request whose body is in but that the engine holds. */
    pthread_mutex_lock(&eng.lock);
    eng.hold = true;
    pthread_mutex_unlock(&eng.lock);
    stuck = conn_open("node-2");
    assert_non_null(stuck);
    assert_true(send_request(stuck, "POST", "/v1/nodes/node-2/evidence", body, len, len));
    assert_true(wait_held());
    /* The node's next upload, on a new connection, is taken. */
    next = conn_open("node-2");
    assert_non_null(next);
    assert_true(send_request(next, "POST", "/v1/nodes/node-2/evidence", body, len, len));
    read_answer(next, &ans);
    assert_int_equal(ans.status, 200);
    assert_int_equal(eng.evidences, 4);
    release_held();
    read_answer(stuck, &ans);
    assert_int_equal(ans.status, 200);
    /* And on the same connection as the first, after it. */
    assert_true(send_request(first, "POST", "/v1/nodes/node-2/evidence", body, len, len));
    read_answer(first, &ans);
    assert_int_equal(ans.status, 200);

    conn_close(first);
    conn_close(stuck);
    conn_close(next);
    server_stop();
}

/* ---- routes ---- */

/* The server answers what http_admit() decided from the route, before the
 * engine: 405 with an Allow header, 404 for an unknown action of the
 * agent's own node, 403 for /metrics to an agent; the routes run reach
 * the engine with the node from the path. */
static void test_routes(void **state) {
    static const struct {
        const char *method, *path;
        int status;
        const char *allow;
    } cases[] = {
            {"GET", "/v1/nodes/node-1/challenges", 405, "POST"},
            {"POST", "/v1/nodes/node-1/reboot", 404, ""},
            {"POST", "/v1/nodes/node-2/challenges", 403, ""},
            {"GET", "/metrics", 403, ""},
            {"PUT", "/v1/nodes/node-1", 403, ""},
            {"POST", "/v1/nodes/node-1/challenges", 200, ""},
    };
    struct answer ans;
    (void)state;

    server_start(8);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct conn *c = conn_open("node-1");
        assert_non_null(c);
        if (ask(c, cases[i].method, cases[i].path, &ans) != cases[i].status) {
            fail_msg("%s %s: %d, wanted %d (%s)", cases[i].method, cases[i].path, ans.status,
                     cases[i].status, ans.body);
        }
        assert_string_equal(ans.allow, cases[i].allow);
        if (ans.status == 200) {
            assert_non_null(strstr(ans.body, "\"node\":\"node-1\""));
        }
        conn_close(c);
    }
    assert_int_equal(eng.challenges, 1);
    server_stop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cert_cap),
            cmocka_unit_test(test_upload_slot),
            cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
