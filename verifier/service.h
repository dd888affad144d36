/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_SERVICE_H
#define KIMA_VERIFIER_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "engine.h"
#include "agent-auth.h"
#include "http.h"
#include "kube-config.h"
#include "kube.h"

/* kima-verifier's services, opened, run and closed in one place: the
 * store, the audit key and log, the EK CAs and the CRL, the pod inventory,
 * the engine, the Kubernetes API and the HTTPS front; then the 1 s service
 * loop; then all of it closed in reverse order. */

/* What kima-verifier was told (verifier/main.c's option table fills it).
 * Strings are borrowed from argv or the environment. */
struct verifier_config {
    const char *listen, *tls_cert, *tls_key, *client_ca, *crl;
    bool insecure_plain_http;
    const char *db, *policies, *pods_file, *static_pod_namespaces;
    const char *db_password_file; /* PostgreSQL's password, or NULL (store_open_with) */
    const char *kubeconfig, *kube_context, *label_prefix;
    const char *lease; /* "" or NULL: no leader election */
    bool in_cluster;
    uint64_t kube_refresh_ms;
    bool evict_untrusted, taint_failed_nodes, taint_noexecute; /* enforcement, off by default */
    const char *audit_log, *audit_key;
    /* This replica's name (--replica, else the host name's first label), a
     * DNS-1123 label: its audit chain's name, and what other parts use to
     * tell replicas apart. */
    const char *replica;
    /* `replica` came from the host name, not --replica: a log that names
     * its replica already keeps that name (a host renamed, a pod of a
     * Deployment). */
    bool replica_from_host;
    uint64_t audit_max_bytes, audit_checkpoint_ms;
    const char *ek_ca_dir;
    bool require_ek_cert;
    uint64_t interval_ms, nonce_ttl_ms, min_challenge_ms, attribution_grace_ms;
    const char *pcr_selection, *ima_templates;
    bool unknown_untrusted, allow_match_all_excludes;
    uint64_t threads;
    uint64_t max_connections; /* 0: the HTTP front's default */
    uint64_t max_connections_per_cert;
    uint64_t max_body_memory;
    uint64_t drain_timeout_ms; /* 0: stop at the first signal */
    /* How agents authenticate (agent-auth.h): "cert", "token" or "either";
     * with tokens, the audience, NS:SA and how long a review is kept. */
    const char *agent_auth, *token_audience, *agent_service_account;
    uint64_t token_cache_ms;
    const char *log_level, *log_format;
};

/* What the option table cannot check: the PCR selection. 0 or -EINVAL. */
int verifier_config_check(const struct verifier_config *cfg);

/* glibc's malloc set for a process that holds thousands of connections
 * from a few threads: at most VERIFIER_MALLOC_ARENAS arenas (its default,
 * 8 a core, leaves each thread's freed memory where the others cannot use
 * it). Before any thread starts; nothing without glibc. */
#define VERIFIER_MALLOC_ARENAS 2
void verifier_malloc_setup(void);

/* How often verifier_tick() hands free heap pages back (malloc_trim), on
 * the monotonic clock; a trim that takes VERIFIER_TRIM_SLOW_MS or more is
 * logged as a warning (malloc waits for it). */
#define VERIFIER_TRIM_INTERVAL_MS 30000
#define VERIFIER_TRIM_SLOW_MS     50

struct verifier {
    const struct verifier_config *cfg; /* borrowed */
    struct http_config http_cfg;
    struct engine_config engine_cfg;
    struct kube_options kube_opt;
    struct kube_config kube_cfg; /* until kube_new() takes it */
    bool use_api;                /* the inventory from the Kubernetes API */
    X509_STORE *ek_store;
    struct crl_set *crl;
    struct store *store;
    struct store *reader; /* the operator's reads (engine_set_reader) */
    EVP_PKEY *audit_key;
    struct audit_log *audit;
    struct inventory *inv;
    struct engine *engine;
    struct kube *kube;
    struct agent_auth *agent_auth; /* --agent-auth token|either; NULL: certificates */
    struct http_server *http;
    int64_t trimmed_ms; /* when verifier_tick() last trimmed the heap (monotonic) */
};

/* Open everything but the HTTPS front, in order: the EK CAs and the CRL,
 * the store, the audit key and log, the inventory, the engine, then the
 * Kubernetes API (its thread started). `cfg` must have passed
 * verifier_config_check() and is borrowed for the life of `v`. 0, or a
 * negative errno (logged); close `v` with verifier_close() either way. */
int verifier_open(const struct verifier_config *cfg, struct verifier *v);

/* Start the HTTPS front (its threads inherit the caller's signal mask).
 * 0 or a negative errno (logged). */
int verifier_listen(struct verifier *v);

/* The service loop: once a second the audit checkpoint, the policies, the
 * CRL, the pods file and the sweep, until one of `sigs` (blocked by the
 * caller) arrives; then, unless cfg->drain_timeout_ms is 0, the drain
 * (docs/verifier.md, "Draining"): the loop goes on with new challenges and
 * registrations refused until no nonce issued before is outstanding, the
 * drain timeout, or a second signal. */
#define VERIFIER_DRAIN_POLL_MS    100 /* how often a drain counts the outstanding nonces */
#define VERIFIER_DRAIN_DEFAULT_MS 30000
#define VERIFIER_DRAIN_MAX_MS     600000
void verifier_run(struct verifier *v, const sigset_t *sigs);

/* One turn of the service loop. */
void verifier_tick(struct verifier *v);

/* Stop the front (requests in flight finish), then close the rest in
 * reverse order. Whatever verifier_open() got to is released. */
void verifier_close(struct verifier *v);

#endif
