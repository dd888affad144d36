/* SPDX-License-Identifier: Apache-2.0 */
/* kima-loadgen: N simulated nodes with software TPMs against a real
 * kima-verifier over HTTPS with client certificates and keep-alive, each
 * from its own loopback address. Registers and activates every node, then
 * runs attestation rounds (challenge, then evidence with a quote over PCR 10
 * and K new ima-cgpath entries for P pods) at a fixed interval or a total
 * rate, and reports rounds/s, latency, errors, and the verifier's CPU per
 * round and RSS per node. Loopback only. docs/scale.md. */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "parse.h"

#define SETUP_CONCURRENCY 64

static const char usage[] =
        "usage: kima-loadgen --target 127.0.0.1:PORT --cacert CA.pem --ca-key CA.key [options]\n"
        "       kima-loadgen --write-pods FILE [--nodes N] [--pods P]\n"
        "  --target ADDR:PORT    the verifier (127.0.0.0/8 or [::1] only)\n"
        "  --cacert FILE         the CA of the verifier's certificate and of the agents' ones\n"
        "  --ca-key FILE         its key: each node gets a certificate of its own\n"
        "                        (OU kima-agent, CN load-NNNNN, clientAuth, P-256)\n"
        "  --nodes N             simulated nodes, 1..20000 (100)\n"
        "  --entries K           ima-cgpath entries per round and node (10)\n"
        "  --pods P              pods per node, 1..64 (4)\n"
        "  --interval-ms I       a round per node every I ms (2000)\n"
        "  --rate R              or R rounds/s in all, spread evenly over the nodes\n"
        "  --duration S          seconds measured (10), after\n"
        "  --warmup S            seconds of rounds not measured (2)\n"
        "  --setup-timeout S     at most S s to register every node (600)\n"
        "  --timeout-ms T        a request unanswered for T ms fails (10000)\n"
        "  --threads T           event loops, 1..16 (1)\n"
        "  --sources N           use only N source addresses (as behind SNAT; 0: one per node)\n"
        "  --reconnect-every N   close a node's connection after every N rounds (0: never);\n"
        "                        it offers its last TLS session when it connects again\n"
        "  --ek rsa|ecc          EK type (rsa: the verifier takes template L-1 only)\n"
        "  --ak rsa|ecc|mixed    AK type (mixed: half RSASSA-2048, half ECDSA-P256)\n"
        "  --cache-dir DIR       keep RSA keys here, so a second run does not make them again\n"
        "  --rsa-keys random|pool  pool: RSA keys as products of pairs of a pool of primes,\n"
        "                        distinct and made in seconds, but weak (load tests only)\n"
        "  --ack-log FILE        append \"node ima_next_index\" for every evidence answered 200\n"
        "  --rounds-log FILE     append \"unix_ms node nonce ima_next_index\" for each of them\n"
        "  --failover            a round whose connection broke (reset, end, TLS error,\n"
        "                        timeout) or answered 502/503/504 starts again on a new\n"
        "                        connection (up to 20 times), counted as failed_over, not\n"
        "                        as an error (verifiers behind a balancer, one going away);\n"
        "                        a set-up request so broken is counted there too; a node\n"
        "                        set up attests at once, not when all are (none goes stale)\n"
        "  --verifier-pid PID    report the verifier's CPU per round and RSS\n"
        "  --cpu-pid NAME=PID    report PID's CPU per round in the window, summed by NAME\n"
        "                        (several verifiers, the database, a balancer; up to 32)\n"
        "  --baseline-rss BYTES  its RSS before nodes connected (default: read at start)\n"
        "  --json                the figures as one JSON line too\n"
        "  --write-pods FILE     write the pods file (PodList) of --nodes x --pods and exit\n";

enum {
    O_TARGET = 256,
    O_CACERT,
    O_CAKEY,
    O_NODES,
    O_ENTRIES,
    O_PODS,
    O_INTERVAL,
    O_RATE,
    O_DURATION,
    O_WARMUP,
    O_SETUP_TIMEOUT,
    O_TIMEOUT,
    O_THREADS,
    O_SOURCES,
    O_EK,
    O_AK,
    O_CACHE,
    O_ACK,
    O_VPID,
    O_BASELINE,
    O_JSON,
    O_WRITE_PODS,
    O_RECONNECT,
    O_RSA_KEYS,
    O_ROUNDS_LOG,
    O_FAILOVER,
    O_CPU_PID,
};

/* 127.0.0.0/8 or ::1, with a port: the generator goes nowhere else. */
static int parse_target(const char *s, struct lg_config *cfg) {
    char host[64];
    const char *colon;
    uint64_t port;
    size_t hl;

    if (strncmp(s, "https://", 8) == 0) {
        s += 8;
    }
    colon = strrchr(s, ':');
    if (!colon || (hl = (size_t)(colon - s)) == 0 || hl >= sizeof(host) ||
        parse_u64_range(colon + 1, 1, 65535, &port) < 0) {
        return -EINVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&cfg->target;
        host[hl - 1] = '\0';
        memmove(host, host + 1, hl - 1);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1 || !IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) {
            return -EPERM;
        }
        cfg->target_len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&cfg->target;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1 ||
            (ntohl(a->sin_addr.s_addr) >> 24) != 127) {
            return -EPERM;
        }
        cfg->target_len = sizeof(*a);
    }
    snprintf(cfg->target_text, sizeof(cfg->target_text), "%s", host);
    return 0;
}

static int parse_seconds(const char *s, double max, double *ret) {
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= max)) {
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

static int parse_u(const char *s, uint64_t lo, uint64_t hi, unsigned *ret) {
    uint64_t v;
    int r = parse_u64_range(s, lo, hi, &v);

    if (r == 0) {
        *ret = (unsigned)v;
    }
    return r;
}

/* NAME=PID: NAME 1..15 of [a-z0-9_-]. */
static int parse_cpu_pid(const char *a, struct lg_config *c) {
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a) : 0;
    struct lg_cpu_pid *x;
    uint64_t v;

    if (c->ncpu_pids >= LG_CPU_PIDS_MAX || nl == 0 || nl >= sizeof(x->name) ||
        strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_-") != nl ||
        parse_u64_range(eq + 1, 1, 1u << 30, &v) < 0) {
        return -EINVAL;
    }
    x = &c->cpu_pids[c->ncpu_pids++];
    memcpy(x->name, a, nl);
    x->name[nl] = '\0';
    x->pid = (int)v;
    return 0;
}

static int parse_one(int o, const char *a, struct lg_config *c, const char **pods_out) {
    uint64_t v;

    switch (o) {
    case O_TARGET:
        return parse_target(a, c);
    case O_CACERT:
        c->cacert = a;
        return 0;
    case O_CAKEY:
        c->ca_key = a;
        return 0;
    case O_NODES:
        return parse_u(a, 1, LG_NODES_MAX, &c->nodes);
    case O_ENTRIES:
        return parse_u(a, 1, 1000, &c->entries);
    case O_PODS:
        return parse_u(a, 1, 64, &c->pods);
    case O_INTERVAL:
        return parse_u(a, 10, 3600000, &c->interval_ms);
    case O_RATE:
        return parse_seconds(a, 1e6, &c->rate);
    case O_DURATION:
        return parse_seconds(a, 3600, &c->duration);
    case O_WARMUP:
        return parse_seconds(a, 3600, &c->warmup);
    case O_SETUP_TIMEOUT:
        return parse_seconds(a, 7200, &c->setup_timeout);
    case O_TIMEOUT:
        return parse_u(a, 100, 600000, &c->timeout_ms);
    case O_THREADS:
        return parse_u(a, 1, LG_THREADS_MAX, &c->threads);
    case O_SOURCES:
        return parse_u(a, 0, 64000, &c->sources);
    case O_EK:
        c->ek_ecc = strcmp(a, "ecc") == 0;
        return c->ek_ecc || strcmp(a, "rsa") == 0 ? 0 : -EINVAL;
    case O_AK:
        c->ak_mode = strcmp(a, "rsa") == 0 ? 0 : strcmp(a, "ecc") == 0 ? 1 : 2;
        return c->ak_mode < 2 || strcmp(a, "mixed") == 0 ? 0 : -EINVAL;
    case O_CACHE:
        c->cache_dir = a;
        return 0;
    case O_ACK:
        c->ack_log = a;
        return 0;
    case O_ROUNDS_LOG:
        c->rounds_log = a;
        return 0;
    case O_FAILOVER:
        c->failover = true;
        return 0;
    case O_CPU_PID:
        return parse_cpu_pid(a, c);
    case O_VPID:
        if (parse_u64_range(a, 1, 1u << 30, &v) < 0) {
            return -EINVAL;
        }
        c->verifier_pid = (int)v;
        return 0;
    case O_BASELINE:
        if (parse_u64_range(a, 0, 1ull << 40, &v) < 0) {
            return -EINVAL;
        }
        c->baseline_rss = (long long)v;
        return 0;
    case O_JSON:
        c->json = true;
        return 0;
    case O_WRITE_PODS:
        *pods_out = a;
        return 0;
    case O_RSA_KEYS:
        c->rsa_pool = strcmp(a, "pool") == 0;
        return c->rsa_pool || strcmp(a, "random") == 0 ? 0 : -EINVAL;
    case O_RECONNECT:
        return parse_u(a, 0, 1000000, &c->reconnect_every);
    default:
        return -EINVAL;
    }
}

static int parse_args(int argc, char **argv, struct lg_config *c, const char **pods_out) {
    static const struct option opts[] = {
            {"target", required_argument, NULL, O_TARGET},
            {"cacert", required_argument, NULL, O_CACERT},
            {"ca-key", required_argument, NULL, O_CAKEY},
            {"nodes", required_argument, NULL, O_NODES},
            {"entries", required_argument, NULL, O_ENTRIES},
            {"pods", required_argument, NULL, O_PODS},
            {"interval-ms", required_argument, NULL, O_INTERVAL},
            {"rate", required_argument, NULL, O_RATE},
            {"duration", required_argument, NULL, O_DURATION},
            {"warmup", required_argument, NULL, O_WARMUP},
            {"setup-timeout", required_argument, NULL, O_SETUP_TIMEOUT},
            {"timeout-ms", required_argument, NULL, O_TIMEOUT},
            {"threads", required_argument, NULL, O_THREADS},
            {"sources", required_argument, NULL, O_SOURCES},
            {"ek", required_argument, NULL, O_EK},
            {"ak", required_argument, NULL, O_AK},
            {"cache-dir", required_argument, NULL, O_CACHE},
            {"ack-log", required_argument, NULL, O_ACK},
            {"rounds-log", required_argument, NULL, O_ROUNDS_LOG},
            {"failover", no_argument, NULL, O_FAILOVER},
            {"cpu-pid", required_argument, NULL, O_CPU_PID},
            {"verifier-pid", required_argument, NULL, O_VPID},
            {"baseline-rss", required_argument, NULL, O_BASELINE},
            {"json", no_argument, NULL, O_JSON},
            {"write-pods", required_argument, NULL, O_WRITE_PODS},
            {"reconnect-every", required_argument, NULL, O_RECONNECT},
            {"rsa-keys", required_argument, NULL, O_RSA_KEYS},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    int o;

    *c = (struct lg_config){.nodes = 100,
                            .entries = 10,
                            .pods = 4,
                            .threads = 1,
                            .ak_mode = 2,
                            .interval_ms = 2000,
                            .timeout_ms = 10000,
                            .duration = 10,
                            .warmup = 2,
                            .setup_timeout = 600,
                            .baseline_rss = -1,
                            .setup_concurrency = SETUP_CONCURRENCY};
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(usage, stdout);
            exit(0);
        }
        int r = parse_one(o, optarg, c, pods_out);
        if (r < 0) {
            if (o == O_TARGET && r == -EPERM) {
                fprintf(stderr, "kima-loadgen: --target %s: loopback only (127.0.0.0/8, ::1)\n",
                        optarg);
            } else if (o >= O_TARGET) {
                const struct option *x = opts;
                while (x->name && x->val != o) {
                    x++;
                }
                fprintf(stderr, "kima-loadgen: bad value for --%s: \"%.64s\"\n",
                        x->name ? x->name : "?", optarg);
            }
            fputs(usage, stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kima-loadgen: unexpected argument \"%.64s\"\n", argv[optind]);
        return -EINVAL;
    }
    if (!*pods_out && (!c->target_len || !c->cacert || !c->ca_key)) {
        fprintf(stderr, "kima-loadgen: --target, --cacert and --ca-key are needed\n%s", usage);
        return -EINVAL;
    }
    return 0;
}

/* ---- the verifier's process: CPU and RSS from /proc */

static int proc_cpu_ticks(int pid, unsigned long long *ret) {
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (!(f = fopen(path, "r"))) {
        return -errno;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the command's ")": state, then fields 4..13, then utime and stime */
    p = strrchr(buf, ')');
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -EBADMSG;
    }
    *ret = ut + st;
    return 0;
}

static long long proc_rss(int pid) {
    char path[64], line[256];
    long long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (!(f = fopen(path, "r"))) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- the threads */

struct worker {
    struct lg_thread t;
    struct lg_config *cfg;
    struct lg_node *nodes;
    unsigned first, count;
    const struct test_pki *ca;
    pthread_barrier_t *start;
    int rc;
    volatile int finished;
};

static SSL_CTX *client_ctx(const struct lg_config *cfg) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(ctx, cfg->cacert, NULL) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
    return ctx;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;

    w->t.cfg = w->cfg;
    w->t.n = w->count;
    w->t.nodes = calloc(w->count, sizeof(*w->t.nodes));
    w->t.ctx = client_ctx(w->cfg);
    w->rc = w->t.nodes && w->t.ctx ? 0 : -ENOMEM;
    for (unsigned i = 0; i < w->count && w->rc == 0; i++) {
        w->t.nodes[i] = &w->nodes[w->first + i];
        w->rc = lg_node_init(w->t.nodes[i], w->first + i + 1, w->cfg, w->ca);
        if (w->rc < 0) {
            fprintf(stderr, "kima-loadgen: cannot make the keys of node %u\n", w->first + i + 1);
        }
    }
    pthread_barrier_wait(w->start);
    if (w->rc == 0 && lg_shared.phase < 4) {
        w->rc = lg_thread_run(&w->t);
    }
    w->finished = 1;
    return NULL;
}

/* The CA that issues the nodes' certificates. */
static int load_ca(const struct lg_config *cfg, struct test_pki *ca) {
    FILE *f = fopen(cfg->cacert, "r");

    ca->crt = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) {
        fclose(f);
    }
    f = fopen(cfg->ca_key, "r");
    ca->key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f) {
        fclose(f);
    }
    if (!ca->crt || !ca->key) {
        fprintf(stderr, "kima-loadgen: cannot read the CA (%s, %s)\n", cfg->cacert, cfg->ca_key);
        return -EINVAL;
    }
    return 0;
}

/* 10,000 connections need more than the usual 1,024 descriptors. */
static int raise_nofile(unsigned nodes) {
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nodes + 64) {
        fprintf(stderr,
                "kima-loadgen: %u nodes need %u file descriptors; the limit is %llu "
                "(ulimit -n)\n",
                nodes, nodes + 64, (unsigned long long)rl.rlim_cur);
        return -EMFILE;
    }
    return 0;
}

/* ---- the run and its figures */

struct figures {
    double setup_s, window_s;
    unsigned setup_failed;
    struct lg_stats st;
    double p50, p90, p99, max;
    unsigned long long cpu0, cpu1;
    long long rss0, rss1;
    bool have_cpu;
    double own_cpu_s, own_cpu0, own_cpu1; /* the generator's, in all and at the window's ends */
    /* --cpu-pid's ticks at the window's ends; false: not readable then */
    unsigned long long pid_cpu0[LG_CPU_PIDS_MAX], pid_cpu1[LG_CPU_PIDS_MAX];
    bool pid_ok[LG_CPU_PIDS_MAX];
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double own_cpu(void) {
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void set_phase(int p) {
    __atomic_store_n(&lg_shared.phase, p, __ATOMIC_SEQ_CST);
}

static size_t count_setup(struct worker *w, unsigned nw, unsigned *ret_failed) {
    size_t done = 0, failed = 0;

    for (unsigned i = 0; i < nw; i++) {
        done += __atomic_load_n(&w[i].t.setup_done, __ATOMIC_RELAXED);
        failed += __atomic_load_n(&w[i].t.setup_failed, __ATOMIC_RELAXED);
    }
    *ret_failed = (unsigned)failed;
    return done + failed;
}

static bool all_finished(struct worker *w, unsigned nw) {
    for (unsigned i = 0; i < nw; i++) {
        if (!w[i].finished) {
            return false;
        }
    }
    return true;
}

/* The phases by the clock: setup until every node is registered (or the
 * setup timeout), warmup, the measured window, the drain (bounded). */
static void drive(const struct lg_config *cfg, struct worker *w, unsigned nw, struct figures *f) {
    double t0 = lg_now(), t = t0, drain_end = 0;
    int pid = cfg->verifier_pid;

    while (!all_finished(w, nw)) {
        double now = lg_now();
        int phase = lg_shared.phase;
        if (phase == 0 &&
            (count_setup(w, nw, &f->setup_failed) >= cfg->nodes || now - t0 > cfg->setup_timeout)) {
            f->setup_s = now - t0;
            t = now;
            set_phase(1);
        } else if (phase == 1 && now - t >= cfg->warmup) {
            f->have_cpu = pid > 0 && proc_cpu_ticks(pid, &f->cpu0) == 0;
            for (unsigned i = 0; i < cfg->ncpu_pids; i++) {
                f->pid_ok[i] = proc_cpu_ticks(cfg->cpu_pids[i].pid, &f->pid_cpu0[i]) == 0;
            }
            f->own_cpu0 = own_cpu();
            t = now;
            set_phase(2);
        } else if (phase == 2 && now - t >= cfg->duration) {
            f->have_cpu = f->have_cpu && proc_cpu_ticks(pid, &f->cpu1) == 0;
            for (unsigned i = 0; i < cfg->ncpu_pids; i++) {
                f->pid_ok[i] =
                        f->pid_ok[i] && proc_cpu_ticks(cfg->cpu_pids[i].pid, &f->pid_cpu1[i]) == 0;
            }
            f->own_cpu1 = own_cpu();
            f->rss1 = pid > 0 ? proc_rss(pid) : -1;
            f->window_s = now - t;
            drain_end = now + cfg->timeout_ms / 1000.0 + 1;
            set_phase(3);
        } else if (phase == 3 && now > drain_end) {
            set_phase(4);
        }
        usleep(20000);
    }
}

static void merge(struct worker *w, unsigned nw, struct figures *f) {
    struct lg_stats *s = &f->st;
    size_t cap = 0;

    for (unsigned i = 0; i < nw; i++) {
        cap += w[i].t.st.nlat;
    }
    s->lat = calloc(cap + 1, sizeof(*s->lat));
    for (unsigned i = 0; i < nw; i++) {
        const struct lg_stats *x = &w[i].t.st;
        s->rounds += x->rounds;
        s->late += x->late;
        s->handshakes += x->handshakes;
        s->resumed += x->resumed;
        s->retried += x->retried;
        s->failed_over += x->failed_over;
        s->given_up += x->given_up;
        s->answers_lost += x->answers_lost;
        for (int k = 0; k < 600; k++) {
            s->http[k] += x->http[k];
        }
        for (int k = 0; k < LG_ERR_KINDS; k++) {
            s->err[k] += x->err[k];
        }
        if (s->lat && x->nlat) {
            memcpy(s->lat + s->nlat, x->lat, x->nlat * sizeof(*x->lat));
            s->nlat += x->nlat;
        }
    }
    if (s->nlat) {
        qsort(s->lat, s->nlat, sizeof(*s->lat), cmp_double);
        f->p50 = s->lat[s->nlat / 2];
        f->p90 = s->lat[s->nlat * 90 / 100];
        f->p99 = s->lat[s->nlat * 99 / 100];
        f->max = s->lat[s->nlat - 1];
    }
}

static uint64_t error_count(const struct lg_stats *s) {
    uint64_t e = 0;

    for (int k = 0; k < 600; k++) {
        e += s->http[k];
    }
    for (int k = 0; k < LG_ERR_KINDS; k++) {
        e += s->err[k];
    }
    return e;
}

static const char *const err_names[LG_ERR_KINDS] = {"tls",    "connect",    "timeout",
                                                    "closed", "bad_answer", "not_trusted"};

/* --cpu-pid: CPU ms per round of the window, summed by name, in the order
 * of the names' first appearance. A process not readable at both ends of
 * the window (a replica killed, its database session ended) is left out of
 * the sum, which is then a lower bound (said so); a name with no process
 * readable is -1. */
static void report_cpu_pids(const struct lg_config *c, const struct figures *f, bool json) {
    double ticks = (double)sysconf(_SC_CLK_TCK);
    bool first = true;

    if (c->ncpu_pids == 0) {
        return;
    }
    printf(json ? ",\"cpu_ms_per_round\":{" : "  CPU per round in the window:");
    for (unsigned i = 0; i < c->ncpu_pids; i++) {
        double ms = 0;
        bool ok = false, seen = false;
        unsigned gone = 0;
        for (unsigned k = 0; k < i && !seen; k++) {
            seen = strcmp(c->cpu_pids[k].name, c->cpu_pids[i].name) == 0;
        }
        if (seen) {
            continue;
        }
        for (unsigned k = i; k < c->ncpu_pids; k++) {
            if (strcmp(c->cpu_pids[k].name, c->cpu_pids[i].name) != 0) {
                continue;
            }
            if (f->pid_ok[k]) {
                ok = true;
                ms += (double)(f->pid_cpu1[k] - f->pid_cpu0[k]) / ticks * 1000.0;
            } else {
                gone++;
            }
        }
        ms = !ok ? -1 : f->st.rounds ? ms / (double)f->st.rounds : 0;
        if (json) {
            printf("%s\"%s\":%.4f", first ? "" : ",", c->cpu_pids[i].name, ms);
        } else if (ok) {
            printf("%s %s %.3f ms", first ? "" : ",", c->cpu_pids[i].name, ms);
            if (gone) {
                printf(" (at least: %u process(es) gone)", gone);
            }
        } else {
            printf("%s %s (gone)", first ? "" : ",", c->cpu_pids[i].name);
        }
        first = false;
    }
    printf(json ? "}" : "\n");
}

static void report_text(const struct lg_config *c, const struct figures *f, double cpu_ms,
                        double cores) {
    const struct lg_stats *s = &f->st;
    double rps = f->window_s > 0 ? (double)s->rounds / f->window_s : 0;

    printf("kima-loadgen: %u nodes, %u ima-cgpath entries x %u pods a round, AK %s, EK %s, "
           "%u thread(s), %u source address(es), target %s\n",
           c->nodes, c->entries, c->pods,
           c->ak_mode == 0   ? "rsa"
           : c->ak_mode == 1 ? "ecc"
                             : "mixed",
           c->ek_ecc ? "ecc" : "rsa", c->threads, c->sources ? c->sources : c->nodes,
           c->target_text);
    printf("  setup: %.2f s (registration, activation, first round; %u failed)\n", f->setup_s,
           f->setup_failed);
    if (c->rate > 0) {
        printf("  load: %.0f rounds/s asked in all\n", c->rate);
    } else {
        printf("  load: a round per node every %u ms\n", c->interval_ms);
    }
    printf("  rounds: %llu in %.2f s = %.1f rounds/s; late (skipped) %llu\n",
           (unsigned long long)s->rounds, f->window_s, rps, (unsigned long long)s->late);
    printf("  latency (challenge + evidence): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           f->p50, f->p90, f->p99, f->max);
    printf("  errors: %llu", (unsigned long long)error_count(s));
    for (int k = 0; k < 600; k++) {
        if (s->http[k]) {
            printf(", HTTP %d: %llu", k, (unsigned long long)s->http[k]);
        }
    }
    for (int k = 0; k < LG_ERR_KINDS; k++) {
        printf(", %s %llu", err_names[k], (unsigned long long)s->err[k]);
    }
    printf("\n  TLS handshakes %llu, resumed %llu; requests sent again on a new connection "
           "(the verifier had closed an idle one) %llu\n",
           (unsigned long long)s->handshakes, (unsigned long long)s->resumed,
           (unsigned long long)s->retried);
    if (c->failover) {
        printf("  failover: rounds started again after a broken connection or a 502/503/504 "
               "%llu, given up %llu; rounds recorded whose answer was lost %llu\n",
               (unsigned long long)s->failed_over, (unsigned long long)s->given_up,
               (unsigned long long)s->answers_lost);
    }
    if (c->verifier_pid > 0 && f->have_cpu && f->rss0 >= 0 && f->rss1 >= 0) {
        printf("  verifier: CPU per round %.3f ms (%.2f cores); RSS %.1f MB before, %.1f MB at "
               "the end, %.0f bytes per node\n",
               cpu_ms, cores, f->rss0 / 1048576.0, f->rss1 / 1048576.0,
               (double)(f->rss1 - f->rss0) / c->nodes);
    } else if (c->verifier_pid > 0) {
        printf("  verifier: process %d not readable over the whole window (gone?)\n",
               c->verifier_pid);
    }
    report_cpu_pids(c, f, false);
    printf("  loadgen: %.3f ms CPU per round (%.2f cores) in the window, %.1f CPU seconds in all\n",
           s->rounds ? (f->own_cpu1 - f->own_cpu0) * 1000.0 / (double)s->rounds : 0,
           f->window_s > 0 ? (f->own_cpu1 - f->own_cpu0) / f->window_s : 0, f->own_cpu_s);
}

static void report_json(const struct lg_config *c, const struct figures *f, double cpu_ms,
                        double cores) {
    const struct lg_stats *s = &f->st;

    printf("{\"nodes\":%u,\"entries\":%u,\"pods\":%u,\"setup_s\":%.3f,\"setup_failed\":%u,"
           "\"window_s\":%.3f,\"rounds\":%llu,\"rounds_per_s\":%.2f,\"late\":%llu,"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"errors\":%llu,\"http_errors\":{",
           c->nodes, c->entries, c->pods, f->setup_s, f->setup_failed, f->window_s,
           (unsigned long long)s->rounds, f->window_s > 0 ? (double)s->rounds / f->window_s : 0,
           (unsigned long long)s->late, f->p50, f->p90, f->p99, f->max,
           (unsigned long long)error_count(s));
    for (int k = 0, first = 1; k < 600; k++) {
        if (s->http[k]) {
            printf("%s\"%d\":%llu", first ? "" : ",", k, (unsigned long long)s->http[k]);
            first = 0;
        }
    }
    printf("}");
    for (int k = 0; k < LG_ERR_KINDS; k++) {
        printf(",\"%s\":%llu", err_names[k], (unsigned long long)s->err[k]);
    }
    printf(",\"handshakes\":%llu,\"resumed\":%llu,\"retried\":%llu,\"failed_over\":%llu,"
           "\"given_up\":%llu,\"answers_lost\":%llu",
           (unsigned long long)s->handshakes, (unsigned long long)s->resumed,
           (unsigned long long)s->retried, (unsigned long long)s->failed_over,
           (unsigned long long)s->given_up, (unsigned long long)s->answers_lost);
    if (c->verifier_pid > 0) {
        printf(",\"verifier_cpu_ms_per_round\":%.4f,\"verifier_cores\":%.3f,"
               "\"verifier_rss_baseline\":%lld,\"verifier_rss_end\":%lld,"
               "\"verifier_rss_per_node\":%.0f",
               cpu_ms, cores, f->rss0, f->rss1,
               f->rss0 >= 0 && f->rss1 >= 0 ? (double)(f->rss1 - f->rss0) / c->nodes : -1.0);
    }
    report_cpu_pids(c, f, true);
    printf(",\"loadgen_cpu_s\":%.2f,\"loadgen_cpu_ms_per_round\":%.4f}\n", f->own_cpu_s,
           s->rounds ? (f->own_cpu1 - f->own_cpu0) * 1000.0 / (double)s->rounds : 0);
}

static void report(const struct lg_config *c, const struct figures *f) {
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double cpu_s = f->have_cpu ? (double)(f->cpu1 - f->cpu0) / ticks : 0;
    double cpu_ms = f->st.rounds ? cpu_s * 1000.0 / (double)f->st.rounds : 0;
    double cores = f->window_s > 0 ? cpu_s / f->window_s : 0;

    report_text(c, f, cpu_ms, cores);
    if (c->json) {
        report_json(c, f, cpu_ms, cores);
    }
    fflush(stdout);
}

static int run(struct lg_config *cfg, struct figures *f) {
    unsigned nw = cfg->threads < cfg->nodes ? cfg->threads : cfg->nodes;
    struct lg_node *nodes = calloc(cfg->nodes, sizeof(*nodes));
    struct worker *w = calloc(nw, sizeof(*w));
    struct test_pki ca = {0};
    pthread_barrier_t start;
    int rc = 0;

    if (!nodes || !w || load_ca(cfg, &ca) < 0) {
        free(nodes);
        free(w);
        return -ENOMEM;
    }
    pthread_barrier_init(&start, NULL, nw + 1);
    for (unsigned i = 0, first = 0; i < nw; i++) {
        unsigned count = cfg->nodes / nw + (i < cfg->nodes % nw);
        w[i] = (struct worker){.cfg = cfg,
                               .nodes = nodes,
                               .first = first,
                               .count = count,
                               .ca = &ca,
                               .start = &start};
        first += count;
        if (pthread_create(&w[i].t.tid, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "kima-loadgen: cannot start a thread\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    drive(cfg, w, nw, f);
    for (unsigned i = 0; i < nw; i++) {
        pthread_join(w[i].t.tid, NULL);
        rc = rc < 0 ? rc : w[i].rc;
    }
    merge(w, nw, f);
    f->own_cpu_s = own_cpu();
    for (unsigned i = 0; i < cfg->nodes; i++) {
        lg_node_free(&nodes[i]);
    }
    for (unsigned i = 0; i < nw; i++) {
        SSL_CTX_free(w[i].t.ctx);
        free(w[i].t.nodes);
        free(w[i].t.heap);
        free(w[i].t.st.lat);
        if (w[i].t.ep > 0) {
            close(w[i].t.ep);
        }
    }
    test_pki_free(&ca);
    free(nodes);
    free(w);
    pthread_barrier_destroy(&start);
    return rc;
}

int main(int argc, char **argv) {
    struct lg_config cfg;
    struct figures f = {.rss0 = -1, .rss1 = -1};
    const char *pods = NULL;
    int r;

    if (parse_args(argc, argv, &cfg, &pods) < 0) {
        return 64;
    }
    if (pods) {
        r = lg_write_pods(pods, cfg.nodes, cfg.pods);
        if (r < 0) {
            fprintf(stderr, "kima-loadgen: cannot write %s: %s\n", pods, strerror(-r));
        }
        return r < 0 ? 1 : 0;
    }
    /* a connection the other end closed is an error of that request (EPIPE),
     * not the end of the run: it is what a verifier killed under load does */
    signal(SIGPIPE, SIG_IGN);
    if (raise_nofile(cfg.nodes) < 0) {
        return 1;
    }
    if (cfg.verifier_pid > 0) {
        f.rss0 = cfg.baseline_rss >= 0 ? cfg.baseline_rss : proc_rss(cfg.verifier_pid);
    }
    if (cfg.cache_dir && mkdir(cfg.cache_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "kima-loadgen: cannot make %s: %s\n", cfg.cache_dir, strerror(errno));
        return 1;
    }
    if (cfg.ack_log && !(lg_shared.ack = fopen(cfg.ack_log, "a"))) {
        fprintf(stderr, "kima-loadgen: cannot open %s: %s\n", cfg.ack_log, strerror(errno));
        return 1;
    }
    if (cfg.rounds_log && !(lg_shared.rounds = fopen(cfg.rounds_log, "a"))) {
        fprintf(stderr, "kima-loadgen: cannot open %s: %s\n", cfg.rounds_log, strerror(errno));
        return 1;
    }
    setenv("TSS2_LOG", "all+none", 0);
    /* two keys per node: EK and AK (an ECC AK leaves its pair unused) */
    if (cfg.rsa_pool && lg_rsa_pool_init(2 * (size_t)cfg.nodes) < 0) {
        fprintf(stderr, "kima-loadgen: cannot make the pool of primes\n");
        return 1;
    }
    r = run(&cfg, &f);
    lg_rsa_pool_free();
    if (lg_shared.ack) {
        fclose(lg_shared.ack);
    }
    if (lg_shared.rounds) {
        fclose(lg_shared.rounds);
    }
    if (r < 0) {
        fprintf(stderr, "kima-loadgen: the run failed: %s\n", strerror(-r));
        return 1;
    }
    report(&cfg, &f);
    free(f.st.lat);
    return error_count(&f.st) || f.setup_failed ? 2 : 0;
}
