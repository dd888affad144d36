/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_CLI_AUDIT_DEPLOY_H
#define KIMA_CLI_AUDIT_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>

/* kimactl audit verify over a deployment: one audit chain per verifier
 * replica, each its files (rotated oldest first, then the live one) and its
 * public key, checked each alone (audit_verify_head) and then together: no
 * two chains name the same replica or use the same key, every expected
 * replica has a chain. */

/* Caps on what a deployment check reads. */
#define AUDIT_DEPLOY_CHAINS_MAX 64   /* chains (replicas) */
#define AUDIT_DEPLOY_FILES_MAX  4096 /* files of one chain */
#define AUDIT_DEPLOY_HEAD_MAX   4096 /* bytes of a head file */

struct audit_deploy_args {
    /* "PUBKEY:FILE[,FILE...][:HEAD]" each, borrowed; at most
     * AUDIT_DEPLOY_CHAINS_MAX. */
    const char *const *chains;
    size_t nchains;
    /* A directory of DIR/<replica>/audit.key.pub, audit.log.<seq>...,
     * audit.log and, optionally, audit.head.json; or NULL. */
    const char *deployment;
    /* "N" (that many chains) or "NAME,NAME,..." (those replicas); or NULL. */
    const char *expect;
    bool allow_unsigned_tail;
};

/* Verify and print the report (a block per chain, the deployment's
 * problems, one summary line). Returns kimactl's exit code: 0 intact, 1 not
 * intact, 64 usage, 66 an unreadable file. */
int audit_deploy_verify(const struct audit_deploy_args *args);

#endif
