/* SPDX-License-Identifier: Apache-2.0 */
/* The store on PostgreSQL through libpq: the tables of SQLite's schema 7
 * in PostgreSQL's types, shared by every verifier of a deployment. Each
 * statement is prepared once per connection (PQprepare) and run with
 * PQexecPrepared: bytea parameters and every result in binary, so that a
 * round costs its round trips and nothing is parsed twice. What the server
 * returns is input too: each field is checked against its type and the
 * record's size, never copied past it. */
#include "store-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "time-util.h"

/* The schema's version in kima_schema: 7 is SQLite's schema 7, the first
 * on PostgreSQL. A database of a newer version is refused. */
#define PG_SCHEMA_VERSION 7
/* pg_advisory_xact_lock's key: the replicas starting together migrate
 * one at a time ("kima" in ASCII). */
#define PG_MIGRATE_LOCK 0x6b696d61
/* Reconnecting after a lost connection: at once the first time, then at
 * most once per backoff, from 1 s doubling up to 16 s. */
#define PG_RESET_BACKOFF_MIN_MS 1000
#define PG_RESET_BACKOFF_MAX_MS 16000
/* The session's time bounds (options, unless the spec sets its own): a
 * statement at most 30 s; a row lock of another verifier waited for at
 * most 3 s (a write that waited finds the row changed anyway, and while
 * it waits the verifier's one writer holds every other round); a
 * transaction of ours left idle (a verifier frozen in the middle of a
 * batch) ended by the server after 15 s, its locks with it. */
#define PG_SESSION_OPTIONS                            \
    "-c statement_timeout=30000 -c lock_timeout=3000" \
    " -c idle_in_transaction_session_timeout=15000"
/* SQLSTATE lock_not_available: lock_timeout expired. */
#define PG_LOCK_NOT_AVAILABLE "55P03"
#define PG_PARAMS_MAX         24
#define PG_CONN_PARAMS_MAX    12

/* Type OIDs (pg_type.h, stable since PostgreSQL 7). */
#define OID_BOOL  16
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_TEXT  25

#define NODE_COLS                                                                              \
    "name, ek_pub, ek_cert, ak_pub, ak_name, activated, secret, state, reason, registered_ms," \
    " last_attested_ms, has_clock, clock, reset_count, restart_count, boot_id, ima_index,"     \
    " ima_offset, pcr10, attestations, pending, ek_fp, behind_ms"
#define POD_COLS                                                                            \
    "uid, node, namespace, name, state, reason, since_ms, unjudged, files, files_overflow," \
    " policy, files_bytes, gone_ms, files_dropped"
#define PENDING_COLS \
    "id, node, uid, container, entry, template, path, digest, violation, seen_ms, dropped"

enum pg_stmt {
    PG_NODE_GET,
    PG_NODE_UPDATE,
    PG_NODE_INSERT,
    PG_NODE_DELETE,
    PG_NODE_ALL,
    PG_NODE_EK_FP,
    PG_POD_GET,
    PG_POD_PUT,
    PG_POD_DELETE_NODE_FILES,
    PG_POD_DELETE_NODE,
    PG_POD_DELETE,
    PG_POD_FILES_DELETE,
    PG_POD_ALL,
    PG_POD_OF_NODE,
    PG_PENDING_ADD,
    PG_PENDING_LIST,
    PG_PENDING_DELETE,
    PG_PENDING_DELETE_NODE,
    PG_PENDING_COUNT,
    PG_PENDING_NODES,
    PG_PENDING_COUNT_KEY,
    PG_PENDING_MARK,
    PG_POD_FILE_ADD,
    PG_POD_FILES,
    PG_NONCE_USE,
    PG_NONCE_PURGE,
    PG_SECRET_GET,
    PG_SECRET_PUT,
    PG_STMT_COUNT,
};

static const char *const stmt_sql[PG_STMT_COUNT] = {
        [PG_NODE_GET] = "SELECT " NODE_COLS ", version FROM nodes WHERE name = $1",
        [PG_NODE_UPDATE] =
                "UPDATE nodes SET ek_pub = $2, ek_cert = $3, ak_pub = $4, ak_name = $5,"
                " activated = $6, secret = $7, state = $8, reason = $9, registered_ms = $10,"
                " last_attested_ms = $11, has_clock = $12, clock = $13, reset_count = $14,"
                " restart_count = $15, boot_id = $16, ima_index = $17, ima_offset = $18,"
                " pcr10 = $19, attestations = $20, pending = $21, ek_fp = $22, behind_ms = $23,"
                " version = version + 1 WHERE name = $1 AND version = $24",
        [PG_NODE_INSERT] = "INSERT INTO nodes (" NODE_COLS ", version) VALUES ($1, $2, $3, $4,"
                           " $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,"
                           " $19, $20, $21, $22, $23, $24::bigint + 1)"
                           " ON CONFLICT (name) DO NOTHING",
        [PG_NODE_DELETE] = "DELETE FROM nodes WHERE name = $1",
        [PG_NODE_ALL] = "SELECT " NODE_COLS ", version FROM nodes ORDER BY name",
        [PG_NODE_EK_FP] = "SELECT name FROM nodes WHERE ek_fp = $1 AND name <> $2 AND activated"
                          " LIMIT 1",
        [PG_POD_GET] = "SELECT " POD_COLS " FROM pods WHERE uid = $1",
        [PG_POD_PUT] = "INSERT INTO pods (" POD_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                       " $9, $10, $11, $12, $13, $14) ON CONFLICT (uid) DO UPDATE SET"
                       " node = excluded.node, namespace = excluded.namespace,"
                       " name = excluded.name, state = excluded.state,"
                       " reason = excluded.reason, since_ms = excluded.since_ms,"
                       " unjudged = excluded.unjudged, files = excluded.files,"
                       " files_overflow = excluded.files_overflow, policy = excluded.policy,"
                       " files_bytes = excluded.files_bytes, gone_ms = excluded.gone_ms,"
                       " files_dropped = excluded.files_dropped",
        [PG_POD_DELETE_NODE_FILES] =
                "DELETE FROM pod_files WHERE uid IN (SELECT uid FROM pods WHERE node = $1)",
        [PG_POD_DELETE_NODE] = "DELETE FROM pods WHERE node = $1",
        [PG_POD_DELETE] = "DELETE FROM pods WHERE uid = $1",
        [PG_POD_FILES_DELETE] = "DELETE FROM pod_files WHERE uid = $1",
        [PG_POD_ALL] = "SELECT " POD_COLS " FROM pods ORDER BY namespace, name",
        [PG_POD_OF_NODE] = "SELECT " POD_COLS " FROM pods WHERE node = $1"
                           " ORDER BY namespace, name",
        [PG_PENDING_ADD] = "INSERT INTO pending (node, uid, container, entry, template, path,"
                           " digest, violation, seen_ms, dropped)"
                           " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [PG_PENDING_LIST] = "SELECT " PENDING_COLS " FROM pending WHERE node = $1 AND id > $2"
                            " ORDER BY id LIMIT $3",
        [PG_PENDING_DELETE] = "DELETE FROM pending WHERE id = $1",
        [PG_PENDING_DELETE_NODE] = "DELETE FROM pending WHERE node = $1",
        [PG_PENDING_COUNT] = "SELECT count(*) FROM pending",
        [PG_PENDING_NODES] = "SELECT DISTINCT node FROM pending ORDER BY node",
        [PG_PENDING_COUNT_KEY] = "SELECT count(*) FROM pending WHERE node = $1 AND uid = $2"
                                 " AND container = $3 AND dropped = 0",
        [PG_PENDING_MARK] = "UPDATE pending SET dropped = dropped + 1 WHERE node = $1"
                            " AND uid = $2 AND container = $3 AND dropped > 0",
        [PG_POD_FILE_ADD] = "INSERT INTO pod_files (uid, path, digest, violation, entry)"
                            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [PG_POD_FILES] = "SELECT path, digest, violation, entry FROM pod_files WHERE uid = $1"
                         " ORDER BY entry",
        [PG_NONCE_USE] = "INSERT INTO used_nonces (nonce, expires_ms) VALUES ($1, $2)"
                         " ON CONFLICT (nonce) DO NOTHING",
        [PG_NONCE_PURGE] = "DELETE FROM used_nonces WHERE expires_ms < $1",
        [PG_SECRET_GET] = "SELECT value FROM secrets WHERE name = $1",
        [PG_SECRET_PUT] = "INSERT INTO secrets (name, value) VALUES ($1, $2)"
                          " ON CONFLICT (name) DO NOTHING",
};

/* Schema 7 in PostgreSQL's types, made in one transaction under the
 * migration lock. uint64 fields are stored as bigint bit patterns, as
 * SQLite stores them. */
static const char schema_v7[] =
        "CREATE TABLE nodes (name text PRIMARY KEY, ek_pub bytea NOT NULL, ek_cert bytea,"
        " ak_pub bytea NOT NULL, ak_name bytea NOT NULL, activated boolean NOT NULL,"
        " secret bytea, state text NOT NULL, reason text NOT NULL,"
        " registered_ms bigint NOT NULL, last_attested_ms bigint NOT NULL,"
        " has_clock boolean NOT NULL, clock bigint NOT NULL, reset_count bigint NOT NULL,"
        " restart_count bigint NOT NULL, boot_id text NOT NULL, ima_index bigint NOT NULL,"
        " ima_offset bigint NOT NULL, pcr10 bytea NOT NULL, attestations bigint NOT NULL,"
        " pending bigint NOT NULL DEFAULT 0, ek_fp text NOT NULL DEFAULT '',"
        " behind_ms bigint NOT NULL DEFAULT 0, version bigint NOT NULL DEFAULT 0);"
        "CREATE INDEX nodes_ek_fp ON nodes (ek_fp);"
        "CREATE TABLE pods (uid text PRIMARY KEY, node text NOT NULL, namespace text NOT NULL,"
        " name text NOT NULL, state text NOT NULL, reason text NOT NULL,"
        " since_ms bigint NOT NULL, unjudged boolean NOT NULL,"
        " files bigint NOT NULL DEFAULT 0, files_overflow boolean NOT NULL DEFAULT false,"
        " policy text NOT NULL DEFAULT '', files_bytes bigint NOT NULL DEFAULT 0,"
        " gone_ms bigint NOT NULL DEFAULT 0, files_dropped bigint NOT NULL DEFAULT 0);"
        "CREATE INDEX pods_node ON pods (node);"
        "CREATE INDEX pods_name ON pods (namespace, name);"
        "CREATE TABLE pending (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " node text NOT NULL, uid text NOT NULL, container text NOT NULL,"
        " entry bigint NOT NULL, template text NOT NULL, path bytea NOT NULL,"
        " digest text NOT NULL, violation boolean NOT NULL, seen_ms bigint NOT NULL,"
        " dropped bigint NOT NULL DEFAULT 0);"
        "CREATE INDEX pending_node ON pending (node, id);"
        "CREATE INDEX pending_key ON pending (node, uid, container);"
        "CREATE TABLE pod_files (uid text NOT NULL, path bytea NOT NULL, digest text NOT NULL,"
        " violation boolean NOT NULL, entry bigint NOT NULL,"
        " PRIMARY KEY (uid, path, digest, violation));"
        "CREATE TABLE used_nonces (nonce bytea PRIMARY KEY, expires_ms bigint NOT NULL);"
        "CREATE TABLE secrets (name text PRIMARY KEY, value bytea NOT NULL);";

struct pg_store {
    struct store base;
    PGconn *conn;
    bool prepared[PG_STMT_COUNT];
    bool txn;         /* BEGIN sent, no COMMIT or ROLLBACK yet */
    bool lost_logged; /* the loss of the connection was logged */
    int64_t next_reset_ms;
    int64_t reset_backoff_ms;
    char sqlstate[6]; /* the last failed statement's SQLSTATE, or "" */
    /* What PQconnectdbParams was given, kept for store_open_reader; the
     * password is cleansed at close. */
    char *spec, *password;
};

static const struct store_ops pg_ops;

static struct pg_store *pg(struct store *base) {
    return (struct pg_store *)base; /* base is the first member */
}

/* --- parameters and fields -------------------------------------------- */

struct params {
    int n;
    const char *v[PG_PARAMS_MAX];
    int len[PG_PARAMS_MAX];
    int fmt[PG_PARAMS_MAX];
    char num[PG_PARAMS_MAX][24];
};

static void p_text(struct params *p, const char *s) {
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void p_i64(struct params *p, int64_t x) {
    snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, x);
    p_text(p, p->num[p->n]);
}

static void p_bool(struct params *p, bool b) {
    p_text(p, b ? "t" : "f");
}

/* A bytea in binary; NULL when b is NULL. */
static void p_blob(struct params *p, const void *b, size_t len) {
    p->v[p->n] = b;
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 1;
}

/* A row of a binary result read field by field; the first bad field sets
 * err (logged once) and the rest read as zero. */
struct row {
    const PGresult *res;
    int row, col;
    int err;
    bool column; /* err is a column's type: every row has it */
    const char *what;
};

static bool field_ok(struct row *w, unsigned oid, bool null_ok) {
    int c = w->col++;

    if (w->err) {
        return false;
    }
    if (c >= PQnfields(w->res) || PQftype(w->res, c) != oid || PQfformat(w->res, c) != 1) {
        log_error("store: %s: column %d is not of the expected type", w->what, c);
        w->err = -EIO;
        w->column = true;
        return false;
    }
    if (PQgetisnull(w->res, w->row, c)) {
        if (!null_ok) {
            log_error("store: %s: column %s is NULL", w->what, PQfname(w->res, c));
            w->err = -EIO;
        }
        return false;
    }
    return true;
}

static int64_t get_i64(struct row *w) {
    const uint8_t *b;
    uint64_t x = 0;

    if (!field_ok(w, OID_INT8, false)) {
        return 0;
    }
    if (PQgetlength(w->res, w->row, w->col - 1) != 8) {
        log_error("store: %s: a bigint of %d bytes", w->what,
                  PQgetlength(w->res, w->row, w->col - 1));
        w->err = -EIO;
        return 0;
    }
    b = (const uint8_t *)PQgetvalue(w->res, w->row, w->col - 1);
    for (int i = 0; i < 8; i++) {
        x = x << 8 | b[i];
    }
    return (int64_t)x;
}

static bool get_bool(struct row *w) {
    if (!field_ok(w, OID_BOOL, false)) {
        return false;
    }
    if (PQgetlength(w->res, w->row, w->col - 1) != 1) {
        w->err = -EIO;
        log_error("store: %s: a boolean of another size", w->what);
        return false;
    }
    return PQgetvalue(w->res, w->row, w->col - 1)[0] != 0;
}

/* A text into dst (dstsz bytes with its NUL): longer is an error. */
static void get_text(struct row *w, char *dst, size_t dstsz) {
    int len;

    dst[0] = 0;
    if (!field_ok(w, OID_TEXT, false)) {
        return;
    }
    len = PQgetlength(w->res, w->row, w->col - 1);
    if (len < 0 || (size_t)len >= dstsz) {
        log_error("store: %s: %s is %d bytes, more than the %zu it may have", w->what,
                  PQfname(w->res, w->col - 1), len, dstsz - 1);
        w->err = -EIO;
        return;
    }
    memcpy(dst, PQgetvalue(w->res, w->row, w->col - 1), (size_t)len);
    dst[len] = 0;
}

/* A bytea into dst: its length, 0 for NULL (when null_ok); longer than
 * dstsz is an error. */
static size_t get_blob(struct row *w, void *dst, size_t dstsz, bool null_ok) {
    int len;

    if (!field_ok(w, OID_BYTEA, null_ok)) {
        return 0;
    }
    len = PQgetlength(w->res, w->row, w->col - 1);
    if (len < 0 || (size_t)len > dstsz) {
        log_error("store: %s: %s is %d bytes, more than the %zu it may have", w->what,
                  PQfname(w->res, w->col - 1), len, dstsz);
        w->err = -EIO;
        return 0;
    }
    memcpy(dst, PQgetvalue(w->res, w->row, w->col - 1), (size_t)len);
    return (size_t)len;
}

/* --- the connection --------------------------------------------------- */

/* After a failed call: a connection that broke is logged once; the next
 * call outside a transaction reconnects (pg_ready). */
static int pg_fail(struct pg_store *s, const char *what, const PGresult *res) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    snprintf(s->sqlstate, sizeof(s->sqlstate), "%.5s", state ? state : "");
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        if (!s->lost_logged) {
            log_error("store: %s: the connection to PostgreSQL is lost: %s", what,
                      PQerrorMessage(s->conn));
            s->lost_logged = true;
        }
    } else {
        log_error("store: %s: %s", what, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
    }
    return -EIO;
}

/* The connection, reconnected when it was lost and no transaction is open
 * on it (that one is lost: its caller's ROLLBACK ends it): 0 or -EIO. */
static int pg_ready(struct pg_store *s) {
    int64_t now;

    if (PQstatus(s->conn) == CONNECTION_OK) {
        return 0;
    }
    now = time_mono_ms();
    if (s->txn || now < s->next_reset_ms) {
        return -EIO;
    }
    PQreset(s->conn);
    memset(s->prepared, 0, sizeof(s->prepared));
    if (PQstatus(s->conn) != CONNECTION_OK) {
        s->reset_backoff_ms =
                s->reset_backoff_ms ? s->reset_backoff_ms * 2 : PG_RESET_BACKOFF_MIN_MS;
        if (s->reset_backoff_ms > PG_RESET_BACKOFF_MAX_MS) {
            s->reset_backoff_ms = PG_RESET_BACKOFF_MAX_MS;
        }
        s->next_reset_ms = now + s->reset_backoff_ms;
        log_warn("store: cannot reconnect to PostgreSQL (next try in %lld ms): %s",
                 (long long)s->reset_backoff_ms, PQerrorMessage(s->conn));
        return -EIO;
    }
    log_info("store: reconnected to PostgreSQL");
    s->reset_backoff_ms = 0;
    s->next_reset_ms = 0;
    s->lost_logged = false;
    return 0;
}

/* Run a statement without parameters (transaction control, the schema). */
static int pg_exec(struct pg_store *s, const char *sql, const char *what) {
    PGresult *res;
    int r = 0;

    res = PQexec(s->conn, sql);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = pg_fail(s, what, res);
    }
    PQclear(res);
    return r;
}

/* Run statement id with p's parameters, results in binary: the result
 * (caller frees with PQclear) or NULL after logging why. */
static PGresult *pg_run(struct pg_store *s, enum pg_stmt id, const struct params *p,
                        const char *what) {
    char name[16];
    PGresult *res;
    ExecStatusType st;

    if (pg_ready(s) < 0) {
        return NULL;
    }
    snprintf(name, sizeof(name), "k%d", (int)id);
    if (!s->prepared[id]) {
        res = PQprepare(s->conn, name, stmt_sql[id], 0, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            pg_fail(s, what, res);
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        s->prepared[id] = true;
    }
    res = PQexecPrepared(s->conn, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                         p ? p->fmt : NULL, 1);
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pg_fail(s, what, res);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* A statement that returns no rows: how many rows it changed, or -EIO. */
static int pg_change(struct pg_store *s, enum pg_stmt id, const struct params *p,
                     const char *what) {
    PGresult *res = pg_run(s, id, p, what);
    long n;

    if (!res) {
        return -EIO;
    }
    n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n < 0 || n > 1000000000 ? 1000000000 : (int)n;
}

/* A statement with one text parameter. */
static int pg_change_text(struct pg_store *s, enum pg_stmt id, const char *arg, const char *what) {
    struct params p = {0};

    p_text(&p, arg);
    return pg_change(s, id, &p, what);
}

/* --- transactions ----------------------------------------------------- */

static int pg_begin(struct store *base) {
    struct pg_store *s = pg(base);
    int r = pg_ready(s);

    if (r == 0) {
        r = pg_exec(s, "BEGIN ISOLATION LEVEL READ COMMITTED", "begin");
    }
    s->txn = r == 0;
    return r;
}

static int pg_commit(struct store *base) {
    struct pg_store *s = pg(base);
    PGresult *res;
    int r = 0;

    /* Without a transaction (rolled back, or the connection lost) COMMIT
     * would only warn: what the caller wrote is not there. */
    if (PQtransactionStatus(s->conn) == PQTRANS_IDLE || PQstatus(s->conn) != CONNECTION_OK) {
        log_error("store: commit: no transaction is open (it was rolled back or its connection "
                  "lost)");
        s->txn = false;
        return -EIO;
    }
    res = PQexec(s->conn, "COMMIT");
    /* COMMIT of a failed transaction "succeeds" as a ROLLBACK. */
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = pg_fail(s, "commit", res);
    } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        log_error("store: commit: the transaction was rolled back (%s)", PQcmdStatus(res));
        r = -EIO;
    }
    PQclear(res);
    if (PQtransactionStatus(s->conn) == PQTRANS_IDLE || PQstatus(s->conn) != CONNECTION_OK) {
        s->txn = false;
    }
    return r;
}

static void pg_rollback(struct store *base) {
    struct pg_store *s = pg(base);

    if (PQstatus(s->conn) == CONNECTION_OK && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
    }
    s->txn = false;
}

static int pg_savepoint(struct store *base) {
    struct pg_store *s = pg(base);
    int r = pg_ready(s);

    return r < 0 ? r : pg_exec(s, "SAVEPOINT w", "savepoint");
}

static int pg_release(struct store *base) {
    return pg_exec(pg(base), "RELEASE SAVEPOINT w", "release");
}

static void pg_rollback_to(struct store *base) {
    struct pg_store *s = pg(base);

    if (PQstatus(s->conn) == CONNECTION_OK) {
        PQclear(PQexec(s->conn, "ROLLBACK TO SAVEPOINT w; RELEASE SAVEPOINT w"));
    }
}

static bool pg_in_transaction(struct store *base) {
    PGTransactionStatusType t = PQtransactionStatus(pg(base)->conn);

    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* A COMMIT returns once it is durable (synchronous_commit, checked at
 * connect): nothing to sync, no checkpoints of ours. */
static int pg_sync(struct store *base) {
    (void)base;
    return 0;
}

static uint64_t pg_checkpoints(struct store *base) {
    (void)base;
    return 0;
}

/* --- nodes ------------------------------------------------------------ */

static void node_params(struct params *p, const struct node_record *n) {
    p_text(p, n->name);
    p_blob(p, n->ek_pub, n->ek_pub_len);
    p_blob(p, n->ek_cert_len ? n->ek_cert : NULL, n->ek_cert_len);
    p_blob(p, n->ak_pub, n->ak_pub_len);
    p_blob(p, n->ak_name, n->ak_name_len);
    p_bool(p, n->activated);
    p_blob(p, n->has_secret ? n->secret : NULL, sizeof(n->secret));
    p_text(p, node_state_name(n->state));
    p_text(p, n->reason);
    p_i64(p, n->registered_ms);
    p_i64(p, n->last_attested_ms);
    p_bool(p, n->has_clock);
    p_i64(p, (int64_t)n->clock);
    p_i64(p, n->reset_count);
    p_i64(p, n->restart_count);
    p_text(p, n->boot_id);
    p_i64(p, (int64_t)n->ima_index);
    p_i64(p, (int64_t)n->ima_offset);
    p_blob(p, n->pcr10, sizeof(n->pcr10));
    p_i64(p, (int64_t)n->attestations);
    p_i64(p, n->pending);
    p_text(p, n->ek_fp);
    p_i64(p, n->behind_ms);
    p_i64(p, (int64_t)n->version);
}

/* A node's row into n: 0, or -EIO; *ret_row_bad (when not NULL) tells
 * that this row's content is bad, not the result's columns. */
static int node_from_row(const PGresult *res, int row, struct node_record *n, bool *ret_row_bad) {
    struct row w = {.res = res, .row = row, .what = "reading a node"};
    char state[32];

    memset(n, 0, sizeof(*n));
    get_text(&w, n->name, sizeof(n->name));
    n->ek_pub_len = get_blob(&w, n->ek_pub, sizeof(n->ek_pub), false);
    n->ek_cert_len = get_blob(&w, n->ek_cert, sizeof(n->ek_cert), true);
    n->ak_pub_len = get_blob(&w, n->ak_pub, sizeof(n->ak_pub), false);
    n->ak_name_len = get_blob(&w, n->ak_name, sizeof(n->ak_name), false);
    n->activated = get_bool(&w);
    n->has_secret = get_blob(&w, n->secret, sizeof(n->secret), true) == sizeof(n->secret);
    get_text(&w, state, sizeof(state));
    if (node_state_parse(state, &n->state) < 0 || n->state == NODE_STALE) {
        n->state = NODE_UNTRUSTED; /* a state no verifier wrote: trust nothing */
    }
    get_text(&w, n->reason, sizeof(n->reason));
    n->registered_ms = get_i64(&w);
    n->last_attested_ms = get_i64(&w);
    n->has_clock = get_bool(&w);
    n->clock = (uint64_t)get_i64(&w);
    n->reset_count = (uint32_t)get_i64(&w);
    n->restart_count = (uint32_t)get_i64(&w);
    get_text(&w, n->boot_id, sizeof(n->boot_id));
    n->ima_index = (uint64_t)get_i64(&w);
    n->ima_offset = (uint64_t)get_i64(&w);
    get_blob(&w, n->pcr10, sizeof(n->pcr10), false);
    n->attestations = (uint64_t)get_i64(&w);
    n->pending = (uint32_t)get_i64(&w);
    get_text(&w, n->ek_fp, sizeof(n->ek_fp));
    n->behind_ms = get_i64(&w);
    n->version = (uint64_t)get_i64(&w);
    if (ret_row_bad) {
        *ret_row_bad = w.err && !w.column;
    }
    return w.err;
}

static int pg_node_get(struct store *base, const char *name, struct node_record *ret) {
    struct params p = {0};
    PGresult *res;
    int r;

    p_text(&p, name);
    res = pg_run(pg(base), PG_NODE_GET, &p, "reading a node");
    if (!res) {
        return -EIO;
    }
    r = PQntuples(res) == 0 ? -ENOENT : node_from_row(res, 0, ret, NULL);
    PQclear(res);
    return r;
}

static int pg_node_put(struct store *base, struct node_record *n) {
    struct params p = {0};
    int r;

    node_params(&p, n);
    /* READ COMMITTED: an UPDATE that waited for another writer's lock on
     * the row checks `version` again on the row that writer left, and
     * changes nothing when it moved on. */
    r = pg_change(pg(base), n->version > 0 ? PG_NODE_UPDATE : PG_NODE_INSERT, &p, "writing a node");
    if (r < 0 && strcmp(pg(base)->sqlstate, PG_LOCK_NOT_AVAILABLE) == 0) {
        /* Another verifier's transaction held the row past lock_timeout
         * (it is stuck, or frozen): whatever it does, this write would
         * find the row changed or would have to wait for it. */
        log_warn("store: node %s is being written by another verifier that holds it: not "
                 "written",
                 n->name);
        return -ESTALE;
    }
    if (r == 0) {
        log_warn("store: node %s changed since it was read (version %llu): not written", n->name,
                 (unsigned long long)n->version);
        return -ESTALE;
    }
    if (r < 0) {
        return r;
    }
    n->version++;
    return 0;
}

static int pg_node_delete(struct store *base, const char *name) {
    int r = pg_change_text(pg(base), PG_NODE_DELETE, name, "deleting a node");

    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

static int pg_node_with_ek_fp(struct store *base, const char *ek_fp, const char *name, char *ret) {
    struct params p = {0};
    PGresult *res;
    int r;

    p_text(&p, ek_fp);
    p_text(&p, name);
    res = pg_run(pg(base), PG_NODE_EK_FP, &p, "looking up an EK");
    if (!res) {
        return -EIO;
    }
    r = -ENOENT;
    if (PQntuples(res) > 0) {
        struct row w = {.res = res, .what = "looking up an EK"};
        get_text(&w, ret, STORE_NAME_MAX + 1);
        r = w.err;
    }
    PQclear(res);
    return r;
}

static int pg_node_foreach(struct store *base, int (*fn)(const struct node_record *, void *),
                           void *ud) {
    struct node_record *n = malloc(sizeof(*n));
    PGresult *res;
    int r = 0;

    if (!n) {
        return -ENOMEM;
    }
    res = pg_run(pg(base), PG_NODE_ALL, NULL, "listing nodes");
    if (!res) {
        r = -EIO;
    }
    for (int i = 0; res && r == 0 && i < PQntuples(res); i++) {
        bool row_bad = false;
        r = node_from_row(res, i, n, &row_bad);
        if (r < 0 && row_bad) {
            /* One bad row (logged) does not hide the others: the sweep
             * and the listing go on without it. */
            r = 0;
            continue;
        }
        if (r == 0 && fn(n, ud) != 0) {
            break;
        }
    }
    PQclear(res);
    free(n);
    return r;
}

/* --- pods ------------------------------------------------------------- */

static int pod_from_row(const PGresult *res, int row, struct pod_record *p) {
    struct row w = {.res = res, .row = row, .what = "reading a pod"};
    char state[32];

    memset(p, 0, sizeof(*p));
    get_text(&w, p->uid, sizeof(p->uid));
    get_text(&w, p->node, sizeof(p->node));
    get_text(&w, p->ns, sizeof(p->ns));
    get_text(&w, p->name, sizeof(p->name));
    get_text(&w, state, sizeof(state));
    if (pod_state_parse(state, &p->state) < 0) {
        p->state = POD_UNTRUSTED; /* a state no verifier wrote: trust nothing */
    }
    get_text(&w, p->reason, sizeof(p->reason));
    p->since_ms = get_i64(&w);
    p->unjudged = get_bool(&w);
    p->files = (uint32_t)get_i64(&w);
    p->files_overflow = get_bool(&w);
    get_text(&w, p->policy, sizeof(p->policy));
    p->files_bytes = (uint64_t)get_i64(&w);
    p->gone_ms = get_i64(&w);
    p->files_dropped = (uint64_t)get_i64(&w);
    return w.err;
}

static int pg_pod_get(struct store *base, const char *uid, struct pod_record *ret) {
    struct params p = {0};
    PGresult *res;
    int r;

    p_text(&p, uid);
    res = pg_run(pg(base), PG_POD_GET, &p, "reading a pod");
    if (!res) {
        return -EIO;
    }
    r = PQntuples(res) == 0 ? -ENOENT : pod_from_row(res, 0, ret);
    PQclear(res);
    return r;
}

static int pg_pod_put(struct store *base, const struct pod_record *pod) {
    struct params p = {0};
    int r;

    p_text(&p, pod->uid);
    p_text(&p, pod->node);
    p_text(&p, pod->ns);
    p_text(&p, pod->name);
    p_text(&p, pod_state_name(pod->state));
    p_text(&p, pod->reason);
    p_i64(&p, pod->since_ms);
    p_bool(&p, pod->unjudged);
    p_i64(&p, pod->files);
    p_bool(&p, pod->files_overflow);
    p_text(&p, pod->policy);
    p_i64(&p, (int64_t)pod->files_bytes);
    p_i64(&p, pod->gone_ms);
    p_i64(&p, (int64_t)pod->files_dropped);
    r = pg_change(pg(base), PG_POD_PUT, &p, "writing a pod");
    return r < 0 ? r : 0;
}

static int pg_pod_delete_node(struct store *base, const char *node) {
    int r = pg_change_text(pg(base), PG_POD_DELETE_NODE_FILES, node,
                           "deleting a node's pods' files");

    if (r >= 0) {
        r = pg_change_text(pg(base), PG_POD_DELETE_NODE, node, "deleting a node's pods");
    }
    return r < 0 ? r : 0;
}

static int pg_pod_files_delete(struct store *base, const char *uid) {
    int r = pg_change_text(pg(base), PG_POD_FILES_DELETE, uid, "deleting a pod's files");

    return r < 0 ? r : 0;
}

static int pg_pod_delete(struct store *base, const char *uid) {
    int r = pg_pod_files_delete(base, uid);

    if (r == 0) {
        r = pg_change_text(pg(base), PG_POD_DELETE, uid, "deleting a pod");
    }
    return r < 0 ? r : 0;
}

static int pg_pod_foreach(struct store *base, const char *node,
                          int (*fn)(const struct pod_record *, void *), void *ud) {
    struct params p = {0};
    struct pod_record pod;
    PGresult *res;
    int r = 0;

    if (node) {
        p_text(&p, node);
    }
    res = pg_run(pg(base), node ? PG_POD_OF_NODE : PG_POD_ALL, &p, "listing pods");
    if (!res) {
        return -EIO;
    }
    for (int i = 0; r == 0 && i < PQntuples(res); i++) {
        r = pod_from_row(res, i, &pod);
        if (r == 0 && fn(&pod, ud) != 0) {
            break;
        }
    }
    PQclear(res);
    return r;
}

static int pg_pod_file_add(struct store *base, const char *uid, const struct pod_file *f) {
    struct params p = {0};

    if (f->path_len > sizeof(f->path)) {
        return -EINVAL;
    }
    p_text(&p, uid);
    p_blob(&p, f->path, f->path_len);
    p_text(&p, f->digest);
    p_bool(&p, f->violation);
    p_i64(&p, (int64_t)f->entry);
    return pg_change(pg(base), PG_POD_FILE_ADD, &p, "writing a pod file");
}

static int pg_pod_files_foreach(struct store *base, const char *uid,
                                int (*fn)(const struct pod_file *, void *), void *ud) {
    struct pod_file *f = malloc(sizeof(*f));
    struct params p = {0};
    PGresult *res;
    int r = 0;

    if (!f) {
        return -ENOMEM;
    }
    p_text(&p, uid);
    res = pg_run(pg(base), PG_POD_FILES, &p, "listing a pod's files");
    if (!res) {
        r = -EIO;
    }
    for (int i = 0; res && r == 0 && i < PQntuples(res); i++) {
        struct row w = {.res = res, .row = i, .what = "reading a pod's file"};
        memset(f, 0, sizeof(*f));
        f->path_len = get_blob(&w, f->path, sizeof(f->path), false);
        get_text(&w, f->digest, sizeof(f->digest));
        f->violation = get_bool(&w);
        f->entry = (uint64_t)get_i64(&w);
        r = w.err ? w.err : fn(f, ud);
    }
    PQclear(res);
    free(f);
    return r;
}

/* --- waiting measurements --------------------------------------------- */

static int pg_pending_add(struct store *base, const struct pending_record *pr) {
    struct params p = {0};
    int r;

    if (pr->path_len > sizeof(pr->path)) {
        return -EINVAL;
    }
    p_text(&p, pr->node);
    p_text(&p, pr->uid);
    p_text(&p, pr->container);
    p_i64(&p, (int64_t)pr->entry);
    p_text(&p, pr->template_name);
    p_blob(&p, pr->path, pr->path_len);
    p_text(&p, pr->digest);
    p_bool(&p, pr->violation);
    p_i64(&p, pr->seen_ms);
    p_i64(&p, pr->dropped);
    r = pg_change(pg(base), PG_PENDING_ADD, &p, "writing a pending measurement");
    return r < 0 ? r : 0;
}

static int pending_from_row(const PGresult *res, int row, struct pending_record *pr) {
    struct row w = {.res = res, .row = row, .what = "reading a pending measurement"};

    memset(pr, 0, sizeof(*pr));
    pr->id = get_i64(&w);
    get_text(&w, pr->node, sizeof(pr->node));
    get_text(&w, pr->uid, sizeof(pr->uid));
    get_text(&w, pr->container, sizeof(pr->container));
    pr->entry = (uint64_t)get_i64(&w);
    get_text(&w, pr->template_name, sizeof(pr->template_name));
    pr->path_len = get_blob(&w, pr->path, sizeof(pr->path), false);
    get_text(&w, pr->digest, sizeof(pr->digest));
    pr->violation = get_bool(&w);
    pr->seen_ms = get_i64(&w);
    pr->dropped = (uint32_t)get_i64(&w);
    return w.err;
}

static int pg_pending_list(struct store *base, const char *node, int64_t after,
                           struct pending_record *ret, size_t max) {
    struct params p = {0};
    PGresult *res;
    int n, r = 0;

    if (max > INT32_MAX) {
        max = INT32_MAX;
    }
    p_text(&p, node);
    p_i64(&p, after);
    p_i64(&p, (int64_t)max);
    res = pg_run(pg(base), PG_PENDING_LIST, &p, "listing pending measurements");
    if (!res) {
        return -EIO;
    }
    n = PQntuples(res);
    if ((size_t)n > max) {
        n = (int)max;
    }
    for (int i = 0; r == 0 && i < n; i++) {
        r = pending_from_row(res, i, &ret[i]);
    }
    PQclear(res);
    return r < 0 ? r : n;
}

static int pg_pending_delete(struct store *base, int64_t id) {
    struct params p = {0};
    int r;

    p_i64(&p, id);
    r = pg_change(pg(base), PG_PENDING_DELETE, &p, "deleting a pending measurement");
    return r < 0 ? r : 0;
}

static int pg_pending_delete_node(struct store *base, const char *node) {
    int r = pg_change_text(pg(base), PG_PENDING_DELETE_NODE, node,
                           "deleting a node's pending measurements");

    return r < 0 ? r : 0;
}

/* A count(*) with p's parameters into ret. */
static int pg_count(struct pg_store *s, enum pg_stmt id, const struct params *p, const char *what,
                    uint64_t *ret) {
    PGresult *res = pg_run(s, id, p, what);
    struct row w = {.res = res, .what = what};
    int64_t n;

    if (!res) {
        return -EIO;
    }
    if (PQntuples(res) != 1) {
        log_error("store: %s: %d rows", what, PQntuples(res));
        PQclear(res);
        return -EIO;
    }
    n = get_i64(&w);
    PQclear(res);
    if (w.err == 0) {
        *ret = (uint64_t)n;
    }
    return w.err;
}

static int pg_pending_count(struct store *base, uint64_t *ret) {
    return pg_count(pg(base), PG_PENDING_COUNT, NULL, "counting pending measurements", ret);
}

static int pg_pending_count_key(struct store *base, const char *node, const char *uid,
                                const char *container, uint64_t *ret) {
    struct params p = {0};

    p_text(&p, node);
    p_text(&p, uid);
    p_text(&p, container);
    return pg_count(pg(base), PG_PENDING_COUNT_KEY, &p, "counting waiting measurements", ret);
}

static int pg_pending_nodes(struct store *base, int (*fn)(const char *node, void *ud), void *ud) {
    PGresult *res = pg_run(pg(base), PG_PENDING_NODES, NULL,
                           "listing nodes with pending "
                           "measurements");
    char node[STORE_NAME_MAX + 1];
    int r = 0;

    if (!res) {
        return -EIO;
    }
    for (int i = 0; r == 0 && i < PQntuples(res); i++) {
        struct row w = {.res = res, .row = i, .what = "listing nodes with pending measurements"};
        get_text(&w, node, sizeof(node));
        r = w.err;
        if (r == 0 && fn(node, ud) != 0) {
            break;
        }
    }
    PQclear(res);
    return r;
}

static int pg_pending_mark_dropped(struct store *base, const char *node, const char *uid,
                                   const char *container, int64_t seen_ms) {
    struct params p = {0};
    int r;

    p_text(&p, node);
    p_text(&p, uid);
    p_text(&p, container);
    r = pg_change(pg(base), PG_PENDING_MARK, &p, "counting a dropped measurement");
    if (r != 0) {
        return r < 0 ? r : 0;
    }
    return store_pending_add_marker(base, node, uid, container, seen_ms);
}

/* --- nonces and secrets ----------------------------------------------- */

static int pg_nonce_use(struct store *base, const uint8_t *nonce, size_t len, int64_t expires_ms) {
    struct params p = {0};
    int r;

    p_blob(&p, nonce, len);
    p_i64(&p, expires_ms);
    r = pg_change(pg(base), PG_NONCE_USE, &p, "recording a used nonce");
    return r < 0 ? r : r == 0 ? -EEXIST : 0;
}

static int pg_nonce_purge(struct store *base, int64_t now_ms) {
    struct params p = {0};

    p_i64(&p, now_ms);
    return pg_change(pg(base), PG_NONCE_PURGE, &p, "forgetting expired nonces");
}

static int secret_read(struct pg_store *s, const char *name, uint8_t *ret, size_t len) {
    struct params p = {0};
    uint8_t buf[64];
    PGresult *res;
    int r = -ENOENT;

    p_text(&p, name);
    res = pg_run(s, PG_SECRET_GET, &p, "reading a secret");
    if (!res) {
        return -EIO;
    }
    if (PQntuples(res) > 0) {
        struct row w = {.res = res, .what = "reading a secret"};
        size_t n = get_blob(&w, buf, sizeof(buf), false);
        r = w.err ? -EBADMSG : n != len ? -EBADMSG : 0;
        if (r == 0) {
            memcpy(ret, buf, len);
        }
        OPENSSL_cleanse(buf, sizeof(buf));
    }
    PQclear(res);
    return r;
}

static int pg_secret(struct store *base, const char *name, uint8_t *ret, size_t len) {
    struct pg_store *s = pg(base);
    struct params p = {0};
    uint8_t fresh[64];
    int r;

    if (len < 16 || len > sizeof(fresh)) {
        return -EINVAL;
    }
    r = secret_read(s, name, ret, len);
    if (r != -ENOENT) {
        return r;
    }
    if (RAND_bytes(fresh, (int)len) != 1) {
        return -EIO;
    }
    p_text(&p, name);
    p_blob(&p, fresh, len);
    r = pg_change(s, PG_SECRET_PUT, &p, "writing a secret");
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return r < 0 ? r : secret_read(s, name, ret, len);
}

/* --- opening ---------------------------------------------------------- */

static void pg_close(struct store *base) {
    struct pg_store *s = pg(base);

    if (!s) {
        return;
    }
    PQfinish(s->conn);
    if (s->password) {
        OPENSSL_cleanse(s->password, strlen(s->password));
    }
    free(s->password);
    free(s->spec);
    free(s);
}

/* Whether the spec's options include keyword (set, not libpq's default). */
static bool spec_sets(PQconninfoOption *opts, const char *keyword) {
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, keyword) == 0) {
            return o->val && *o->val;
        }
    }
    return false;
}

/* The spec parsed: a password in it is refused (it would be on the
 * command line, in the environment of the process, in logs). */
static int spec_check(const char *spec) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(spec, &err);
    int r = 0;

    if (!opts) {
        log_error("store: the PostgreSQL connection string is not valid: %s",
                  err ? err : "out of memory");
        PQfreemem(err);
        return -EINVAL;
    }
    if (spec_sets(opts, "password")) {
        log_error("store: the PostgreSQL connection string holds a password: refused (it would be "
                  "seen on the command line and in the environment); put it in a file given with "
                  "--db-password-file [KIMA_DB_PASSWORD_FILE] or in KIMA_DB_PASSWORD");
        r = -EINVAL;
    }
    PQconninfoFree(opts);
    return r;
}

/* Log how the connection is protected; a TCP connection without
 * sslmode=verify-full is warned about. */
static void log_tls(PGconn *conn) {
    const char *host = PQhost(conn);
    bool tcp = host && *host && host[0] != '/' && host[0] != '@';
    const char *mode = NULL;
    PQconninfoOption *opts = PQconninfo(conn);

    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "sslmode") == 0) {
            mode = o->val;
        }
    }
    if (PQsslInUse(conn)) {
        const char *proto = PQsslAttribute(conn, "protocol");
        log_info("store: connected to PostgreSQL %d on %s with TLS (%s, sslmode=%s)",
                 PQserverVersion(conn), host ? host : "?", proto ? proto : "?", mode ? mode : "?");
    } else {
        log_info("store: connected to PostgreSQL %d on %s without TLS", PQserverVersion(conn),
                 host ? host : "?");
    }
    if (tcp && (!mode || strcmp(mode, "verify-full") != 0)) {
        log_warn("store: WARNING: PostgreSQL over TCP (%s) with sslmode=%s: the server is not "
                 "authenticated and the connection may be read or changed; use "
                 "sslmode=verify-full with sslrootcert",
                 host, mode ? mode : "prefer");
    }
    PQconninfoFree(opts);
}

/* A COMMIT must be durable when it returns: synchronous_commit=off is
 * refused (an acknowledged attestation could be lost). */
static int check_session(struct pg_store *s) {
    PGresult *res = PQexec(s->conn, "SHOW synchronous_commit");
    int r = 0;

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        r = pg_fail(s, "reading synchronous_commit", res);
    } else if (strcmp(PQgetvalue(res, 0, 0), "off") == 0) {
        log_error("store: PostgreSQL has synchronous_commit=off: a commit could be lost after "
                  "it was acknowledged; refused (set it to on, local or remote_apply)");
        r = -EPROTO;
    }
    PQclear(res);
    return r;
}

/* The server's notices ("relation ... already exists, skipping") are for
 * debugging only. */
static void on_notice(void *ud, const char *message) {
    (void)ud;
    log_debug("store: PostgreSQL: %s", message);
}

static int pg_connect(struct pg_store *s) {
    /* Defaults first: the spec (dbname, expanded) overrides them. */
    const char *keys[PG_CONN_PARAMS_MAX] = {"connect_timeout",
                                            "tcp_user_timeout",
                                            "keepalives_idle",
                                            "keepalives_interval",
                                            "keepalives_count",
                                            "options",
                                            "application_name",
                                            "dbname",
                                            s->password ? "password" : NULL,
                                            NULL};
    const char *vals[PG_CONN_PARAMS_MAX] = {
            "10",    "10000",     "10", "5", "3", PG_SESSION_OPTIONS, "kima-verifier",
            s->spec, s->password, NULL};

    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn) {
        return -ENOMEM;
    }
    PQsetNoticeProcessor(s->conn, on_notice, NULL);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        log_error("store: cannot connect to PostgreSQL: %s", PQerrorMessage(s->conn));
        return -EIO;
    }
    return check_session(s);
}

static int pg_new(const char *spec, const char *password, struct pg_store **ret) {
    struct pg_store *s = calloc(1, sizeof(*s));

    if (!s) {
        return -ENOMEM;
    }
    s->base.ops = &pg_ops;
    s->spec = strdup(spec);
    s->password = password ? strdup(password) : NULL;
    if (!s->spec || (password && !s->password)) {
        pg_close(&s->base);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

/* Under the migration lock, in one transaction: the schema made when the
 * database has none, a newer one refused. */
static int migrate(struct pg_store *s) {
    char sql[128];
    PGresult *res;
    int v = 0, r;

    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", PG_MIGRATE_LOCK);
    r = pg_begin(&s->base);
    if (r == 0) { /* another replica's migration is waited for (statement_timeout) */
        r = pg_exec(s, "SET LOCAL lock_timeout = 0", "migration lock");
    }
    if (r == 0) {
        res = PQexec(s->conn, sql);
        r = res && PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : pg_fail(s, "migration lock", res);
        PQclear(res);
    }
    if (r == 0) {
        r = pg_exec(s, "CREATE TABLE IF NOT EXISTS kima_schema (version integer NOT NULL)",
                    "creating kima_schema");
    }
    if (r == 0) {
        res = PQexec(s->conn, "SELECT max(version) FROM kima_schema");
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            r = pg_fail(s, "reading the schema version", res);
        } else if (!PQgetisnull(res, 0, 0)) {
            v = atoi(PQgetvalue(res, 0, 0));
        }
        PQclear(res);
    }
    if (r == 0 && v > PG_SCHEMA_VERSION) {
        log_error("store: schema version %d is newer than this verifier's %d", v,
                  PG_SCHEMA_VERSION);
        r = -EPROTO;
    } else if (r == 0 && v < PG_SCHEMA_VERSION) {
        log_info("store: making the PostgreSQL schema (version %d)", PG_SCHEMA_VERSION);
        r = pg_exec(s, schema_v7, "creating the schema");
        if (r == 0) {
            snprintf(sql, sizeof(sql),
                     "DELETE FROM kima_schema; INSERT INTO kima_schema VALUES (%d)",
                     PG_SCHEMA_VERSION);
            r = pg_exec(s, sql, "writing the schema version");
        }
    }
    if (r == 0) {
        r = pg_commit(&s->base);
    }
    if (r < 0) {
        pg_rollback(&s->base);
    }
    return r;
}

int store_pg_open(const char *spec, const char *password, struct store **ret) {
    struct pg_store *s;
    int r = spec_check(spec);

    if (r == 0) {
        r = pg_new(spec, password, &s);
    }
    if (r < 0) {
        return r;
    }
    r = pg_connect(s);
    if (r == 0) {
        log_tls(s->conn);
        r = migrate(s);
    }
    if (r < 0) {
        pg_close(&s->base);
        return r;
    }
    *ret = &s->base;
    return 0;
}

static int pg_open_reader(struct store *writer, struct store **ret) {
    struct pg_store *w = pg(writer), *s;
    int r = pg_new(w->spec, w->password, &s);

    if (r < 0) {
        return r;
    }
    r = pg_connect(s);
    if (r < 0) {
        pg_close(&s->base);
        return r;
    }
    *ret = &s->base;
    return 0;
}

static const struct store_ops pg_ops = {
        .name = "postgresql",
        .close = pg_close,
        .open_reader = pg_open_reader,
        .begin = pg_begin,
        .commit = pg_commit,
        .rollback = pg_rollback,
        .savepoint = pg_savepoint,
        .release = pg_release,
        .rollback_to = pg_rollback_to,
        .in_transaction = pg_in_transaction,
        .sync = pg_sync,
        .checkpoints = pg_checkpoints,
        .node_get = pg_node_get,
        .node_put = pg_node_put,
        .node_delete = pg_node_delete,
        .node_with_ek_fp = pg_node_with_ek_fp,
        .node_foreach = pg_node_foreach,
        .pod_get = pg_pod_get,
        .pod_put = pg_pod_put,
        .pod_delete_node = pg_pod_delete_node,
        .pod_delete = pg_pod_delete,
        .pod_files_delete = pg_pod_files_delete,
        .pod_foreach = pg_pod_foreach,
        .pending_add = pg_pending_add,
        .pending_list = pg_pending_list,
        .pending_delete = pg_pending_delete,
        .pending_count_key = pg_pending_count_key,
        .pending_mark_dropped = pg_pending_mark_dropped,
        .pending_delete_node = pg_pending_delete_node,
        .pod_file_add = pg_pod_file_add,
        .pod_files_foreach = pg_pod_files_foreach,
        .pending_count = pg_pending_count,
        .pending_nodes = pg_pending_nodes,
        .nonce_use = pg_nonce_use,
        .nonce_purge = pg_nonce_purge,
        .secret = pg_secret,
        .shared = true,
};
