/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_CLI_KIMACTL_H
#define KIMA_CLI_KIMACTL_H

/* Exit codes of kimactl (documented in --help and README). */
enum {
    EXIT_OK = 0,
    EXIT_MISMATCH = 1,     /* a check ran and the answer is no */
    EXIT_MALFORMED = 2,    /* the input is malformed or its digests do not verify */
    EXIT_USAGE = 64,       /* bad command line */
    EXIT_NOINPUT = 66,     /* an input could not be opened or read */
    EXIT_UNAVAILABLE = 69, /* the verifier could not be reached */
    EXIT_SOFTWARE = 70,    /* internal error, out of memory */
};

int cmd_ima(int argc, char **argv);
int cmd_quote(int argc, char **argv);
int cmd_ops(int argc, char **argv);
int cmd_certs(int argc, char **argv);
/* kimactl policy check: argv[0] is "check" (cmd-policy-check.c). */
int cmd_policy_check(int argc, char **argv);

#endif
