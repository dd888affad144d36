/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/store.c and its backends: nodes, pods, waiting measurements and
 * pods' kept measurements; transactions; a store of an older schema
 * brought up to date with its data kept, a newer one refused. On SQLite by
 * default; with KIMA_TEST_DB set to a PostgreSQL spec
 * (tests/integration/with-pg.sh sets it), every backend-neutral test runs
 * on that database, emptied before each test, the SQLite-only ones
 * (older schemas, the WAL, the checkpointer) are skipped, and the
 * PostgreSQL-only ones (test_store_pg.c) run. */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kima-config.h"
#include "store.h"
#include "test-store-db.h"

/* The schema version this verifier writes (store.c SCHEMA_VERSION). */
#define SCHEMA_NOW 7

static char dir[64], db[TEST_DB_SPEC_MAX];

static int setup(void **state) {
    (void)state;
    return test_tmpdir_new("store", dir, sizeof(dir));
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_free(dir);
}

/* Each test starts from a store that does not exist yet. */
static int fresh(void **state) {
    static unsigned n;
    (void)state;
    if (test_db_pg()) {
        snprintf(db, sizeof(db), "%s", test_db_pg());
        test_db_pg_clean();
        return 0;
    }
    snprintf(db, sizeof(db), "%s/kima-%u.db", dir, n++);
    return 0;
}

/* A test about SQLite itself: skipped on PostgreSQL. */
#define SQLITE_ONLY()                                                            \
    do {                                                                         \
        if (test_db_pg()) {                                                      \
            print_message("skipped on PostgreSQL: a test of the SQLite file\n"); \
            skip();                                                              \
        }                                                                        \
    } while (0)

static struct store *open_store(void) {
    struct store *s = NULL;
    assert_int_equal(store_open(db, &s), 0);
    assert_non_null(s);
    return s;
}

/* Run SQL on the database file directly, as another program would. */
static void sql(const char *text) {
    sqlite3 *h = NULL;
    char *err = NULL;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    if (sqlite3_exec(h, text, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("%s: %s", text, err);
    }
    sqlite3_close(h);
}

static int user_version(void) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int v;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void make_node(struct node_record *n, const char *name, uint8_t seed) {
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->ek_pub_len = 300;
    memset(n->ek_pub, seed, n->ek_pub_len);
    n->ek_cert_len = 5;
    memcpy(n->ek_cert, "\x30\x00\x01\x02\x03", 5);
    n->ak_pub_len = 280;
    memset(n->ak_pub, seed + 1, n->ak_pub_len);
    n->ak_name_len = 34;
    memset(n->ak_name, seed + 2, n->ak_name_len);
    n->activated = true;
    n->has_secret = true;
    memset(n->secret, 0xa5, sizeof(n->secret));
    n->state = NODE_TRUSTED;
    snprintf(n->reason, sizeof(n->reason), "every measurement is in policy");
    n->registered_ms = 1700000000000;
    n->last_attested_ms = 1700000000500;
    n->has_clock = true;
    n->clock = 0x123456789abcull;
    n->reset_count = 3;
    n->restart_count = 7;
    snprintf(n->boot_id, sizeof(n->boot_id), "boot-%u", seed);
    n->ima_index = 1234;
    n->ima_offset = 567890;
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        memset(n->pcr10[b], seed + b, IMA_DIGEST_MAX);
    }
    n->attestations = 42;
    n->pending = 2;
    snprintf(n->ek_fp, sizeof(n->ek_fp), "%064x", seed);
}

static void make_pod(struct pod_record *p, const char *uid, const char *node, const char *ns,
                     const char *name) {
    memset(p, 0, sizeof(*p));
    snprintf(p->uid, sizeof(p->uid), "%s", uid);
    snprintf(p->node, sizeof(p->node), "%s", node);
    snprintf(p->ns, sizeof(p->ns), "%s", ns);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->state = POD_UNTRUSTED;
    snprintf(p->reason, sizeof(p->reason), "/usr/bin/evil is not in policy");
    p->since_ms = 1700000001000;
    p->files = 9;
    p->files_overflow = true;
    snprintf(p->policy, sizeof(p->policy), "open5gs-upf@sha256:%064x", 7);
}

static int collect_nodes(const struct node_record *n, void *ud) {
    char *out = ud;
    strcat(out, n->name);
    strcat(out, ",");
    return strcmp(n->name, "node-c") == 0; /* stop after node-c */
}

static void test_nodes(void **state) {
    struct store *s = open_store();
    struct node_record a, b, got;
    char names[128] = "", other[STORE_NAME_MAX + 1];
    (void)state;

    assert_int_equal(store_node_get(s, "node-a", &got), -ENOENT);
    make_node(&a, "node-a", 1);
    assert_int_equal(store_node_put(s, &a), 0);
    assert_int_equal(store_node_get(s, "node-a", &got), 0);
    /* Every field comes back as written. */
    assert_memory_equal(&got, &a, sizeof(got));

    /* Optional blobs: no EK certificate, no pending secret. */
    make_node(&b, "node-b", 2);
    b.ek_cert_len = 0;
    memset(b.ek_cert, 0, sizeof(b.ek_cert));
    b.has_secret = false;
    memset(b.secret, 0, sizeof(b.secret));
    assert_int_equal(store_node_put(s, &b), 0);
    assert_int_equal(store_node_get(s, "node-b", &got), 0);
    assert_int_equal(got.ek_cert_len, 0);
    assert_false(got.has_secret);
    assert_memory_equal(&got, &b, sizeof(got));

    /* A put replaces the whole record. */
    b.activated = false;
    b.state = NODE_REGISTERED;
    b.ima_index = 0;
    assert_int_equal(store_node_put(s, &b), 0);
    assert_int_equal(store_node_get(s, "node-b", &got), 0);
    assert_memory_equal(&got, &b, sizeof(got));

    /* Name order, and a non-zero return stops the walk. */
    make_node(&b, "node-d", 4);
    assert_int_equal(store_node_put(s, &b), 0);
    make_node(&b, "node-c", 3);
    assert_int_equal(store_node_put(s, &b), 0);
    assert_int_equal(store_node_foreach(s, collect_nodes, names), 0);
    assert_string_equal(names, "node-a,node-b,node-c,");

    /* One TPM, one node: the EK's fingerprint finds the other node only. */
    assert_int_equal(store_node_with_ek_fp(s, a.ek_fp, "node-x", other), 0);
    assert_string_equal(other, "node-a");
    assert_int_equal(store_node_with_ek_fp(s, a.ek_fp, "node-a", other), -ENOENT);
    assert_int_equal(store_node_with_ek_fp(s, "00", "node-x", other), -ENOENT);

    assert_int_equal(store_node_delete(s, "node-a"), 0);
    assert_int_equal(store_node_get(s, "node-a", &got), -ENOENT);
    assert_int_equal(store_node_delete(s, "node-a"), -ENOENT);
    assert_int_equal(store_node_get(s, "node-b", &got), 0);
    store_close(s);
}

static int collect_pods(const struct pod_record *p, void *ud) {
    char *out = ud;
    strcat(out, p->ns);
    strcat(out, "/");
    strcat(out, p->name);
    strcat(out, ",");
    return 0;
}

static int count_files(const struct pod_file *f, void *ud) {
    (void)f;
    (*(int *)ud)++;
    return 0;
}

static int files_of(struct store *s, const char *uid) {
    int n = 0;
    assert_int_equal(store_pod_files_foreach(s, uid, count_files, &n), 0);
    return n;
}

static void add_file(struct store *s, const char *uid, const char *path, uint64_t entry) {
    struct pod_file f = {0};
    f.path_len = strlen(path);
    memcpy(f.path, path, f.path_len);
    snprintf(f.digest, sizeof(f.digest), "sha256:%064x", 1);
    f.entry = entry;
    assert_int_equal(store_pod_file_add(s, uid, &f), 1);
}

static void test_pods(void **state) {
    struct store *s = open_store();
    struct pod_record p, got;
    char list[256] = "";
    (void)state;

    assert_int_equal(store_pod_get(s, "uid-1", &got), -ENOENT);
    make_pod(&p, "uid-1", "node-1", "open5gs", "upf-0");
    assert_int_equal(store_pod_put(s, &p), 0);
    assert_int_equal(store_pod_get(s, "uid-1", &got), 0);
    assert_memory_equal(&got, &p, sizeof(got));

    /* unjudged is kept too (unused since schema 1, still a column), and
     * the count of measurements not kept. */
    p.unjudged = true;
    p.files_dropped = 42;
    p.files_overflow = false;
    memset(p.policy, 0, sizeof(p.policy));
    assert_int_equal(store_pod_put(s, &p), 0);
    assert_int_equal(store_pod_get(s, "uid-1", &got), 0);
    assert_memory_equal(&got, &p, sizeof(got));

    make_pod(&p, "uid-2", "node-2", "open5gs", "amf-0");
    assert_int_equal(store_pod_put(s, &p), 0);
    make_pod(&p, "uid-3", "node-1", "default", "zzz");
    assert_int_equal(store_pod_put(s, &p), 0);
    make_pod(&p, "uid-4", "node-1", "open5gs", "smf-0");
    assert_int_equal(store_pod_put(s, &p), 0);

    /* In namespace and name order; by node. */
    assert_int_equal(store_pod_foreach(s, collect_pods, list), 0);
    assert_string_equal(list, "default/zzz,open5gs/amf-0,open5gs/smf-0,open5gs/upf-0,");
    list[0] = 0;
    assert_int_equal(store_pod_foreach_node(s, "node-1", collect_pods, list), 0);
    assert_string_equal(list, "default/zzz,open5gs/smf-0,open5gs/upf-0,");
    list[0] = 0;
    assert_int_equal(store_pod_foreach_node(s, "node-9", collect_pods, list), 0);
    assert_string_equal(list, "");

    /* A pod's files go with it; only its files when asked. */
    add_file(s, "uid-1", "/usr/bin/upfd", 1);
    add_file(s, "uid-2", "/usr/bin/amfd", 1);
    add_file(s, "uid-3", "/bin/sh", 1);
    add_file(s, "uid-4", "/usr/bin/smfd", 1);
    assert_int_equal(store_pod_files_delete(s, "uid-4"), 0);
    assert_int_equal(files_of(s, "uid-4"), 0);
    assert_int_equal(store_pod_get(s, "uid-4", &got), 0);
    assert_int_equal(store_pod_delete(s, "uid-3"), 0);
    assert_int_equal(store_pod_get(s, "uid-3", &got), -ENOENT);
    assert_int_equal(files_of(s, "uid-3"), 0);

    /* A node's pods and their files; another node's stay. */
    assert_int_equal(store_pod_delete_node(s, "node-1"), 0);
    assert_int_equal(store_pod_get(s, "uid-1", &got), -ENOENT);
    assert_int_equal(store_pod_get(s, "uid-4", &got), -ENOENT);
    assert_int_equal(files_of(s, "uid-1"), 0);
    assert_int_equal(store_pod_get(s, "uid-2", &got), 0);
    assert_int_equal(files_of(s, "uid-2"), 1);
    store_close(s);
}

static void make_pending(struct pending_record *p, const char *node, const char *uid,
                         const void *path, size_t path_len, uint64_t entry) {
    memset(p, 0, sizeof(*p));
    snprintf(p->node, sizeof(p->node), "%s", node);
    snprintf(p->uid, sizeof(p->uid), "%s", uid);
    snprintf(p->container, sizeof(p->container), "%064x", (unsigned)entry);
    p->entry = entry;
    snprintf(p->template_name, sizeof(p->template_name), "ima-cgpath");
    memcpy(p->path, path, path_len);
    p->path_len = path_len;
    snprintf(p->digest, sizeof(p->digest), "sha256:%064x", (unsigned)entry);
    p->violation = entry % 2;
    p->seen_ms = 1700000000000 + (int64_t)entry;
}

static int collect_names(const char *node, void *ud) {
    strcat(ud, node);
    strcat(ud, ",");
    return 0;
}

static void test_pending(void **state) {
    struct store *s = open_store();
    struct pending_record p, got[8];
    char nodes[64] = "";
    uint64_t count;
    int n;
    (void)state;

    assert_int_equal(store_pending_count(s, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(store_pending_list(s, "node-1", 0, got, 8), 0);

    /* A path is bytes: a NUL or a byte that is no UTF-8 is kept. */
    make_pending(&p, "node-1", "uid-1", "/usr/bin/a\0b\xff", 13, 1);
    assert_int_equal(store_pending_add(s, &p), 0);
    make_pending(&p, "node-2", "", "/usr/bin/c", 10, 2);
    assert_int_equal(store_pending_add(s, &p), 0);
    for (uint64_t e = 3; e <= 5; e++) {
        make_pending(&p, "node-1", "uid-1", "/usr/bin/d", 10, e);
        assert_int_equal(store_pending_add(s, &p), 0);
    }
    p.path_len = sizeof(p.path) + 1;
    assert_int_equal(store_pending_add(s, &p), -EINVAL);

    assert_int_equal(store_pending_count(s, &count), 0);
    assert_int_equal(count, 5);
    assert_int_equal(store_pending_nodes(s, collect_names, nodes), 0);
    assert_string_equal(nodes, "node-1,node-2,");

    /* Oldest first, ids increasing, every field back. */
    n = store_pending_list(s, "node-1", 0, got, 8);
    assert_int_equal(n, 4);
    make_pending(&p, "node-1", "uid-1", "/usr/bin/a\0b\xff", 13, 1);
    p.id = got[0].id;
    assert_memory_equal(&got[0], &p, sizeof(p));
    for (int i = 1; i < n; i++) {
        assert_true(got[i].id > got[i - 1].id);
        assert_int_equal(got[i].entry, (uint64_t)i + 2);
    }
    /* Paged: `max` of them after an id. */
    n = store_pending_list(s, "node-1", got[0].id, got, 2);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].entry, 3);
    assert_int_equal(got[1].entry, 4);

    assert_int_equal(store_pending_delete(s, got[0].id), 0);
    n = store_pending_list(s, "node-1", 0, got, 8);
    assert_int_equal(n, 3);
    assert_int_equal(got[1].entry, 4);

    assert_int_equal(store_pending_delete_node(s, "node-1"), 0);
    assert_int_equal(store_pending_list(s, "node-1", 0, got, 8), 0);
    assert_int_equal(store_pending_list(s, "node-2", 0, got, 8), 1);
    assert_string_equal(got[0].uid, "");
    assert_int_equal(store_pending_count(s, &count), 0);
    assert_int_equal(count, 1);
    store_close(s);
}

struct files_seen {
    int n, stop_at;
    uint64_t entries[8];
    bool violations[8];
    size_t path_lens[8];
    uint8_t last_path[32];
};

static int collect_files(const struct pod_file *f, void *ud) {
    struct files_seen *seen = ud;
    assert_true(seen->n < 8);
    seen->entries[seen->n] = f->entry;
    seen->violations[seen->n] = f->violation;
    seen->path_lens[seen->n] = f->path_len;
    memcpy(seen->last_path, f->path, f->path_len < 32 ? f->path_len : 32);
    seen->n++;
    return seen->n == seen->stop_at ? 99 : 0;
}

static void test_pod_files(void **state) {
    struct store *s = open_store();
    struct pod_file f = {0}, g;
    struct files_seen seen = {0};
    (void)state;

    memcpy(f.path, "/usr/bin/upfd\0x", 15);
    f.path_len = 15;
    snprintf(f.digest, sizeof(f.digest), "sha256:%064x", 1);
    f.entry = 30;
    /* 1 when new, 0 when kept already (whatever the entry). */
    assert_int_equal(store_pod_file_add(s, "uid-1", &f), 1);
    g = f;
    g.entry = 99;
    assert_int_equal(store_pod_file_add(s, "uid-1", &g), 0);
    /* Another digest, a violation on the same path, another pod: new. */
    snprintf(g.digest, sizeof(g.digest), "sha256:%064x", 2);
    g.entry = 10;
    assert_int_equal(store_pod_file_add(s, "uid-1", &g), 1);
    g = f;
    g.violation = true;
    g.entry = 20;
    assert_int_equal(store_pod_file_add(s, "uid-1", &g), 1);
    assert_int_equal(store_pod_file_add(s, "uid-2", &f), 1);

    /* In entry order, the first entry kept. */
    assert_int_equal(store_pod_files_foreach(s, "uid-1", collect_files, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.entries[0], 10);
    assert_int_equal(seen.entries[1], 20);
    assert_true(seen.violations[1]);
    assert_int_equal(seen.entries[2], 30);
    assert_false(seen.violations[2]);
    /* Byte for byte: the path with its NUL. */
    assert_int_equal(seen.path_lens[2], 15);
    assert_memory_equal(seen.last_path, "/usr/bin/upfd\0x", 15);

    /* A non-zero return stops the walk and is returned. */
    memset(&seen, 0, sizeof(seen));
    seen.stop_at = 2;
    assert_int_equal(store_pod_files_foreach(s, "uid-1", collect_files, &seen), 99);
    assert_int_equal(seen.n, 2);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_pod_files_foreach(s, "uid-3", collect_files, &seen), 0);
    assert_int_equal(seen.n, 0);
    store_close(s);
}

/* The schema as its first version created it (git show d2a562a:verifier/store.c). */
static const char schema_v0[] =
        "CREATE TABLE nodes ("
        " name TEXT PRIMARY KEY, ek_pub BLOB NOT NULL, ek_cert BLOB, ak_pub BLOB NOT NULL,"
        " ak_name BLOB NOT NULL, activated INTEGER NOT NULL, secret BLOB, state TEXT NOT NULL,"
        " reason TEXT NOT NULL, registered_ms INTEGER NOT NULL, last_attested_ms INTEGER NOT NULL,"
        " has_clock INTEGER NOT NULL, clock INTEGER NOT NULL, reset_count INTEGER NOT NULL,"
        " restart_count INTEGER NOT NULL, boot_id TEXT NOT NULL, ima_index INTEGER NOT NULL,"
        " ima_offset INTEGER NOT NULL, pcr10 BLOB NOT NULL, attestations INTEGER NOT NULL);"
        "CREATE TABLE pods ("
        " uid TEXT PRIMARY KEY, node TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
        " state TEXT NOT NULL, reason TEXT NOT NULL, since_ms INTEGER NOT NULL,"
        " unjudged INTEGER NOT NULL);"
        "CREATE INDEX pods_node ON pods(node);"
        "INSERT INTO nodes VALUES ('node-1', x'0102', NULL, x'0304', x'000b0506', 1, NULL,"
        " 'trusted', 'ok', 1000, 2000, 1, 77, 2, 3, 'boot-1', 12, 3456, zeroblob(256), 9);"
        "INSERT INTO pods VALUES ('uid-1', 'node-1', 'open5gs', 'upf-0', 'trusted',"
        " 'every measurement is in policy open5gs-upf', 1500, 0);";

static void check_v0_data(struct store *s) {
    struct node_record n;
    struct pod_record p;

    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    assert_int_equal(n.ek_pub_len, 2);
    assert_memory_equal(n.ek_pub, "\x01\x02", 2);
    assert_int_equal(n.ak_name_len, 4);
    assert_true(n.activated);
    assert_false(n.has_secret);
    assert_int_equal(n.state, NODE_TRUSTED);
    assert_int_equal(n.last_attested_ms, 2000);
    assert_int_equal(n.clock, 77);
    assert_int_equal(n.reset_count, 2);
    assert_int_equal(n.restart_count, 3);
    assert_string_equal(n.boot_id, "boot-1");
    assert_int_equal(n.ima_index, 12);
    assert_int_equal(n.ima_offset, 3456);
    assert_int_equal(n.attestations, 9);
    /* The columns added since read as their defaults. */
    assert_int_equal(n.pending, 0);
    assert_string_equal(n.ek_fp, "");

    assert_int_equal(store_pod_get(s, "uid-1", &p), 0);
    assert_string_equal(p.node, "node-1");
    assert_string_equal(p.ns, "open5gs");
    assert_string_equal(p.name, "upf-0");
    assert_int_equal(p.state, POD_TRUSTED);
    assert_string_equal(p.reason, "every measurement is in policy open5gs-upf");
    assert_int_equal(p.since_ms, 1500);
    assert_int_equal(p.files, 0);
    assert_false(p.files_overflow);
    assert_string_equal(p.policy, "");
}

/* The tables added since are usable in a migrated store. */
static void check_current_schema(struct store *s) {
    struct node_record n;
    struct pending_record pr, got;
    struct pod_file f = {0};
    char other[STORE_NAME_MAX + 1];
    uint64_t count;

    make_node(&n, "node-2", 5);
    assert_int_equal(store_node_put(s, &n), 0);
    assert_int_equal(store_node_with_ek_fp(s, n.ek_fp, "node-3", other), 0);
    assert_string_equal(other, "node-2");

    make_pending(&pr, "node-1", "uid-9", "/bin/x", 6, 13);
    assert_int_equal(store_pending_add(s, &pr), 0);
    assert_int_equal(store_pending_list(s, "node-1", 0, &got, 1), 1);
    assert_int_equal(store_pending_count(s, &count), 0);
    assert_int_equal(count, 1);

    memcpy(f.path, "/bin/x", 6);
    f.path_len = 6;
    assert_int_equal(store_pod_file_add(s, "uid-1", &f), 1);
}

static void test_migrate_v0(void **state) {
    SQLITE_ONLY();
    struct store *s;
    (void)state;

    sql(schema_v0);
    assert_int_equal(user_version(), 0);
    s = open_store();
    check_v0_data(s);
    check_current_schema(s);
    store_close(s);
    assert_int_equal(user_version(), SCHEMA_NOW);

    /* Opened again: nothing to migrate, nothing lost. */
    s = open_store();
    check_v0_data(s);
    store_close(s);
    assert_int_equal(user_version(), SCHEMA_NOW);
}

/* Schema 1 had nodes.pending and the pending table already. */
static void test_migrate_v1(void **state) {
    SQLITE_ONLY();
    struct store *s;
    struct node_record n;
    (void)state;

    sql(schema_v0);
    sql("ALTER TABLE nodes ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;"
        "UPDATE nodes SET pending = 4;"
        "PRAGMA user_version = 1;");
    s = open_store();
    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    assert_int_equal(n.pending, 4);
    assert_string_equal(n.ek_fp, "");
    check_current_schema(s);
    store_close(s);
    assert_int_equal(user_version(), SCHEMA_NOW);
}

/* Schema 2 had the kept measurements, not their byte count, the time a
 * pod was found gone, or the count of what a waiting list could not keep. */
static void test_migrate_v2(void **state) {
    SQLITE_ONLY();
    struct store *s;
    struct pod_record p;
    struct pending_record got[2];
    (void)state;

    sql(schema_v0);
    sql("ALTER TABLE nodes ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE nodes ADD COLUMN ek_fp TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE pods ADD COLUMN files INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE pods ADD COLUMN files_overflow INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE pods ADD COLUMN policy TEXT NOT NULL DEFAULT '';"
        "UPDATE pods SET files = 5, policy = 'upf@1';"
        "CREATE TABLE pending ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, uid TEXT NOT NULL,"
        " container TEXT NOT NULL, entry INTEGER NOT NULL, template TEXT NOT NULL,"
        " path BLOB NOT NULL, digest TEXT NOT NULL, violation INTEGER NOT NULL,"
        " seen_ms INTEGER NOT NULL);"
        "INSERT INTO pending (node, uid, container, entry, template, path, digest, violation,"
        " seen_ms) VALUES ('node-1', 'uid-2', '', 7, 'ima-cgpath', x'2f78', 'sha256:00', 0, 9);"
        "PRAGMA user_version = 2;");
    s = open_store();
    assert_int_equal(store_pod_get(s, "uid-1", &p), 0);
    assert_int_equal(p.files, 5);
    assert_string_equal(p.policy, "upf@1");
    assert_int_equal(p.files_bytes, 0);
    assert_int_equal(p.gone_ms, 0);
    assert_int_equal(store_pending_list(s, "node-1", 0, got, 2), 1);
    assert_int_equal(got[0].entry, 7);
    assert_int_equal(got[0].dropped, 0);
    /* The new columns are usable. */
    assert_int_equal(store_pending_mark_dropped(s, "node-1", "uid-2", "", 10), 1);
    assert_int_equal(store_pending_mark_dropped(s, "node-1", "uid-2", "", 11), 0);
    assert_int_equal(store_pending_list(s, "node-1", 0, got, 2), 2);
    assert_int_equal(got[1].dropped, 2);
    p.files_bytes = 77;
    p.gone_ms = 1234;
    assert_int_equal(store_pod_put(s, &p), 0);
    assert_int_equal(store_pod_get(s, "uid-1", &p), 0);
    assert_int_equal(p.files_bytes, 77);
    assert_int_equal(p.gone_ms, 1234);
    store_close(s);
    assert_int_equal(user_version(), SCHEMA_NOW);
}

/* Schema 4 kept a pod's measurements but not how many could not be kept:
 * a v4 store (today's without pods.files_dropped) reads as none dropped,
 * keeps its kept measurements, and counts from then on. */
static void test_migrate_v4(void **state) {
    SQLITE_ONLY();
    struct store *s = open_store();
    struct pod_record p, got;
    (void)state;

    make_pod(&p, "uid-1", "node-1", "open5gs", "upf-0");
    snprintf(p.policy, sizeof(p.policy), "upf@sha256:%064x", 1);
    assert_int_equal(store_pod_put(s, &p), 0);
    add_file(s, "uid-1", "/usr/bin/upfd", 1);
    add_file(s, "uid-1", "/usr/bin/sh", 2);
    store_close(s);
    sql("ALTER TABLE pods DROP COLUMN files_dropped; PRAGMA user_version = 4;");

    s = open_store();
    assert_int_equal(user_version(), SCHEMA_NOW);
    assert_int_equal(store_pod_get(s, "uid-1", &got), 0);
    assert_int_equal(got.files_dropped, 0);
    assert_string_equal(got.policy, p.policy);
    assert_int_equal(files_of(s, "uid-1"), 2);
    got.files_dropped = 12345678901ull;
    assert_int_equal(store_pod_put(s, &got), 0);
    assert_int_equal(store_pod_get(s, "uid-1", &got), 0);
    assert_int_equal(got.files_dropped, 12345678901ull);
    store_close(s);
}

/* Whether `query` compiles against the store (a table, a column). */
static bool compiles(const char *query) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    bool yes;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    yes = sqlite3_prepare_v2(h, query, -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    sqlite3_close(h);
    return yes;
}

/* Whether pod_files has a rowid (a table of schema 5 or older). */
static bool pod_files_has_rowid(void) {
    return compiles("SELECT rowid FROM pod_files");
}

/* Schema 5 kept the measurements in a table with a rowid and an index of
 * its key: a v5 store is rebuilt without the rowid, every kept measurement
 * (path bytes, digest, violation, entry) kept, and still deduplicated. */
static void test_migrate_v5(void **state) {
    SQLITE_ONLY();
    struct store *s = open_store();
    struct pod_file f = {0};
    (void)state;

    assert_false(pod_files_has_rowid());
    add_file(s, "uid-1", "/usr/bin/upfd", 1);
    add_file(s, "uid-1", "/usr/bin/sh", 2);
    add_file(s, "uid-2", "/usr/bin/sh", 3);
    store_close(s);
    sql("CREATE TABLE old_files (uid TEXT NOT NULL, path BLOB NOT NULL, digest TEXT NOT NULL,"
        " violation INTEGER NOT NULL, entry INTEGER NOT NULL,"
        " PRIMARY KEY (uid, path, digest, violation));"
        "INSERT INTO old_files SELECT uid, path, digest, violation, entry FROM pod_files;"
        "DROP TABLE pod_files; ALTER TABLE old_files RENAME TO pod_files;"
        "PRAGMA user_version = 5;");
    assert_true(pod_files_has_rowid());

    s = open_store();
    assert_int_equal(user_version(), SCHEMA_NOW);
    assert_false(pod_files_has_rowid());
    /* The old table is dropped after the migration's commit. */
    assert_false(compiles("SELECT uid FROM pod_files_v5"));
    assert_int_equal(files_of(s, "uid-1"), 2);
    assert_int_equal(files_of(s, "uid-2"), 1);
    memcpy(f.path, "/usr/bin/sh", 11);
    f.path_len = 11;
    snprintf(f.digest, sizeof(f.digest), "sha256:%064x", 1);
    assert_int_equal(store_pod_file_add(s, "uid-1", &f), 0); /* kept already */
    f.entry = 9;
    memcpy(f.path, "/usr/bin/ls", 11);
    assert_int_equal(store_pod_file_add(s, "uid-1", &f), 1);
    assert_int_equal(files_of(s, "uid-1"), 3);
    store_close(s);

    /* A start cut short between the commit and the drop left the old
     * table: the next start drops it, the kept measurements untouched. */
    sql("CREATE TABLE pod_files_v5 (uid TEXT, path BLOB, digest TEXT, violation INTEGER,"
        " entry INTEGER); INSERT INTO pod_files_v5 VALUES ('uid-1', x'2f', 'd', 0, 1);");
    s = open_store();
    assert_false(compiles("SELECT uid FROM pod_files_v5"));
    assert_int_equal(files_of(s, "uid-1"), 3);
    store_close(s);
}

/* A store written by a newer verifier is refused, and left as it is. */
static void test_newer_refused(void **state) {
    struct store *s = open_store(), *t = NULL;
    struct node_record n;
    (void)state;

    make_node(&n, "node-1", 1);
    assert_int_equal(store_node_put(s, &n), 0);
    store_close(s);
    if (test_db_pg()) {
        test_db_pg_sql("UPDATE kima_schema SET version = 8");
        assert_int_equal(store_open(db, &t), -EPROTO);
        assert_null(t);
        test_db_pg_sql("UPDATE kima_schema SET version = 7");
        s = open_store();
        assert_int_equal(store_node_get(s, "node-1", &n), 0);
        store_close(s);
        return;
    }
    sql("PRAGMA user_version = 8;");
    assert_int_equal(store_open(db, &t), -EPROTO);
    assert_null(t);
    assert_int_equal(user_version(), SCHEMA_NOW + 1);
    sql("PRAGMA user_version = 6;");
    s = open_store();
    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    store_close(s);
}

static void test_transactions(void **state) {
    struct store *s = open_store(), *other;
    struct node_record n, got;
    struct pod_record p, pgot;
    struct pending_record pr;
    uint64_t count;
    (void)state;

    /* A rollback keeps nothing of what the transaction wrote. */
    assert_int_equal(store_begin(s), 0);
    make_node(&n, "node-1", 1);
    assert_int_equal(store_node_put(s, &n), 0);
    make_pod(&p, "uid-1", "node-1", "ns", "pod");
    assert_int_equal(store_pod_put(s, &p), 0);
    make_pending(&pr, "node-1", "uid-1", "/bin/x", 6, 1);
    assert_int_equal(store_pending_add(s, &pr), 0);
    assert_int_equal(store_node_get(s, "node-1", &got), 0); /* seen inside */
    store_rollback(s);
    assert_int_equal(store_node_get(s, "node-1", &got), -ENOENT);
    assert_int_equal(store_pod_get(s, "uid-1", &pgot), -ENOENT);
    assert_int_equal(store_pending_count(s, &count), 0);
    assert_int_equal(count, 0);

    /* A commit keeps all of it; another connection sees it only then. */
    other = open_store();
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(n.version, 1); /* counted up by the write rolled back */
    n.version = 0;
    assert_int_equal(store_node_put(s, &n), 0);
    assert_int_equal(store_pod_put(s, &p), 0);
    assert_int_equal(store_node_get(other, "node-1", &got), -ENOENT);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_node_get(other, "node-1", &got), 0);
    assert_int_equal(store_pod_get(other, "uid-1", &pgot), 0);
    store_close(other);

    /* Reopened: the committed state is there. */
    store_close(s);
    s = open_store();
    assert_int_equal(store_node_get(s, "node-1", &got), 0);
    assert_memory_equal(&got, &n, sizeof(got));
    store_close(s);
}

/* A writer's savepoint: released, its writes stay in the transaction;
 * rolled back to, only its writes go. store_sync syncs the WAL file, says
 * -EAGAIN when the WAL file is gone (it synced nothing), and is a no-op
 * without a WAL. */
static void test_savepoints_and_sync(void **state) {
    struct store *s = open_store(), *mem = NULL;
    struct node_record n, got;
    char wal[TEST_DB_SPEC_MAX + 8];
    (void)state;

    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_savepoint(s), 0);
    make_node(&n, "node-1", 1);
    assert_int_equal(store_node_put(s, &n), 0);
    assert_int_equal(store_release(s), 0);
    assert_int_equal(store_savepoint(s), 0);
    make_node(&n, "node-2", 2);
    assert_int_equal(store_node_put(s, &n), 0);
    store_rollback_to(s);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_node_get(s, "node-1", &got), 0);
    assert_int_equal(store_node_get(s, "node-2", &got), -ENOENT);
    if (test_db_pg()) {
        assert_int_equal(store_checkpoints(s), 0); /* the server's own */
        store_close(s);
        return;
    }
    snprintf(wal, sizeof(wal), "%s-wal", db);
    assert_int_equal(access(wal, F_OK), 0);
    /* The WAL file gone under the store: nothing to sync. */
    store_close(s);
    s = open_store();
    assert_int_equal(unlink(wal), 0);
    assert_int_equal(store_sync(s), -EAGAIN); /* none to open: nothing synced */
    store_close(s);
    s = open_store();
    n.version = 0; /* node-2's write was rolled back */
    assert_int_equal(store_node_put(s, &n), 0);
    assert_int_equal(store_sync(s), 0);
    store_close(s);
    assert_int_equal(store_open(":memory:", &mem), 0);
    assert_int_equal(store_sync(mem), 0);
    store_close(mem);
}

/* The WAL's pages are copied into the database file by the store's own
 * checkpoint thread once the WAL holds a few thousand pages, and what was
 * committed reads back whole afterwards and after a reopen. */
static void test_checkpoint_thread(void **state) {
    SQLITE_ONLY();
    struct store *s = open_store();
    struct node_record n, got;
    char name[32], wal[TEST_DB_SPEC_MAX + 8];
    struct stat st;
    (void)state;

    assert_int_equal(store_checkpoints(s), 0);
    /* Each node's row holds a few KB of blobs: 6,000 of them, committed a
     * hundred at a time, pass the 4,096 pages that wake the thread. */
    for (int b = 0; b < 60; b++) {
        assert_int_equal(store_begin(s), 0);
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof(name), "node-%d", b * 100 + i);
            make_node(&n, name, (uint8_t)i);
            n.ek_cert_len = 3000; /* about a page a row */
            memset(n.ek_cert, i, n.ek_cert_len);
            assert_int_equal(store_node_put(s, &n), 0);
        }
        assert_int_equal(store_commit(s), 0);
    }
    for (int i = 0; i < 500 && store_checkpoints(s) == 0; i++) {
        usleep(10000); /* waits for a condition, up to 5 s */
    }
    assert_true(store_checkpoints(s) > 0);
    snprintf(wal, sizeof(wal), "%s-wal", db);
    assert_int_equal(stat(db, &st), 0);
    assert_true(st.st_size > 4096 * 4096 / 2); /* the pages reached the database file */
    assert_int_equal(store_node_get(s, "node-5999", &got), 0);
    store_close(s);
    s = open_store();
    assert_int_equal(store_node_get(s, "node-0", &got), 0);
    assert_int_equal(store_node_get(s, "node-5999", &got), 0);
    store_close(s);
}

/* A node is written only over the version it was read at: of two
 * writers that read the same version, the second is refused (-ESTALE) and
 * writes nothing; a new node cannot be made over a stored one. */
static void test_node_compare_and_swap(void **state) {
    struct store *s = open_store();
    struct node_record a, b, got;
    (void)state;

    make_node(&a, "node-1", 1);
    assert_int_equal(a.version, 0);
    assert_int_equal(store_node_put(s, &a), 0);
    assert_int_equal(a.version, 1);
    make_node(&b, "node-1", 2);
    assert_int_equal(store_node_put(s, &b), -ESTALE); /* made over a stored node */
    assert_int_equal(store_node_get(s, "node-1", &a), 0);
    assert_int_equal(store_node_get(s, "node-1", &b), 0);
    assert_int_equal(a.version, 1);
    a.attestations = 10;
    b.attestations = 20;
    assert_int_equal(store_node_put(s, &a), 0);
    assert_int_equal(a.version, 2);
    assert_int_equal(store_node_put(s, &b), -ESTALE);
    assert_int_equal(b.version, 1);
    assert_int_equal(store_node_get(s, "node-1", &got), 0);
    assert_int_equal(got.attestations, 10);
    assert_int_equal(got.version, 2);
    /* Changing the EK fingerprint goes through the same check. */
    snprintf(got.ek_fp, sizeof(got.ek_fp), "%064d", 7);
    assert_int_equal(store_node_put(s, &got), 0);
    snprintf(b.ek_fp, sizeof(b.ek_fp), "%064d", 8);
    assert_int_equal(store_node_put(s, &b), -ESTALE);
    assert_int_equal(store_node_get(s, "node-1", &got), 0);
    assert_int_equal(got.version, 3);
    assert_string_equal(got.ek_fp,
                        "0000000000000000000000000000000000000000000000000000000000000007");
    store_close(s);
}

/* A nonce is used once in a store; purged once expired; the secret is made
 * once and read back the same, also after a reopen. */
static void test_nonces_and_secret(void **state) {
    struct store *s = open_store();
    uint8_t n1[32], n2[32], k1[32], k2[32], k3[16];
    (void)state;

    memset(n1, 1, sizeof(n1));
    memset(n2, 2, sizeof(n2));
    assert_int_equal(store_nonce_use(s, n1, sizeof(n1), 1000), 0);
    assert_int_equal(store_nonce_use(s, n1, sizeof(n1), 5000), -EEXIST);
    assert_int_equal(store_nonce_use(s, n2, sizeof(n2), 3000), 0);
    assert_int_equal(store_nonce_purge(s, 2000), 1); /* n1 only */
    assert_int_equal(store_nonce_use(s, n2, sizeof(n2), 3000), -EEXIST);
    assert_int_equal(store_nonce_use(s, n1, sizeof(n1), 9000), 0);
    /* Inside a transaction rolled back, the use is undone. */
    assert_int_equal(store_begin(s), 0);
    memset(n1, 3, sizeof(n1));
    assert_int_equal(store_nonce_use(s, n1, sizeof(n1), 9000), 0);
    store_rollback(s);
    assert_int_equal(store_nonce_use(s, n1, sizeof(n1), 9000), 0);

    assert_int_equal(store_secret(s, "nonce-key", k1, sizeof(k1)), 0);
    assert_int_equal(store_secret(s, "nonce-key", k2, sizeof(k2)), 0);
    assert_memory_equal(k1, k2, sizeof(k1));
    assert_int_equal(store_secret(s, "nonce-key", k3, sizeof(k3)), -EBADMSG);
    assert_int_equal(store_secret(s, "x", k3, 8), -EINVAL);
    assert_int_equal(store_shared(s), test_db_pg() != NULL);
    store_close(s);
    s = open_store();
    memset(k2, 0, sizeof(k2));
    assert_int_equal(store_secret(s, "nonce-key", k2, sizeof(k2)), 0);
    assert_memory_equal(k1, k2, sizeof(k1));
    store_close(s);
}

static void test_open_errors(void **state) {
    SQLITE_ONLY();
    struct store *s = NULL;
    char path[160];
    (void)state;

    snprintf(path, sizeof(path), "%s/no/such/folder/kima.db", dir);
    assert_int_equal(store_open(path, &s), -EIO);
    assert_null(s);
    store_close(NULL);
}

/* Which backend a spec names: libpq's URI or key=value is PostgreSQL, any
 * other path an SQLite file (one named like key=value with its folder). */
static void test_spec_kind(void **state) {
    (void)state;
    assert_int_equal(store_spec_kind("postgres://db.example/kima"), STORE_POSTGRESQL);
    assert_int_equal(store_spec_kind("postgresql://db/kima?sslmode=verify-full"), STORE_POSTGRESQL);
    assert_int_equal(store_spec_kind("host=db dbname=kima"), STORE_POSTGRESQL);
    assert_int_equal(store_spec_kind("dbname = kima"), STORE_POSTGRESQL);
    assert_int_equal(store_spec_kind("service=kima"), STORE_POSTGRESQL);
    assert_int_equal(store_spec_kind("kima.db"), STORE_SQLITE);
    assert_int_equal(store_spec_kind("/var/lib/kima/kima.db"), STORE_SQLITE);
    assert_int_equal(store_spec_kind("./host=x"), STORE_SQLITE);
    assert_int_equal(store_spec_kind("Host=x"), STORE_SQLITE);
    assert_int_equal(store_spec_kind("=x"), STORE_SQLITE);
    assert_int_equal(store_spec_kind("postgres:/x"), STORE_SQLITE);
    assert_int_equal(store_spec_kind(":memory:"), STORE_SQLITE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_nodes, fresh),
            cmocka_unit_test_setup(test_pods, fresh),
            cmocka_unit_test_setup(test_pending, fresh),
            cmocka_unit_test_setup(test_pod_files, fresh),
            cmocka_unit_test_setup(test_migrate_v0, fresh),
            cmocka_unit_test_setup(test_migrate_v1, fresh),
            cmocka_unit_test_setup(test_migrate_v2, fresh),
            cmocka_unit_test_setup(test_migrate_v4, fresh),
            cmocka_unit_test_setup(test_migrate_v5, fresh),
            cmocka_unit_test_setup(test_newer_refused, fresh),
            cmocka_unit_test_setup(test_transactions, fresh),
            cmocka_unit_test_setup(test_savepoints_and_sync, fresh),
            cmocka_unit_test_setup(test_checkpoint_thread, fresh),
            cmocka_unit_test_setup(test_node_compare_and_swap, fresh),
            cmocka_unit_test_setup(test_nonces_and_secret, fresh),
            cmocka_unit_test_setup(test_open_errors, fresh),
            cmocka_unit_test(test_spec_kind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
