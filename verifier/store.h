/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_STORE_H
#define KIMA_VERIFIER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "state.h"

/* The verifier's state, in one of two backends chosen by store_open's
 * spec (store-internal.h): an SQLite file, or a PostgreSQL database that
 * several verifiers share (store-pg.c; docs/verifier.md, "PostgreSQL").
 *
 * SQLite (WAL, synchronous=NORMAL): nodes with their
 * keys, activation and replay state, and pods with their trust state. A
 * COMMIT writes the transaction's frames to the WAL file without syncing
 * it; store_sync() makes every transaction committed before it durable (the
 * engine's group commit calls it once a batch, outside its lock). A
 * restart, also after kill -9, resumes every node where the last committed
 * transaction left it; after a power loss, where the last synced one did. */

#define STORE_NAME_MAX   253
#define STORE_BLOB_MAX   8192
#define STORE_REASON_MAX 512

struct store;

struct node_record {
    char name[STORE_NAME_MAX + 1];
    uint8_t ek_pub[1024];
    size_t ek_pub_len;
    uint8_t ek_cert[STORE_BLOB_MAX];
    size_t ek_cert_len;
    uint8_t ak_pub[1024];
    size_t ak_pub_len;
    uint8_t ak_name[66];
    size_t ak_name_len;
    bool activated;
    uint8_t secret[32]; /* pending activation credential */
    bool has_secret;
    enum node_state state; /* as stored: never NODE_STALE */
    char reason[STORE_REASON_MAX];
    int64_t registered_ms, last_attested_ms;
    bool has_clock;
    uint64_t clock;
    uint32_t reset_count, restart_count;
    char boot_id[65];
    uint64_t ima_index, ima_offset;
    /* PCR 10 as replayed so far, every bank. */
    uint8_t pcr10[IMA_HASH_COUNT][IMA_DIGEST_MAX];
    uint64_t attestations;
    uint32_t pending; /* measurements waiting for their pod to be known */
    char ek_fp[65];   /* SHA-256 of the EK's SubjectPublicKeyInfo, hex */
    /* Since when the verifier is behind the node's list (it judged less
     * than the quote covered: its waiting list was full), or 0. */
    int64_t behind_ms;
    /* How many times the node was written (store_node_put): a write goes
     * through only over the version it was read at, so that two verifiers
     * on one store never both advance a node. 0: not stored yet. */
    uint64_t version;
};

struct pod_record {
    char uid[64];
    char node[STORE_NAME_MAX + 1];
    char ns[STORE_NAME_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    enum pod_state state;
    char reason[STORE_REASON_MAX];
    int64_t since_ms;
    bool unjudged;       /* unused since schema 1 (measurements wait in `pending`) */
    uint32_t files;      /* distinct measurements kept in pod_files */
    bool files_overflow; /* more than STORE_POD_FILES_MAX: not all are kept */
    /* "<name>@sha256:<hex>" of the policy every kept measurement was judged
     * by, or "" when some were judged by none. */
    char policy[320];
    uint64_t files_bytes; /* path bytes of the kept measurements */
    int64_t gone_ms;      /* when the inventory was first seen without the pod; 0: listed */
    /* Measurements (IMA entries) not kept once the pod's kept ones reached
     * STORE_POD_FILES_MAX or STORE_POD_FILES_BYTES_MAX (one seen twice is
     * counted twice: what is not kept cannot be told apart). */
    uint64_t files_dropped;
};

/* A pod's distinct measurements are kept so that they can be judged again
 * when its policy changes or one first matches it. */
#define STORE_POD_FILES_MAX       8192
#define STORE_POD_FILES_BYTES_MAX (512u * 1024) /* of paths: what a pod's files may take */

/* A measurement that could not be attributed yet: its pod (by UID) or its
 * container is not in the inventory. It waits, is judged when the pod
 * appears, and is judged as unattributable when it does not (verifier
 * docs, "Attribution"). */
#define STORE_PATH_MAX 4096 /* PATH_MAX: longer is no path a kernel records */

struct pending_record {
    int64_t id; /* set by the store */
    char node[STORE_NAME_MAX + 1];
    char uid[40];       /* the pod UID from the cgroup path, or "" */
    char container[72]; /* the container ID from the cgroup name, or "" */
    uint64_t entry;     /* IMA index, for the audit record */
    char template_name[64];
    uint8_t path[STORE_PATH_MAX];
    size_t path_len;
    char digest[160]; /* "algo:hex", or "" when the entry has no file digest */
    bool violation;
    int64_t seen_ms;
    /* > 0: not a measurement but the count of those of this pod or container
     * that could not be kept (the node's waiting list was full). */
    uint32_t dropped;
};

struct pod_file {
    uint8_t path[STORE_PATH_MAX];
    size_t path_len;
    char digest[160];
    bool violation;
    uint64_t entry; /* the IMA index it was first seen at */
};

enum store_kind { STORE_SQLITE, STORE_POSTGRESQL };
/* Which backend a spec names: "postgres://..." or "postgresql://..." (a
 * libpq URI), or libpq's key=value form (it starts with "keyword=", e.g.
 * "host=db dbname=kima"), is PostgreSQL; anything else is an SQLite file
 * (a file whose name looks like key=value is named with its directory:
 * "./host=x"). */
enum store_kind store_spec_kind(const char *spec);

/* A database password: its file or KIMA_DB_PASSWORD, at most this long. */
#define STORE_PASSWORD_MAX 1024

/* Open the store `spec` names (store_spec_kind), making or migrating its
 * schema. For PostgreSQL the password is never in the spec (one there is
 * refused, -EINVAL): it is read from password_file (bounded, one trailing
 * newline stripped) when not NULL, else from the environment's
 * KIMA_DB_PASSWORD, which is then removed from the environment. 0, -EIO,
 * -EINVAL, -EPROTO (a newer schema), -ENOTSUP (PostgreSQL without libpq).
 * Caller closes with store_close(). */
int store_open_with(const char *spec, const char *password_file, struct store **ret);
/* store_open_with(spec, NULL, ret). */
int store_open(const char *spec, struct store **ret);
/* "sqlite" or "postgresql". */
const char *store_backend(const struct store *s);
void store_close(struct store *s);

/* Group several writes into one transaction. */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);
/* Inside a transaction: one writer's part (savepoint "w", not nested),
 * kept (store_release) or undone (store_rollback_to, which ends it too). */
int store_savepoint(struct store *s);
/* SQLite: fdatasync the WAL file: every transaction committed so far is durable
 * once it returns 0. -EAGAIN when the WAL file could not be opened (nothing
 * synced, nothing lost: a later sync covers it); -ENOTRECOVERABLE when the
 * sync failed (the kernel may have dropped committed pages: only a restart
 * tells what is on disk). One caller at a time; safe while another thread
 * uses the store (it touches only its own descriptor). */
int store_sync(struct store *s);
/* PostgreSQL: 0 (a COMMIT returns once durable: synchronous_commit is
 * checked at connect, "off" refused). */
/* A second connection to the writer's store for reads only: it sees what
 * was committed (never a transaction still open on the writer's
 * connection, nor one that then fails). Opened with the writer's spec and
 * password (which the environment no longer holds). 0 or -EIO; caller
 * closes it with store_close() before the writer. */
int store_open_reader(struct store *writer, struct store **ret);
/* Checkpoints the store's own thread ran so far (the WAL's pages copied
 * into the database file off the committing thread; see store-sqlite.c).
 * Always 0 on PostgreSQL, whose server checkpoints. */
uint64_t store_checkpoints(struct store *s);
int store_release(struct store *s);
void store_rollback_to(struct store *s);
/* Whether a transaction is open on the store's connection: false once
 * SQLite rolled one back by itself (SQLITE_FULL, IOERR, NOMEM, BUSY), or
 * once the connection to PostgreSQL was lost. A call that finds the
 * PostgreSQL connection lost returns -EIO; the next call outside a
 * transaction reconnects (at once, then at most once a second, backing
 * off to 16 s). */
bool store_in_transaction(struct store *s);

/* 0, -ENOENT or -EIO. */
int store_node_get(struct store *s, const char *name, struct node_record *ret);
/* Write the node over the version it was read at (n->version; 0: a node
 * not stored yet) and count n->version up. 0, -ESTALE when the stored node
 * is at another version (another verifier on the store wrote it since, or
 * made it: nothing written), or -EIO. */
int store_node_put(struct store *s, struct node_record *n);
int store_node_delete(struct store *s, const char *name);
/* The name of an activated node other than `name` with the EK whose
 * fingerprint is ek_fp: 0 with the name in ret (STORE_NAME_MAX + 1 bytes),
 * or -ENOENT. */
int store_node_with_ek_fp(struct store *s, const char *ek_fp, const char *name, char *ret);
/* Calls `fn` for every node in name order; stops at a non-zero return. */
int store_node_foreach(struct store *s, int (*fn)(const struct node_record *, void *), void *ud);

int store_pod_get(struct store *s, const char *uid, struct pod_record *ret);
/* Whether two pod records would be stored alike (every stored field equal). */
bool store_pod_same(const struct pod_record *a, const struct pod_record *b);
int store_pod_put(struct store *s, const struct pod_record *p);
int store_pod_delete_node(struct store *s, const char *node);
/* A pod and its files. */
int store_pod_delete(struct store *s, const char *uid);
/* A pod's kept measurements only. */
int store_pod_files_delete(struct store *s, const char *uid);
int store_pod_foreach(struct store *s, int (*fn)(const struct pod_record *, void *), void *ud);
/* The pods the store places on `node`. */
int store_pod_foreach_node(struct store *s, const char *node,
                           int (*fn)(const struct pod_record *, void *), void *ud);

int store_pending_add(struct store *s, const struct pending_record *p);
/* Up to `max` of a node's waiting measurements with an id above `after`,
 * oldest first, into ret (caller's array). Returns how many. */
int store_pending_list(struct store *s, const char *node, int64_t after, struct pending_record *ret,
                       size_t max);
int store_pending_delete(struct store *s, int64_t id);
/* How many measurements of one pod (uid) or container (the other "") of
 * the node wait, markers of dropped ones not counted. 0 or a negative
 * errno. */
int store_pending_count_key(struct store *s, const char *node, const char *uid,
                            const char *container, uint64_t *ret);
/* Count one more measurement of a pod (uid) or container that could not be
 * kept: 1 when that started a new marker row, 0 when one was counted up. */
int store_pending_mark_dropped(struct store *s, const char *node, const char *uid,
                               const char *container, int64_t seen_ms);
int store_pending_delete_node(struct store *s, const char *node);
/* Keep one of a pod's measurements: 1 when new, 0 when kept already. */
int store_pod_file_add(struct store *s, const char *uid, const struct pod_file *f);
/* Calls fn for each kept measurement of the pod; stops at a non-zero return
 * (which is returned). */
int store_pod_files_foreach(struct store *s, const char *uid,
                            int (*fn)(const struct pod_file *, void *), void *ud);

/* How many measurements wait, over all nodes. */
int store_pending_count(struct store *s, uint64_t *ret);
/* Calls fn for every node that has measurements waiting. */
int store_pending_nodes(struct store *s, int (*fn)(const char *node, void *ud), void *ud);

/* Single-use nonces shared by the verifiers of one store: record `nonce`
 * as used until expires_ms. 0, -EEXIST when it was used already (by any
 * verifier on the store), or a negative errno. Inside a transaction it is
 * used once that transaction commits. */
int store_nonce_use(struct store *s, const uint8_t *nonce, size_t len, int64_t expires_ms);
/* Forget the used nonces that expired before now_ms: how many, or a
 * negative errno. */
int store_nonce_purge(struct store *s, int64_t now_ms);
/* The store's secret `name` (len bytes, 16..64): made from random bytes by
 * the first verifier that asks and the same for every verifier on the
 * store. 0, -EIO, or -EBADMSG when the stored one has another length. Not
 * inside a transaction. */
int store_secret(struct store *s, const char *name, uint8_t *ret, size_t len);
/* Whether other verifiers may write the store at the same time
 * (PostgreSQL): false for an SQLite file, which one verifier owns. */
bool store_shared(const struct store *s);

#endif
