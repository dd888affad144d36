/* SPDX-License-Identifier: Apache-2.0 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kima-config.h"
#include "kimactl.h"
#include "log.h"

static void usage(FILE *f) {
    fprintf(f, "Usage: kimactl [--log-level LEVEL] [--log-format FORMAT] [--server URL --cert PEM\n"
               "               --key PEM --cacert PEM] COMMAND [ARGS...]\n"
               "\n"
               "kima operator and developer tool.\n"
               "\n"
               "Commands:\n"
               "  ima       read, replay and check IMA measurement lists (kimactl ima --help)\n"
               "  quote     verify or decode a TPM 2.0 quote (kimactl quote --help)\n"
               "  nodes, node delete, pods, pod, pod reset\n"
               "            the verifier's nodes and pods (kimactl nodes --help)\n"
               "  audit     verify or show the audit log (kimactl audit --help)\n"
               "  certs     make the CA and the certificates of an installation, revoke\n"
               "            them (kimactl certs --help, kimactl certs revoke --help)\n"
               "  policy    generate golden policies from images, merge and diff them,\n"
               "            dry-run one against the verifier's pods or a recorded list\n"
               "            (kimactl policy --help)\n"
               "  version   print the version\n"
               "  help      print this help\n"
               "\n"
               "Options:\n"
               "  --log-level LEVEL    error, warn, info (default), debug   [KIMA_LOG_LEVEL]\n"
               "  --log-format FORMAT  logfmt (default) or json             [KIMA_LOG_FORMAT]\n"
               "  -h, --help           this help\n"
               "  --version            the version\n"
               "\n"
               "Exit codes: 0 success, 1 a check's answer is no, 2 malformed input,\n"
               "64 usage error, 66 input not readable, 69 a server or registry not\n"
               "reachable, 70 internal error, 73 an output not writable.\n");
}

/* The options before the command. -1 to go on, or the exit code once
 * --help, --version or a usage error is printed. */
static int parse_global_options(int argc, char **argv, const char **level, const char **format) {
    static const struct option opts[] = {
            {"log-level", required_argument, NULL, 'l'},
            {"log-format", required_argument, NULL, 'f'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {"server", required_argument, NULL, 's'},
            {"cert", required_argument, NULL, 'c'},
            {"key", required_argument, NULL, 'k'},
            {"cacert", required_argument, NULL, 'a'},
            {0},
    };
    int c;

    /* Stop at the first non-option: the rest belongs to the command. */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            *level = optarg;
            break;
        case 'f':
            *format = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("kimactl %s\n", KIMA_VERSION);
            return EXIT_OK;
        /* Connection options before the command: the commands read them
         * from the environment, where they can also be set. */
        case 's':
            setenv("KIMA_SERVER", optarg, 1);
            break;
        case 'c':
            setenv("KIMA_CERT", optarg, 1);
            break;
        case 'k':
            setenv("KIMA_KEY", optarg, 1);
            break;
        case 'a':
            setenv("KIMA_CACERT", optarg, 1);
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/* argv[0] is the command; returns its exit code. */
static int run_command(int argc, char **argv) {
    if (strcmp(argv[0], "ima") == 0) {
        return cmd_ima(argc, argv);
    }
    if (strcmp(argv[0], "nodes") == 0 || strcmp(argv[0], "node") == 0 ||
        strcmp(argv[0], "pods") == 0 || strcmp(argv[0], "pod") == 0 ||
        strcmp(argv[0], "audit") == 0) {
        return cmd_ops(argc, argv);
    }
    if (strcmp(argv[0], "certs") == 0) {
        return cmd_certs(argc, argv);
    }
    if (strcmp(argv[0], "policy") == 0) {
        return cmd_policy(argc, argv);
    }
    if (strcmp(argv[0], "quote") == 0) {
        return cmd_quote(argc, argv);
    }
    if (strcmp(argv[0], "version") == 0) {
        printf("kimactl %s\n", KIMA_VERSION);
        return EXIT_OK;
    }
    if (strcmp(argv[0], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "kimactl: unknown command \"%s\" (see kimactl --help)\n", argv[0]);
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    const char *level = getenv("KIMA_LOG_LEVEL"), *format = getenv("KIMA_LOG_FORMAT");
    int r;

    /* tpm2-tss would print its own warnings for every malformed structure
     * it is given; kimactl reports each failure once. TSS2_LOG set by the
     * user still wins. */
    setenv("TSS2_LOG", "all+none", 0);

    if ((r = parse_global_options(argc, argv, &level, &format)) >= 0) {
        return r;
    }
    if (log_setup(level, format) < 0) {
        fprintf(stderr, "kimactl: --log-level takes error, warn, info or debug; --log-format "
                        "logfmt or json\n");
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    argc -= optind;
    argv += optind;
    optind = 0; /* reset getopt for the command */
    return run_command(argc, argv);
}
