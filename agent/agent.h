/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_AGENT_H
#define KIMA_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "keys.h"
#include "position.h"
#include "ratelimit.h"
#include "token.h"
#include "verifiers.h"

/* What kima-agent was told (agent/main.c's option table fills it). Strings
 * are borrowed from argv, the environment or main(). */
struct agent_config {
    const char *verifier, *node, *tcti, *securityfs, *cert, *key, *cacert, *state_dir;
    const char *boot_id_file;
    const char *token_file;  /* a bearer token (agent/token.h), or NULL */
    const char *ak_alg;      /* "rsa" or "ecc" */
    const char *healthcheck; /* "live" or "ready": probe and exit */
    const char *log_level, *log_format;
    uint64_t interval_ms, min_interval_ms;
    bool once;
};

/* The running agent: its TPM keys, its client of the verifier and where
 * it stands in the measurement list. */
struct agent {
    const struct agent_config *cfg; /* borrowed */
    struct tpm *tpm;
    struct tpm_key ek, ak;
    struct client *client; /* clients[current]; a request goes here */
    struct list_position pos;
    /* One client per verifier URL, so that a TLS session is only ever
     * offered to the verifier that made it. The agent stays on `current`
     * while it answers (agent_loop_step() moves on). */
    struct verifier_urls urls;
    struct client *clients[VERIFIER_URLS_MAX];
    size_t n_clients, current;
    /* Why the verifier of the last request was unavailable
     * (verifier_unavailable()); empty when it answered. */
    char unavailable[128];
    struct ratelimit switch_log;
    /* --token-file's token, which every client sends (unused without). */
    struct agent_token token;
};

#endif
