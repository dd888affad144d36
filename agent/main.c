/* SPDX-License-Identifier: Apache-2.0 */
/* kima-agent: registers the node's TPM with the verifier, then sends a fresh
 * quote and the new IMA measurements every interval and as soon as the
 * measurement count grows. This file holds the options and the wiring; the
 * agent itself is agent/attest.c (registration, the round), agent/position.c
 * (where it stands in the list), agent/loop.c (the schedule) and
 * agent/health.c (the probes). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attest.h"
#include "health.h"
#include "kima-config.h"
#include "log.h"
#include "loop.h"
#include "options.h"
#include "verifiers.h"

#define CFG struct agent_config

static const struct option_spec agent_options[] = {
        OPTION_STRING_SPEC(CFG, verifier, "verifier", "KIMA_VERIFIER_URL", NULL,
                           "  --verifier URL[,URL...]  https://verifier:8443, or up to 8 URLs "
                           "tried in turn\n"
                           "                       (the next one when a verifier is down or "
                           "draining)\n"
                           "                                                    "
                           "[KIMA_VERIFIER_URL]\n"),
        OPTION_STRING_SPEC(CFG, node, "node", "KIMA_NODE", NULL,
                           "  --node NAME          node name (default: $NODE_NAME, then the host "
                           "name),\n"
                           "                       at most 253 bytes                      "
                           "[KIMA_NODE]\n"),
        OPTION_STRING_SPEC(CFG, tcti, "tcti", "KIMA_TCTI", "device:/dev/tpmrm0",
                           "  --tcti STRING        TPM (device:/dev/tpmrm0)                 "
                           "[KIMA_TCTI]\n"),
        OPTION_STRING_SPEC(CFG, securityfs, "securityfs", "KIMA_SECURITYFS", "/sys/kernel/security",
                           "  --securityfs DIR     where ima/ is (/sys/kernel/security)    "
                           "[KIMA_SECURITYFS]\n"),
        OPTION_STRING_SPEC(CFG, cert, "cert", "KIMA_CERT", NULL,
                           "  --cert PEM --key PEM the node's client certificate (OU kima-agent, "
                           "CN the node)\n"
                           "                                                    [KIMA_CERT, "
                           "KIMA_KEY]\n"),
        OPTION_STRING_SPEC(CFG, key, "key", "KIMA_KEY", NULL, NULL),
        OPTION_STRING_SPEC(CFG, token_file, "token-file", "KIMA_TOKEN_FILE", NULL,
                           "  --token-file FILE    a projected ServiceAccount token (audience "
                           "kima) sent as\n"
                           "                       Authorization: Bearer on every request, "
                           "read again when\n"
                           "                       the kubelet rotates it (and every 60 s); "
                           "the client\n"
                           "                       certificate is optional then "
                           "[KIMA_TOKEN_FILE]\n"),
        OPTION_STRING_SPEC(CFG, cacert, "cacert", "KIMA_CACERT", NULL,
                           "  --cacert PEM         CA of the verifier's certificate (the "
                           "kima-ca ConfigMap's)\n"
                           "                                                    "
                           "[KIMA_CACERT]\n"),
        OPTION_STRING_SPEC(CFG, state_dir, "state-dir", "KIMA_STATE_DIR", "/var/lib/kima-agent",
                           "  --state-dir DIR      AK and list position (/var/lib/kima-agent) "
                           "[KIMA_STATE_DIR]\n"),
        OPTION_UNSIGNED_SPEC(CFG, interval_ms, "interval-ms", "KIMA_INTERVAL_MS", 2000, 100,
                             3600000,
                             "  --interval-ms N      attest at least this often (2000)       "
                             "[KIMA_INTERVAL_MS]\n"),
        OPTION_UNSIGNED_SPEC(CFG, min_interval_ms, "min-interval-ms", "KIMA_MIN_INTERVAL_MS", 200,
                             10, 3600000,
                             "  --min-interval-ms N  and at most this often (200)           "
                             "[KIMA_MIN_INTERVAL_MS]\n"),
        OPTION_STRING_SPEC(CFG, ak_alg, "ak-alg", "KIMA_AK_ALG", "rsa",
                           "  --ak-alg rsa|ecc     AK type when one is created (rsa)       "
                           "[KIMA_AK_ALG]\n"),
        OPTION_STRING_SPEC(CFG, boot_id_file, "boot-id-file", "KIMA_BOOT_ID_FILE",
                           "/proc/sys/kernel/random/boot_id",
                           "  --boot-id-file F     (/proc/sys/kernel/random/boot_id)       "
                           "[KIMA_BOOT_ID_FILE]\n"),
        OPTION_FLAG_SPEC(CFG, once, "once", NULL,
                         "  --once               one round: exit 0 trusted, 1 not trusted, 2 "
                         "error\n"),
        OPTION_STRING_SPEC(CFG, healthcheck, "healthcheck", NULL, NULL,
                           "  --healthcheck live|ready  probe: exit 0 when the loop ran within "
                           "60 s (live)\n"
                           "                       or evidence was accepted within 3 intervals "
                           "+ 10 s (ready)\n"),
        OPTION_STRING_SPEC(CFG, log_level, "log-level", "KIMA_LOG_LEVEL", NULL,
                           "  --log-level L, --log-format F, -h/--help, --version\n"),
        OPTION_STRING_SPEC(CFG, log_format, "log-format", "KIMA_LOG_FORMAT", NULL, NULL),
};

static const struct options_program agent_program = {
        .name = "kima-agent",
        .help_head =
                "Usage: kima-agent [OPTIONS]\n"
                "\n"
                "The kima node agent: registers the node's TPM with the verifier, then attests\n"
                "the node continuously (a fresh quote and the new IMA measurements).\n"
                "Every option can also be set by the environment variable in brackets.\n"
                "\n",
        .help_tail = "\n"
                     "The agent never exits on a transient error: it retries with exponential\n"
                     "backoff (0.5 s to 30 s, with jitter). SIGTERM exits 0.\n",
        .specs = agent_options,
        .n_specs = sizeof(agent_options) / sizeof(agent_options[0]),
};

#define USAGE_HINT \
    "kima-agent: --verifier is required; intervals in ms; --ak-alg rsa|ecc (see --help)\n"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

/* The options into cfg, and the log set up. -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, struct agent_config *cfg, int *ret_optind) {
    char err[256];
    int r = options_parse(&agent_program, argc, argv, cfg, ret_optind, err, sizeof(err));

    if (r == OPTIONS_HELP) {
        options_print_help(&agent_program, stdout);
        return KIMA_EXIT_OK;
    }
    if (r == OPTIONS_VERSION) {
        printf("kima-agent %s\n", KIMA_VERSION);
        return KIMA_EXIT_OK;
    }
    if (r == -ERANGE) {
        /* A probe said nothing more before. */
        fprintf(stderr, "kima-agent: %s\n%s", err, cfg->healthcheck ? "" : USAGE_HINT);
        return KIMA_EXIT_USAGE;
    }
    if (r < 0) {
        options_print_help(&agent_program, stderr);
        return KIMA_EXIT_USAGE;
    }
    if (log_setup(cfg->log_level, cfg->log_format) < 0) {
        fprintf(stderr,
                "kima-agent: --log-level takes error, warn, info or debug; --log-format logfmt "
                "or json\n");
        return KIMA_EXIT_USAGE;
    }
    return -1;
}

/* --healthcheck live|ready: the exit code of the probe. */
static int healthcheck(const struct agent_config *cfg) {
    enum agent_probe probe;
    char path[4200];

    if (agent_probe_from_string(cfg->healthcheck, &probe) < 0) {
        fprintf(stderr, "kima-agent: --healthcheck live|ready\n");
        return KIMA_EXIT_USAGE;
    }
    if (agent_health_check(cfg->state_dir, probe, cfg->interval_ms, time(NULL), path,
                           sizeof(path)) < 0) {
        fprintf(stderr, "kima-agent: not %s (%s)\n", cfg->healthcheck, path);
        return KIMA_EXIT_FAILURE;
    }
    return KIMA_EXIT_OK;
}

/* What the table cannot check; the node name from $NODE_NAME or the host
 * name (into host) when not given. -1 to go on, else the exit code. */
static int check_config(struct agent_config *cfg, bool operands, char *host, size_t hostsz) {
    const char *node_name = getenv("NODE_NAME");
    struct verifier_urls urls;
    char err[256];
    int r;

    if ((strcmp(cfg->ak_alg, "rsa") != 0 && strcmp(cfg->ak_alg, "ecc") != 0) || operands ||
        !cfg->verifier) {
        fputs(USAGE_HINT, stderr);
        return KIMA_EXIT_USAGE;
    }
    r = verifier_urls_parse(cfg->verifier, &urls, err, sizeof(err));
    verifier_urls_free(&urls);
    if (r < 0) {
        fprintf(stderr, "kima-agent: %s\n", err);
        return KIMA_EXIT_USAGE;
    }
    if (!cfg->cert != !cfg->key) {
        fprintf(stderr, "kima-agent: --cert and --key go together\n");
        return KIMA_EXIT_USAGE;
    }
    if (!cfg->cert && !cfg->token_file) {
        fprintf(stderr, "kima-agent: warning: neither --cert nor --token-file: the verifier "
                        "will refuse this agent\n");
    }
    if (!cfg->node && node_name && *node_name) {
        cfg->node = node_name;
    }
    if (!cfg->node) {
        if (gethostname(host, hostsz) < 0) {
            return KIMA_EXIT_USAGE;
        }
        host[hostsz - 1] = 0;
        cfg->node = host;
    }
    if (cfg->node[0] == 0 || strlen(cfg->node) > AGENT_NODE_NAME_MAX) {
        fprintf(stderr,
                "kima-agent: the node name is %zu bytes long; a node name has 1 to %d bytes\n",
                strlen(cfg->node), AGENT_NODE_NAME_MAX);
        return KIMA_EXIT_USAGE;
    }
    return -1;
}

int main(int argc, char **argv) {
    struct agent_config cfg;
    struct agent a;
    char host[256];
    bool registered = false;
    int first_operand, code, r;

    code = parse_options(argc, argv, &cfg, &first_operand);
    if (code >= 0) {
        return code;
    }
    if (cfg.healthcheck) {
        return healthcheck(&cfg);
    }
    code = check_config(&cfg, first_operand != argc, host, sizeof(host));
    if (code >= 0) {
        return code;
    }
    setenv("TSS2_LOG", "all+none", 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    mkdir(cfg.state_dir, 0700);
    if (agent_open(&cfg, &a, &registered) < 0) {
        return cfg.once ? KIMA_EXIT_ERROR : KIMA_EXIT_FAILURE;
    }
    log_info("kima-agent %s for node %s, verifier %s (%zu URL%s, using %s), list %s", KIMA_VERSION,
             cfg.node, cfg.verifier, a.n_clients, a.n_clients == 1 ? "" : "s",
             a.urls.url[a.current], a.pos.list_path);
    r = agent_run(&a, registered, &stop);
    agent_close(&a);
    if (cfg.once) {
        /* 0 trusted, 1 not trusted, 2 error */
        return r < 0 ? KIMA_EXIT_ERROR : r == 1 ? KIMA_EXIT_OK : KIMA_EXIT_FAILURE;
    }
    log_info("stopped");
    return KIMA_EXIT_OK;
}
