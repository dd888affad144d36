/* SPDX-License-Identifier: Apache-2.0 */
#include "store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "log.h"
#include "time-util.h"

/* The statements every round runs, prepared once (stmt_get) and reset
 * after each use, not parsed again each time. */
enum stmt_id {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_SAVEPOINT,
    STMT_RELEASE,
    STMT_NODE_GET,
    STMT_NODE_PUT,
    STMT_NODE_UPDATE,
    STMT_NODE_UPDATE_FP,
    STMT_NONCE_USE,
    STMT_POD_GET,
    STMT_POD_PUT,
    STMT_POD_UPDATE,
    STMT_POD_FILE_ADD,
    STMT_COUNT,
};

/* Checkpoints (copying the WAL's pages into the database file) run on a
 * thread and a connection of their own, not inside the COMMIT of the
 * round that crossed the threshold while it holds the engine's lock:
 * sqlite3_wal_hook() wakes the thread once the WAL holds
 * CHECKPOINT_PAGES pages; past CHECKPOINT_INLINE_PAGES (the thread cannot
 * keep up) the committing connection checkpoints itself. */
#define CHECKPOINT_PAGES        4096
#define CHECKPOINT_INLINE_PAGES 65536

struct checkpointer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sqlite3 *db; /* its own connection */
    bool running, wanted, stop;
    uint64_t done; /* checkpoints run (for the tests) */
};

struct sq_store;
static struct sq_store *sq(struct store *base);
static void sq_close(struct store *base);

struct sq_store {
    struct store base;
    sqlite3 *db;
    struct checkpointer ckpt;
    sqlite3_stmt *stmts[STMT_COUNT];
    bool wal;   /* journal_mode=WAL took (not for ":memory:") */
    int wal_fd; /* the WAL file, for store_sync; -1 until first needed */
    char wal_path[4096];
    char path[4096]; /* for store_open_reader */
};

/* The kept measurements: one row each, written by every round that brings
 * a new file, so in the order of the key alone (WITHOUT ROWID): an insert
 * writes one B-tree, not a table and its key's index (schema 6). */
#define POD_FILES_COLUMNS                                           \
    " uid TEXT NOT NULL, path BLOB NOT NULL, digest TEXT NOT NULL," \
    " violation INTEGER NOT NULL, entry INTEGER NOT NULL,"          \
    " PRIMARY KEY (uid, path, digest, violation)"

/* The tables as the first version wrote them, and the tables added since;
 * columns added since come from `columns` (migrate()), and indexes over
 * them from `indexes`, after the migration. */
static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        /* A writer's savepoint keeps the pages it changes in a
         * sub-journal: in memory, not a temporary file. */
        "PRAGMA temp_store=MEMORY;"
        "PRAGMA cache_size=-32768;"
        "PRAGMA foreign_keys=ON;"
        "CREATE TABLE IF NOT EXISTS nodes ("
        " name TEXT PRIMARY KEY, ek_pub BLOB NOT NULL, ek_cert BLOB, ak_pub BLOB NOT NULL,"
        " ak_name BLOB NOT NULL, activated INTEGER NOT NULL, secret BLOB, state TEXT NOT NULL,"
        " reason TEXT NOT NULL, registered_ms INTEGER NOT NULL, last_attested_ms INTEGER NOT NULL,"
        " has_clock INTEGER NOT NULL, clock INTEGER NOT NULL, reset_count INTEGER NOT NULL,"
        " restart_count INTEGER NOT NULL, boot_id TEXT NOT NULL, ima_index INTEGER NOT NULL,"
        " ima_offset INTEGER NOT NULL, pcr10 BLOB NOT NULL, attestations INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS pods ("
        " uid TEXT PRIMARY KEY, node TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
        " state TEXT NOT NULL, reason TEXT NOT NULL, since_ms INTEGER NOT NULL,"
        " unjudged INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS pods_node ON pods(node);"
        "CREATE INDEX IF NOT EXISTS pods_name ON pods(namespace, name);"
        "CREATE TABLE IF NOT EXISTS pending ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, uid TEXT NOT NULL,"
        " container TEXT NOT NULL, entry INTEGER NOT NULL, template TEXT NOT NULL,"
        " path BLOB NOT NULL, digest TEXT NOT NULL, violation INTEGER NOT NULL,"
        " seen_ms INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS pending_node ON pending(node, id);"
        "CREATE TABLE IF NOT EXISTS pod_files (" POD_FILES_COLUMNS ") WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS used_nonces ("
        " nonce BLOB PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);";

/* A pod_files table of schema 5 or older, rebuilt without its rowid in
 * the migration's transaction; the old table is set aside as
 * pod_files_v5 and dropped after the commit, on its own (drop_old_files):
 * dropped inside the transaction, SQLite would hold a copy of every page
 * of it in memory (review finding R16-1). */
static const char pod_files_copy[] =
        "CREATE TABLE pod_files_v6 (" POD_FILES_COLUMNS ") WITHOUT ROWID;"
        "INSERT INTO pod_files_v6 (uid, path, digest, violation, entry)"
        " SELECT uid, path, digest, violation, entry FROM pod_files;";
static const char pod_files_swap[] = "ALTER TABLE pod_files RENAME TO pod_files_v5;"
                                     "ALTER TABLE pod_files_v6 RENAME TO pod_files;";

static const struct {
    const char *table, *column, *definition;
} columns[] = {
        /* 1 */ {"nodes", "pending", "INTEGER NOT NULL DEFAULT 0"},
        /* 2 */ {"nodes", "ek_fp", "TEXT NOT NULL DEFAULT ''"},
        {"pods", "files", "INTEGER NOT NULL DEFAULT 0"},
        {"pods", "files_overflow", "INTEGER NOT NULL DEFAULT 0"},
        {"pods", "policy", "TEXT NOT NULL DEFAULT ''"},
        /* 3 */ {"pods", "files_bytes", "INTEGER NOT NULL DEFAULT 0"},
        {"pods", "gone_ms", "INTEGER NOT NULL DEFAULT 0"},
        {"pending", "dropped", "INTEGER NOT NULL DEFAULT 0"},
        /* 4 */ {"nodes", "behind_ms", "INTEGER NOT NULL DEFAULT 0"},
        /* 5 */ {"pods", "files_dropped", "INTEGER NOT NULL DEFAULT 0"},
        /* 7 */ {"nodes", "version", "INTEGER NOT NULL DEFAULT 0"},
};

static const char indexes[] =
        "CREATE INDEX IF NOT EXISTS nodes_ek_fp ON nodes(ek_fp);"
        "CREATE INDEX IF NOT EXISTS pending_key ON pending(node, uid, container);";

/* Schema versions (PRAGMA user_version): 0 the first; 1 adds nodes.pending
 * and the pending table; 2 nodes.ek_fp and the pods' kept measurements
 * (pod_files, pods.files, files_overflow, policy); 3 pods.files_bytes,
 * pods.gone_ms and pending.dropped; 4 nodes.behind_ms; 5 pods.files_dropped
 * (measurements not kept past the pod's cap, for GET .../measurements); 6
 * pod_files WITHOUT ROWID; 7 nodes.version (store_node_put's
 * compare-and-swap), used_nonces and secrets (nonces shared by the
 * verifiers of one store). */
#define SCHEMA_VERSION 7

/* Convert an SQLite result once, logging its message. */
static int sql_rc(struct sq_store *s, int rc, const char *what) {
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
        return 0;
    }
    log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
    return -EIO;
}

static int user_version(struct sq_store *s, int *ret) {
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s, sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL),
                   "reading the schema version");

    if (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
        *ret = sqlite3_column_int(st, 0);
    } else if (r == 0) {
        r = sql_rc(s, sqlite3_errcode(s->db), "reading the schema version");
    }
    sqlite3_finalize(st);
    return r;
}

static bool has_column(struct sq_store *s, const char *table, const char *column) {
    char sql[200];
    sqlite3_stmt *st = NULL;
    bool ok;

    snprintf(sql, sizeof(sql), "SELECT %s FROM %s LIMIT 0", column, table);
    ok = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

/* In the migration's transaction: the kept measurements rebuilt when they
 * still have a rowid (schema 5 or older). */
static int rebuild_pod_files(struct sq_store *s) {
    int64_t t0 = time_mono_ms();
    int r;

    if (!has_column(s, "pod_files", "rowid")) {
        return 0;
    }
    log_info("store: rebuilding the kept measurements without a rowid (schema 6); this takes "
             "about 10 s a million rows and as much disk again as the table");
    r = sql_rc(s, sqlite3_exec(s->db, pod_files_copy, NULL, NULL, NULL), "copying pod_files");
    if (r == 0) {
        log_info("store: %lld kept measurements copied in %lld ms",
                 (long long)sqlite3_changes64(s->db), (long long)(time_mono_ms() - t0));
        r = sql_rc(s, sqlite3_exec(s->db, pod_files_swap, NULL, NULL, NULL), "renaming pod_files");
    }
    return r;
}

/* After the migration's commit, or a start after one that was cut short
 * there: the table it set aside, dropped in a transaction of its own. */
static int drop_old_files(struct sq_store *s) {
    int64_t t0 = time_mono_ms();
    int r;

    if (!has_column(s, "pod_files_v5", "uid")) {
        return 0;
    }
    r = sql_rc(s, sqlite3_exec(s->db, "DROP TABLE pod_files_v5", NULL, NULL, NULL),
               "dropping the kept measurements of schema 5");
    if (r == 0) {
        log_info("store: the schema 5 copy of the kept measurements dropped in %lld ms",
                 (long long)(time_mono_ms() - t0));
    }
    return r;
}

/* Bring a store written by an older version up to SCHEMA_VERSION, in one
 * transaction. A newer store is refused: its meaning is unknown here. */
static int migrate(struct sq_store *s) {
    int v = 0, r = user_version(s, &v);
    char sql[300];

    if (r < 0) {
        return r;
    }
    if (v > SCHEMA_VERSION) {
        log_error("store: schema version %d is newer than this verifier's %d", v, SCHEMA_VERSION);
        return -EPROTO;
    }
    if (v < SCHEMA_VERSION) {
        r = store_begin(&s->base);
        for (size_t i = 0; r == 0 && i < sizeof(columns) / sizeof(columns[0]); i++) {
            if (!has_column(s, columns[i].table, columns[i].column)) {
                snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s", columns[i].table,
                         columns[i].column, columns[i].definition);
                r = sql_rc(s, sqlite3_exec(s->db, sql, NULL, NULL, NULL), sql);
            }
        }
        if (r == 0) {
            r = rebuild_pod_files(s);
        }
        if (r == 0) {
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
            r = sql_rc(s, sqlite3_exec(s->db, sql, NULL, NULL, NULL), "writing the schema version");
        }
        if (r == 0) {
            r = store_commit(&s->base);
        }
        if (r < 0) {
            store_rollback(&s->base);
            return r;
        }
    }
    /* A copy left behind costs disk, not correctness: logged, not fatal. */
    drop_old_files(s);
    return sql_rc(s, sqlite3_exec(s->db, indexes, NULL, NULL, NULL), "creating the indexes");
}

static int wal_open(struct sq_store *s);

/* WAL mode with synchronous=NORMAL relies on store_sync; a database
 * where WAL did not take (":memory:") commits with synchronous=FULL. */
static int check_wal(struct sq_store *s) {
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s, sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL),
                   "reading the journal mode");

    if (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(st, 0);
        s->wal = m && strcmp((const char *)m, "wal") == 0;
    }
    sqlite3_finalize(st);
    if (r == 0 && !s->wal) {
        r = sql_rc(s, sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL),
                   "synchronous=FULL");
    } else if (r == 0) {
        r = wal_open(s); /* now, while file descriptors are plenty */
    }
    return r;
}

static void *checkpoint_run(void *ud) {
    struct checkpointer *c = ud;

    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        if (!c->wanted) {
            pthread_cond_wait(&c->cond, &c->lock);
            continue;
        }
        c->wanted = false;
        pthread_mutex_unlock(&c->lock);
        /* PASSIVE: never waits for the writers or the readers; what it
         * cannot copy now waits for the next one. */
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
            log_warn("store: checkpoint: %s", sqlite3_errmsg(c->db));
        }
        pthread_mutex_lock(&c->lock);
        c->done++;
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* After every commit on the main connection (its thread, the engine's lock
 * held): wake the checkpointer, or checkpoint here when it falls behind. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int pages) {
    struct checkpointer *c = ud;

    if (pages >= CHECKPOINT_INLINE_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= CHECKPOINT_PAGES) {
        pthread_mutex_lock(&c->lock);
        c->wanted = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
    }
    return SQLITE_OK;
}

static int checkpointer_start(struct sq_store *s, const char *path) {
    struct checkpointer *c = &s->ckpt;

    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        log_error("store: cannot open %s for checkpoints: %s", path,
                  c->db ? sqlite3_errmsg(c->db) : "no memory");
        return -EIO;
    }
    /* A connection that has read nothing does not know the database is in
     * WAL mode yet, and would checkpoint nothing. */
    sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (pthread_create(&c->thread, NULL, checkpoint_run, c) != 0) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        return -EAGAIN;
    }
    c->running = true;
    sqlite3_wal_hook(s->db, on_wal_commit, c); /* replaces the built-in auto-checkpoint */
    return 0;
}

static void checkpointer_stop(struct sq_store *s) {
    struct checkpointer *c = &s->ckpt;

    if (c->running) {
        sqlite3_wal_hook(s->db, NULL, NULL);
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        c->running = false;
    }
    sqlite3_close(c->db);
    c->db = NULL;
}

static uint64_t sq_checkpoints(struct store *base) {
    struct sq_store *s = sq(base);
    uint64_t n = 0;

    if (s->ckpt.running) {
        pthread_mutex_lock(&s->ckpt.lock);
        n = s->ckpt.done;
        pthread_mutex_unlock(&s->ckpt.lock);
    }
    return n;
}

static const struct store_ops sqlite_ops;

static struct sq_store *sq(struct store *base) {
    return (struct sq_store *)base; /* base is the first member */
}

static struct sq_store *sq_new(const char *path) {
    struct sq_store *s = calloc(1, sizeof(*s));

    if (!s) {
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    s->wal_fd = -1;
    snprintf(s->path, sizeof(s->path), "%s", path);
    return s;
}

int store_sqlite_open(const char *path, struct store **ret) {
    struct sq_store *s;
    int r;

    if (strlen(path) + sizeof("-wal") > sizeof(s->wal_path)) {
        return -ENAMETOOLONG;
    }
    s = sq_new(path);
    if (!s) {
        return -ENOMEM;
    }
    snprintf(s->wal_path, sizeof(s->wal_path), "%s-wal", path);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        log_error("store: cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        sq_close(&s->base);
        return -EIO;
    }
    sqlite3_busy_timeout(s->db, 5000);
    r = sql_rc(s, sqlite3_exec(s->db, schema, NULL, NULL, NULL), "creating the schema");
    if (r == 0) {
        r = check_wal(s);
    }
    if (r == 0) {
        r = migrate(s);
    }
    if (r == 0 && s->wal) {
        r = checkpointer_start(s, path);
    }
    if (r < 0) {
        sq_close(&s->base);
        return r;
    }
    *ret = &s->base;
    return 0;
}

static int sq_open_reader(struct store *writer, struct store **ret) {
    const char *path = sq(writer)->path;
    struct sq_store *s = sq_new(path);

    if (!s) {
        return -ENOMEM;
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        log_error("store: cannot open %s for reading: %s", path,
                  s->db ? sqlite3_errmsg(s->db) : "no memory");
        sq_close(&s->base);
        return -EIO;
    }
    sqlite3_busy_timeout(s->db, 5000);
    *ret = &s->base;
    return 0;
}

static void sq_close(struct store *base) {
    struct sq_store *s = sq(base);

    if (!s) {
        return;
    }
    checkpointer_stop(s);
    for (size_t i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(s->stmts[i]);
    }
    sqlite3_close(s->db);
    if (s->wal_fd >= 0) {
        close(s->wal_fd);
    }
    free(s);
}

/* The directory holding path: synced once, so that the WAL file's name is
 * durable too. */
static int sync_dir_of(const char *path) {
    char dir[4096];
    char *slash;
    int fd, r = 0;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == dir) {
        dir[1] = 0;
    } else if (slash) {
        *slash = 0;
    } else {
        snprintf(dir, sizeof(dir), ".");
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        r = -errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    return r;
}

/* The WAL file, opened (again, when SQLite made a new one: another inode)
 * and its directory synced. 0 or a negative errno. */
static int wal_open(struct sq_store *s) {
    struct stat a, b;

    if (s->wal_fd >= 0 && (fstat(s->wal_fd, &a) < 0 || stat(s->wal_path, &b) < 0 ||
                           a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
        close(s->wal_fd);
        s->wal_fd = -1;
    }
    if (s->wal_fd < 0) {
        s->wal_fd = open(s->wal_path, O_RDONLY | O_CLOEXEC);
        if (s->wal_fd < 0) {
            int r = -errno;
            log_error("store: cannot open %s: %s", s->wal_path, strerror(errno));
            return r;
        }
        if (sync_dir_of(s->wal_path) < 0) {
            log_error("store: cannot sync the directory of %s", s->wal_path);
            close(s->wal_fd);
            s->wal_fd = -1;
            return -ENOTRECOVERABLE;
        }
    }
    return 0;
}

static int sq_sync(struct store *base) {
    struct sq_store *s = sq(base);
    int r;

    if (!s->wal) {
        return 0; /* synced by COMMIT itself */
    }
    /* Not opened: nothing synced, nothing lost either (the next sync
     * covers what is committed). */
    r = wal_open(s);
    if (r < 0) {
        return r == -ENOTRECOVERABLE ? r : -EAGAIN;
    }
    if (fdatasync(s->wal_fd) < 0) {
        log_error("store: fdatasync %s: %s", s->wal_path, strerror(errno));
        return -ENOTRECOVERABLE;
    }
    return 0;
}

/* The cached statement `id` (`sql`, prepared on first use). 0 or a negative
 * errno; give it back with stmt_done(). */
static int stmt_get(struct sq_store *s, enum stmt_id id, const char *sql, const char *what,
                    sqlite3_stmt **ret) {
    if (!s->stmts[id]) {
        int r = sql_rc(
                s,
                sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id], NULL),
                what);
        if (r < 0) {
            return r;
        }
    }
    *ret = s->stmts[id];
    return 0;
}

static void stmt_done(sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Run a cached statement that returns no rows. */
static int stmt_run(struct sq_store *s, enum stmt_id id, const char *sql, const char *what) {
    sqlite3_stmt *st;
    int r = stmt_get(s, id, sql, what, &st);

    if (r == 0) {
        r = sql_rc(s, sqlite3_step(st), what);
        stmt_done(st);
    }
    return r;
}

static int sq_begin(struct store *base) {
    struct sq_store *s = sq(base);
    return stmt_run(s, STMT_BEGIN, "BEGIN IMMEDIATE", "begin");
}

static int sq_commit(struct store *base) {
    struct sq_store *s = sq(base);
    return stmt_run(s, STMT_COMMIT, "COMMIT", "commit");
}

static void sq_rollback(struct store *base) {
    struct sq_store *s = sq(base);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_savepoint(struct store *base) {
    struct sq_store *s = sq(base);
    return stmt_run(s, STMT_SAVEPOINT, "SAVEPOINT w", "savepoint");
}

static int sq_release(struct store *base) {
    struct sq_store *s = sq(base);
    return stmt_run(s, STMT_RELEASE, "RELEASE w", "release");
}

static void sq_rollback_to(struct store *base) {
    struct sq_store *s = sq(base);
    sqlite3_exec(s->db, "ROLLBACK TO w; RELEASE w", NULL, NULL, NULL);
}

static bool sq_in_transaction(struct store *base) {
    struct sq_store *s = sq(base);
    return sqlite3_get_autocommit(s->db) == 0;
}

static void copy_text(char *dst, size_t dstsz, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, dstsz, "%s", t ? (const char *)t : "");
}

static size_t copy_blob(uint8_t *dst, size_t dstsz, sqlite3_stmt *st, int col) {
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    const void *b = sqlite3_column_blob(st, col);

    if (!b || n > dstsz) {
        return 0;
    }
    memcpy(dst, b, n);
    return n;
}

#define NODE_COLS                                                                              \
    "name, ek_pub, ek_cert, ak_pub, ak_name, activated, secret, state, reason, registered_ms," \
    " last_attested_ms, has_clock, clock, reset_count, restart_count, boot_id, ima_index,"     \
    " ima_offset, pcr10, attestations, pending, ek_fp, behind_ms"
/* What a read returns: the columns and the version (column 23). */
#define NODE_READ_COLS NODE_COLS ", version"

#define NODE_SET                                                                                   \
    "ek_pub = excluded.ek_pub, ek_cert = excluded.ek_cert, ak_pub = excluded.ak_pub, ak_name = "   \
    "excluded.ak_name, activated = excluded.activated, secret = excluded.secret, state = "         \
    "excluded.state, reason = excluded.reason, registered_ms = excluded.registered_ms, "           \
    "last_attested_ms = excluded.last_attested_ms, has_clock = excluded.has_clock, clock = "       \
    "excluded.clock, reset_count = excluded.reset_count, restart_count = excluded.restart_count, " \
    "boot_id = excluded.boot_id, ima_index = excluded.ima_index, ima_offset = "                    \
    "excluded.ima_offset, pcr10 = excluded.pcr10, attestations = excluded.attestations, pending "  \
    "= excluded.pending, ek_fp = excluded.ek_fp, behind_ms = excluded.behind_ms"

/* The columns a round may change, numbered as bind_node() binds them. */
#define NODE_SET_NUMBERED                                                                          \
    "ek_pub = ?2, ek_cert = ?3, ak_pub = ?4, ak_name = ?5, activated = ?6, secret = ?7, state = "  \
    "?8, reason = ?9, registered_ms = ?10, last_attested_ms = ?11, has_clock = ?12, clock = ?13, " \
    "reset_count = ?14, restart_count = ?15, boot_id = ?16, ima_index = ?17, ima_offset = ?18, "   \
    "pcr10 = ?19, attestations = ?20, pending = ?21, behind_ms = ?23"

static void node_from_row(sqlite3_stmt *st, struct node_record *n) {
    memset(n, 0, sizeof(*n));
    copy_text(n->name, sizeof(n->name), st, 0);
    n->ek_pub_len = copy_blob(n->ek_pub, sizeof(n->ek_pub), st, 1);
    n->ek_cert_len = copy_blob(n->ek_cert, sizeof(n->ek_cert), st, 2);
    n->ak_pub_len = copy_blob(n->ak_pub, sizeof(n->ak_pub), st, 3);
    n->ak_name_len = copy_blob(n->ak_name, sizeof(n->ak_name), st, 4);
    n->activated = sqlite3_column_int(st, 5) != 0;
    n->has_secret = copy_blob(n->secret, sizeof(n->secret), st, 6) == sizeof(n->secret);
    if (node_state_parse((const char *)sqlite3_column_text(st, 7), &n->state) < 0 ||
        n->state == NODE_STALE) {
        n->state = NODE_UNTRUSTED; /* a state no verifier wrote: trust nothing */
    }
    copy_text(n->reason, sizeof(n->reason), st, 8);
    n->registered_ms = sqlite3_column_int64(st, 9);
    n->last_attested_ms = sqlite3_column_int64(st, 10);
    n->has_clock = sqlite3_column_int(st, 11) != 0;
    n->clock = (uint64_t)sqlite3_column_int64(st, 12);
    n->reset_count = (uint32_t)sqlite3_column_int64(st, 13);
    n->restart_count = (uint32_t)sqlite3_column_int64(st, 14);
    copy_text(n->boot_id, sizeof(n->boot_id), st, 15);
    n->ima_index = (uint64_t)sqlite3_column_int64(st, 16);
    n->ima_offset = (uint64_t)sqlite3_column_int64(st, 17);
    copy_blob(&n->pcr10[0][0], sizeof(n->pcr10), st, 18);
    n->attestations = (uint64_t)sqlite3_column_int64(st, 19);
    n->pending = (uint32_t)sqlite3_column_int64(st, 20);
    copy_text(n->ek_fp, sizeof(n->ek_fp), st, 21);
    n->behind_ms = sqlite3_column_int64(st, 22);
    n->version = (uint64_t)sqlite3_column_int64(st, 23);
}

static int sq_node_get(struct store *base, const char *name, struct node_record *ret) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int rc, r;

    r = stmt_get(s, STMT_NODE_GET, "SELECT " NODE_READ_COLS " FROM nodes WHERE name = ?",
                 "preparing a node query", &st);
    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        node_from_row(st, ret);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : sql_rc(s, rc, "reading a node");
    }
    stmt_done(st);
    return r;
}

static void bind_node(sqlite3_stmt *st, const struct node_record *n) {
    sqlite3_bind_text(st, 1, n->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, n->ek_pub, (int)n->ek_pub_len, SQLITE_STATIC);
    if (n->ek_cert_len) {
        sqlite3_bind_blob(st, 3, n->ek_cert, (int)n->ek_cert_len, SQLITE_STATIC);
    }
    sqlite3_bind_blob(st, 4, n->ak_pub, (int)n->ak_pub_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, n->ak_name, (int)n->ak_name_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, n->activated);
    if (n->has_secret) {
        sqlite3_bind_blob(st, 7, n->secret, sizeof(n->secret), SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 8, node_state_name(n->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, n->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, n->registered_ms);
    sqlite3_bind_int64(st, 11, n->last_attested_ms);
    sqlite3_bind_int(st, 12, n->has_clock);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)n->clock);
    sqlite3_bind_int64(st, 14, n->reset_count);
    sqlite3_bind_int64(st, 15, n->restart_count);
    sqlite3_bind_text(st, 16, n->boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 17, (sqlite3_int64)n->ima_index);
    sqlite3_bind_int64(st, 18, (sqlite3_int64)n->ima_offset);
    sqlite3_bind_blob(st, 19, n->pcr10, sizeof(n->pcr10), SQLITE_STATIC);
    sqlite3_bind_int64(st, 20, (sqlite3_int64)n->attestations);
    sqlite3_bind_int64(st, 21, n->pending);
    sqlite3_bind_text(st, 22, n->ek_fp, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 23, n->behind_ms);
    sqlite3_bind_int64(st, 24, (sqlite3_int64)n->version);
}

/* Run a cached write with `bind`'s parameters: 0, or 1 when it changed no
 * row, or a negative errno. */
static int put_with(struct sq_store *s, enum stmt_id id, const char *sql, const char *what,
                    void (*bind)(sqlite3_stmt *, const void *), const void *rec) {
    sqlite3_stmt *st;
    int r = stmt_get(s, id, sql, what, &st);

    if (r < 0) {
        return r;
    }
    bind(st, rec);
    r = sql_rc(s, sqlite3_step(st), what);
    if (r == 0 && sqlite3_changes(s->db) == 0) {
        r = 1;
    }
    stmt_done(st);
    return r;
}

static void bind_node_any(sqlite3_stmt *st, const void *n) {
    bind_node(st, n);
}

static int sq_node_put(struct store *base, struct node_record *n) {
    struct sq_store *s = sq(base);
    /* A round changes neither the name nor the EK fingerprint: an UPDATE of
     * the other columns rewrites the row's table page and no index page.
     * Each write goes through only over the version it was read at. */
    int r = 1;

    if (n->version > 0) {
        r = put_with(s, STMT_NODE_UPDATE,
                     "UPDATE nodes SET " NODE_SET_NUMBERED ", version = ?24 + 1"
                     " WHERE name = ?1 AND ek_fp = ?22 AND version = ?24",
                     "writing a node", bind_node_any, n);
        if (r == 1) {
            r = put_with(s, STMT_NODE_UPDATE_FP,
                         "UPDATE nodes SET " NODE_SET_NUMBERED ", ek_fp = ?22, version = ?24 + 1"
                         " WHERE name = ?1 AND version = ?24",
                         "writing a node", bind_node_any, n);
        }
    } else {
        r = put_with(s, STMT_NODE_PUT,
                     "INSERT INTO nodes (" NODE_COLS ", version) VALUES "
                     "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,"
                     "?22,?23,?24 + 1) ON CONFLICT(name) DO NOTHING",
                     "writing a node", bind_node_any, n);
    }
    if (r == 1) {
        log_warn("store: node %s changed since it was read (version %llu): not written", n->name,
                 (unsigned long long)n->version);
        return -ESTALE;
    }
    if (r == 0) {
        n->version++;
    }
    return r;
}

static int exec_text(struct sq_store *s, const char *sql, const char *arg, const char *what) {
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s, sqlite3_prepare_v2(s->db, sql, -1, &st, NULL), what);

    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    r = sql_rc(s, sqlite3_step(st), what);
    sqlite3_finalize(st);
    return r;
}

static int sq_node_delete(struct store *base, const char *name) {
    struct sq_store *s = sq(base);
    int r = exec_text(s, "DELETE FROM nodes WHERE name = ?", name, "deleting a node");
    if (r == 0 && sqlite3_changes(s->db) == 0) {
        return -ENOENT;
    }
    return r;
}

static int sq_node_foreach(struct store *base, int (*fn)(const struct node_record *, void *),
                           void *ud) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    struct node_record *n = malloc(sizeof(*n));
    int r, rc;

    if (!n) {
        return -ENOMEM;
    }
    r = sql_rc(s,
               sqlite3_prepare_v2(s->db, "SELECT " NODE_READ_COLS " FROM nodes ORDER BY name", -1,
                                  &st, NULL),
               "listing nodes");
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        node_from_row(st, n);
        if (fn(n, ud) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    free(n);
    return r;
}

#define POD_COLS                                                                            \
    "uid, node, namespace, name, state, reason, since_ms, unjudged, files, files_overflow," \
    " policy, files_bytes, gone_ms, files_dropped"

#define POD_SET                                                                                    \
    "node = excluded.node, namespace = excluded.namespace, name = excluded.name, state = "         \
    "excluded.state, reason = excluded.reason, since_ms = excluded.since_ms, unjudged = "          \
    "excluded.unjudged, files = excluded.files, files_overflow = excluded.files_overflow, policy " \
    "= excluded.policy, files_bytes = excluded.files_bytes, gone_ms = excluded.gone_ms, "          \
    "files_dropped = excluded.files_dropped"

/* The columns besides the pod's identity and place, numbered as bind_pod()
 * binds them. */
#define POD_SET_NUMBERED                                                                        \
    "state = ?5, reason = ?6, since_ms = ?7, unjudged = ?8, files = ?9, files_overflow = ?10, " \
    "policy = ?11, files_bytes = ?12, gone_ms = ?13, files_dropped = ?14"

static void pod_from_row(sqlite3_stmt *st, struct pod_record *p) {
    memset(p, 0, sizeof(*p));
    copy_text(p->uid, sizeof(p->uid), st, 0);
    copy_text(p->node, sizeof(p->node), st, 1);
    copy_text(p->ns, sizeof(p->ns), st, 2);
    copy_text(p->name, sizeof(p->name), st, 3);
    if (pod_state_parse((const char *)sqlite3_column_text(st, 4), &p->state) < 0) {
        p->state = POD_UNTRUSTED; /* a state no verifier wrote: trust nothing */
    }
    copy_text(p->reason, sizeof(p->reason), st, 5);
    p->since_ms = sqlite3_column_int64(st, 6);
    p->unjudged = sqlite3_column_int(st, 7) != 0;
    p->files = (uint32_t)sqlite3_column_int64(st, 8);
    p->files_overflow = sqlite3_column_int(st, 9) != 0;
    copy_text(p->policy, sizeof(p->policy), st, 10);
    p->files_bytes = (uint64_t)sqlite3_column_int64(st, 11);
    p->gone_ms = sqlite3_column_int64(st, 12);
    p->files_dropped = (uint64_t)sqlite3_column_int64(st, 13);
}

static int sq_pod_get(struct store *base, const char *uid, struct pod_record *ret) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int rc, r;

    r = stmt_get(s, STMT_POD_GET, "SELECT " POD_COLS " FROM pods WHERE uid = ?",
                 "preparing a pod query", &st);
    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        pod_from_row(st, ret);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : sql_rc(s, rc, "reading a pod");
    }
    stmt_done(st);
    return r;
}

static void bind_pod(sqlite3_stmt *st, const void *rec) {
    const struct pod_record *p = rec;

    sqlite3_bind_text(st, 1, p->uid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, pod_state_name(p->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, p->since_ms);
    sqlite3_bind_int(st, 8, p->unjudged);
    sqlite3_bind_int64(st, 9, p->files);
    sqlite3_bind_int(st, 10, p->files_overflow);
    sqlite3_bind_text(st, 11, p->policy, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)p->files_bytes);
    sqlite3_bind_int64(st, 13, p->gone_ms);
    sqlite3_bind_int64(st, 14, (sqlite3_int64)p->files_dropped);
}

static int sq_pod_put(struct store *base, const struct pod_record *p) {
    struct sq_store *s = sq(base);
    /* Most writes change a pod's verdict or counts, not where it is or its
     * name: an UPDATE of the other columns leaves the indexes alone. */
    int r = put_with(s, STMT_POD_UPDATE,
                     "UPDATE pods SET " POD_SET_NUMBERED
                     " WHERE uid = ?1 AND node = ?2 AND namespace = ?3 AND name = ?4",
                     "writing a pod", bind_pod, p);

    if (r == 1) {
        r = put_with(s, STMT_POD_PUT,
                     "INSERT INTO pods (" POD_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                     " ON CONFLICT(uid) DO UPDATE SET " POD_SET,
                     "writing a pod", bind_pod, p);
    }
    return r < 0 ? r : 0;
}

static int sq_pod_delete_node(struct store *base, const char *node) {
    struct sq_store *s = sq(base);
    int r = exec_text(s, "DELETE FROM pod_files WHERE uid IN (SELECT uid FROM pods WHERE node = ?)",
                      node, "deleting a node's pods' files");
    return r < 0 ? r
                 : exec_text(s, "DELETE FROM pods WHERE node = ?", node, "deleting a node's pods");
}

static int pods_foreach(struct sq_store *s, const char *node,
                        int (*fn)(const struct pod_record *, void *), void *ud) {
    sqlite3_stmt *st = NULL;
    struct pod_record p;
    int r, rc;

    r = sql_rc(s,
               sqlite3_prepare_v2(s->db,
                                  node ? "SELECT " POD_COLS " FROM pods WHERE node = ?"
                                         " ORDER BY namespace, name"
                                       : "SELECT " POD_COLS " FROM pods ORDER BY namespace, name",
                                  -1, &st, NULL),
               "listing pods");
    if (r == 0 && node) {
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    }
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        pod_from_row(st, &p);
        if (fn(&p, ud) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return r;
}

#define PENDING_COLS \
    "id, node, uid, container, entry, template, path, digest, violation, seen_ms, dropped"

static int sq_pending_add(struct store *base, const struct pending_record *p) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r;

    if (p->path_len > sizeof(p->path)) {
        return -EINVAL;
    }
    r = sql_rc(s,
               sqlite3_prepare_v2(s->db,
                                  "INSERT INTO pending (" PENDING_COLS
                                  ") VALUES (NULL,?,?,?,?,?,?,?,?,?,?)",
                                  -1, &st, NULL),
               "preparing a pending write");
    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, p->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->uid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->container, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)p->entry);
    sqlite3_bind_text(st, 5, p->template_name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, p->path, (int)p->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, p->digest, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, p->violation);
    sqlite3_bind_int64(st, 9, p->seen_ms);
    sqlite3_bind_int64(st, 10, p->dropped);
    r = sql_rc(s, sqlite3_step(st), "writing a pending measurement");
    sqlite3_finalize(st);
    return r;
}

static int sq_pending_list(struct store *base, const char *node, int64_t after,
                           struct pending_record *ret, size_t max) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int r, rc;

    r = sql_rc(s,
               sqlite3_prepare_v2(s->db,
                                  "SELECT " PENDING_COLS " FROM pending WHERE node = ? AND id > ?"
                                  " ORDER BY id LIMIT ?",
                                  -1, &st, NULL),
               "listing pending measurements");
    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct pending_record *p = &ret[n++];
        memset(p, 0, sizeof(*p));
        p->id = sqlite3_column_int64(st, 0);
        copy_text(p->node, sizeof(p->node), st, 1);
        copy_text(p->uid, sizeof(p->uid), st, 2);
        copy_text(p->container, sizeof(p->container), st, 3);
        p->entry = (uint64_t)sqlite3_column_int64(st, 4);
        copy_text(p->template_name, sizeof(p->template_name), st, 5);
        p->path_len = copy_blob(p->path, sizeof(p->path), st, 6);
        copy_text(p->digest, sizeof(p->digest), st, 7);
        p->violation = sqlite3_column_int(st, 8) != 0;
        p->seen_ms = sqlite3_column_int64(st, 9);
        p->dropped = (uint32_t)sqlite3_column_int64(st, 10);
    }
    sqlite3_finalize(st);
    return (int)n;
}

static int sq_pending_delete(struct store *base, int64_t id) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s, sqlite3_prepare_v2(s->db, "DELETE FROM pending WHERE id = ?", -1, &st, NULL),
                   "deleting a pending measurement");

    if (r < 0) {
        return r;
    }
    sqlite3_bind_int64(st, 1, id);
    r = sql_rc(s, sqlite3_step(st), "deleting a pending measurement");
    sqlite3_finalize(st);
    return r;
}

static int sq_pending_delete_node(struct store *base, const char *node) {
    struct sq_store *s = sq(base);
    return exec_text(s, "DELETE FROM pending WHERE node = ?", node,
                     "deleting a node's pending measurements");
}

static int sq_pending_count(struct store *base, uint64_t *ret) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s, sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM pending", -1, &st, NULL),
                   "counting pending measurements");

    if (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
        *ret = (uint64_t)sqlite3_column_int64(st, 0);
    } else if (r == 0) {
        r = sql_rc(s, sqlite3_errcode(s->db), "counting pending measurements");
    }
    sqlite3_finalize(st);
    return r;
}

static int sq_pending_nodes(struct store *base, int (*fn)(const char *node, void *ud), void *ud) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r, rc;

    r = sql_rc(s,
               sqlite3_prepare_v2(s->db, "SELECT DISTINCT node FROM pending ORDER BY node", -1, &st,
                                  NULL),
               "listing nodes with pending measurements");
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t && fn((const char *)t, ud) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return r;
}

static int sq_node_with_ek_fp(struct store *base, const char *ek_fp, const char *name, char *ret) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r, rc;

    r = sql_rc(s,
               sqlite3_prepare_v2(
                       s->db,
                       "SELECT name FROM nodes WHERE ek_fp = ? AND name != ? AND activated = 1 "
                       "LIMIT 1",
                       -1, &st, NULL),
               "looking up an EK");
    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, ek_fp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_text(ret, STORE_NAME_MAX + 1, st, 0);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : sql_rc(s, rc, "looking up an EK");
    }
    sqlite3_finalize(st);
    return r;
}

static int sq_pod_files_delete(struct store *base, const char *uid) {
    struct sq_store *s = sq(base);
    return exec_text(s, "DELETE FROM pod_files WHERE uid = ?", uid, "deleting a pod's files");
}

static int sq_pod_delete(struct store *base, const char *uid) {
    struct sq_store *s = sq(base);
    int r = store_pod_files_delete(base, uid);
    return r < 0 ? r : exec_text(s, "DELETE FROM pods WHERE uid = ?", uid, "deleting a pod");
}

static int sq_pod_file_add(struct store *base, const char *uid, const struct pod_file *f) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r;

    r = stmt_get(s, STMT_POD_FILE_ADD,
                 "INSERT OR IGNORE INTO pod_files (uid, path, digest, violation, entry)"
                 " VALUES (?,?,?,?,?)",
                 "preparing a pod file write", &st);
    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, f->path, (int)f->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, f->digest, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, f->violation);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)f->entry);
    r = sql_rc(s, sqlite3_step(st), "writing a pod file");
    if (r == 0) {
        r = sqlite3_changes(s->db) > 0;
    }
    stmt_done(st);
    return r;
}

static int sq_pod_files_foreach(struct store *base, const char *uid,
                                int (*fn)(const struct pod_file *, void *), void *ud) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    struct pod_file *f = malloc(sizeof(*f));
    int r, rc;

    if (!f) {
        return -ENOMEM;
    }
    r = sql_rc(s,
               sqlite3_prepare_v2(s->db,
                                  "SELECT path, digest, violation, entry FROM pod_files WHERE uid "
                                  "= ? ORDER BY entry",
                                  -1, &st, NULL),
               "listing a pod's files");
    if (r == 0) {
        sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
    }
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(f, 0, sizeof(*f));
        f->path_len = copy_blob(f->path, sizeof(f->path), st, 0);
        copy_text(f->digest, sizeof(f->digest), st, 1);
        f->violation = sqlite3_column_int(st, 2) != 0;
        f->entry = (uint64_t)sqlite3_column_int64(st, 3);
        r = fn(f, ud);
    }
    sqlite3_finalize(st);
    free(f);
    return r;
}

static int sq_pending_count_key(struct store *base, const char *node, const char *uid,
                                const char *container, uint64_t *ret) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s,
                   sqlite3_prepare_v2(s->db,
                                      "SELECT COUNT(*) FROM pending WHERE node = ? AND uid = ? AND "
                                      "container = ? AND dropped = 0",
                                      -1, &st, NULL),
                   "counting waiting measurements");

    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, container, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *ret = (uint64_t)sqlite3_column_int64(st, 0);
    } else {
        r = sql_rc(s, sqlite3_errcode(s->db), "counting waiting measurements");
    }
    sqlite3_finalize(st);
    return r;
}

static int sq_pending_mark_dropped(struct store *base, const char *node, const char *uid,
                                   const char *container, int64_t seen_ms) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s,
                   sqlite3_prepare_v2(s->db,
                                      "UPDATE pending SET dropped = dropped + 1 WHERE node = ? AND "
                                      "uid = ? AND container = ? AND dropped > 0",
                                      -1, &st, NULL),
                   "counting a dropped measurement");

    if (r < 0) {
        return r;
    }
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, container, -1, SQLITE_STATIC);
    r = sql_rc(s, sqlite3_step(st), "counting a dropped measurement");
    sqlite3_finalize(st);
    if (r == 0 && sqlite3_changes(s->db) == 0) {
        return store_pending_add_marker(base, node, uid, container, seen_ms);
    }
    return r;
}

static int sq_nonce_use(struct store *base, const uint8_t *nonce, size_t len, int64_t expires_ms) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st;
    int r = stmt_get(s, STMT_NONCE_USE,
                     "INSERT INTO used_nonces (nonce, expires_ms) VALUES (?, ?) "
                     "ON CONFLICT(nonce) DO NOTHING",
                     "recording a used nonce", &st);

    if (r < 0) {
        return r;
    }
    sqlite3_bind_blob(st, 1, nonce, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, expires_ms);
    r = sql_rc(s, sqlite3_step(st), "recording a used nonce");
    if (r == 0 && sqlite3_changes(s->db) == 0) {
        r = -EEXIST;
    }
    stmt_done(st);
    return r;
}

static int sq_nonce_purge(struct store *base, int64_t now_ms) {
    struct sq_store *s = sq(base);
    sqlite3_stmt *st = NULL;
    int r = sql_rc(s,
                   sqlite3_prepare_v2(s->db, "DELETE FROM used_nonces WHERE expires_ms < ?", -1,
                                      &st, NULL),
                   "forgetting expired nonces");

    if (r == 0) {
        sqlite3_bind_int64(st, 1, now_ms);
        r = sql_rc(s, sqlite3_step(st), "forgetting expired nonces");
    }
    sqlite3_finalize(st);
    return r < 0 ? r : sqlite3_changes(s->db);
}

static int secret_read(struct sq_store *s, const char *name, uint8_t *ret, size_t len) {
    sqlite3_stmt *st = NULL;
    int r = sql_rc(
            s, sqlite3_prepare_v2(s->db, "SELECT value FROM secrets WHERE name = ?", -1, &st, NULL),
            "reading a secret");

    if (r == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r = (size_t)sqlite3_column_bytes(st, 0) == len && copy_blob(ret, len, st, 0) == len
                        ? 0
                        : -EBADMSG;
        } else {
            r = rc == SQLITE_DONE ? -ENOENT : sql_rc(s, rc, "reading a secret");
        }
    }
    sqlite3_finalize(st);
    return r;
}

static int sq_secret(struct store *base, const char *name, uint8_t *ret, size_t len) {
    struct sq_store *s = sq(base);
    uint8_t fresh[64];
    sqlite3_stmt *st = NULL;
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
    r = sql_rc(s,
               sqlite3_prepare_v2(s->db,
                                  "INSERT INTO secrets (name, value) VALUES (?, ?) "
                                  "ON CONFLICT(name) DO NOTHING",
                                  -1, &st, NULL),
               "writing a secret");
    if (r == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, fresh, (int)len, SQLITE_STATIC);
        r = sql_rc(s, sqlite3_step(st), "writing a secret");
    }
    sqlite3_finalize(st);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return r < 0 ? r : secret_read(s, name, ret, len);
}

static int sq_pod_foreach_any(struct store *base, const char *node,
                              int (*fn)(const struct pod_record *, void *), void *ud) {
    return pods_foreach(sq(base), node, fn, ud);
}

static const struct store_ops sqlite_ops = {
        .name = "sqlite",
        .close = sq_close,
        .open_reader = sq_open_reader,
        .begin = sq_begin,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .savepoint = sq_savepoint,
        .release = sq_release,
        .rollback_to = sq_rollback_to,
        .in_transaction = sq_in_transaction,
        .sync = sq_sync,
        .checkpoints = sq_checkpoints,
        .node_get = sq_node_get,
        .node_put = sq_node_put,
        .node_delete = sq_node_delete,
        .node_with_ek_fp = sq_node_with_ek_fp,
        .node_foreach = sq_node_foreach,
        .pod_get = sq_pod_get,
        .pod_put = sq_pod_put,
        .pod_delete_node = sq_pod_delete_node,
        .pod_delete = sq_pod_delete,
        .pod_files_delete = sq_pod_files_delete,
        .pod_foreach = sq_pod_foreach_any,
        .pending_add = sq_pending_add,
        .pending_list = sq_pending_list,
        .pending_delete = sq_pending_delete,
        .pending_count_key = sq_pending_count_key,
        .pending_mark_dropped = sq_pending_mark_dropped,
        .pending_delete_node = sq_pending_delete_node,
        .pod_file_add = sq_pod_file_add,
        .pod_files_foreach = sq_pod_files_foreach,
        .pending_count = sq_pending_count,
        .pending_nodes = sq_pending_nodes,
        .nonce_use = sq_nonce_use,
        .nonce_purge = sq_nonce_purge,
        .secret = sq_secret,
        .shared = false,
};
