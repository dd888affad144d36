/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AUDIT_AUDIT_H
#define KIMA_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

/* The tamper-evident audit log (docs/design.md section 8): JSON Lines, one record
 * a line, each chained to the one before by hash, with checkpoints signed by
 * the verifier's Ed25519 key:
 *
 *   {"seq":N,"time":"...Z","type":"...","node":"...","pod":{...},
 *    "details":{...},"prev":"<hex>","hash":"<hex>"}
 *
 * hash = SHA-256 of the line's bytes up to `,"hash":` with "}" appended, so
 * it covers every other field, prev included. A checkpoint record's details
 * hold an Ed25519 signature over "kima-audit-checkpoint-v1\n<seq>\n<prev>":
 * it vouches for everything before it. Checkpoints are written every
 * `checkpoint_every` records, on a timer (audit_checkpoint_due), at rotation
 * and at close. Rotation starts a new file whose first record continues the
 * chain. A record is on disk (fsync, grouped across threads) when
 * audit_sync() returns for it.
 *
 * Records after the last checkpoint (the unsigned tail) are chained but not
 * signed: whoever can write the file can cut them or rewrite and re-chain
 * them. The signed head (audit_head) closes that gap for a live log: it
 * vouches for the last record written when it was taken, so a copy that ends
 * before it, or differs at it, is caught. */

#define AUDIT_CHECKPOINT_CONTEXT "kima-audit-checkpoint-v1"
/* A chain that names its replica (audit_set_replica) signs its checkpoints
 * over "kima-audit-checkpoint-v2\n<seq>\n<prev>\n<replica>\n<key>" and
 * writes {"signature", "replica", "key"} in their details, so that the name
 * is covered by the replica's own key: a chain cannot be passed off as
 * another replica's. A log without a replica name keeps the v1 message. */
#define AUDIT_CHECKPOINT_CONTEXT_V2 "kima-audit-checkpoint-v2"
/* A replica name is a DNS-1123 label (a StatefulSet pod's name). */
#define AUDIT_REPLICA_MAX 63
/* The audit key's fingerprint: "sha256:" and the lowercase hex SHA-256 of
 * the raw 32-byte Ed25519 public key. */
#define AUDIT_KEY_FP_LEN 71
/* Gaps one verification keeps in its result (all are counted). */
#define AUDIT_GAPS_MAX 32
/* The head signature covers "kima-audit-head-v1\n<seq>\n<hash>\n<time>". */
#define AUDIT_HEAD_CONTEXT "kima-audit-head-v1"
/* A whole line, the hash included, the newline not; the writer never
 * exceeds it (see audit_append), the reader refuses longer lines. */
#define AUDIT_LINE_MAX (1u << 20)
/* Bytes of text one string in a record may hold (keys and values of the
 * details, node, pod fields); longer ones are cut with "...[N bytes]". */
#define AUDIT_FIELD_MAX 4096u
/* Nesting of a record's details; deeper ones are replaced by a summary. */
#define AUDIT_DEPTH_MAX 16
/* The count checkpoint's interval (audit_open's checkpoint_every) that the
 * verifier uses: a checkpoint after this many records. */
#define AUDIT_CHECKPOINT_EVERY_DEFAULT 1000u
/* The timer checkpoint's interval: default and bounds (milliseconds). */
#define AUDIT_CHECKPOINT_MS_DEFAULT 5000
#define AUDIT_CHECKPOINT_MS_MIN     1000
#define AUDIT_CHECKPOINT_MS_MAX     3600000

struct audit_log;

struct audit_pod {
    const char *namespace_, *name, *uid;
};

/* Open (or create) the log at `path`. An existing log is continued: its last
 * complete record gives seq and hash; a torn last line (a crash mid-write,
 * never acknowledged) is cut off; a last record that is not a checkpoint
 * counts as unsigned from now on (the timer signs it). `key` (Ed25519
 * private, borrowed) signs checkpoints every `checkpoint_every` records, every
 * AUDIT_CHECKPOINT_MS_DEFAULT ms (audit_set_checkpoint_ms) through
 * audit_checkpoint_due() and at close; the file is rotated past `max_bytes`
 * (0: never). */
int audit_open(const char *path, EVP_PKEY *key, uint64_t max_bytes, unsigned checkpoint_every,
               struct audit_log **ret);
/* Writes a checkpoint if records are unsigned, syncs and closes. NULL is
 * fine. */
void audit_close(struct audit_log *a);

/* The interval of audit_checkpoint_due(), clamped to
 * [AUDIT_CHECKPOINT_MS_MIN, AUDIT_CHECKPOINT_MS_MAX]. */
void audit_set_checkpoint_ms(struct audit_log *a, int64_t interval_ms);
/* The clock that stamps records and heads (milliseconds since the epoch);
 * NULL restores CLOCK_REALTIME. Records already unsigned count from its now.
 * For tests. */
void audit_set_clock(struct audit_log *a, int64_t (*now_ms)(void *ud), void *ud);

/* Append one record (not yet synced); *ret_seq is its number. `node`, `pod`
 * and `details` may be NULL (NULL details: the record's details are {});
 * details is borrowed. Whatever it is given, the record is written and stays
 * readable by audit_verify(): every string is cut to AUDIT_FIELD_MAX bytes
 * with "...[N bytes]" naming its length, a string that is not UTF-8 is
 * written with \xNN for the bytes that are not, and details nested deeper
 * than AUDIT_DEPTH_MAX, or that would make the line longer than
 * AUDIT_LINE_MAX, are replaced by {"truncated": true, "bytes": N, "sha256":
 * "<hex>"} (N and the hash of the details' compact JSON text). Thread-safe. */
int audit_append(struct audit_log *a, const char *type, const char *node,
                 const struct audit_pod *pod, json_t *details, uint64_t *ret_seq);
/* Return once record `seq` is on disk; one fsync serves every record
 * appended before it. */
int audit_sync(struct audit_log *a, uint64_t seq);
/* Write a checkpoint and sync it. */
int audit_checkpoint(struct audit_log *a);
/* The timer: when records are unsigned and the oldest of them was stamped
 * at least the interval before `now_ms` (or after it: the clock stepped
 * back), write a checkpoint and sync it. Returns 1 when it wrote one, 0 when
 * none was due, or a negative errno. */
int audit_checkpoint_due(struct audit_log *a, int64_t now_ms);

/* Name the chain's replica (a DNS-1123 label; `replica` is copied). On an
 * empty log, or one whose last checkpoint does not name this replica (a log
 * written before replicas had names, or a crash before the first
 * checkpoint), it appends a "replica" record {"replica": NAME, "key": FP}
 * and a checkpoint, synced; every checkpoint from then on names it and
 * signs it (AUDIT_CHECKPOINT_CONTEXT_V2). -EINVAL for a name that is not a
 * label; -EEXIST when the log's last checkpoint names another replica (the
 * volume of another replica); else 0 or a negative errno from the write. */
int audit_set_replica(struct audit_log *a, const char *replica);
/* The replica the log's last checkpoint names, or "" (a new log, or one
 * written before replicas had names). Owned by the log. */
const char *audit_log_replica(struct audit_log *a);

/* 0 when `name` is a DNS-1123 label of at most AUDIT_REPLICA_MAX bytes
 * (lowercase letters, digits and '-', starting and ending with a letter or
 * digit); else -EINVAL with what is wrong in err. */
int audit_replica_check(const char *name, char *err, size_t errsz);

/* The fingerprint of an Ed25519 key (public or private): 0 or -EINVAL. */
int audit_key_fingerprint(EVP_PKEY *key, char out[AUDIT_KEY_FP_LEN + 1]);

/* Load the Ed25519 key from PEM at `path`, or generate it (mode 0600) and
 * write its public key to `path`.pub. */
int audit_key_load_or_create(const char *path, EVP_PKEY **ret);

/* The signed head: the last record written (seq 0 and a zero hash for an
 * empty log), synced before it is signed. */
struct audit_head {
    uint64_t seq;
    char hash[65];      /* lowercase hex of record seq's hash */
    char time[40];      /* RFC 3339 UTC with milliseconds */
    char signature[89]; /* base64 Ed25519 over AUDIT_HEAD_CONTEXT\n<seq>\n<hash>\n<time> */
};

int audit_head(struct audit_log *a, struct audit_head *ret);
/* {"seq": N, "hash": "...", "time": "...", "signature": "..."}; NULL without
 * memory. Caller owns it. */
json_t *audit_head_to_json(const struct audit_head *h);
/* Read a head from untrusted JSON: 0, or -EBADMSG with the reason in err.
 * The signature is not checked here. */
int audit_head_from_json(const json_t *j, struct audit_head *ret, char *err, size_t errsz);
/* Whether the head's signature verifies with the public key. */
bool audit_head_signature_ok(const struct audit_head *h, EVP_PKEY *pub);

struct audit_verify_result {
    bool intact; /* the chain and every checkpoint signature hold */
    /* Verified against a head: the files end before its seq. */
    bool truncated;
    bool head_matched; /* the record at the head's seq has the head's hash */
    uint64_t records;
    uint64_t checkpoints;
    uint64_t first_seq; /* of the first record read (0 when none) */
    uint64_t last_seq;
    /* Records neither followed by a checkpoint nor vouched for by the head
     * (seq <= head.seq), and the time of the first of them. */
    uint64_t unsigned_tail;
    char first_unsigned_time[40];
    /* The last checkpoint's seq and time (0 and "" when none). */
    uint64_t last_checkpoint_seq;
    char last_checkpoint_time[40];
    char first_bad[512]; /* "file:line (seq N): reason" when not intact */
    /* The replica the chain names ("" for a log written before replicas
     * had names), whether a checkpoint whose signature verifies names it,
     * and the fingerprint of the key it was verified with. */
    char replica[AUDIT_REPLICA_MAX + 1];
    bool replica_signed;
    char key_fp[AUDIT_KEY_FP_LEN + 1];
    /* Every break found (the walk goes on past each one, from the record
     * after it): a sequence jump (records deleted, a rotated file missing),
     * a prev-hash break, an edited record, a bad signature, a line that is
     * not a record. The first AUDIT_GAPS_MAX are kept as
     * "file:line (seq N): reason"; ngaps counts them all. */
    unsigned ngaps;
    char gaps[AUDIT_GAPS_MAX][512];
};

/* Verify files in chain order (rotated files oldest first, then the live
 * one) with the public key (PEM). Files are read line by line, each line
 * capped at AUDIT_LINE_MAX. Returns 0 with the result, or a negative
 * errno when a file cannot be read. Times in the result come from the files
 * and keep printable ASCII only. */
int audit_verify(const char *const *paths, size_t n, EVP_PKEY *pub,
                 struct audit_verify_result *ret);
/* The same, and against a head whose signature the caller checked: the
 * record at head->seq must carry head->hash (else not intact), files that
 * end before it are truncated, and records up to it are vouched for. */
int audit_verify_head(const char *const *paths, size_t n, EVP_PKEY *pub,
                      const struct audit_head *head, struct audit_verify_result *ret);

enum audit_verdict {
    AUDIT_INTACT,        /* every record is signed by a checkpoint or the head */
    AUDIT_UNSIGNED_TAIL, /* intact, but the last records are signed by nothing */
    AUDIT_TRUNCATED,     /* intact, but it ends before the verifier's head */
    AUDIT_TAMPERED,      /* the chain, a signature or the head's hash does not hold */
};

enum audit_verdict audit_verify_verdict(const struct audit_verify_result *res);

#endif
