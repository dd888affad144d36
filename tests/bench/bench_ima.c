/* SPDX-License-Identifier: Apache-2.0 */
/* Measurement-list throughput: parse + template-digest check + replay of the
 * sha1 and sha256 banks, on generated ima-cgpath and ima-ng lists, next to
 * evmctl (ima-evm-utils) replaying the same ima-ng list; and kimactl's
 * streaming replay of the list file with its peak memory.
 *
 *   bench_ima [-n ENTRIES] [--kimactl PATH] [--evmctl PATH] [--runs N] [--keep DIR]
 *
 * Prints figures only; it is not a test and asserts nothing about speed. It
 * does check that every replay agrees (kima in memory, kimactl, evmctl). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "parse.h"
#include "replay.h"
#include "tmpdir.h"
#include "verify.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put32(struct kbuf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    kbuf_append(b, le, 4);
}

static void put_str_field(struct kbuf *b, const char *s) {
    put32(b, (uint32_t)strlen(s) + 1);
    kbuf_append(b, s, strlen(s) + 1);
}

/* Append one entry with a template digest of the list's bank. */
static void add_entry(struct kbuf *list, enum ima_hash_alg alg, const char *name,
                      struct kbuf *tdata) {
    uint8_t digest[IMA_DIGEST_MAX];

    ima_hash(alg, tdata->data, tdata->len, digest);
    put32(list, 10);
    kbuf_append(list, digest, ima_hash_size(alg));
    put32(list, (uint32_t)strlen(name));
    kbuf_append(list, name, strlen(name));
    put32(list, (uint32_t)tdata->len);
    kbuf_append(list, tdata->data, tdata->len);
}

/* Realistic entries: files of 200 pods' containers, Python modules and shared
 * libraries, the process chain containerd-shim -> systemd -> swapper. */
static void generate(struct kbuf *cgpath, struct kbuf *cgpath256, struct kbuf *ng, uint64_t n) {
    static const char *const exes[] = {"/usr/bin/python3.11", "/usr/local/bin/open5gs-upfd",
                                       "/usr/bin/bash", "/usr/local/bin/open5gs-amfd",
                                       "/usr/sbin/nginx"};
    struct kbuf t = KBUF_INIT(1 << 16);

    for (uint64_t i = 0; i < n; i++) {
        char dep[512], cg[512], path[256], dng[8 + 32];
        uint8_t fdig[32];
        unsigned pod = (unsigned)(i % 200), ctr = (unsigned)(i % 3);

        snprintf(dep, sizeof(dep),
                 "%s:/var/lib/rancher/k3s/data/a3b46c0299091b71bfcc617b1e1fec1845c13bdd848584ceb39d"
                 "2e700e702a4b/bin/containerd-shim-runc-v2:/usr/lib/systemd/systemd:swapper/0",
                 exes[i % 5]);
        snprintf(cg, sizeof(cg),
                 "/kubepods.slice/kubepods-burstable.slice/"
                 "kubepods-burstable-pod%08x_c5be_423e_8070_"
                 "daaca055a5ad.slice/cri-containerd-%056x%08x.scope",
                 pod, pod * 3 + ctr, pod);
        if (i % 4 == 0) {
            snprintf(path, sizeof(path), "/usr/lib/x86_64-linux-gnu/lib%s-%u.so.%u",
                     i % 8 ? "ssl" : "crypto", (unsigned)(i % 97), (unsigned)(i % 5));
        } else {
            snprintf(path, sizeof(path), "/usr/lib/python3/dist-packages/pkg%04u/module%05u.py",
                     (unsigned)(i % 1000), (unsigned)(i % 99991));
        }
        ima_hash(IMA_HASH_SHA256, path, strlen(path), fdig);
        memcpy(dng, "sha256:", 8);
        memcpy(dng + 8, fdig, 32);

        kbuf_reset(&t);
        put_str_field(&t, dep);
        put_str_field(&t, cg);
        put32(&t, sizeof(dng));
        kbuf_append(&t, dng, sizeof(dng));
        put_str_field(&t, path);
        add_entry(cgpath, IMA_HASH_SHA1, "ima-cgpath", &t);
        add_entry(cgpath256, IMA_HASH_SHA256, "ima-cgpath", &t);

        kbuf_reset(&t);
        put32(&t, sizeof(dng));
        kbuf_append(&t, dng, sizeof(dng));
        put_str_field(&t, path);
        add_entry(ng, IMA_HASH_SHA1, "ima-ng", &t);
    }
    kbuf_free(&t);
}

struct figures {
    double seconds;
    uint64_t entries;
    struct ima_replay r;
};

static void replay_in_memory(const struct kbuf *list, uint32_t width, unsigned banks,
                             struct figures *ret) {
    static struct ima_replay r;
    struct ima_parser p;
    struct ima_replay_result res;
    double t0;

    ima_parser_init(&p, width);
    ima_replay_init(&r, banks);
    t0 = now();
    if (ima_replay_list(&r, &p, list->data, list->len, NULL, 0, &res) < 0 ||
        res.bytes != list->len) {
        fprintf(stderr, "bench: replay failed: %s\n", p.err.msg);
        exit(1);
    }
    ret->seconds = now() - t0;
    ret->entries = res.entries;
    ret->r = r;
}

static double parse_only(const struct kbuf *list, bool verify) {
    struct ima_parser p;
    struct ima_entry e;
    size_t off = 0;
    double t0 = now();

    ima_parser_init(&p, 20);
    while (off < list->len) {
        int n = ima_parser_next(&p, list->data + off, list->len - off, &e);
        if (n <= 0 || (verify && ima_entry_verify_digest(&e) < 0)) {
            exit(1);
        }
        off += (size_t)n;
    }
    return now() - t0;
}

/* The hashing alone: sha1 and sha256 of every template data plus both extends. */
static double hash_only(const struct kbuf *list) {
    struct ima_parser p;
    struct ima_entry e;
    uint8_t pcr1[20] = {0}, pcr256[32] = {0}, x[64];
    size_t off = 0;
    double t0;

    ima_parser_init(&p, 20);
    t0 = now();
    while (off < list->len) {
        int n = ima_parser_next(&p, list->data + off, list->len - off, &e);
        ima_hash(IMA_HASH_SHA1, e.data, e.data_len, x);
        ima_hash2(IMA_HASH_SHA1, pcr1, 20, x, 20, pcr1);
        ima_hash(IMA_HASH_SHA256, e.data, e.data_len, x);
        ima_hash2(IMA_HASH_SHA256, pcr256, 32, x, 32, pcr256);
        off += (size_t)n;
    }
    return now() - t0;
}

/* Run argv, return wall seconds, exit status and peak RSS (KiB). */
static double run(char *const argv[], int *ret_status, long *ret_rss_kib) {
    struct rusage ru;
    double t0 = now();
    pid_t pid = fork();
    int st;

    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (wait4(pid, &st, 0, &ru) < 0) {
        *ret_status = -1;
        return 0;
    }
    *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    *ret_rss_kib = ru.ru_maxrss;
    return now() - t0;
}

static void write_file(const char *path, const struct kbuf *b) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "bench: cannot write %s\n", path);
        exit(1);
    }
}

/* evmctl's --pcrs file: "PCR-NN: hex" for PCR 0..23 in order. */
static void write_pcrs(const char *path, const uint8_t *pcr10, size_t len) {
    FILE *f = fopen(path, "w");
    char hex[129], zero[129];

    memset(zero, '0', 2 * len);
    zero[2 * len] = 0;
    hex_encode(pcr10, len, hex);
    for (int i = 0; i < 24; i++) {
        fprintf(f, "PCR-%02d: %s\n", i, i == 10 ? hex : zero);
    }
    fclose(f);
}

static void report(const char *what, uint64_t n, size_t bytes, double s) {
    printf("  %-52s %9.0f entries/s %8.1f MB/s  (%.3f s)\n", what, (double)n / s,
           (double)bytes / s / 1e6, s);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
            {"kimactl", required_argument, NULL, 'k'}, {"evmctl", required_argument, NULL, 'e'},
            {"runs", required_argument, NULL, 'r'},    {"keep", required_argument, NULL, 'd'},
            {"help", no_argument, NULL, 'h'},          {0}};
    const char *kimactl = NULL, *evmctl = "evmctl", *keep = NULL;
    uint64_t n = 1000000;
    int runs = 3, o;
    struct kbuf cgpath = KBUF_INIT(SIZE_MAX / 2), ng = KBUF_INIT(SIZE_MAX / 2),
                cgpath256 = KBUF_INIT(SIZE_MAX / 2);
    struct figures best_cg = {0}, best_ng = {0}, f;
    double t1 = 1e9, t256 = 1e9, t1ng = 1e9;
    char dir[256], cg_path[300], ng_path[300], p1[300], p256[300];
    double t0, tparse = 1e9, tverify = 1e9, thash = 1e9;

    while ((o = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (o) {
        case 'n':
            if (parse_u64(optarg, &n) < 0) {
                n = 0;
            }
            break;
        case 'k':
            kimactl = optarg;
            break;
        case 'e':
            evmctl = optarg;
            break;
        case 'r':
            if (parse_int(optarg, &runs) < 0) {
                runs = 0;
            }
            break;
        case 'd':
            keep = optarg;
            break;
        default:
            fprintf(stderr, "usage: bench_ima [-n ENTRIES] [--kimactl PATH] [--evmctl PATH] "
                            "[--runs N] [--keep DIR]\n");
            return o == 'h' ? 0 : 64;
        }
    }
    if (n == 0 || runs < 1) {
        return 64;
    }
    if (keep) {
        snprintf(dir, sizeof(dir), "%s", keep);
        mkdir(dir, 0755);
    } else {
        if (test_tmpdir_new("bench", dir, sizeof(dir)) < 0) {
            return 1;
        }
    }

    t0 = now();
    generate(&cgpath, &cgpath256, &ng, n);
    printf("kima IMA list benchmark: %" PRIu64 " entries, generated in %.2f s\n", n, now() - t0);
    printf("  ima-cgpath list %.1f MB (%.0f bytes/entry), ima-ng list %.1f MB\n",
           (double)cgpath.len / 1e6, (double)cgpath.len / (double)n, (double)ng.len / 1e6);

    for (int i = 0; i < runs; i++) {
        replay_in_memory(&cgpath, 20, IMA_BANK(IMA_HASH_SHA1) | IMA_BANK(IMA_HASH_SHA256), &f);
        if (i == 0 || f.seconds < best_cg.seconds) {
            best_cg = f;
        }
        replay_in_memory(&ng, 20, IMA_BANK(IMA_HASH_SHA1) | IMA_BANK(IMA_HASH_SHA256), &f);
        if (i == 0 || f.seconds < best_ng.seconds) {
            best_ng = f;
        }
        replay_in_memory(&cgpath, 20, IMA_BANK(IMA_HASH_SHA1), &f);
        t1 = f.seconds < t1 ? f.seconds : t1;
        replay_in_memory(&ng, 20, IMA_BANK(IMA_HASH_SHA1), &f);
        t1ng = f.seconds < t1ng ? f.seconds : t1ng;
        replay_in_memory(&cgpath256, 32, IMA_BANK(IMA_HASH_SHA256), &f);
        t256 = f.seconds < t256 ? f.seconds : t256;
        double t = parse_only(&cgpath, false);
        tparse = t < tparse ? t : tparse;
        t = parse_only(&cgpath, true);
        tverify = t < tverify ? t : tverify;
        t = hash_only(&cgpath);
        thash = t < thash ? t : thash;
    }
    printf("\nIn memory, one core, best of %d:\n", runs);
    report("ima-cgpath parse only", n, cgpath.len, tparse);
    report("ima-cgpath parse + template digest check", n, cgpath.len, tverify);
    report("ima-cgpath hashing alone (sha1+sha256 + extends)", n, cgpath.len, thash);
    report("ima-cgpath parse + check + replay sha1,sha256", n, cgpath.len, best_cg.seconds);
    report("ima-ng     parse + check + replay sha1,sha256", n, ng.len, best_ng.seconds);
    report("ima-cgpath parse + check + replay sha1 only", n, cgpath.len, t1);
    report("ima-cgpath _sha256 list: check + replay sha256 only", n, cgpath256.len, t256);
    report("ima-ng     parse + check + replay sha1 only", n, ng.len, t1ng);

    snprintf(cg_path, sizeof(cg_path), "%s/ima-cgpath.bin", dir);
    snprintf(ng_path, sizeof(ng_path), "%s/ima-ng.bin", dir);
    snprintf(p1, sizeof(p1), "%s/pcrs-sha1", dir);
    snprintf(p256, sizeof(p256), "%s/pcrs-sha256", dir);
    write_file(cg_path, &cgpath);
    write_file(ng_path, &ng);
    kbuf_free(&cgpath);
    kbuf_free(&cgpath256);
    kbuf_free(&ng);

    if (kimactl) {
        char hex1[41], hex256[65], pcr1[64], pcr256[100];
        int st;
        long rss;
        double t;

        printf("\nkimactl (streaming from the file; process start included):\n");
        for (int which = 0; which < 2; which++) {
            struct figures *b = which ? &best_ng : &best_cg;
            const char *path = which ? ng_path : cg_path;
            hex_encode(ima_replay_get(&b->r, IMA_HASH_SHA1, 10), 20, hex1);
            hex_encode(ima_replay_get(&b->r, IMA_HASH_SHA256, 10), 32, hex256);
            snprintf(pcr1, sizeof(pcr1), "sha1:10=%s", hex1);
            snprintf(pcr256, sizeof(pcr256), "sha256:10=%s", hex256);
            char *argv_check[] = {(char *)kimactl,
                                  "ima",
                                  "check",
                                  "--digest-size",
                                  "20",
                                  "--pcr",
                                  pcr1,
                                  "--pcr",
                                  pcr256,
                                  (char *)path,
                                  NULL};
            t = run(argv_check, &st, &rss);
            printf("  %-52s %9.0f entries/s  %.3f s, peak RSS %ld KiB, exit %d%s\n",
                   which ? "kimactl ima check (ima-ng)" : "kimactl ima check (ima-cgpath)",
                   (double)n / t, t, rss, st, st == 0 ? " (PCRs match)" : " (MISMATCH)");
        }
    }

    {
        int st;
        long rss;
        double t;
        char pcrs1[320], pcrs256[320];

        write_pcrs(p1, ima_replay_get(&best_ng.r, IMA_HASH_SHA1, 10), 20);
        write_pcrs(p256, ima_replay_get(&best_ng.r, IMA_HASH_SHA256, 10), 32);
        snprintf(pcrs1, sizeof(pcrs1), "sha1,%s", p1);
        snprintf(pcrs256, sizeof(pcrs256), "sha256,%s", p256);
        char *argv_evm[] = {(char *)evmctl, "ima_measurement", "--pcrs", pcrs1,
                            "--pcrs",       pcrs256,           ng_path,  NULL};
        printf("\nevmctl ima_measurement (ima-evm-utils), same ima-ng list, sha1+sha256 banks:\n");
        t = run(argv_evm, &st, &rss);
        if (st == 127) {
            printf("  evmctl not found (apt-get install ima-evm-utils)\n");
        } else {
            printf("  %-52s %9.0f entries/s  %.3f s, peak RSS %ld KiB, exit %d%s\n",
                   "evmctl ima_measurement (ima-ng)", (double)n / t, t, rss, st,
                   st == 0 ? " (PCRs match)" : " (no match)");
            printf("  kima in memory is %.1fx evmctl on the ima-ng list\n", t / best_ng.seconds);
            write_pcrs(p1, ima_replay_get(&best_cg.r, IMA_HASH_SHA1, 10), 20);
            write_pcrs(p256, ima_replay_get(&best_cg.r, IMA_HASH_SHA256, 10), 32);
            argv_evm[6] = cg_path;
            t = run(argv_evm, &st, &rss);
            printf("  %-52s %9.0f entries/s  %.3f s, exit %d (it does not know the template)\n",
                   "evmctl ima_measurement (ima-cgpath)", (double)n / t, t, st);
        }
    }
    if (!keep) {
        test_tmpdir_free(dir);
    } else {
        printf("\nfiles kept in %s\n", dir);
    }
    return 0;
}
