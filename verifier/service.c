/* SPDX-License-Identifier: Apache-2.0 */
#include "service.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "crl.h"
#include "ekcert.h"
#include "template.h"
#include "inventory.h"
#include "kima-config.h"
#include "log.h"
#include "pcr.h"
#include "store.h"
#include "time-util.h"

int verifier_config_check(const struct verifier_config *cfg) {
    enum agent_auth_mode mode;
    TPML_PCR_SELECTION sel;

    if (tpm_pcr_selection_parse(cfg->pcr_selection, &sel) < 0) {
        log_error("--pcr-selection: \"%s\" is not a PCR selection like sha256:10 or "
                  "sha256:10+sha1:10",
                  cfg->pcr_selection);
        return -EINVAL;
    }
    for (const char *at = cfg->ima_templates ? cfg->ima_templates : ""; *at;) {
        size_t n = strcspn(at, ",");
        struct ima_template t;
        if (ima_template_resolve(at, n, &t) < 0 || !t.known || ima_template_builtin_fmt(at, n)) {
            log_error("--ima-templates: \"%.*s\" is not a custom template format of known "
                      "fields (like dep|cg-path|d-ng|n-ng)",
                      (int)n, at);
            return -EINVAL;
        }
        at += n + (at[n] == ',');
    }
    if (cfg->agent_auth && agent_auth_mode_from_string(cfg->agent_auth, &mode) < 0) {
        log_error("--agent-auth takes cert, token or either");
        return -EINVAL;
    }
    if (!inventory_static_namespaces_valid(cfg->static_pod_namespaces)) {
        log_error("--static-pod-namespaces: \"%s\" is not a comma-separated list of namespace "
                  "names",
                  cfg->static_pod_namespaces);
        return -EINVAL;
    }
    if (cfg->taint_noexecute && !cfg->taint_failed_nodes) {
        log_error("--taint-noexecute adds NoExecute to the taint of --taint-failed-nodes: give "
                  "both");
        return -EINVAL;
    }
    if ((cfg->evict_untrusted || cfg->taint_failed_nodes) && !cfg->kubeconfig && !cfg->in_cluster &&
        (cfg->pods_file || !getenv("KUBERNETES_SERVICE_HOST"))) {
        log_error("--evict-untrusted and --taint-failed-nodes act through the Kubernetes API: "
                  "give --kubeconfig or --in-cluster");
        return -EINVAL;
    }
    return 0;
}

/* The engine's, HTTP front's and Kubernetes side's settings. */
static void split_config(struct verifier *v) {
    const struct verifier_config *cfg = v->cfg;

    engine_config_default(&v->engine_cfg);
    v->engine_cfg.interval_ms = cfg->interval_ms;
    v->engine_cfg.nonce_ttl_ms = cfg->nonce_ttl_ms;
    v->engine_cfg.min_challenge_ms = cfg->min_challenge_ms;
    v->engine_cfg.attribution_grace_ms = cfg->attribution_grace_ms;
    v->engine_cfg.ima_templates = cfg->ima_templates;
    v->engine_cfg.require_ek_cert = cfg->require_ek_cert;
    v->engine_cfg.unknown_untrusted = cfg->unknown_untrusted;
    v->engine_cfg.allow_match_all_excludes = cfg->allow_match_all_excludes;
    tpm_pcr_selection_parse(cfg->pcr_selection, &v->engine_cfg.selection);
    v->http_cfg = (struct http_config){
            .listen = cfg->listen,
            .tls_cert = cfg->tls_cert,
            .tls_key = cfg->tls_key,
            .client_ca = cfg->client_ca,
            .insecure_plain_http = cfg->insecure_plain_http,
            .threads = (unsigned)cfg->threads,
            .max_connections = (unsigned)cfg->max_connections,
            .max_connections_per_cert = (unsigned)cfg->max_connections_per_cert,
            .max_body_memory = cfg->max_body_memory,
    };
    v->kube_opt = (struct kube_options){.label_prefix = cfg->label_prefix,
                                        .refresh_ms = (int64_t)cfg->kube_refresh_ms,
                                        .lease = cfg->lease,
                                        .evict_untrusted = cfg->evict_untrusted,
                                        .taint_nodes = cfg->taint_failed_nodes,
                                        .taint_noexecute = cfg->taint_noexecute};
    v->use_api = cfg->kubeconfig || cfg->in_cluster ||
                 (!cfg->pods_file && getenv("KUBERNETES_SERVICE_HOST"));
}

/* The EK CAs and the CRL of client certificates. */
static int open_trust(struct verifier *v) {
    const struct verifier_config *cfg = v->cfg;

    if (cfg->ek_ca_dir && tpm_ekcert_store_load(cfg->ek_ca_dir, &v->ek_store) < 0) {
        log_error("--ek-ca-dir %s holds no readable CA certificate", cfg->ek_ca_dir);
        return -EINVAL;
    }
    if (cfg->require_ek_cert && !v->ek_store) {
        log_error("--require-ek-cert needs --ek-ca-dir");
        return -EINVAL;
    }
    if (!cfg->require_ek_cert) {
        log_warn("*** --require-ek-cert is off: the first TPM to register a node name is bound to "
                 "it, and any TPM will do, a software TPM included. Whoever holds a node's agent "
                 "certificate can register a TPM it controls before the node does and report "
                 "what it likes. Use --ek-ca-dir with --require-ek-cert outside demos. ***");
    }
    if (cfg->crl && cfg->insecure_plain_http) {
        log_warn("--crl is ignored with --insecure-plain-http: there are no client certificates");
    } else if (cfg->crl && !cfg->client_ca) {
        log_error("--crl needs --client-ca: the CRLs must be signed by its CA");
        return -EINVAL;
    } else if (cfg->crl && crl_open(cfg->crl, cfg->client_ca, time(NULL), &v->crl) < 0) {
        return -EINVAL; /* crl_open() said why */
    }
    v->http_cfg.crl = v->crl;
    v->engine_cfg.ek_store = v->ek_store;
    return 0;
}

/* The name the audit chain goes on with: --replica; or, for a name taken
 * from the host name, the one the log already names, if any. */
static const char *chain_replica(const struct verifier_config *cfg, struct audit_log *a) {
    const char *was = audit_log_replica(a);

    if (cfg->replica_from_host && was[0] && strcmp(was, cfg->replica) != 0) {
        log_info("audit log %s goes on as replica \"%s\" (the host name is \"%s\"; set "
                 "--replica to choose)",
                 cfg->audit_log, was, cfg->replica);
        return was;
    }
    return cfg->replica;
}

/* The store, the audit key and log, the inventory and the engine. */
static int open_core(struct verifier *v) {
    const struct verifier_config *cfg = v->cfg;

    if (store_open_with(cfg->db, cfg->db_password_file, &v->store) < 0 ||
        audit_key_load_or_create(cfg->audit_key, &v->audit_key) < 0 ||
        audit_open(cfg->audit_log, v->audit_key, cfg->audit_max_bytes,
                   AUDIT_CHECKPOINT_EVERY_DEFAULT, &v->audit) < 0 ||
        (cfg->replica && audit_set_replica(v->audit, chain_replica(cfg, v->audit)) < 0) ||
        (v->use_api ? inventory_open_api(&v->inv) : inventory_open_file(cfg->pods_file, &v->inv)) <
                0 ||
        inventory_set_static_namespaces(v->inv, cfg->static_pod_namespaces) < 0 ||
        inventory_refresh(v->inv) < 0 ||
        engine_new(&v->engine_cfg, v->store, v->audit, v->inv, cfg->policies, &v->engine) < 0 ||
        store_open_reader(v->store, &v->reader) < 0) {
        log_error("start-up failed (store %s, audit log %s, audit key %s, replica %s, pods file "
                  "%s)",
                  cfg->db, cfg->audit_log, cfg->audit_key, cfg->replica ? cfg->replica : "-",
                  cfg->pods_file ? cfg->pods_file : "-");
        return -EINVAL;
    }
    engine_set_reader(v->engine, v->reader);
    audit_set_checkpoint_ms(v->audit, (int64_t)cfg->audit_checkpoint_ms);
    return 0;
}

static void kick(void *ud) {
    kube_kick(ud, false);
}

/* The Lease's holder identity when POD_NAME is unset: the host name and a
 * random suffix (static storage). Two processes on one host (or on hosts
 * of one name) must never both think they hold the Lease; the price is
 * that a restarted verifier does not recognise its own Lease and waits for
 * it to expire. A StatefulSet's POD_NAME is unique and stable instead. */
static const char *verifier_identity(void) {
    static char id[300];
    char host[256] = "";
    uint8_t r[4] = {0};

    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0]) {
        snprintf(host, sizeof(host), "kima-verifier");
    }
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        log_warn("no random suffix for the verifier's identity: the host name alone");
    }
    snprintf(id, sizeof(id), "%.200s_%02x%02x%02x%02x", host, r[0], r[1], r[2], r[3]);
    return id;
}

/* The Kubernetes API: the inventory, the trust labels and Events. */
static int open_kube(struct verifier *v) {
    const struct verifier_config *cfg = v->cfg;
    char err[512];
    int r = cfg->kubeconfig ? kube_config_from_kubeconfig(cfg->kubeconfig, cfg->kube_context,
                                                          &v->kube_cfg, err, sizeof(err))
                            : kube_config_in_cluster(getenv("KIMA_SERVICE_ACCOUNT_DIR"),
                                                     &v->kube_cfg, err, sizeof(err));

    if (r < 0) {
        log_error("Kubernetes configuration (%s): %s",
                  cfg->kubeconfig ? cfg->kubeconfig : "in-cluster", err);
        return r;
    }
    if (v->kube_cfg.insecure) {
        log_error("the kubeconfig asks for insecure-skip-tls-verify: refused; give the "
                  "cluster's CA");
        return -EPERM;
    }
    if (cfg->pods_file) {
        log_warn("--pods-file is ignored: the pod inventory comes from the Kubernetes API");
    }
    /* The Lease's holderIdentity: an explicit --replica (the operator names
     * each replica), else POD_NAME, else the host name with a random
     * suffix (two verifiers of one host are never one holder). */
    const char *pod = getenv("POD_NAME");
    v->kube_cfg.holder = strdup(cfg->replica && !cfg->replica_from_host ? cfg->replica
                                : pod && *pod                           ? pod
                                                                        : verifier_identity());
    if (!v->kube_cfg.holder) {
        return -ENOMEM;
    }
    log_info("Kubernetes API %s (%s), labels %s/trust", v->kube_cfg.server,
             cfg->kubeconfig ? cfg->kubeconfig : "in-cluster", v->kube_opt.label_prefix);
    r = kube_new(&v->kube_cfg, &v->kube_opt, v->engine, v->inv, &v->kube);
    if (r < 0) {
        return r;
    }
    memset(&v->kube_cfg, 0, sizeof(v->kube_cfg)); /* kube owns it */
    engine_set_listener(v->engine, kick, v->kube);
    kube_start(v->kube);
    return 0;
}

/* --agent-auth token|either: agents' tokens reviewed by the Kubernetes
 * API, which must be configured; none without TLS (no roles at all). */
static int open_agent_auth(struct verifier *v) {
    const struct verifier_config *cfg = v->cfg;
    struct agent_auth_config ac = {
            .audience = cfg->token_audience,
            .service_account = cfg->agent_service_account,
            .ttl_ms = cfg->token_cache_ms,
            .review = kube_token_review,
            .review_ud = v->kube,
            .threads = (unsigned)cfg->threads,
    };
    int r;

    if (agent_auth_mode_from_string(cfg->agent_auth, &ac.mode) < 0 || ac.mode == AGENT_AUTH_CERT) {
        return 0;
    }
    if (cfg->insecure_plain_http) {
        log_warn("--agent-auth %s is ignored with --insecure-plain-http: there are no roles",
                 cfg->agent_auth);
        return 0;
    }
    if (!v->kube) {
        log_error("--agent-auth %s needs the Kubernetes API (--kubeconfig or --in-cluster): "
                  "it reviews the agents' tokens",
                  cfg->agent_auth);
        return -EINVAL;
    }
    r = agent_auth_new(&ac, &v->agent_auth);
    if (r < 0) {
        return r;
    }
    v->http_cfg.agent_auth = v->agent_auth;
    log_info("agents authenticate by %s: ServiceAccount %s, audience %s, reviews kept %llu ms",
             ac.mode == AGENT_AUTH_TOKEN ? "token" : "token or client certificate",
             cfg->agent_service_account ? cfg->agent_service_account
                                        : AGENT_AUTH_SERVICE_ACCOUNT_DEFAULT,
             cfg->token_audience ? cfg->token_audience : AGENT_AUTH_AUDIENCE_DEFAULT,
             (unsigned long long)(cfg->token_cache_ms ? cfg->token_cache_ms
                                                      : AGENT_AUTH_TTL_MS_DEFAULT));
    return 0;
}

int verifier_open(const struct verifier_config *cfg, struct verifier *v) {
    int r;

    *v = (struct verifier){.cfg = cfg};
    split_config(v);
    if (cfg->insecure_plain_http) {
        log_warn("*** --insecure-plain-http: NO TLS, NO CLIENT AUTHENTICATION. Anyone who can "
                 "reach %s can register nodes and read every verdict. Local demos only. ***",
                 cfg->listen);
    }
    r = open_trust(v);
    if (r == 0) {
        r = open_core(v);
    }
    if (r == 0 && v->use_api) {
        r = open_kube(v);
    } else if (r == 0 && cfg->lease && *cfg->lease) {
        log_warn("--lease is ignored without the Kubernetes API: no labels or Events to write");
    }
    if (r == 0) {
        r = open_agent_auth(v);
    }
    return r;
}

int verifier_listen(struct verifier *v) {
    int r = http_start(&v->http_cfg, v->engine, &v->http);

    if (r < 0) {
        return r;
    }
    log_info("kima-verifier %s listening on port %u (%s)", KIMA_VERSION, http_port(v->http),
             v->cfg->insecure_plain_http ? "plain HTTP"
             : v->agent_auth             ? "HTTPS, client certificates or agents' tokens required"
                                         : "HTTPS, client certificates required");
    return 0;
}

void verifier_malloc_setup(void) {
#ifdef __GLIBC__
    mallopt(M_ARENA_MAX, VERIFIER_MALLOC_ARENAS);
#endif
}

/* A round's buffers (its body, its JSON, its decoded entries) are freed
 * between the connections' long-lived allocations: the pages they leave
 * free inside the heap go back to the system now and then, not only when
 * the inventory is replaced. */
static void trim_due(struct verifier *v) {
    int64_t now_ms = time_mono_ms(), took;

    if (now_ms - v->trimmed_ms < VERIFIER_TRIM_INTERVAL_MS) {
        return;
    }
    v->trimmed_ms = now_ms;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    took = time_mono_ms() - now_ms;
    if (took >= VERIFIER_TRIM_SLOW_MS) {
        log_warn("heap trimmed in %lld ms: allocations waited that long", (long long)took);
    } else {
        log_debug("heap trimmed in %lld ms", (long long)took);
    }
}

void verifier_tick(struct verifier *v) {
    /* The checkpoint first: judging waiting measurements may take the
     * engine's lock for a while, the unsigned tail must not wait. The
     * inputs next, then what depends on them. */
    audit_checkpoint_due(v->audit, engine_now_ms());
    engine_reload_policies(v->engine);
    if (v->crl) {
        crl_refresh(v->crl, time(NULL));
    }
    if (!v->kube) {
        inventory_refresh(v->inv);
    }
    engine_sweep(v->engine, engine_now_ms());
    trim_due(v);
}

/* The service loop until SIGTERM or SIGINT: which one. */
static int run_until_signal(struct verifier *v, const sigset_t *sigs) {
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            return sig;
        }
        verifier_tick(v);
    }
}

/* The drain (docs/verifier.md, "Draining"): new challenges and
 * registrations refused, the service loop on, until no nonce issued before
 * is outstanding, the drain timeout, or a second signal. Its deadline and
 * tick on the monotonic clock: a clock set back or forward does not stretch
 * it past the pod's grace period, nor cut it short. */
static void drain(struct verifier *v, const sigset_t *sigs) {
    uint64_t timeout = v->cfg->drain_timeout_ms;
    int64_t start = time_mono_ms(), deadline = start + (int64_t)timeout, tick = start + 1000;
    struct engine_drain_counts c;
    const char *why = "done";

    if (engine_drain_start(v->engine, timeout, &c) < 0) {
        log_error("the audit record of the drain's start could not be written");
    }
    log_info("draining: /readyz, new challenges and registrations answer 503; waiting up to "
             "%llu ms for the rounds of %llu outstanding nonces (a second signal stops at once)",
             (unsigned long long)timeout, (unsigned long long)c.outstanding);
    while (c.outstanding > 0) {
        int64_t now = time_mono_ms();
        int64_t wait =
                deadline - now < VERIFIER_DRAIN_POLL_MS ? deadline - now : VERIFIER_DRAIN_POLL_MS;
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
        int sig;

        if (wait <= 0) {
            why = "timeout";
            break;
        }
        sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            why = "signal";
            log_info("signal %d while draining: stopping at once", sig);
            break;
        }
        if (time_mono_ms() >= tick) {
            verifier_tick(v);
            tick += 1000;
        }
        c.outstanding = engine_nonces_outstanding(v->engine, engine_now_ms());
    }
    if (engine_drain_end(v->engine, why, &c) < 0) {
        log_error("the audit record of the drain's end could not be written");
    }
    log_info("drain ended (%s) after %lld ms: %llu rounds finished while draining, %llu nonces "
             "left unused",
             why, (long long)(time_mono_ms() - start), (unsigned long long)c.rounds,
             (unsigned long long)c.outstanding);
}

void verifier_run(struct verifier *v, const sigset_t *sigs) {
    int sig = run_until_signal(v, sigs);

    log_info("signal %d: finishing requests in flight and stopping", sig);
    /* Another replica takes the labels and Events over now, not after the
     * drain and the Lease's expiry. */
    kube_resign(v->kube);
    if (v->cfg->drain_timeout_ms > 0) {
        drain(v, sigs);
    }
}

static void log_kube_stats(struct kube *k) {
    struct kube_stats ks;

    kube_stats(k, &ks);
    log_info("kubernetes: %llu pod lists (%llu failed), %llu watches (%llu failed, %llu events "
             "applied), %llu label patches (%llu failed), %llu events",
             (unsigned long long)ks.lists, (unsigned long long)ks.list_errors,
             (unsigned long long)ks.watches, (unsigned long long)ks.watch_errors,
             (unsigned long long)ks.watch_events, (unsigned long long)ks.patches,
             (unsigned long long)ks.patch_errors, (unsigned long long)ks.events);
}

void verifier_close(struct verifier *v) {
    http_stop(v->http);
    v->http = NULL;
    /* After the front (no request reviews a token any more), before the
     * Kubernetes client its reviews go through. */
    if (v->agent_auth) {
        struct agent_auth_stats as;
        agent_auth_get_stats(v->agent_auth, &as);
        log_info("agent tokens: %llu reviews, %llu answered from the cache, %llu waited for a "
                 "review under way, %llu turned away (%d reviews under way or %d waiting already), "
                 "%llu "
                 "turned away (too many refused from their address)",
                 (unsigned long long)as.reviews, (unsigned long long)as.hits,
                 (unsigned long long)as.waits, (unsigned long long)as.busy, AGENT_AUTH_REVIEWS_MAX,
                 AGENT_AUTH_WAITERS_MAX, (unsigned long long)as.throttled);
    }
    agent_auth_free(v->agent_auth);
    v->agent_auth = NULL;
    crl_free(v->crl);
    v->crl = NULL;
    if (v->engine) {
        engine_set_listener(v->engine, NULL, NULL);
    }
    if (v->kube) {
        log_kube_stats(v->kube);
    }
    kube_free(v->kube);
    v->kube = NULL;
    kube_config_free(&v->kube_cfg);
    engine_free(v->engine);
    v->engine = NULL;
    inventory_free(v->inv);
    v->inv = NULL;
    audit_close(v->audit);
    v->audit = NULL;
    store_close(v->reader);
    v->reader = NULL;
    store_close(v->store);
    v->store = NULL;
    EVP_PKEY_free(v->audit_key);
    v->audit_key = NULL;
    X509_STORE_free(v->ek_store);
    v->ek_store = NULL;
}
