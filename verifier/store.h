/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_STORE_H
#define KIMA_VERIFIER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

/* The verifier's state in SQLite (WAL, synchronous=FULL): nodes with their
 * keys, activation and replay state, and pods with their trust state. A
 * restart, also after kill -9, resumes every node where the last committed
 * transaction left it. */

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
    char state[16]; /* registered, active, trusted, untrusted */
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
};

struct pod_record {
    char uid[64];
    char node[STORE_NAME_MAX + 1];
    char ns[STORE_NAME_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char state[16]; /* unknown, trusted, untrusted */
    char reason[STORE_REASON_MAX];
    int64_t since_ms;
    bool unjudged; /* entries were seen before the pod could be judged */
};

int store_open(const char *path, struct store **ret);
void store_close(struct store *s);

/* Group several writes into one transaction. */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* 0, -ENOENT or -EIO. */
int store_node_get(struct store *s, const char *name, struct node_record *ret);
int store_node_put(struct store *s, const struct node_record *n);
int store_node_delete(struct store *s, const char *name);
/* Calls `fn` for every node in name order; stops at a non-zero return. */
int store_node_foreach(struct store *s, int (*fn)(const struct node_record *, void *), void *ud);

int store_pod_get(struct store *s, const char *uid, struct pod_record *ret);
int store_pod_put(struct store *s, const struct pod_record *p);
int store_pod_delete_node(struct store *s, const char *node);
int store_pod_foreach(struct store *s, int (*fn)(const struct pod_record *, void *), void *ud);

#endif
