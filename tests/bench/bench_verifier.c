/* SPDX-License-Identifier: Apache-2.0 */
/* Evidence rounds per second through the verifier's engine (no HTTP): N
 * nodes with software AKs, each round a challenge, a signed quote over the
 * node's new PCR 10 and K new ima-cgpath entries for a pod with a policy,
 * judged, committed to SQLite (WAL, group commit, synced) on disk. Prints
 * rounds/s, entries/s and latency percentiles. Asserts nothing about speed.
 *
 * With --threads T, T threads run the rounds of different nodes at once (as
 * the verifier's HTTP threads do): rounds/s is then the wall-clock rate,
 * and the store's commits show how many rounds each commit carried (group
 * commit).
 *
 *   bench_verifier [--nodes N] [--rounds R] [--entries K] [--threads T] [--dir DIR] */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "base64.h"
#include "engine.h"
#include "fake-quote.h"
#include "hex.h"
#include "json-util.h"
#include "ima-gen.h"
#include "parse.h"
#include "log.h"
#include "pcr.h"
#include "pubkey.h"
#include "tmpdir.h"

/* CPU time of the calling thread: what the verifier's work costs, whatever
 * else runs on the machine. */
static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What the workers share: node i's state is touched by its worker only. */
struct bench {
    struct engine *e;
    struct fake_ak *aks;
    struct ima_gen *gens;
    uint64_t *sent, *sent_idx;
    uint64_t nodes, rounds, k, threads;
};

struct worker {
    struct bench *b;
    uint64_t t; /* nodes t, t + threads, ... */
    double *lat, busy, cpu;
    size_t nlat;
    int failed;
};

/* One round of node i: new entries, challenge, quote, evidence. 0, or -1
 * when the verifier refused it. The time spent in the engine in *ret_busy,
 * the CPU time this thread spent there in *ret_cpu. */
static int bench_round(struct bench *b, uint64_t r, uint64_t i, double *ret_busy, double *ret_cpu) {
    char node[32], uid_[64], cg[300], hex[65];
    json_t *resp = NULL, *req;
    const char *nb;
    uint8_t nonce[64], attest[sizeof(TPMS_ATTEST)], sig[sizeof(TPMT_SIGNATURE)], fd[32];
    size_t alen, slen;
    TPMS_ATTEST a;
    TPML_PCR_SELECTION sel;
    int nl;
    enum engine_status status;
    double t1, t_chal, busy, c1;

    snprintf(node, sizeof(node), "n%llu", (unsigned long long)i);
    snprintf(uid_, sizeof(uid_), "00000000_0000_4000_8000_%012llu", (unsigned long long)i);
    snprintf(cg, sizeof(cg),
             "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/"
             "cri-containerd-%064llu.scope",
             uid_, (unsigned long long)i);
    memset(fd, 0, sizeof(fd));
    fd[31] = 1; /* sha256:00..01, allowed by the policy */
    for (uint64_t x = 0; x < b->k; x++) {
        char s1[200], s2[400], s3[100];
        uint8_t d[64];
        snprintf(s3, sizeof(s3), "/usr/lib/python3/dist-packages/m%llu.py",
                 (unsigned long long)(r * b->k + x));
        struct gen_field fl[4] = {
                gen_str(s1, "/usr/bin/python3:/usr/bin/containerd-shim-runc-v2:/sbin/init"),
                gen_str(s2, cg), gen_dng(d, "sha256:", fd, 32), gen_str(s3, s3)};
        ima_gen_add(&b->gens[i], 10, "ima-cgpath", fl, 4, false);
    }
    c1 = thread_cpu();
    t1 = now();
    engine_challenge(b->e, node, &resp);
    t_chal = now() - t1;
    *ret_cpu = thread_cpu() - c1;
    nb = json_string_value(json_object_get(resp, "nonce"));
    nl = base64_decode(nb, strlen(nb), nonce, sizeof(nonce));
    tpm_pcr_selection_parse("sha256:10", &sel);
    fake_attest_init(&a, nonce, (size_t)nl, &sel, b->gens[i].pcr[1][10], 32);
    a.clockInfo.clock = 1000 + r;
    fake_quote(&b->aks[i], &a, NULL, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, attest, &alen, sig, &slen);
    req = json_pack(
            "{s:s,s:{s:o,s:o},s:{s:{s:s}},s:{s:I,s:o},s:s}", "nonce", nb, "quote", "attest",
            json_base64(attest, alen), "signature", json_base64(sig, slen), "pcrs", "sha256", "10",
            hex_encode(b->gens[i].pcr[1][10], 32, hex), "ima", "from", (json_int_t)b->sent_idx[i],
            "entries",
            json_base64(b->gens[i].list.data + b->sent[i], b->gens[i].list.len - b->sent[i]),
            "boot_id", "b");
    json_decref(resp);
    c1 = thread_cpu();
    t1 = now();
    status = engine_evidence(b->e, node, req, &resp);
    busy = now() - t1 + t_chal;
    *ret_cpu += thread_cpu() - c1;
    *ret_busy = busy;
    if (status != ENGINE_OK ||
        strcmp(json_string_value(json_object_get(resp, "verdict")), "trusted") != 0) {
        char *s = json_dumps(resp, 0);
        fprintf(stderr, "bench: round refused: %d %s\n", (int)status, s);
        return -1;
    }
    b->sent[i] = b->gens[i].list.len;
    b->sent_idx[i] = b->gens[i].count;
    json_decref(req);
    json_decref(resp);
    return 0;
}

static void *bench_worker(void *ud) {
    struct worker *w = ud;

    for (uint64_t r = 0; r < w->b->rounds && !w->failed; r++) {
        for (uint64_t i = w->t; i < w->b->nodes && !w->failed; i += w->b->threads) {
            double busy = 0, cpu = 0;
            w->failed = bench_round(w->b, r, i, &busy, &cpu) < 0;
            w->cpu += cpu;
            w->lat[w->nlat++] = busy;
            w->busy += busy;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
            {"nodes", required_argument, NULL, 'n'},   {"rounds", required_argument, NULL, 'r'},
            {"entries", required_argument, NULL, 'k'}, {"threads", required_argument, NULL, 't'},
            {"dir", required_argument, NULL, 'd'},     {0}};
    uint64_t nodes = 20, rounds = 50, k = 20, threads = 1;
    char dir[256] = "", db[300], alog[300], akey[300], pods[300], pol[300], path[400];
    struct engine_config cfg;
    struct store *store;
    struct audit_log *audit;
    struct inventory *inv;
    struct engine *e;
    EVP_PKEY *key;
    struct fake_ak *aks;
    struct ima_gen *gens;
    uint64_t *sent, *sent_idx;
    double *lat, t0, total, verifier_time = 0, verifier_cpu = 0;
    size_t nlat = 0;
    bool made_dir = false;
    int failed = 0;
    char *metrics = NULL;
    unsigned long long commits = 0, committed = 0;
    int o;
    FILE *f;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'n' && parse_u64_range(optarg, 1, 10000, &nodes) == 0) {
        } else if (o == 'r' && parse_u64_range(optarg, 1, 100000, &rounds) == 0) {
        } else if (o == 'k' && parse_u64_range(optarg, 1, 10000, &k) == 0) {
        } else if (o == 't' && parse_u64_range(optarg, 1, 64, &threads) == 0) {
        } else if (o == 'd') {
            snprintf(dir, sizeof(dir), "%s", optarg);
        } else {
            fprintf(stderr, "usage: bench_verifier [--nodes N] [--rounds R] [--entries K] "
                            "[--threads T] [--dir DIR]\n");
            return 64;
        }
    }
    if (!dir[0]) {
        if (test_tmpdir_new("bench-verifier", dir, sizeof(dir)) < 0) {
            return 1;
        }
        made_dir = true;
    }
    setenv("TSS2_LOG", "all+none", 0);
    log_set_level(LOG_LEVEL_WARN);
    snprintf(db, sizeof(db), "%s/kima.db", dir);
    snprintf(alog, sizeof(alog), "%s/audit.log", dir);
    snprintf(akey, sizeof(akey), "%s/audit.key", dir);
    snprintf(pods, sizeof(pods), "%s/pods.json", dir);
    snprintf(pol, sizeof(pol), "%s/policies", dir);
    mkdir(pol, 0700);
    snprintf(path, sizeof(path), "%s/p.json", pol);
    f = fopen(path, "w");
    fprintf(f,
            "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"p\","
            "\"match\":{\"namespace\":\"ns\"},\"digests\":{\"*\":[\"sha256:%064d\"]}}",
            1);
    fclose(f);
    f = fopen(pods, "w");
    fprintf(f, "{\"items\":[");
    for (uint64_t i = 0; i < nodes; i++) {
        fprintf(f,
                "%s{\"metadata\":{\"uid\":\"00000000-0000-4000-8000-%012llu\",\"namespace\":"
                "\"ns\",\"name\":\"pod-%llu\",\"labels\":{}},\"spec\":{\"nodeName\":\"n%llu\"}}",
                i ? "," : "", (unsigned long long)i, (unsigned long long)i, (unsigned long long)i);
    }
    fprintf(f, "]}");
    fclose(f);

    engine_config_default(&cfg);
    cfg.min_challenge_ms = 0;
    if (store_open(db, &store) < 0 || audit_key_load_or_create(akey, &key) < 0 ||
        audit_open(alog, key, 0, AUDIT_CHECKPOINT_EVERY_DEFAULT, &audit) < 0 ||
        inventory_open_file(pods, &inv) < 0 || engine_new(&cfg, store, audit, inv, pol, &e) < 0) {
        return 1;
    }
    aks = calloc(nodes, sizeof(*aks));
    gens = calloc(nodes, sizeof(*gens));
    sent = calloc(nodes, sizeof(*sent));
    sent_idx = calloc(nodes, sizeof(*sent_idx));
    lat = calloc(nodes * rounds, sizeof(*lat));
    /* Nodes registered and activated: written to the store directly, with
     * software AKs (the TPM side is measured by bench_quote). */
    for (uint64_t i = 0; i < nodes; i++) {
        struct node_record n = {0};
        TPM2B_PUBLIC pub = {0};
        TPM2B_NAME name;
        size_t off = 0;
        fake_ak_new(&aks[i], false);
        pub.publicArea = aks[i].pub;
        Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, n.ak_pub, sizeof(n.ak_pub), &off);
        n.ak_pub_len = off;
        memcpy(n.ek_pub, n.ak_pub, off);
        n.ek_pub_len = off;
        tpm_public_name(&aks[i].pub, &name);
        memcpy(n.ak_name, name.name, name.size);
        n.ak_name_len = name.size;
        snprintf(n.name, sizeof(n.name), "n%llu", (unsigned long long)i);
        n.activated = true;
        n.state = NODE_ACTIVE;
        store_node_put(store, &n);
        ima_gen_init(&gens[i], 20, 1u << 30);
    }

    t0 = now();
    {
        pthread_t tid[64];
        struct worker wk[64];
        struct bench bn = {e, aks, gens, sent, sent_idx, nodes, rounds, k, threads};
        for (uint64_t t = 0; t < threads; t++) {
            wk[t] = (struct worker){
                    .b = &bn, .t = t, .lat = calloc(nodes * rounds, sizeof(double))};
            if (!wk[t].lat || pthread_create(&tid[t], NULL, bench_worker, &wk[t]) != 0) {
                return 1;
            }
        }
        for (uint64_t t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            failed |= wk[t].failed;
            memcpy(lat + nlat, wk[t].lat, wk[t].nlat * sizeof(double));
            nlat += wk[t].nlat;
            verifier_time += wk[t].busy;
            verifier_cpu += wk[t].cpu;
            free(wk[t].lat);
        }
    }
    total = now() - t0;
    if (failed || nlat == 0) {
        return 1;
    }
    if (engine_metrics(e, &metrics) == 0) {
        const char *c = strstr(metrics, "\nkima_store_commits_total ");
        const char *w = strstr(metrics, "\nkima_store_rounds_committed_total ");
        if (c && w) {
            sscanf(c + strlen("\nkima_store_commits_total "), "%llu", &commits);
            sscanf(w + strlen("\nkima_store_rounds_committed_total "), "%llu", &committed);
        }
        free(metrics);
    }
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    printf("kima verifier engine benchmark: %llu nodes x %llu rounds, %llu ima-cgpath entries "
           "a round, store and audit log in %s%s\n",
           (unsigned long long)nodes, (unsigned long long)rounds, (unsigned long long)k, dir,
           made_dir ? " (removed at the end; --dir DIR keeps them)" : "");
    if (threads == 1) {
        printf("  verifier time only: %.0f evidence rounds/s, %.0f IMA entries/s judged\n"
               "  (one core; %.2f s in the verifier, %.2f s in all with the benchmark's own list\n"
               "  generation and quote signing)\n",
               (double)nlat / verifier_time, (double)(nlat * k) / verifier_time, verifier_time,
               total);
    } else {
        printf("  %llu threads: %.0f evidence rounds/s by the wall clock (%.2f s, the benchmark's\n"
               "  own list generation and quote signing included, on the same cores)\n",
               (unsigned long long)threads, (double)nlat / total, total);
    }
    printf("  verifier CPU per round: %.3f ms (the threads' CPU time inside the engine, fsync "
           "waits not counted)\n",
           verifier_cpu * 1000 / (double)nlat);
    printf("  store: %llu commits for %llu rounds (%.2f rounds a commit: one fsync each)\n",
           commits, committed, commits ? (double)committed / (double)commits : 0.0);
    printf("  per round (challenge + quote check + replay + policy + commit): p50 %.2f ms, "
           "p99 %.2f ms, max %.2f ms\n",
           lat[nlat / 2] * 1000, lat[nlat * 99 / 100] * 1000, lat[nlat - 1] * 1000);
    engine_free(e);
    inventory_free(inv);
    audit_close(audit);
    store_close(store);
    if (made_dir) {
        test_tmpdir_free(dir);
    }
    return 0;
}
