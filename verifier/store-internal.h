/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_STORE_INTERNAL_H
#define KIMA_VERIFIER_STORE_INTERNAL_H

#include "store.h"

/* A backend: every function of store.h but store_open and store_pod_same
 * (store.c calls them through s->ops). Each backend's own store structure
 * begins with a struct store. */
struct store_ops {
    const char *name; /* "sqlite", "postgresql" */
    void (*close)(struct store *s);
    int (*open_reader)(struct store *writer, struct store **ret);
    int (*begin)(struct store *s);
    int (*commit)(struct store *s);
    void (*rollback)(struct store *s);
    int (*savepoint)(struct store *s);
    int (*release)(struct store *s);
    void (*rollback_to)(struct store *s);
    bool (*in_transaction)(struct store *s);
    int (*sync)(struct store *s);
    uint64_t (*checkpoints)(struct store *s);
    int (*node_get)(struct store *s, const char *name, struct node_record *ret);
    int (*node_put)(struct store *s, struct node_record *n);
    int (*node_delete)(struct store *s, const char *name);
    int (*node_with_ek_fp)(struct store *s, const char *ek_fp, const char *name, char *ret);
    int (*node_foreach)(struct store *s, int (*fn)(const struct node_record *, void *), void *ud);
    int (*pod_get)(struct store *s, const char *uid, struct pod_record *ret);
    int (*pod_put)(struct store *s, const struct pod_record *p);
    int (*pod_delete_node)(struct store *s, const char *node);
    int (*pod_delete)(struct store *s, const char *uid);
    int (*pod_files_delete)(struct store *s, const char *uid);
    /* node NULL: every pod. */
    int (*pod_foreach)(struct store *s, const char *node,
                       int (*fn)(const struct pod_record *, void *), void *ud);
    int (*pending_add)(struct store *s, const struct pending_record *p);
    int (*pending_list)(struct store *s, const char *node, int64_t after,
                        struct pending_record *ret, size_t max);
    int (*pending_delete)(struct store *s, int64_t id);
    int (*pending_count_key)(struct store *s, const char *node, const char *uid,
                             const char *container, uint64_t *ret);
    int (*pending_mark_dropped)(struct store *s, const char *node, const char *uid,
                                const char *container, int64_t seen_ms);
    int (*pending_delete_node)(struct store *s, const char *node);
    int (*pod_file_add)(struct store *s, const char *uid, const struct pod_file *f);
    int (*pod_files_foreach)(struct store *s, const char *uid,
                             int (*fn)(const struct pod_file *, void *), void *ud);
    int (*pending_count)(struct store *s, uint64_t *ret);
    int (*pending_nodes)(struct store *s, int (*fn)(const char *node, void *ud), void *ud);
    int (*nonce_use)(struct store *s, const uint8_t *nonce, size_t len, int64_t expires_ms);
    int (*nonce_purge)(struct store *s, int64_t now_ms);
    int (*secret)(struct store *s, const char *name, uint8_t *ret, size_t len);
    bool shared;
};

struct store {
    const struct store_ops *ops;
};

/* For the backends' pending_mark_dropped: a new marker row of one
 * measurement of a pod (uid) or container that could not be kept (through
 * store_pending_add). 1, or a negative errno. */
int store_pending_add_marker(struct store *s, const char *node, const char *uid,
                             const char *container, int64_t seen_ms);

/* The SQLite file at path (store-sqlite.c). */
int store_sqlite_open(const char *path, struct store **ret);
/* PostgreSQL (store-pg.c): spec a URI or a conninfo without a password;
 * password NULL or the password (copied). -ENOTSUP without libpq. */
int store_pg_open(const char *spec, const char *password, struct store **ret);

#endif
