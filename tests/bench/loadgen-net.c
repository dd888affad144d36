/* SPDX-License-Identifier: Apache-2.0 */
/* A thread of kima-loadgen: one epoll loop over its share of the nodes,
 * each node one non-blocking TLS connection with one request at a time,
 * rounds started from a heap of due times (open loop: a round due while the
 * last one is still under way is counted late and skipped, never stacked). */
#include "loadgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "http-parse.h"

#define SETUP_TRIES    5
#define SETUP_RETRY_S  0.5
#define TIMEOUT_SCAN_S 0.2

static double period_s(const struct lg_config *cfg) {
    return cfg->rate > 0 ? (double)cfg->nodes / cfg->rate : cfg->interval_ms / 1000.0;
}

/* ---- the heap of due times */

static void heap_swap(struct lg_thread *t, size_t a, size_t b) {
    struct lg_node *x = t->heap[a];
    t->heap[a] = t->heap[b];
    t->heap[b] = x;
    t->heap[a]->heap_pos = a;
    t->heap[b]->heap_pos = b;
}

static void heap_down(struct lg_thread *t, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->heap_n && t->heap[l]->due < t->heap[m]->due) {
            m = l;
        }
        if (r < t->heap_n && t->heap[r]->due < t->heap[m]->due) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(t, i, m);
        i = m;
    }
}

static void heap_push(struct lg_thread *t, struct lg_node *n, double due) {
    size_t i = t->heap_n++;

    n->due = due;
    t->heap[i] = n;
    n->heap_pos = i;
    while (i > 0 && t->heap[(i - 1) / 2]->due > t->heap[i]->due) {
        heap_swap(t, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_pop(struct lg_thread *t) {
    heap_swap(t, 0, --t->heap_n);
    heap_down(t, 0);
}

/* ---- the connection */

static void set_events(struct lg_thread *t, struct lg_node *n, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = n};

    if (n->events != ev && epoll_ctl(t->ep, EPOLL_CTL_MOD, n->fd, &e) == 0) {
        n->events = ev;
    }
}

static void conn_close(struct lg_thread *t, struct lg_node *n) {
    if (n->ssl) {
        SSL_SESSION *s = SSL_get1_session(n->ssl);
        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(n->session);
            n->session = s;
        } else {
            SSL_SESSION_free(s);
        }
        SSL_free(n->ssl);
        n->ssl = NULL;
    }
    if (n->fd >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, n->fd, NULL);
        close(n->fd);
        n->fd = -1;
    }
    n->conn = LG_CLOSED;
    n->events = 0;
    ERR_clear_error();
}

/* A non-blocking connect from the node's own loopback address. */
static int conn_open(struct lg_thread *t, struct lg_node *n) {
    const struct lg_config *cfg = t->cfg;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = n};
    int one = 1;

    n->fd = socket(cfg->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        return -errno;
    }
    if (cfg->target.ss_family == AF_INET) {
        /* the port is picked at connect: 10,000 sockets on one source
         * address (--sources 1) do not run out of ports at bind */
        setsockopt(n->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(n->fd, (const struct sockaddr *)&n->src, sizeof(n->src)) < 0) {
            return -errno;
        }
    }
    if (connect(n->fd, (const struct sockaddr *)&cfg->target, cfg->target_len) < 0 &&
        errno != EINPROGRESS) {
        return -errno;
    }
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, n->fd, &e) < 0) {
        return -errno;
    }
    n->events = EPOLLOUT;
    n->conn = LG_CONNECTING;
    n->answers = 0;
    return 0;
}

static int conn_start_tls(struct lg_thread *t, struct lg_node *n) {
    int err = 0;
    socklen_t el = sizeof(err);

    if (getsockopt(n->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
        return -ECONNREFUSED;
    }
    n->ssl = SSL_new(t->ctx);
    if (!n->ssl || SSL_set_fd(n->ssl, n->fd) != 1 ||
        SSL_use_certificate(n->ssl, n->cert.crt) != 1 ||
        SSL_use_PrivateKey(n->ssl, n->cert.key) != 1 ||
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(n->ssl), t->cfg->target_text) != 1) {
        return -ENOMEM;
    }
    if (n->session) {
        SSL_set_session(n->ssl, n->session);
    }
    n->conn = LG_HANDSHAKE;
    return 0;
}

/* 1 when the SSL call may go on later (events set), else -EIO. */
static int ssl_wait(struct lg_thread *t, struct lg_node *n, int rc) {
    int e = SSL_get_error(n->ssl, rc);

    if (e == SSL_ERROR_WANT_READ) {
        set_events(t, n, EPOLLIN);
        return 1;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        set_events(t, n, EPOLLOUT);
        return 1;
    }
    return e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) ? -EPIPE
                                                                                           : -EIO;
}

static int conn_handshake(struct lg_thread *t, struct lg_node *n) {
    int rc = SSL_connect(n->ssl);

    if (rc == 1) {
        t->st.handshakes++;
        t->st.resumed += SSL_session_reused(n->ssl) == 1;
        n->conn = LG_OPEN;
        return 0;
    }
    return ssl_wait(t, n, rc);
}

/* Write what is left of the request; then wait for the answer. */
static int conn_flush(struct lg_thread *t, struct lg_node *n) {
    while (n->out_off < n->out.len) {
        int rc = SSL_write(n->ssl, n->out.data + n->out_off, (int)(n->out.len - n->out_off));
        if (rc <= 0) {
            return ssl_wait(t, n, rc);
        }
        n->out_off += (size_t)rc;
    }
    set_events(t, n, EPOLLIN);
    return 1;
}

/* Read; 1 with the status and body when a whole answer is there, 0 when more
 * is to come, a negative errno on error. */
static int conn_read(struct lg_thread *t, struct lg_node *n, int *status, char **body, size_t *blen,
                     bool *keep) {
    struct http_response h;
    const char *why = NULL;
    int r;

    for (;;) {
        int rc;
        if (kbuf_reserve(&n->in, 16384) < 0) {
            return -E2BIG;
        }
        rc = SSL_read(n->ssl, n->in.data + n->in.len, (int)(n->in.alloc - n->in.len - 1));
        if (rc <= 0) {
            r = ssl_wait(t, n, rc);
            if (r < 0) {
                return r;
            }
            break;
        }
        n->in.len += (size_t)rc;
    }
    r = http_parse_head((const char *)n->in.data, n->in.len, &h, &why);
    if (r <= 0) {
        return r < 0 ? -EBADMSG : 0;
    }
    *status = h.status;
    *keep = h.keep_alive;
    *body = (char *)n->in.data + h.header_len;
    if (h.chunked) {
        size_t used;
        r = http_dechunk(*body, n->in.len - h.header_len, LG_RESPONSE_MAX, blen, &used, &why);
        return r < 0 ? -EBADMSG : r;
    }
    if (h.content_length < 0) {
        return -EBADMSG; /* the verifier always says how long */
    }
    *blen = (size_t)h.content_length;
    return n->in.len - h.header_len >= *blen ? 1 : 0;
}

/* ---- requests and rounds */

static void fail(struct lg_thread *t, struct lg_node *n, int kind);
static void on_answer(struct lg_thread *t, struct lg_node *n, int status, const char *body,
                      size_t blen);

/* Send POST /v1/nodes/<node>/<what> with body (taken, freed here). */
static void request(struct lg_thread *t, struct lg_node *n, enum lg_step step, const char *what,
                    char *body) {
    size_t bl = body ? strlen(body) : 2;
    int r;

    kbuf_reset(&n->out);
    kbuf_reset(&n->in);
    n->out_off = 0;
    n->step = step;
    n->retried = false;
    r = kbuf_printf(&n->out,
                    "POST /v1/nodes/%s/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kima-loadgen\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                    n->name, what, t->cfg->target_text, bl, body ? body : "{}");
    free(body);
    if (r < 0) {
        fail(t, n, LG_ERR_BAD);
        return;
    }
    n->sent_at = lg_now();
    if (n->conn == LG_CLOSED) {
        if (conn_open(t, n) < 0) {
            fail(t, n, LG_ERR_CONNECT);
        }
    } else if (n->conn == LG_OPEN && conn_flush(t, n) < 0) {
        fail(t, n, LG_ERR_CLOSED);
    }
}

static void start_setup(struct lg_thread *t, struct lg_node *n) {
    char *b = lg_registration_body(n);

    if (!b) {
        fail(t, n, LG_ERR_BAD);
        return;
    }
    request(t, n, LG_REGISTER, "registration", b);
}

/* A new round; `again`: the start again of one whose connection broke
 * (--failover), its latency counted from its first start. */
static void start_round(struct lg_thread *t, struct lg_node *n, bool again) {
    if (n->retry_at > 0) {
        n->retry_at = 0;
        t->retry_pending--;
    }
    if (!again) {
        n->round_start = lg_now();
        n->starts = 0;
    }
    n->starts++;
    request(t, n, LG_CHALLENGE, "challenges", NULL);
}

/* --failover: a round whose connection broke, or that a balancer answered
 * 502/503/504, starts again on a new connection: at once the first time
 * (the balancer sends it to another verifier), then after 50 ms more each
 * time (all of them may be down). False when that is not the case: not a
 * round, too many starts, the run ending. */
static bool failover(struct lg_thread *t, struct lg_node *n) {
    if (!t->cfg->failover || !n->setup_done ||
        (n->step != LG_CHALLENGE && n->step != LG_EVIDENCE) || lg_shared.phase >= 4) {
        return false;
    }
    if (n->starts >= LG_FAILOVER_MAX) {
        t->st.given_up++;
        return false;
    }
    conn_close(t, n);
    t->st.failed_over++;
    n->step = LG_IDLE;
    if (n->retry_at == 0) {
        t->retry_pending++;
    }
    n->retry_at = lg_now() + 0.05 * (n->starts - 1);
    return true;
}

static void setup_finished(struct lg_thread *t, struct lg_node *n, bool ok) {
    double p = period_s(t->cfg);

    n->setup_done = true;
    t->setup_active--;
    if (ok) {
        __atomic_add_fetch(&t->setup_done, 1, __ATOMIC_RELAXED);
        /* spread evenly over the period by the node's number */
        heap_push(t, n, lg_now() + p * (double)((n->idx - 1) % t->cfg->nodes) / t->cfg->nodes);
    } else {
        __atomic_add_fetch(&t->setup_failed, 1, __ATOMIC_RELAXED);
    }
}

/* A request that failed: counted, the connection dropped when it is the
 * transport's fault, the round given up; during setup retried a few
 * times. */
static void fail(struct lg_thread *t, struct lg_node *n, int kind) {
    bool transport = kind != LG_ERR_VERDICT && kind != LG_ERR_BAD && kind >= 0;

    if (transport && failover(t, n)) {
        return;
    }
    /* --failover: a set-up whose connection broke is tried again as ever,
     * and counted with the rounds started again; its last try is an error */
    if (transport && t->cfg->failover && !n->setup_done && n->setup_tries + 1 < SETUP_TRIES) {
        t->st.failed_over++;
    } else if (kind >= 0) {
        t->st.err[kind]++;
    }
    if (kind != LG_ERR_VERDICT && kind != LG_ERR_BAD && kind >= 0) {
        conn_close(t, n);
    }
    n->step = LG_IDLE;
    if (!n->setup_done) {
        if (++n->setup_tries >= SETUP_TRIES) {
            setup_finished(t, n, false);
        } else {
            heap_push(t, n, lg_now() + SETUP_RETRY_S);
        }
    }
}

/* An unexpected status: counted; the first answer of each status is shown
 * (quoted, bounded), since it usually says what is wrong with the set-up. */
static void http_error(struct lg_thread *t, struct lg_node *n, int status, const char *body,
                       size_t blen) {
    static const char *const steps[] = {"idle", "registration", "activation", "challenge",
                                        "evidence"};
    int k = status >= 0 && status < 600 ? status : 0;

    /* 409 "node changed": another verifier wrote the node during the
     * round, nothing of it was recorded; a new round goes through */
    if (((status >= 502 && status <= 504) ||
         (status == 409 && memmem(body, blen, "\"node changed\"", 14))) &&
        failover(t, n)) {
        return;
    }
    if (t->st.http[k]++ == 0) {
        fprintf(stderr, "kima-loadgen: %s %s: HTTP %d: \"", n->name, steps[n->step], status);
        for (size_t i = 0; i < blen && i < 300; i++) {
            unsigned char c = (unsigned char)body[i];
            if (c < 0x20 || c > 0x7e || c == '\\') {
                fprintf(stderr, "\\x%02x", c);
            } else {
                fputc(c, stderr);
            }
        }
        fputs("\"\n", stderr);
    }
    fail(t, n, -1);
}

static void round_done(struct lg_thread *t, struct lg_node *n) {
    double now = lg_now();

    n->step = LG_IDLE;
    n->starts = 0;
    if (!n->setup_done) {
        setup_finished(t, n, true);
        return;
    }
    if (lg_shared.phase == 2 && t->st.nlat < t->st.lat_cap) {
        t->st.rounds++;
        t->st.lat[t->st.nlat++] = (now - n->round_start) * 1000.0;
    }
    if (t->cfg->reconnect_every && n->round_no % t->cfg->reconnect_every == 0) {
        conn_close(t, n); /* the next round resumes the TLS session, if the server lets it */
    }
}

static void on_answer(struct lg_thread *t, struct lg_node *n, int status, const char *body,
                      size_t blen) {
    uint64_t base;
    char *next;
    int r;

    switch (n->step) {
    case LG_REGISTER:
        if (status != 201) {
            http_error(t, n, status, body, blen);
        } else if (!(next = lg_activation_body(n, body, blen))) {
            fail(t, n, LG_ERR_BAD);
        } else {
            request(t, n, LG_ACTIVATE, "activation", next);
        }
        break;
    case LG_ACTIVATE:
        if (status != 200) {
            http_error(t, n, status, body, blen);
        } else {
            start_round(t, n, false);
        }
        break;
    case LG_CHALLENGE:
        base = n->base;
        if (status != 200) {
            http_error(t, n, status, body, blen);
        } else if (!(next = lg_evidence_body(n, t->cfg, body, blen))) {
            fail(t, n, LG_ERR_BAD);
        } else {
            t->st.answers_lost += n->base != base;
            request(t, n, LG_EVIDENCE, "evidence", next);
        }
        break;
    case LG_EVIDENCE:
        r = status == 200 ? lg_evidence_answer(n, body, blen) : 0;
        if (status != 200) {
            http_error(t, n, status, body, blen);
        } else if (r < 0) {
            fail(t, n, r == -EPERM ? LG_ERR_VERDICT : LG_ERR_BAD);
        } else {
            round_done(t, n);
        }
        break;
    default:
        fail(t, n, LG_ERR_BAD); /* an answer nobody asked for */
    }
}

/* The verifier closed a kept-alive connection (its idle timeout) as the
 * request went out, before a byte of the answer: sent again, once, on a
 * new connection, as the agent does (agent/client.c). False when it is not
 * that case or the new connection cannot be opened. */
static bool retry_fresh(struct lg_thread *t, struct lg_node *n) {
    /* --failover: the request may have been carried out by a verifier
     * that died before it answered; a new round, not the same request */
    if (t->cfg->failover || n->retried || n->answers == 0 || n->in.len > 0) {
        return false;
    }
    conn_close(t, n);
    n->retried = true;
    n->out_off = 0;
    if (conn_open(t, n) < 0) {
        return false;
    }
    t->st.retried++;
    return true;
}

/* ---- the loop */

/* Readable at rest: a late TLS message (a session ticket) is read; the
 * server closing the kept-alive connection closes it here too. */
static void idle_read(struct lg_thread *t, struct lg_node *n) {
    char scratch[512];
    int rc = SSL_read(n->ssl, scratch, sizeof(scratch));

    if (rc > 0 || ssl_wait(t, n, rc) < 0) {
        conn_close(t, n); /* bytes nobody asked for, or the end */
    }
}

/* The socket is ready: take the connection a step further. */
static void node_io(struct lg_thread *t, struct lg_node *n) {
    int status = 0, r;
    char *body = NULL;
    size_t blen = 0;
    bool keep = true;

    if (n->conn == LG_CONNECTING && conn_start_tls(t, n) < 0) {
        fail(t, n, n->ssl ? LG_ERR_TLS : LG_ERR_CONNECT);
        return;
    }
    if (n->conn == LG_HANDSHAKE && (r = conn_handshake(t, n)) != 0) {
        if (r < 0) {
            fail(t, n, LG_ERR_TLS);
        }
        return;
    }
    if (n->step == LG_IDLE) {
        idle_read(t, n);
        return;
    }
    if (n->out_off < n->out.len) {
        if (conn_flush(t, n) < 0 && !retry_fresh(t, n)) {
            fail(t, n, LG_ERR_CLOSED);
        }
        return;
    }
    r = conn_read(t, n, &status, &body, &blen, &keep);
    if (r == -EPIPE && retry_fresh(t, n)) {
        return;
    }
    if (r < 0) {
        conn_close(t, n); /* whatever follows a bad answer is not worth reading */
        fail(t, n, r == -EPIPE ? LG_ERR_CLOSED : r == -EIO ? LG_ERR_TLS : LG_ERR_BAD);
        return;
    }
    if (r == 0) {
        return;
    }
    body[blen] = '\0'; /* in the buffer's room: the bytes after are not needed */
    n->answers++;
    if (!keep) {
        conn_close(t, n);
    }
    on_answer(t, n, status, body, blen);
}

static void check_timeouts(struct lg_thread *t, double now) {
    for (size_t i = 0; i < t->n; i++) {
        struct lg_node *n = t->nodes[i];
        if (n->step != LG_IDLE && now - n->sent_at > t->cfg->timeout_ms / 1000.0) {
            fail(t, n, LG_ERR_TIMEOUT);
        }
    }
}

/* Nodes whose time has come: setup (again), or a round; a round due while
 * the last one is under way is late. */
static void fire_due(struct lg_thread *t, double now) {
    double p = period_s(t->cfg);
    int phase = lg_shared.phase;

    while (t->heap_n && t->heap[0]->due <= now) {
        struct lg_node *n = t->heap[0];
        double due = n->due;
        heap_pop(t);
        if (!n->setup_done) {
            start_setup(t, n);
            continue;
        }
        if (phase >= 3) {
            continue; /* no new rounds: draining */
        }
        /* --failover: a node set up attests at once, as an agent does,
         * so that none goes stale while the others are set up */
        if (n->step == LG_IDLE && n->retry_at == 0 && (phase >= 1 || t->cfg->failover)) {
            start_round(t, n, false);
        } else if (phase == 2) {
            t->st.late++;
        }
        due += p;
        heap_push(t, n, due > now - p ? due : now + p); /* never a burst to catch up */
    }
}

/* --failover: rounds whose time to start again has come. */
static void fire_retries(struct lg_thread *t, double now) {
    for (size_t i = 0; i < t->n && t->retry_pending; i++) {
        struct lg_node *n = t->nodes[i];
        if (n->retry_at > 0 && n->retry_at <= now && n->step == LG_IDLE) {
            start_round(t, n, true);
        }
    }
}

static bool busy(const struct lg_thread *t) {
    for (size_t i = 0; i < t->n; i++) {
        if (t->nodes[i]->step != LG_IDLE) {
            return true;
        }
    }
    return false;
}

int lg_thread_run(struct lg_thread *t) {
    struct epoll_event ev[256];
    double last_scan = lg_now();

    t->heap = calloc(t->n + 1, sizeof(*t->heap));
    t->st.lat_cap = LG_LAT_MAX / LG_THREADS_MAX;
    t->st.lat = calloc(t->st.lat_cap, sizeof(*t->st.lat));
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!t->heap || !t->st.lat || t->ep < 0) {
        return -ENOMEM;
    }
    while (lg_shared.phase < 4) {
        double now = lg_now();
        int timeout = 100, k;
        while (t->setup_active < t->cfg->setup_concurrency && t->next_setup < t->n) {
            t->setup_active++;
            start_setup(t, t->nodes[t->next_setup++]);
        }
        fire_due(t, now);
        if (t->retry_pending) {
            fire_retries(t, now);
        }
        if (t->heap_n) {
            double d = (t->heap[0]->due - now) * 1000.0;
            timeout = d < 0 ? 0 : d < 100 ? (int)d + 1 : 100;
        }
        if (t->retry_pending && timeout > 10) {
            timeout = 10;
        }
        k = epoll_wait(t->ep, ev, 256, timeout);
        for (int i = 0; i < k; i++) {
            node_io(t, ev[i].data.ptr);
        }
        now = lg_now();
        if (now - last_scan > TIMEOUT_SCAN_S) {
            check_timeouts(t, now);
            last_scan = now;
            if (lg_shared.phase == 3 && !busy(t) && !t->retry_pending) {
                break;
            }
        }
    }
    return 0;
}
