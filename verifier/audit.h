/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_AUDIT_H
#define KIMA_VERIFIER_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

/* The tamper-evident audit log (DESIGN.md section 8): JSON Lines, one record
 * a line, each chained to the one before by hash, with checkpoints signed by
 * the verifier's Ed25519 key:
 *
 *   {"seq":N,"time":"...Z","type":"...","node":"...","pod":{...},
 *    "details":{...},"prev":"<hex>","hash":"<hex>"}
 *
 * hash = SHA-256 of the line's bytes up to `,"hash":` with "}" appended, so
 * it covers every other field, prev included. A checkpoint record's details
 * hold an Ed25519 signature over "kima-audit-checkpoint-v1\n<seq>\n<prev>":
 * it vouches for everything before it. Rotation starts a new file whose
 * first record continues the chain. A record is on disk (fsync, grouped
 * across threads) when audit_sync() returns for it. */

#define AUDIT_CHECKPOINT_CONTEXT "kima-audit-checkpoint-v1"
#define AUDIT_LINE_MAX           (1u << 20)

struct audit_log;

struct audit_pod {
    const char *namespace_, *name, *uid;
};

/* Open (or create) the log at `path`. An existing log is continued: its last
 * complete record gives seq and hash; a torn last line (a crash mid-write,
 * never acknowledged) is cut off. `key` (Ed25519 private, borrowed) signs
 * checkpoints every `checkpoint_every` records and at close; the file is
 * rotated past `max_bytes` (0: never). */
int audit_open(const char *path, EVP_PKEY *key, uint64_t max_bytes, unsigned checkpoint_every,
               struct audit_log **ret);
/* Writes a checkpoint, syncs and closes. NULL is fine. */
void audit_close(struct audit_log *a);

/* Append one record (not yet synced); *ret_seq is its number. `node`, `pod`
 * and `details` may be NULL; details is borrowed. Thread-safe. */
int audit_append(struct audit_log *a, const char *type, const char *node,
                 const struct audit_pod *pod, json_t *details, uint64_t *ret_seq);
/* Return once record `seq` is on disk; one fsync serves every record
 * appended before it. */
int audit_sync(struct audit_log *a, uint64_t seq);
int audit_checkpoint(struct audit_log *a);

/* Load the Ed25519 key from PEM at `path`, or generate it (mode 0600) and
 * write its public key to `path`.pub. */
int audit_key_load_or_create(const char *path, EVP_PKEY **ret);

struct audit_verify_result {
    bool intact;
    uint64_t records;
    uint64_t checkpoints;
    uint64_t unsigned_tail; /* records after the last checkpoint */
    char first_bad[512];    /* "file:line (seq N): reason" when not intact */
};

/* Verify files in chain order (rotated files oldest first, then the live
 * one) with the public key (PEM). Returns 0 with the result, or a negative
 * errno when a file cannot be read. */
int audit_verify(const char *const *paths, size_t n, EVP_PKEY *pub,
                 struct audit_verify_result *ret);

#endif
