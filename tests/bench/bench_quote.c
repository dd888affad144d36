/* SPDX-License-Identifier: Apache-2.0 */
/* Quote verifications per second on one core: the full check of
 * tpm_quote_verify() (structure, magic, type, scheme, signature, nonce,
 * selection, pcrDigest, clock) on real swtpm quotes with RSASSA-2048 and
 * ECDSA-P256 AKs, beside `openssl speed rsa2048 ecdsap256` (the raw
 * signature floor) and the per-process cost of kimactl quote verify and
 * tpm2_checkquote. Prints figures; asserts nothing about speed.
 *
 *   bench_quote [--seconds S] [--kimactl PATH] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "hex.h"
#include "keys.h"
#include "parse.h"
#include "quote-verify.h"
#include "quote.h"
#include "swtpm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct made {
    struct tpm_quote q;
    TPMT_PUBLIC ak;
};

static const uint8_t nonce[32] = {0x6b, 0x69, 0x6d, 0x61};

static int make_quote(struct tpm *t, enum tpm_key_type type, const TPML_PCR_SELECTION *sel,
                      struct made *m) {
    struct tpm_key ek = TPM_KEY_INIT, ak = TPM_KEY_INIT;
    int r;

    r = tpm_ek_load(t, TPM_KEY_RSA, &ek);
    if (r == 0) {
        r = tpm_ak_create(t, &ek, type, NULL, &ak);
    }
    if (r == 0) {
        r = tpm_quote(t, &ak, nonce, sizeof(nonce), sel, &m->q);
        m->ak = ak.public.publicArea;
    }
    tpm_key_release(t, &ak);
    tpm_key_release(t, &ek);
    return r;
}

/* Verifications per second: the AK's key is prepared once, as the verifier
 * keeps it per node; `cold` rebuilds it from the public area every time. */
static double verify_rate(const struct made *m, const TPML_PCR_SELECTION *sel, double seconds,
                          bool cold) {
    struct tpm_verify_key key;
    struct tpm_quote_result res;
    struct tpm_clock_state prev = {0};
    struct tpm_quote_expect e = {.nonce = nonce,
                                 .nonce_len = sizeof(nonce),
                                 .selection = sel,
                                 .pcrs = &m->q.pcrs,
                                 .previous = &prev};
    unsigned long n = 0;
    double t0 = now(), t;

    tpm_verify_key_from_public(&m->ak, &key);
    do {
        for (int i = 0; i < 100; i++) {
            if (cold) {
                tpm_verify_key_free(&key);
                tpm_verify_key_from_public(&m->ak, &key);
            }
            tpm_quote_verify(&key, m->q.attest, m->q.attest_len, m->q.sig, m->q.sig_len, &e, &res);
            if (res.failed != TPM_QUOTE_OK) {
                fprintf(stderr, "bench: quote refused: %s\n", res.why);
                exit(1);
            }
            prev.clock = 0;
            n++;
        }
        t = now() - t0;
    } while (t < seconds);
    tpm_verify_key_free(&key);
    return (double)n / t;
}

/* openssl speed: the verify/s column of its rsa2048 and ecdsap256 lines. */
static void openssl_speed(int seconds, double *rsa, double *ecdsa) {
    char cmd[128], line[512];
    FILE *p;

    *rsa = *ecdsa = 0;
    snprintf(cmd, sizeof(cmd), "openssl speed -seconds %d rsa2048 ecdsap256 2>/dev/null", seconds);
    p = popen(cmd, "r");
    if (!p) {
        return;
    }
    while (fgets(line, sizeof(line), p)) {
        double sign, verify;
        char *s;
        if (strncmp(line, "rsa 2048 bits", 13) == 0 &&
            sscanf(line + 13, " %*fs %*fs %lf %lf", &sign, &verify) == 2) {
            *rsa = verify;
        } else if ((s = strstr(line, "ecdsa (nistp256)")) &&
                   sscanf(s + 16, " %*fs %*fs %lf %lf", &sign, &verify) == 2) {
            *ecdsa = verify;
        }
    }
    pclose(p);
}

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        return -1;
    }
    return 0;
}

/* Milliseconds per run of a command, averaged over `runs`. */
static double per_process_ms(const char *cmd, int runs) {
    double t0 = now();
    for (int i = 0; i < runs; i++) {
        if (system(cmd) != 0) {
            return -1;
        }
    }
    return (now() - t0) * 1000 / runs;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
                                         {"kimactl", required_argument, NULL, 'k'},
                                         {0}};
    const char *kimactl = NULL;
    struct swtpm sw;
    struct tpm *t = NULL;
    struct made rsa, ecc;
    TPML_PCR_SELECTION sel;
    double seconds = 3, raw_rsa, raw_ecdsa, v;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        uint64_t s;
        if (o == 's' && parse_u64_range(optarg, 1, 60, &s) == 0) {
            seconds = (double)s;
        } else if (o == 'k') {
            kimactl = optarg;
        } else {
            fprintf(stderr, "usage: bench_quote [--seconds 1-60] [--kimactl PATH]\n");
            return 64;
        }
    }
    tpm_pcr_selection_parse("sha256:10", &sel);
    if (swtpm_start(&sw, false) < 0 || tpm_open(sw.tcti, &t) < 0 ||
        make_quote(t, TPM_KEY_RSA, &sel, &rsa) < 0 || make_quote(t, TPM_KEY_ECC, &sel, &ecc) < 0) {
        fprintf(stderr, "bench: no swtpm quote (apt-get install swtpm)\n");
        return 1;
    }
    tpm_close(t);

    printf("kima quote verification benchmark (one core, %.0f s per figure)\n", seconds);
    printf("full check: structure, magic, type, scheme, signature, nonce, selection, pcrDigest, "
           "clock\n\n");
    openssl_speed((int)seconds, &raw_rsa, &raw_ecdsa);
    v = verify_rate(&rsa, &sel, seconds, false);
    printf("  RSASSA-2048 (SHA-256) quote checks:   %9.0f /s   openssl speed rsa2048 verify: "
           "%9.0f /s  (%.0f%% of raw)\n",
           v, raw_rsa, raw_rsa > 0 ? 100 * v / raw_rsa : 0);
    printf("    with the AK key rebuilt each time:  %9.0f /s\n",
           verify_rate(&rsa, &sel, seconds, true));
    v = verify_rate(&ecc, &sel, seconds, false);
    printf("  ECDSA-P256 (SHA-256) quote checks:    %9.0f /s   openssl speed ecdsap256 verify: "
           "%7.0f /s  (%.0f%% of raw)\n",
           v, raw_ecdsa, raw_ecdsa > 0 ? 100 * v / raw_ecdsa : 0);
    printf("    with the AK key rebuilt each time:  %9.0f /s\n",
           verify_rate(&ecc, &sel, seconds, true));

    /* One process per check, for comparison with tools that work that way. */
    {
        char dir[300], cmd[2048], nhex[65], pcr[200], hex[65];
        uint8_t pub[sizeof(TPM2B_PUBLIC)];
        size_t off = 0;
        TPM2B_PUBLIC p2b = {.publicArea = rsa.ak};
        double ms;

        snprintf(dir, sizeof(dir), "%s/files", sw.dir);
        mkdir(dir, 0700);
        snprintf(cmd, sizeof(cmd), "%s/attest", dir);
        write_file(cmd, rsa.q.attest, rsa.q.attest_len);
        snprintf(cmd, sizeof(cmd), "%s/sig", dir);
        write_file(cmd, rsa.q.sig, rsa.q.sig_len);
        Tss2_MU_TPM2B_PUBLIC_Marshal(&p2b, pub, sizeof(pub), &off);
        snprintf(cmd, sizeof(cmd), "%s/ak.pub", dir);
        write_file(cmd, pub, off);
        hex_encode(nonce, sizeof(nonce), nhex);
        snprintf(pcr, sizeof(pcr), "sha256:10=%s",
                 hex_encode(rsa.q.pcrs.v[0].digest, rsa.q.pcrs.v[0].size, hex));
        printf("\nper process (RSA quote, process start included):\n");
        if (kimactl) {
            snprintf(cmd, sizeof(cmd),
                     "%s quote verify --ak %s/ak.pub --nonce %s --attest %s/attest --signature "
                     "%s/sig --pcr %s >/dev/null",
                     kimactl, dir, nhex, dir, dir, pcr);
            ms = per_process_ms(cmd, 50);
            printf("  kimactl quote verify:  %.2f ms a check%s\n", ms, ms < 0 ? " (failed)" : "");
        }
        snprintf(cmd, sizeof(cmd),
                 "tpm2_checkquote -u %s/ak.pub -m %s/attest -s %s/sig -q %s -g sha256 "
                 ">/dev/null 2>&1",
                 dir, dir, dir, nhex);
        ms = per_process_ms(cmd, 50);
        printf("  tpm2_checkquote:       %.2f ms a check%s\n", ms,
               ms < 0 ? " (failed or not installed)" : "");
    }
    swtpm_stop(&sw);
    return 0;
}
