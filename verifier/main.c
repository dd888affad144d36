/* SPDX-License-Identifier: Apache-2.0 */
/* kima-verifier: registers nodes, judges their evidence, keeps each pod's
 * trust state and writes the audit log. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "audit.h"
#include "crl.h"
#include "ekcert.h"
#include "engine.h"
#include "http.h"
#include "inventory.h"
#include "kube.h"
#include "kima-config.h"
#include "log.h"
#include "parse.h"
#include "pcr.h"
#include "store.h"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: kima-verifier [OPTIONS]\n"
            "\n"
            "The kima verifier: HTTPS API for agents (registration, activation, challenges,\n"
            "evidence) and operators (nodes, pods, resets, policies, /metrics).\n"
            "Every option can also be set by the environment variable in brackets.\n"
            "\n"
            "  --listen ADDR:PORT      where to listen, IPv4 (0.0.0.0:8443)    [KIMA_LISTEN]\n"
            "  --tls-cert PEM          server certificate                       [KIMA_TLS_CERT]\n"
            "  --tls-key PEM           server private key                       [KIMA_TLS_KEY]\n"
            "  --client-ca PEM         CA of agent and operator certificates    [KIMA_CLIENT_CA]\n"
            "  --crl FILE              revoked agent and operator certificates: CRLs of\n"
            "                          --client-ca (PEM or DER), reloaded on change [KIMA_CRL]\n"
            "  --insecure-plain-http   no TLS and no roles: local demos only   "
            "[KIMA_INSECURE_PLAIN_HTTP=1]\n"
            "  --db PATH               SQLite store (kima.db)                   [KIMA_DB]\n"
            "  --policies DIR          golden policies, reloaded on change      [KIMA_POLICIES]\n"
            "  --pods-file FILE        pod inventory: a PodList in JSON         [KIMA_PODS_FILE]\n"
            "  --kubeconfig FILE       the Kubernetes API from a kubeconfig    [KIMA_KUBECONFIG]\n"
            "  --kube-context NAME     its context (the current one)        [KIMA_KUBE_CONTEXT]\n"
            "  --in-cluster            the API from the service account (also when\n"
            "                          KUBERNETES_SERVICE_HOST is set and no --kubeconfig\n"
            "                          or --pods-file is given)             [KIMA_IN_CLUSTER=1]\n"
            "  --label-prefix P        label and annotation prefix (kima.dev) [KIMA_LABEL_PREFIX]\n"
            "  --kube-refresh-ms N     list pods at least this often (10000) "
            "[KIMA_KUBE_REFRESH_MS]\n"
            "  --audit-log PATH        audit log (audit.log)                    [KIMA_AUDIT_LOG]\n"
            "  --audit-key PATH        Ed25519 key, generated if absent (audit.key) "
            "[KIMA_AUDIT_KEY]\n"
            "  --audit-max-bytes N     rotate the audit log past N bytes (64 MiB) "
            "[KIMA_AUDIT_MAX_BYTES]\n"
            "  --audit-checkpoint-ms N sign a checkpoint when a record has waited this long\n"
            "                          (5000; 1000-3600000)         [KIMA_AUDIT_CHECKPOINT_MS]\n"
            "  --ek-ca-dir DIR         trusted EK certificate CAs              [KIMA_EK_CA_DIR]\n"
            "  --require-ek-cert       refuse TPMs without a valid EK certificate "
            "[KIMA_REQUIRE_EK_CERT=1]\n"
            "                          (without it, the first TPM to register a node name,\n"
            "                          a software TPM included, is bound to it)\n"
            "  --interval-ms N         agents' interval; stale after 3 missed (2000) "
            "[KIMA_INTERVAL_MS]\n"
            "  --nonce-ttl-ms N        challenge lifetime (30000)              "
            "[KIMA_NONCE_TTL_MS]\n"
            "  --min-challenge-ms N    a node's challenges at most this often, else 429 (100)\n"
            "                                                         [KIMA_MIN_CHALLENGE_MS]\n"
            "  --pcr-selection SEL     PCRs quotes must cover (sha256:10)     "
            "[KIMA_PCR_SELECTION]\n"
            "  --attribution-grace-ms N  how long a measurement waits for its pod to appear in\n"
            "                          the inventory before it is judged as unattributable\n"
            "                          (10000)                     [KIMA_ATTRIBUTION_GRACE_MS]\n"
            "  --unknown-untrusted     pods no policy matches are untrusted, not unknown\n"
            "                                                         [KIMA_UNKNOWN_UNTRUSTED=1]\n"
            "  --allow-match-all-excludes  load policies with an exclude that matches every\n"
            "                          path (warned) instead of refusing them\n"
            "                                                  [KIMA_ALLOW_MATCH_ALL_EXCLUDES=1]\n"
            "  --threads N             HTTP worker threads (2)                  [KIMA_THREADS]\n"
            "  --max-connections N     connections at once (4096, fewer if the open-file\n"
            "                          limit, raised to its hard limit, leaves less room);\n"
            "                          half for clients without a certificate yet\n"
            "                                                         [KIMA_MAX_CONNECTIONS]\n"
            "  --max-body-memory BYTES request bodies all clients may hold at once, else\n"
            "                          503 (268435456 = 256 MiB)     [KIMA_MAX_BODY_MEMORY]\n"
            "  --log-level LEVEL       error, warn, info, debug                 [KIMA_LOG_LEVEL]\n"
            "  --log-format FORMAT     logfmt or json                           [KIMA_LOG_FORMAT]\n"
            "  -h, --help, --version\n"
            "\n"
            "Exit codes: 0 after SIGTERM/SIGINT, 1 start-up failure, 64 usage error.\n");
}

static void kick(void *ud) {
    kube_kick(ud, false);
}

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static bool env_flag(const char *name) {
    const char *v = getenv(name);
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
            {"listen", required_argument, NULL, 'l'},
            {"tls-cert", required_argument, NULL, 'c'},
            {"tls-key", required_argument, NULL, 'k'},
            {"client-ca", required_argument, NULL, 'a'},
            {"crl", required_argument, NULL, 'D'},
            {"insecure-plain-http", no_argument, NULL, 'P'},
            {"db", required_argument, NULL, 'd'},
            {"policies", required_argument, NULL, 'p'},
            {"pods-file", required_argument, NULL, 'f'},
            {"audit-log", required_argument, NULL, 'A'},
            {"audit-key", required_argument, NULL, 'K'},
            {"audit-max-bytes", required_argument, NULL, 'M'},
            {"audit-checkpoint-ms", required_argument, NULL, 'T'},
            {"ek-ca-dir", required_argument, NULL, 'E'},
            {"require-ek-cert", no_argument, NULL, 'R'},
            {"interval-ms", required_argument, NULL, 'i'},
            {"nonce-ttl-ms", required_argument, NULL, 'n'},
            {"min-challenge-ms", required_argument, NULL, 'm'},
            {"pcr-selection", required_argument, NULL, 's'},
            {"unknown-untrusted", no_argument, NULL, 'U'},
            {"attribution-grace-ms", required_argument, NULL, 'G'},
            {"allow-match-all-excludes", no_argument, NULL, 'x'},
            {"threads", required_argument, NULL, 't'},
            {"max-connections", required_argument, NULL, 'N'},
            {"max-body-memory", required_argument, NULL, 'Y'},
            {"kubeconfig", required_argument, NULL, 'C'},
            {"kube-context", required_argument, NULL, 'X'},
            {"in-cluster", no_argument, NULL, 'I'},
            {"label-prefix", required_argument, NULL, 'B'},
            {"kube-refresh-ms", required_argument, NULL, 'r'},
            {"log-level", required_argument, NULL, 'L'},
            {"log-format", required_argument, NULL, 'F'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {0},
    };
    struct http_config hc = {
            .listen = env_or("KIMA_LISTEN", "0.0.0.0:8443"),
            .tls_cert = env_or("KIMA_TLS_CERT", NULL),
            .tls_key = env_or("KIMA_TLS_KEY", NULL),
            .client_ca = env_or("KIMA_CLIENT_CA", NULL),
            .insecure_plain_http = env_flag("KIMA_INSECURE_PLAIN_HTTP"),
    };
    const char *db = env_or("KIMA_DB", "kima.db"), *policies = env_or("KIMA_POLICIES", NULL);
    const char *pods = env_or("KIMA_PODS_FILE", NULL),
               *alog = env_or("KIMA_AUDIT_LOG", "audit.log");
    const char *akey = env_or("KIMA_AUDIT_KEY", "audit.key"),
               *ekdir = env_or("KIMA_EK_CA_DIR", NULL);
    const char *level = env_or("KIMA_LOG_LEVEL", NULL), *format = env_or("KIMA_LOG_FORMAT", NULL);
    const char *sel = env_or("KIMA_PCR_SELECTION", "sha256:10"),
               *crl_path = env_or("KIMA_CRL", NULL);
    const char *s_minch = env_or("KIMA_MIN_CHALLENGE_MS", NULL);
    const char *s_interval = env_or("KIMA_INTERVAL_MS", NULL),
               *s_ttl = env_or("KIMA_NONCE_TTL_MS", NULL);
    const char *s_max = env_or("KIMA_AUDIT_MAX_BYTES", NULL),
               *s_threads = env_or("KIMA_THREADS", NULL);
    const char *kubeconfig = env_or("KIMA_KUBECONFIG", NULL),
               *kctx = env_or("KIMA_KUBE_CONTEXT", NULL);
    const char *s_refresh = env_or("KIMA_KUBE_REFRESH_MS", NULL);
    const char *s_grace = env_or("KIMA_ATTRIBUTION_GRACE_MS", NULL);
    const char *s_ckpt = env_or("KIMA_AUDIT_CHECKPOINT_MS", NULL);
    const char *s_maxconn = env_or("KIMA_MAX_CONNECTIONS", NULL),
               *s_bodymem = env_or("KIMA_MAX_BODY_MEMORY", NULL);
    bool in_cluster = env_flag("KIMA_IN_CLUSTER");
    struct kube_options kopt = {.label_prefix = env_or("KIMA_LABEL_PREFIX", "kima.dev")};
    struct kube_config kcfg = {0};
    struct kube *kube = NULL;
    struct engine_config cfg;
    uint64_t v, audit_max = 64u << 20, audit_ckpt_ms = AUDIT_CHECKPOINT_MS_DEFAULT;
    struct store *store = NULL;
    struct audit_log *audit = NULL;
    struct inventory *inv = NULL;
    struct engine *e = NULL;
    struct http_server *http = NULL;
    struct crl_set *crl = NULL;
    EVP_PKEY *key = NULL;
    X509_STORE *ekstore = NULL;
    sigset_t sigs;
    int o, code = 1;

    engine_config_default(&cfg);
    cfg.require_ek_cert = env_flag("KIMA_REQUIRE_EK_CERT");
    cfg.unknown_untrusted = env_flag("KIMA_UNKNOWN_UNTRUSTED");
    cfg.allow_match_all_excludes = env_flag("KIMA_ALLOW_MATCH_ALL_EXCLUDES");
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            hc.listen = optarg;
            break;
        case 'c':
            hc.tls_cert = optarg;
            break;
        case 'k':
            hc.tls_key = optarg;
            break;
        case 'a':
            hc.client_ca = optarg;
            break;
        case 'D':
            crl_path = optarg;
            break;
        case 'P':
            hc.insecure_plain_http = true;
            break;
        case 'd':
            db = optarg;
            break;
        case 'p':
            policies = optarg;
            break;
        case 'f':
            pods = optarg;
            break;
        case 'A':
            alog = optarg;
            break;
        case 'K':
            akey = optarg;
            break;
        case 'M':
            s_max = optarg;
            break;
        case 'T':
            s_ckpt = optarg;
            break;
        case 'E':
            ekdir = optarg;
            break;
        case 'R':
            cfg.require_ek_cert = true;
            break;
        case 'i':
            s_interval = optarg;
            break;
        case 'n':
            s_ttl = optarg;
            break;
        case 'm':
            s_minch = optarg;
            break;
        case 's':
            sel = optarg;
            break;
        case 'U':
            cfg.unknown_untrusted = true;
            break;
        case 'G':
            s_grace = optarg;
            break;
        case 'x':
            cfg.allow_match_all_excludes = true;
            break;
        case 't':
            s_threads = optarg;
            break;
        case 'N':
            s_maxconn = optarg;
            break;
        case 'Y':
            s_bodymem = optarg;
            break;
        case 'C':
            kubeconfig = optarg;
            break;
        case 'X':
            kctx = optarg;
            break;
        case 'I':
            in_cluster = true;
            break;
        case 'B':
            kopt.label_prefix = optarg;
            break;
        case 'r':
            s_refresh = optarg;
            break;
        case 'L':
            level = optarg;
            break;
        case 'F':
            format = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("kima-verifier %s\n", KIMA_VERSION);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 64;
    }
    if (log_setup(level, format) < 0) {
        fprintf(stderr,
                "kima-verifier: --log-level takes error, warn, info or debug; --log-format logfmt "
                "or json\n");
        return 64;
    }
    if ((s_interval &&
         (parse_u64_range(s_interval, 100, 3600000, &v) < 0 || !(cfg.interval_ms = v))) ||
        (s_ttl && (parse_u64_range(s_ttl, 100, 3600000, &v) < 0 || !(cfg.nonce_ttl_ms = v))) ||
        (s_max && (parse_u64_range(s_max, 4096, UINT64_MAX, &audit_max) < 0)) ||
        (s_ckpt && parse_u64_range(s_ckpt, AUDIT_CHECKPOINT_MS_MIN, AUDIT_CHECKPOINT_MS_MAX,
                                   &audit_ckpt_ms) < 0) ||
        (s_minch && parse_u64_range(s_minch, 0, 60000, &cfg.min_challenge_ms) < 0) ||
        (s_threads && (parse_u64_range(s_threads, 1, 64, &v) < 0 || !(hc.threads = (unsigned)v))) ||
        (s_maxconn &&
         (parse_u64_range(s_maxconn, HTTP_CONNECTIONS_MIN, HTTP_CONNECTIONS_MAX, &v) < 0 ||
          !(hc.max_connections = (unsigned)v))) ||
        (s_bodymem && parse_u64_range(s_bodymem, HTTP_BODY_MEMORY_MIN, HTTP_BODY_MEMORY_MAX,
                                      &hc.max_body_memory) < 0) ||
        (s_refresh &&
         (parse_u64_range(s_refresh, 500, 3600000, &v) < 0 || !(kopt.refresh_ms = (int64_t)v))) ||
        (s_grace && parse_u64_range(s_grace, 0, 3600000, &cfg.attribution_grace_ms) < 0) ||
        tpm_pcr_selection_parse(sel, &cfg.selection) < 0) {
        fprintf(stderr, "kima-verifier: a numeric option or --pcr-selection is out of range "
                        "(see --help)\n");
        return 64;
    }
    setenv("TSS2_LOG", "all+none", 0);
    if (hc.insecure_plain_http) {
        log_warn("*** --insecure-plain-http: NO TLS, NO CLIENT AUTHENTICATION. Anyone who can "
                 "reach %s can register nodes and read every verdict. Local demos only. ***",
                 hc.listen);
    }
    if (ekdir && tpm_ekcert_store_load(ekdir, &ekstore) < 0) {
        log_error("--ek-ca-dir %s holds no readable CA certificate", ekdir);
        goto out;
    }
    if (cfg.require_ek_cert && !ekstore) {
        log_error("--require-ek-cert needs --ek-ca-dir");
        goto out;
    }
    if (!cfg.require_ek_cert) {
        log_warn("*** --require-ek-cert is off: the first TPM to register a node name is bound to "
                 "it, and any TPM will do, a software TPM included. Whoever holds a node's agent "
                 "certificate can register a TPM it controls before the node does and report "
                 "what it likes. Use --ek-ca-dir with --require-ek-cert outside demos. ***");
    }
    if (crl_path && hc.insecure_plain_http) {
        log_warn("--crl is ignored with --insecure-plain-http: there are no client certificates");
    } else if (crl_path && !hc.client_ca) {
        log_error("--crl needs --client-ca: the CRLs must be signed by its CA");
        goto out;
    } else if (crl_path && crl_open(crl_path, hc.client_ca, time(NULL), &crl) < 0) {
        goto out; /* crl_open() said why */
    }
    hc.crl = crl;
    cfg.ek_store = ekstore;
    if (!kubeconfig && !in_cluster && !pods && getenv("KUBERNETES_SERVICE_HOST")) {
        in_cluster = true;
    }
    if (store_open(db, &store) < 0 || audit_key_load_or_create(akey, &key) < 0 ||
        audit_open(alog, key, audit_max, 1000, &audit) < 0 ||
        (kubeconfig || in_cluster ? inventory_open_api(&inv) : inventory_open_file(pods, &inv)) <
                0 ||
        engine_new(&cfg, store, audit, inv, policies, &e) < 0) {
        log_error("start-up failed (store %s, audit log %s, audit key %s, pods file %s)", db, alog,
                  akey, pods ? pods : "-");
        goto out;
    }
    audit_set_checkpoint_ms(audit, (int64_t)audit_ckpt_ms);
    if (kubeconfig || in_cluster) {
        char err[512];
        int r = kubeconfig ? kube_config_from_kubeconfig(kubeconfig, kctx, &kcfg, err, sizeof(err))
                           : kube_config_in_cluster(getenv("KIMA_SERVICE_ACCOUNT_DIR"), &kcfg, err,
                                                    sizeof(err));
        if (r < 0) {
            log_error("Kubernetes configuration (%s): %s", kubeconfig ? kubeconfig : "in-cluster",
                      err);
            goto out;
        }
        if (kcfg.insecure) {
            log_error("the kubeconfig asks for insecure-skip-tls-verify: refused; give the "
                      "cluster's CA");
            goto out;
        }
        if (pods) {
            log_warn("--pods-file is ignored: the pod inventory comes from the Kubernetes API");
        }
        log_info("Kubernetes API %s (%s), labels %s/trust", kcfg.server,
                 kubeconfig ? kubeconfig : "in-cluster", kopt.label_prefix);
        if (kube_new(&kcfg, &kopt, e, inv, &kube) < 0) {
            goto out;
        }
        memset(&kcfg, 0, sizeof(kcfg)); /* kube owns it */
        engine_set_listener(e, kick, kube);
        kube_start(kube);
    }
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (http_start(&hc, e, &http) < 0) {
        goto out;
    }
    log_info("kima-verifier %s listening on port %u (%s)", KIMA_VERSION, http_port(http),
             hc.insecure_plain_http ? "plain HTTP" : "HTTPS, client certificates required");
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("signal %d: finishing requests in flight and stopping", sig);
            break;
        }
        /* The checkpoint first: judging waiting measurements may take the
         * engine's lock for a while, the unsigned tail must not wait. The
         * inputs next, then what depends on them. */
        audit_checkpoint_due(audit, engine_now_ms());
        engine_reload_policies(e);
        if (crl) {
            crl_refresh(crl, time(NULL));
        }
        if (!kube) {
            inventory_refresh(inv);
        }
        engine_sweep(e, engine_now_ms());
    }
    code = 0;
out:
    http_stop(http);
    crl_free(crl);
    if (e) {
        engine_set_listener(e, NULL, NULL);
    }
    if (kube) {
        struct kube_stats ks;
        kube_stats(kube, &ks);
        log_info("kubernetes: %llu pod lists (%llu failed), %llu label patches (%llu failed), "
                 "%llu events",
                 (unsigned long long)ks.lists, (unsigned long long)ks.list_errors,
                 (unsigned long long)ks.patches, (unsigned long long)ks.patch_errors,
                 (unsigned long long)ks.events);
    }
    kube_free(kube);
    kube_config_free(&kcfg);
    engine_free(e);
    inventory_free(inv);
    audit_close(audit);
    store_close(store);
    EVP_PKEY_free(key);
    X509_STORE_free(ekstore);
    return code;
}
