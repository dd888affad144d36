/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_SWTPM_H
#define KIMA_TESTS_SWTPM_H

#include <stdbool.h>
#include <sys/types.h>

/* A real TPM 2.0 for tests: swtpm on a Unix socket in a private folder,
 * a child of the test process, stopped and removed by swtpm_stop(). */

struct swtpm {
    pid_t pid;
    char dir[256];
    char tcti[320];   /* "swtpm:path=<dir>/sock" */
    char ca_dir[300]; /* with certs: the swtpm-localca root and intermediate */
};

/* Start swtpm. With `ek_certs`, first provision the state with swtpm_setup
 * (sha1 and sha256 banks, RSA-2048 EK at 0x81010001 with its certificate,
 * ECC P-384 EK, a private local CA); without, a fresh state with all four
 * banks. 0 or -1 (with a message on stderr). */
int swtpm_start(struct swtpm *s, bool ek_certs);
void swtpm_stop(struct swtpm *s);

/* Run argv[0] (searched in PATH) with its output to /dev/null and wait for
 * it. 0 when it exits 0, otherwise -1. */
int test_run_quiet(char *const argv[]);

#endif
