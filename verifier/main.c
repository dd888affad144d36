/* SPDX-License-Identifier: Apache-2.0 */
/* kima-verifier: registers nodes, judges their evidence, keeps each pod's
 * trust state and writes the audit log. This file holds the options and the
 * wiring; verifier/service.c opens, runs and closes the services. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "http-limits.h"
#include "kima-config.h"
#include "log.h"
#include "options.h"
#include "service.h"

#define CFG struct verifier_config

static const struct option_spec verifier_options[] = {
        OPTION_STRING_SPEC(CFG, listen, "listen", "KIMA_LISTEN", "0.0.0.0:8443",
                           "  --listen ADDR:PORT      where to listen, IPv4 (0.0.0.0:8443)    "
                           "[KIMA_LISTEN]\n"),
        OPTION_STRING_SPEC(CFG, tls_cert, "tls-cert", "KIMA_TLS_CERT", NULL,
                           "  --tls-cert PEM          server certificate                       "
                           "[KIMA_TLS_CERT]\n"),
        OPTION_STRING_SPEC(CFG, tls_key, "tls-key", "KIMA_TLS_KEY", NULL,
                           "  --tls-key PEM           server private key                       "
                           "[KIMA_TLS_KEY]\n"),
        OPTION_STRING_SPEC(CFG, client_ca, "client-ca", "KIMA_CLIENT_CA", NULL,
                           "  --client-ca PEM         CA of agent and operator certificates    "
                           "[KIMA_CLIENT_CA]\n"),
        OPTION_STRING_SPEC(CFG, crl, "crl", "KIMA_CRL", NULL,
                           "  --crl FILE              revoked agent and operator certificates: "
                           "CRLs of\n"
                           "                          --client-ca (PEM or DER), reloaded on "
                           "change [KIMA_CRL]\n"),
        OPTION_FLAG_SPEC(CFG, insecure_plain_http, "insecure-plain-http",
                         "KIMA_INSECURE_PLAIN_HTTP",
                         "  --insecure-plain-http   no TLS and no roles: local demos only   "
                         "[KIMA_INSECURE_PLAIN_HTTP=1]\n"),
        OPTION_STRING_SPEC(CFG, db, "db", "KIMA_DB", "kima.db",
                           "  --db SPEC               the store: an SQLite file (kima.db), or  "
                           "[KIMA_DB]\n"
                           "                          PostgreSQL: postgres://host/db?sslmode=\n"
                           "                          verify-full... or 'host=... dbname=...'\n"
                           "                          (no password in it: see below; a file\n"
                           "                          named like key=value is ./key=value)\n"),
        OPTION_STRING_SPEC(CFG, db_password_file, "db-password-file", "KIMA_DB_PASSWORD_FILE", NULL,
                           "  --db-password-file FILE PostgreSQL's password (else the          "
                           "[KIMA_DB_PASSWORD_FILE]\n"
                           "                          environment's KIMA_DB_PASSWORD)\n"),
        OPTION_STRING_SPEC(CFG, policies, "policies", "KIMA_POLICIES", NULL,
                           "  --policies DIR          golden policies, reloaded on change      "
                           "[KIMA_POLICIES]\n"),
        OPTION_STRING_SPEC(CFG, pods_file, "pods-file", "KIMA_PODS_FILE", NULL,
                           "  --pods-file FILE        pod inventory: a PodList in JSON         "
                           "[KIMA_PODS_FILE]\n"),
        OPTION_STRING_SPEC(CFG, static_pod_namespaces, "static-pod-namespaces",
                           "KIMA_STATIC_POD_NAMESPACES", INVENTORY_STATIC_NS_DEFAULT,
                           "  --static-pod-namespaces LIST\n"
                           "                          namespaces (comma-separated) whose "
                           "mirror pods stand\n"
                           "                          for static pods (kube-system) "
                           "[KIMA_STATIC_POD_NAMESPACES]\n"),
        OPTION_STRING_SPEC(CFG, kubeconfig, "kubeconfig", "KIMA_KUBECONFIG", NULL,
                           "  --kubeconfig FILE       the Kubernetes API from a kubeconfig    "
                           "[KIMA_KUBECONFIG]\n"),
        OPTION_STRING_SPEC(CFG, kube_context, "kube-context", "KIMA_KUBE_CONTEXT", NULL,
                           "  --kube-context NAME     its context (the current one)        "
                           "[KIMA_KUBE_CONTEXT]\n"),
        OPTION_FLAG_SPEC(CFG, in_cluster, "in-cluster", "KIMA_IN_CLUSTER",
                         "  --in-cluster            the API from the service account (also "
                         "when\n"
                         "                          KUBERNETES_SERVICE_HOST is set and no "
                         "--kubeconfig\n"
                         "                          or --pods-file is given)             "
                         "[KIMA_IN_CLUSTER=1]\n"),
        OPTION_STRING_SPEC(CFG, label_prefix, "label-prefix", "KIMA_LABEL_PREFIX", "kima.dev",
                           "  --label-prefix P        label and annotation prefix (kima.dev) "
                           "[KIMA_LABEL_PREFIX]\n"),
        OPTION_STRING_SPEC(CFG, lease, "lease", "KIMA_LEASE", "",
                           "  --lease NAME            several replicas: only the holder of this "
                           "Lease (in\n"
                           "                          POD_NAMESPACE, else the kubeconfig's or "
                           "service\n"
                           "                          account's namespace) writes labels and "
                           "Events; the\n"
                           "                          others judge (none: this one writes) "
                           "[KIMA_LEASE]\n"),
        OPTION_FLAG_SPEC(CFG, evict_untrusted, "evict-untrusted", "KIMA_EVICT_UNTRUSTED",
                         "  --evict-untrusted       evict untrusted pods (the Eviction API: "
                         "disruption\n"
                         "                          budgets apply; never unknown pods), "
                         "audited\n"
                         "                                                         "
                         "[KIMA_EVICT_UNTRUSTED=1]\n"),
        OPTION_FLAG_SPEC(CFG, taint_failed_nodes, "taint-failed-nodes", "KIMA_TAINT_FAILED_NODES",
                         "  --taint-failed-nodes    taint untrusted nodes "
                         "<prefix>/untrusted:NoSchedule,\n"
                         "                          removed once they attest trusted again, "
                         "audited\n"
                         "                                                  "
                         "[KIMA_TAINT_FAILED_NODES=1]\n"),
        OPTION_FLAG_SPEC(CFG, taint_noexecute, "taint-noexecute", "KIMA_TAINT_NOEXECUTE",
                         "  --taint-noexecute       with --taint-failed-nodes: NoExecute too "
                         "(evicts every\n"
                         "                          pod of the node without a toleration)\n"
                         "                                                  "
                         "[KIMA_TAINT_NOEXECUTE=1]\n"),
        OPTION_UNSIGNED_SPEC(CFG, kube_refresh_ms, "kube-refresh-ms", "KIMA_KUBE_REFRESH_MS",
                             300000, 500, 86400000,
                             "  --kube-refresh-ms N     list every pod again this often, besides "
                             "the watch\n"
                             "                          (the safety resync; 300000)  "
                             "[KIMA_KUBE_REFRESH_MS]\n"),
        OPTION_STRING_SPEC(CFG, audit_log, "audit-log", "KIMA_AUDIT_LOG", "audit.log",
                           "  --audit-log PATH        audit log (audit.log)                    "
                           "[KIMA_AUDIT_LOG]\n"),
        OPTION_STRING_SPEC(CFG, replica, "replica", "KIMA_REPLICA", NULL,
                           "  --replica NAME          this replica's name, in its audit chain "
                           "(a DNS-1123\n"
                           "                          label; the host name, in a StatefulSet "
                           "the pod's)\n"
                           "                                                         "
                           "[KIMA_REPLICA]\n"),
        OPTION_STRING_SPEC(CFG, audit_key, "audit-key", "KIMA_AUDIT_KEY", "audit.key",
                           "  --audit-key PATH        Ed25519 key, generated if absent "
                           "(audit.key) [KIMA_AUDIT_KEY]\n"),
        OPTION_UNSIGNED_SPEC(CFG, audit_max_bytes, "audit-max-bytes", "KIMA_AUDIT_MAX_BYTES",
                             64u << 20, 4096, UINT64_MAX,
                             "  --audit-max-bytes N     rotate the audit log past N bytes (64 "
                             "MiB) [KIMA_AUDIT_MAX_BYTES]\n"),
        OPTION_UNSIGNED_SPEC(CFG, audit_checkpoint_ms, "audit-checkpoint-ms",
                             "KIMA_AUDIT_CHECKPOINT_MS", AUDIT_CHECKPOINT_MS_DEFAULT,
                             AUDIT_CHECKPOINT_MS_MIN, AUDIT_CHECKPOINT_MS_MAX,
                             "  --audit-checkpoint-ms N sign a checkpoint when a record has "
                             "waited this long\n"
                             "                          (5000; 1000-3600000)         "
                             "[KIMA_AUDIT_CHECKPOINT_MS]\n"),
        OPTION_STRING_SPEC(CFG, ek_ca_dir, "ek-ca-dir", "KIMA_EK_CA_DIR", NULL,
                           "  --ek-ca-dir DIR         trusted EK certificate CAs              "
                           "[KIMA_EK_CA_DIR]\n"),
        OPTION_FLAG_SPEC(CFG, require_ek_cert, "require-ek-cert", "KIMA_REQUIRE_EK_CERT",
                         "  --require-ek-cert       refuse TPMs without a valid EK certificate "
                         "[KIMA_REQUIRE_EK_CERT=1]\n"
                         "                          (without it, the first TPM to register a "
                         "node name,\n"
                         "                          a software TPM included, is bound to it)\n"),
        OPTION_UNSIGNED_SPEC(CFG, interval_ms, "interval-ms", "KIMA_INTERVAL_MS", 2000, 100,
                             3600000,
                             "  --interval-ms N         agents' interval; stale after 3 missed "
                             "(2000) [KIMA_INTERVAL_MS]\n"),
        OPTION_UNSIGNED_SPEC(CFG, nonce_ttl_ms, "nonce-ttl-ms", "KIMA_NONCE_TTL_MS", 30000, 100,
                             3600000,
                             "  --nonce-ttl-ms N        challenge lifetime (30000)              "
                             "[KIMA_NONCE_TTL_MS]\n"),
        OPTION_UNSIGNED_SPEC(CFG, min_challenge_ms, "min-challenge-ms", "KIMA_MIN_CHALLENGE_MS",
                             100, 0, 60000,
                             "  --min-challenge-ms N    a node's challenges at most this often, "
                             "else 429 (100)\n"
                             "                                                         "
                             "[KIMA_MIN_CHALLENGE_MS]\n"),
        OPTION_STRING_SPEC(CFG, pcr_selection, "pcr-selection", "KIMA_PCR_SELECTION", "sha256:10",
                           "  --pcr-selection SEL     PCRs quotes must cover (sha256:10)     "
                           "[KIMA_PCR_SELECTION]\n"),
        OPTION_STRING_SPEC(CFG, ima_templates, "ima-templates", "KIMA_IMA_TEMPLATES", "",
                           "  --ima-templates LIST    custom IMA template formats the nodes' "
                           "kernels use\n"
                           "                          (ima_template_fmt=), comma-separated; "
                           "built-in\n"
                           "                          templates are always accepted (none)  "
                           "[KIMA_IMA_TEMPLATES]\n"),
        OPTION_UNSIGNED_SPEC(CFG, attribution_grace_ms, "attribution-grace-ms",
                             "KIMA_ATTRIBUTION_GRACE_MS", 10000, 0, 3600000,
                             "  --attribution-grace-ms N  how long a measurement waits for its "
                             "pod to appear in\n"
                             "                          the inventory before it is judged as "
                             "unattributable\n"
                             "                          (10000)                     "
                             "[KIMA_ATTRIBUTION_GRACE_MS]\n"),
        OPTION_FLAG_SPEC(CFG, unknown_untrusted, "unknown-untrusted", "KIMA_UNKNOWN_UNTRUSTED",
                         "  --unknown-untrusted     pods no policy matches are untrusted, not "
                         "unknown\n"
                         "                                                         "
                         "[KIMA_UNKNOWN_UNTRUSTED=1]\n"),
        OPTION_FLAG_SPEC(CFG, allow_match_all_excludes, "allow-match-all-excludes",
                         "KIMA_ALLOW_MATCH_ALL_EXCLUDES",
                         "  --allow-match-all-excludes  load policies with an exclude that "
                         "matches every\n"
                         "                          path (warned) instead of refusing them\n"
                         "                                                  "
                         "[KIMA_ALLOW_MATCH_ALL_EXCLUDES=1]\n"),
        OPTION_UNSIGNED_SPEC(CFG, threads, "threads", "KIMA_THREADS", 8, 1, 64,
                             "  --threads N             HTTP worker threads (8)                  "
                             "[KIMA_THREADS]\n"),
        /* 0: HTTP_CONNECTIONS_DEFAULT; an open-file limit that cuts it is
         * warned about either way. */
        OPTION_UNSIGNED_SPEC(CFG, max_connections, "max-connections", "KIMA_MAX_CONNECTIONS", 0,
                             HTTP_CONNECTIONS_MIN, HTTP_CONNECTIONS_MAX,
                             "  --max-connections N     connections at once (16384, fewer if the "
                             "open-file\n"
                             "                          limit, raised to its hard limit, leaves "
                             "less room);\n"
                             "                          half, at most 4096, for clients without "
                             "a certificate yet\n"
                             "                                                         "
                             "[KIMA_MAX_CONNECTIONS]\n"),
        OPTION_UNSIGNED_SPEC(CFG, max_connections_per_cert, "max-connections-per-cert",
                             "KIMA_MAX_CONNECTIONS_PER_CERT", HTTP_CONNECTIONS_PER_CERT_DEFAULT,
                             HTTP_CONNECTIONS_PER_CERT_MIN, HTTP_CONNECTIONS_PER_CERT_MAX,
                             "  --max-connections-per-cert N  connections one client "
                             "certificate (agent or\n"
                             "                          operator, by its CN) may hold, else "
                             "429 (8)\n"
                             "                                                  "
                             "[KIMA_MAX_CONNECTIONS_PER_CERT]\n"),
        OPTION_UNSIGNED_SPEC(CFG, max_body_memory, "max-body-memory", "KIMA_MAX_BODY_MEMORY",
                             HTTP_BODY_MEMORY_DEFAULT, HTTP_BODY_MEMORY_MIN, HTTP_BODY_MEMORY_MAX,
                             "  --max-body-memory BYTES request bodies all clients may hold at "
                             "once, else\n"
                             "                          503 (268435456 = 256 MiB)     "
                             "[KIMA_MAX_BODY_MEMORY]\n"),
        /* The nonce lifetime's default: no round can finish after its
         * nonce expired, and a drain ends once none is outstanding. */
        OPTION_UNSIGNED_SPEC(CFG, drain_timeout_ms, "drain-timeout-ms", "KIMA_DRAIN_TIMEOUT_MS",
                             VERIFIER_DRAIN_DEFAULT_MS, 0, VERIFIER_DRAIN_MAX_MS,
                             "  --drain-timeout-ms N    after SIGTERM, refuse new challenges "
                             "and wait this\n"
                             "                          long at most for the rounds in flight "
                             "(30000; 0:\n"
                             "                          stop at once; a second signal stops "
                             "at once)\n"
                             "                                                         "
                             "[KIMA_DRAIN_TIMEOUT_MS]\n"),
        OPTION_STRING_SPEC(CFG, agent_auth, "agent-auth", "KIMA_AGENT_AUTH", "cert",
                           "  --agent-auth MODE       how agents authenticate: cert (client "
                           "certificates,\n"
                           "                          the default), token (projected "
                           "ServiceAccount tokens\n"
                           "                          reviewed by the Kubernetes API) or either; "
                           "operators\n"
                           "                          always need a certificate "
                           "[KIMA_AGENT_AUTH]\n"),
        OPTION_STRING_SPEC(CFG, token_audience, "token-audience", "KIMA_TOKEN_AUDIENCE",
                           AGENT_AUTH_AUDIENCE_DEFAULT,
                           "  --token-audience AUD    the audience agents' tokens must have "
                           "(kima)\n"
                           "                                                  "
                           "[KIMA_TOKEN_AUDIENCE]\n"),
        OPTION_STRING_SPEC(CFG, agent_service_account, "agent-service-account",
                           "KIMA_AGENT_SERVICE_ACCOUNT", AGENT_AUTH_SERVICE_ACCOUNT_DEFAULT,
                           "  --agent-service-account NS:SA  the agents' ServiceAccount\n"
                           "                          (kima-system:kima-agent) "
                           "[KIMA_AGENT_SERVICE_ACCOUNT]\n"),
        OPTION_UNSIGNED_SPEC(CFG, token_cache_ms, "token-cache-ms", "KIMA_TOKEN_CACHE_MS",
                             AGENT_AUTH_TTL_MS_DEFAULT, 1000, AGENT_AUTH_TTL_MS_MAX,
                             "  --token-cache-ms N      keep a token's accepted review this "
                             "long at most, never\n"
                             "                          past its exp (10000; 1000-300000) "
                             "[KIMA_TOKEN_CACHE_MS]\n"),
        OPTION_STRING_SPEC(CFG, log_level, "log-level", "KIMA_LOG_LEVEL", NULL,
                           "  --log-level LEVEL       error, warn, info, debug                 "
                           "[KIMA_LOG_LEVEL]\n"),
        OPTION_STRING_SPEC(CFG, log_format, "log-format", "KIMA_LOG_FORMAT", NULL,
                           "  --log-format FORMAT     logfmt or json                           "
                           "[KIMA_LOG_FORMAT]\n"),
};

static const struct options_program verifier_program = {
        .name = "kima-verifier",
        .help_head = "Usage: kima-verifier [OPTIONS]\n"
                     "\n"
                     "The kima verifier: HTTPS API for agents (registration, activation, "
                     "challenges,\n"
                     "evidence) and operators (nodes, pods, resets, policies, /metrics).\n"
                     "Every option can also be set by the environment variable in brackets.\n"
                     "\n",
        .help_tail =
                "  -h, --help, --version\n"
                "\n"
                "Exit codes: 0 after SIGTERM/SIGINT (drained, see --drain-timeout-ms), 1 start-up\n"
                "failure, 64 usage error.\n",
        .specs = verifier_options,
        .n_specs = sizeof(verifier_options) / sizeof(verifier_options[0]),
};

/* --replica, or the host name's first label, checked: 0, or -EINVAL said.
 * A host name that is no DNS-1123 label is made one (each other character
 * a '-'), so that a default never stops a start. */
static int replica_name(struct verifier_config *cfg) {
    static char host[64];
    char err[160], full[256] = "";
    size_t n;

    if (!cfg->replica) {
        if (gethostname(full, sizeof(full) - 1) < 0) {
            fprintf(stderr, "kima-verifier: no --replica and no host name: %s\n", strerror(errno));
            return -EINVAL;
        }
        full[strcspn(full, ".")] = 0;
        n = 0;
        for (const char *c = full; *c && n < sizeof(host) - 1; c++) {
            char ch = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c; /* DNS ignores case */
            host[n++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ? ch : '-';
        }
        while (n > 0 && host[n - 1] == '-') {
            n--;
        }
        host[n] = 0;
        cfg->replica = host[0] && host[0] != '-' ? host : "verifier";
        cfg->replica_from_host = true;
    }
    if (audit_replica_check(cfg->replica, err, sizeof(err)) < 0) {
        fprintf(stderr, "kima-verifier: --replica \"%.80s\": %s\n", cfg->replica, err);
        return -EINVAL;
    }
    return 0;
}

#define RANGE_HINT "kima-verifier: a numeric option is out of range (see --help)\n"

/* The options into cfg, checked, and the log set up. -1 to go on, else the
 * exit code. */
static int parse_options(int argc, char **argv, struct verifier_config *cfg) {
    char err[256];
    int first_operand = argc;
    int r = options_parse(&verifier_program, argc, argv, cfg, &first_operand, err, sizeof(err));

    if (r == OPTIONS_HELP) {
        options_print_help(&verifier_program, stdout);
        return KIMA_EXIT_OK;
    }
    if (r == OPTIONS_VERSION) {
        printf("kima-verifier %s\n", KIMA_VERSION);
        return KIMA_EXIT_OK;
    }
    if (r == -EINVAL || (r == 0 && first_operand != argc)) {
        options_print_help(&verifier_program, stderr);
        return KIMA_EXIT_USAGE;
    }
    if (r == -ERANGE) {
        fprintf(stderr, "kima-verifier: %s\n" RANGE_HINT, err);
        return KIMA_EXIT_USAGE;
    }
    if (log_setup(cfg->log_level, cfg->log_format) < 0) {
        fprintf(stderr,
                "kima-verifier: --log-level takes error, warn, info or debug; --log-format logfmt "
                "or json\n");
        return KIMA_EXIT_USAGE;
    }
    if (replica_name(cfg) < 0) {
        return KIMA_EXIT_USAGE;
    }
    if (verifier_config_check(cfg) < 0) {
        fputs("kima-verifier: an option's value is not valid (see above and --help)\n", stderr);
        return KIMA_EXIT_USAGE;
    }
    return -1;
}

int main(int argc, char **argv) {
    struct verifier_config cfg = {0}; /* the fields no option sets (replica_from_host) */
    struct verifier v;
    sigset_t sigs;
    int code;

    code = parse_options(argc, argv, &cfg);
    if (code >= 0) {
        return code;
    }
    /* Blocked before any thread starts (the Kubernetes client's, the HTTP
     * front's: they inherit the mask), so that no thread takes SIGTERM or
     * SIGINT with its default action and ends the process without cleanup;
     * one that comes while the services open waits for sigtimedwait in the
     * service loop, which stops cleanly. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    setenv("TSS2_LOG", "all+none", 0);
    verifier_malloc_setup();
    code = KIMA_EXIT_FAILURE;
    if (verifier_open(&cfg, &v) == 0) {
        if (verifier_listen(&v) == 0) {
            verifier_run(&v, &sigs);
            code = KIMA_EXIT_OK;
        }
    }
    verifier_close(&v);
    return code;
}
