/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_BENCH_LOADGEN_H
#define KIMA_BENCH_LOADGEN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "buf.h"
#include "fake-quote.h"
#include "ima-gen.h"
#include "soft-tpm.h"
#include "test-pki.h"

/* kima-loadgen: simulated nodes against a real kima-verifier over HTTPS
 * (docs/scale.md). Each node has a software TPM (soft-tpm.h, fake-quote.h),
 * its own client certificate, its own keep-alive TLS connection from its
 * own loopback source address, and an IMA list it extends as it goes. */

#define LG_NODES_MAX    20000
#define LG_THREADS_MAX  16
#define LG_RESPONSE_MAX (1024 * 1024) /* a verifier answer larger is an error */
#define LG_LIST_MAX     (64u << 20)   /* one node's unacknowledged entries */
#define LG_LAT_MAX      (8u << 20)    /* latencies kept for percentiles */
#define LG_FAILOVER_MAX 20            /* --failover: new starts of one round at most */
#define LG_CPU_PIDS_MAX 32            /* --cpu-pid NAME=PID options */

struct lg_config {
    unsigned nodes, entries, pods, threads, sources, ak_mode; /* ak: 0 rsa, 1 ecc, 2 mixed */
    bool ek_ecc;
    unsigned interval_ms, timeout_ms, setup_concurrency, reconnect_every;
    double rate, duration, warmup, setup_timeout;
    struct sockaddr_storage target;
    socklen_t target_len;
    char target_text[64];
    const char *cacert, *ca_key, *cache_dir, *ack_log, *rounds_log;
    int verifier_pid;
    long long baseline_rss;
    bool json, rsa_pool;
    /* a round whose connection broke (reset, end, TLS error, timeout) or
     * that was answered 502, 503 or 504 starts again on a new connection,
     * counted in failed_over, not as an error (a balancer in front of
     * several verifiers, one of which went away) */
    bool failover;
    /* --cpu-pid: processes whose CPU in the window is reported per round,
     * summed by name */
    struct lg_cpu_pid {
        char name[16];
        int pid;
    } cpu_pids[LG_CPU_PIDS_MAX];
    unsigned ncpu_pids;
};

enum lg_step {
    LG_IDLE = 0,
    LG_REGISTER,
    LG_ACTIVATE,
    LG_CHALLENGE,
    LG_EVIDENCE,
};

enum lg_conn {
    LG_CLOSED = 0,
    LG_CONNECTING,
    LG_HANDSHAKE,
    LG_OPEN,
};

enum lg_err {
    LG_ERR_TLS = 0,
    LG_ERR_CONNECT,
    LG_ERR_TIMEOUT,
    LG_ERR_CLOSED,  /* the server closed a kept-alive connection under a request */
    LG_ERR_BAD,     /* an answer that is not what the protocol says */
    LG_ERR_VERDICT, /* a 200 evidence answer whose verdict is not trusted */
    LG_ERR_KINDS,
};

struct lg_stats {
    /* retried: requests sent again on a new connection because the
     * verifier had closed the kept-alive one (its idle timeout) before a
     * byte of the answer, as the agent does (agent/client.c) */
    uint64_t rounds, late, handshakes, resumed, retried, http[600], err[LG_ERR_KINDS];
    /* --failover: rounds started again after a broken connection or a
     * 502/503/504 (failed_over), rounds given up after LG_FAILOVER_MAX
     * starts (also counted as the error of their last try) */
    uint64_t failed_over, given_up;
    /* rounds a verifier recorded whose answer never came: the next
     * challenge's ima_next_index was past what the node had acknowledged */
    uint64_t answers_lost;
    double *lat; /* ms, rounds of the measured window */
    size_t nlat, lat_cap;
};

struct lg_node {
    unsigned idx; /* 1-based */
    char name[16];
    struct soft_ek ek;
    struct fake_ak ak;
    TPM2B_NAME ak_name;
    struct test_pki cert;
    struct sockaddr_in src;
    /* the node's IMA list: entries from index `base` on are not yet
     * acknowledged; g.count is the list's whole length */
    struct ima_gen g;
    uint64_t base, round_no, clock;
    /* the connection */
    int fd;
    enum lg_conn conn;
    SSL *ssl;
    SSL_SESSION *session; /* the last one, offered on reconnect */
    struct kbuf out, in;
    size_t out_off;
    uint32_t events;  /* what epoll waits for now */
    unsigned answers; /* answers read on this connection */
    bool retried;     /* the request under way was sent again once */
    unsigned starts;  /* --failover: starts of the round under way */
    double retry_at;  /* --failover: when it starts again; 0: not waiting */
    /* the request under way */
    enum lg_step step;
    bool setup_done;
    unsigned setup_tries;
    double sent_at, round_start, due;
    char nonce_b64[96];
    size_t heap_pos;
};

struct lg_thread {
    const struct lg_config *cfg;
    struct lg_node **nodes;
    size_t n, next_setup, setup_active, setup_done, setup_failed;
    int ep;
    SSL_CTX *ctx;
    struct lg_node **heap; /* by due time */
    size_t heap_n;
    size_t retry_pending; /* nodes with a retry_at */
    struct lg_stats st;
    pthread_t tid;
};

/* Shared between the threads: the phase and the ack log. */
struct lg_shared {
    volatile int phase; /* 0 setup, 1 warmup, 2 measure, 3 drain, 4 stop */
    FILE *ack, *rounds; /* --ack-log, --rounds-log */
    pthread_mutex_t ack_lock;
};
extern struct lg_shared lg_shared;

double lg_now(void);

/* loadgen-node.c: the node's TPM side and its request bodies. */
int lg_node_init(struct lg_node *n, unsigned idx, const struct lg_config *cfg,
                 const struct test_pki *ca);
void lg_node_free(struct lg_node *n);
/* Bodies, malloc'd JSON text the caller frees; NULL on failure. */
char *lg_registration_body(const struct lg_node *n);
/* From the registration answer: the activation body, or NULL (the answer
 * malformed or the credential not for this TPM). */
char *lg_activation_body(struct lg_node *n, const char *answer, size_t len);
/* From the challenge answer: this round's entries added, the quote signed,
 * the evidence body. */
char *lg_evidence_body(struct lg_node *n, const struct lg_config *cfg, const char *answer,
                       size_t len);
/* A 200 evidence answer: 0 trusted, -EPERM another verdict, -EBADMSG. The
 * acknowledged entries are dropped, and logged to the ack log and the
 * rounds log ("unix_ms node nonce ima_next_index"). */
int lg_evidence_answer(struct lg_node *n, const char *answer, size_t len);
/* The pods file for the verifier: every node's pods. 0 or -errno. */
int lg_write_pods(const char *path, unsigned nodes, unsigned pods);
void lg_pod_uid(unsigned node, unsigned pod, char ret[37]);
/* --rsa-keys pool: primes for `keys` distinct RSA-2048 keys (not safe keys:
 * for load only). 0 or -ENOMEM. */
int lg_rsa_pool_init(size_t keys);
void lg_rsa_pool_free(void);

/* loadgen-net.c: the threads' event loops. */
int lg_thread_run(struct lg_thread *t);

#endif
