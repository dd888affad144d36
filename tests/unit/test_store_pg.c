/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/store-pg.c, what only PostgreSQL has: several connections
 * writing at once (a node's compare-and-swap that waited for another
 * writer's lock, one nonce used by two), replicas migrating an empty
 * database together, the password's sources, a lost connection. Needs
 * KIMA_TEST_DB (tests/integration/with-pg.sh); skipped without it. */
#include "test-util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store.h"
#include "test-store-db.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    return test_tmpdir_new("store-pg", dir, sizeof(dir));
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_free(dir);
}

static int fresh(void **state) {
    (void)state;
    if (!test_db_pg()) {
        print_message("KIMA_TEST_DB is not set: run through tests/integration/with-pg.sh\n");
        skip();
    }
    test_db_pg_clean();
    return 0;
}

static struct store *open_store(void) {
    struct store *s = NULL;

    assert_int_equal(store_open(test_db_pg(), &s), 0);
    return s;
}

static void make_node(struct node_record *n, const char *name) {
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->ek_pub_len = 4;
    memcpy(n->ek_pub, "ekpk", 4);
    n->ak_pub_len = 4;
    memcpy(n->ak_pub, "akpk", 4);
    n->ak_name_len = 2;
    n->state = NODE_TRUSTED;
}

/* Wait (bounded: 20 s) until `n` sessions wait for a lock of kind
 * `locktype` ("transactionid", "advisory", ...). */
static void wait_lock_waiters(const char *locktype, long n) {
    char sql[200];
    long got = -1;

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = '%s'", locktype);
    for (int i = 0; i < 2000 && got != n; i++) {
        got = test_db_pg_value(sql);
        if (got != n) {
            usleep(10000);
        }
    }
    assert_int_equal(got, n);
}

struct writer {
    struct store *s;
    struct node_record n;
    uint8_t nonce[32];
    int r;
};

static void *put_node(void *ud) {
    struct writer *w = ud;

    w->r = store_node_put(w->s, &w->n);
    return NULL;
}

/* Two verifiers read node-1 at version 1; the first writes it and has not
 * committed; the second's write waits on the row's lock and, once the
 * first commits, finds the version moved on: -ESTALE, nothing written. */
static void test_cas_waits_then_stale(void **state) {
    struct store *a = open_store(), *b = open_store();
    struct node_record n, got;
    struct writer w = {.s = b};
    pthread_t t;
    (void)state;

    make_node(&n, "node-1");
    assert_int_equal(store_node_put(a, &n), 0);
    assert_int_equal(store_begin(a), 0);
    assert_int_equal(store_begin(b), 0);
    assert_int_equal(store_node_get(a, "node-1", &n), 0);
    assert_int_equal(store_node_get(b, "node-1", &w.n), 0);
    assert_int_equal(n.version, 1);
    assert_int_equal(w.n.version, 1);
    n.attestations = 10;
    w.n.attestations = 20;
    assert_int_equal(store_node_put(a, &n), 0);
    assert_int_equal(pthread_create(&t, NULL, put_node, &w), 0);
    wait_lock_waiters("transactionid", 1); /* b waits for a's row lock */
    assert_int_equal(store_commit(a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.r, -ESTALE);
    store_rollback(b);
    assert_int_equal(store_node_get(b, "node-1", &got), 0);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.attestations, 10);
    store_close(a);
    store_close(b);
}

/* Two verifiers' batches write node-1 and node-2 in opposite orders: a
 * deadlock. PostgreSQL aborts one write after deadlock_timeout (-EIO, the
 * batch's leader rolls back), the other goes through once the aborted one's
 * transaction ends, and both connections work afterwards: no hang. */
static void test_deadlock_between_batches(void **state) {
    struct store *a = open_store(), *b = open_store();
    struct node_record n1, n2, got;
    struct writer w = {.s = a};
    pthread_t t;
    int r;
    (void)state;

    make_node(&n1, "node-1");
    make_node(&n2, "node-2");
    assert_int_equal(store_node_put(a, &n1), 0);
    assert_int_equal(store_node_put(a, &n2), 0);
    assert_int_equal(store_begin(a), 0);
    assert_int_equal(store_begin(b), 0);
    assert_int_equal(store_node_get(a, "node-1", &n1), 0);
    assert_int_equal(store_node_get(a, "node-2", &w.n), 0);
    assert_int_equal(store_node_get(b, "node-2", &n2), 0);
    assert_int_equal(store_node_put(a, &n1), 0);                 /* a holds node-1 */
    assert_int_equal(store_node_put(b, &n2), 0);                 /* b holds node-2 */
    assert_int_equal(pthread_create(&t, NULL, put_node, &w), 0); /* a waits for node-2 */
    wait_lock_waiters("transactionid", 1);
    assert_int_equal(store_node_get(b, "node-1", &got), 0);
    r = store_node_put(b, &got); /* b waits for node-1: a deadlock */
    if (r < 0) {
        /* b was chosen: its transaction ends, a's write goes through. */
        assert_int_equal(r, -EIO);
        store_rollback(b);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.r, 0);
        assert_int_equal(store_commit(a), 0);
    } else {
        /* a was chosen (its wait began first) and b's write went through
         * once a's transaction ended. */
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.r, -EIO);
        store_rollback(a);
        assert_int_equal(store_commit(b), 0);
    }
    assert_int_equal(store_node_get(a, "node-1", &got), 0);
    assert_int_equal(got.version, 2); /* written once, by the batch that lived */
    assert_int_equal(store_node_get(b, "node-2", &got), 0);
    assert_int_equal(got.version, 2);
    store_close(a);
    store_close(b);
}

/* A replica frozen in the middle of its batch (a paused VM, SIGSTOP):
 * its transaction holds node-1's row and never ends. Another replica's
 * write of node-1 must not wait for it as long as statement_timeout (its
 * one writer would hold every other node's round meanwhile): past
 * lock_timeout it gives up as a node changed by another (-ESTALE), and
 * the same connection goes on. */
static void test_cas_held_lock_gives_up(void **state) {
    struct store *a = open_store(), *b = open_store();
    struct node_record n, got;
    struct writer w = {.s = b};
    pthread_t t;
    (void)state;

    make_node(&n, "node-1");
    assert_int_equal(store_node_put(a, &n), 0);
    make_node(&n, "node-2");
    assert_int_equal(store_node_put(a, &n), 0);
    assert_int_equal(store_begin(a), 0);
    assert_int_equal(store_node_get(a, "node-1", &n), 0);
    assert_int_equal(store_node_get(b, "node-1", &w.n), 0);
    assert_int_equal(store_node_put(a, &n), 0); /* a holds the row, and stops */
    assert_int_equal(store_begin(b), 0);
    assert_int_equal(store_savepoint(b), 0);
    assert_int_equal(pthread_create(&t, NULL, put_node, &w), 0);
    assert_int_equal(pthread_join(t, NULL), 0); /* a never commits */
    assert_int_equal(w.r, -ESTALE);
    store_rollback_to(b);
    assert_int_equal(store_node_get(b, "node-2", &got), 0); /* b's batch goes on */
    assert_int_equal(store_node_put(b, &got), 0);
    assert_int_equal(store_commit(b), 0);
    store_rollback(a);
    assert_int_equal(store_node_get(b, "node-1", &got), 0);
    assert_int_equal(got.version, 1);
    store_close(a);
    store_close(b);
}

static void *use_nonce(void *ud) {
    struct writer *w = ud;

    w->r = store_nonce_use(w->s, w->nonce, sizeof(w->nonce), 1000);
    return NULL;
}

/* One nonce used by two connections at once: the second waits for the
 * first's transaction; exactly one of them gets it (0), the other -EEXIST;
 * and when the first rolls back, the second gets it. */
static void test_nonce_once_across_connections(void **state) {
    struct store *a = open_store(), *b = open_store();
    struct writer w = {.s = b};
    pthread_t t;
    (void)state;

    for (int round = 0; round < 2; round++) {
        memset(w.nonce, 0x40 + round, sizeof(w.nonce));
        assert_int_equal(store_begin(a), 0);
        assert_int_equal(store_nonce_use(a, w.nonce, sizeof(w.nonce), 1000), 0);
        assert_int_equal(pthread_create(&t, NULL, use_nonce, &w), 0);
        wait_lock_waiters("transactionid", 1);
        if (round == 0) {
            assert_int_equal(store_commit(a), 0);
        } else {
            store_rollback(a);
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.r, round == 0 ? -EEXIST : 0);
        assert_int_equal(store_nonce_use(a, w.nonce, sizeof(w.nonce), 1000), -EEXIST);
    }
    store_close(a);
    store_close(b);
}

struct secret_reader {
    struct store *s;
    uint8_t key[32];
    int r;
};

static void *read_secret(void *ud) {
    struct secret_reader *w = ud;

    w->r = store_secret(w->s, "nonce-key", w->key, sizeof(w->key));
    return NULL;
}

/* Two replicas started together on a fresh database both find no
 * nonce-key and both make one: the second's insert waits for the first's
 * and then takes the key the first made (not a duplicate key error that
 * stops the replica). */
static void test_secret_made_once_by_two(void **state) {
    struct store *a = open_store(), *b = open_store();
    struct secret_reader w = {.s = b};
    uint8_t key[32];
    pthread_t t;
    (void)state;

    assert_int_equal(store_begin(a), 0);
    assert_int_equal(store_secret(a, "nonce-key", key, sizeof(key)), 0);
    assert_int_equal(pthread_create(&t, NULL, read_secret, &w), 0);
    wait_lock_waiters("transactionid", 1); /* b's insert waits for a's */
    assert_int_equal(store_commit(a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.r, 0);
    assert_memory_equal(w.key, key, sizeof(key));
    assert_int_equal(test_db_pg_value("SELECT count(*) FROM secrets"), 1);
    store_close(a);
    store_close(b);
}

/* Two verifier processes started together on an empty database: both
 * wait for the migration lock (held here until both wait), both open, the
 * schema is made once. */
static void test_migration_once(void **state) {
    PGconn *c = PQconnectdb(test_db_pg());
    PGresult *res;
    pid_t pid[2];
    int status;
    (void)state;

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    res = PQexec(c, "BEGIN; SELECT pg_advisory_xact_lock(1802071393)"); /* "kima" */
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            struct store *s = NULL;
            int r = store_open(test_db_pg(), &s);
            store_close(s);
            _exit(r == 0 ? 0 : 1);
        }
    }
    wait_lock_waiters("advisory", 2);
    res = PQexec(c, "COMMIT");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(c);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(test_db_pg_value("SELECT count(*) FROM kima_schema"), 1);
    assert_int_equal(test_db_pg_value("SELECT max(version) FROM kima_schema"), 7);
    assert_int_equal(test_db_pg_value("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                      "'public' AND tablename IN ('nodes', 'pods', 'pending', "
                                      "'pod_files', 'used_nonces', 'secrets')"),
                     6);
}

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* A password in the spec is refused, URI or key=value; one from a file
 * (its newline stripped) or from KIMA_DB_PASSWORD (then gone from the
 * environment) logs in a role that needs it; a wrong one does not; a
 * reader opens with the writer's. */
static char env_pw[] = "KIMA_DB_PASSWORD=kima-test-pw";

static void test_password_sources(void **state) {
    const char *spec = getenv("KIMA_TEST_DB_PW");
    char bad[TEST_DB_SPEC_MAX + 32], file[128], big[STORE_PASSWORD_MAX + 8];
    struct store *s = NULL, *r = NULL;
    (void)state;

    assert_non_null(spec);
    test_db_pg_sql("GRANT ALL ON SCHEMA public TO kima_pw");
    snprintf(bad, sizeof(bad), "%s password=kima-test-pw", spec);
    assert_int_equal(store_open(bad, &s), -EINVAL);
    assert_int_equal(store_open("postgres://kima_pw:kima-test-pw@localhost/kima", &s), -EINVAL);
    assert_int_equal(store_open("postgresql://localhost/kima?password=x", &s), -EINVAL);
    assert_null(s);
    unsetenv("KIMA_DB_PASSWORD");
    assert_int_equal(store_open(spec, &s), -EIO); /* none given: the server says no */

    snprintf(file, sizeof(file), "%s/pw", dir);
    write_file(file, "kima-test-pw\n", 0600);
    setenv("KIMA_DB_PASSWORD", "not-used", 1); /* the file wins; the variable goes */
    assert_int_equal(store_open_with(spec, file, &s), 0);
    assert_null(getenv("KIMA_DB_PASSWORD"));
    assert_int_equal(store_open_reader(s, &r), 0);
    store_close(r);
    store_close(s);
    s = NULL;
    write_file(file, "wrong\n", 0644); /* also warned about: readable by others */
    assert_int_equal(store_open_with(spec, file, &s), -EIO);
    write_file(file, "\n", 0600);
    assert_int_equal(store_open_with(spec, file, &s), -EINVAL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    write_file(file, big, 0600);
    assert_int_equal(store_open_with(spec, file, &s), -E2BIG);
    snprintf(bad, sizeof(bad), "%s/none", dir);
    assert_int_equal(store_open_with(spec, bad, &s), -ENOENT);
    assert_null(s);

    setenv("KIMA_DB_PASSWORD", "kima-test-pw", 1);
    assert_int_equal(store_open(spec, &s), 0);
    assert_null(getenv("KIMA_DB_PASSWORD"));
    assert_int_equal(store_open_reader(s, &r), 0); /* the writer's password */
    store_close(r);
    store_close(s);

    /* The bytes of the variable are wiped where they lie, not only taken
     * out of environ: /proc/PID/environ shows the process's first
     * environment block whatever environ points to. */
    assert_int_equal(putenv(env_pw), 0);
    assert_int_equal(store_open(spec, &s), 0);
    assert_null(getenv("KIMA_DB_PASSWORD"));
    assert_null(memmem(env_pw, sizeof(env_pw), "kima-test-pw", 12));
    store_close(s);
}

static void terminate_verifiers(void) {
    assert_true(test_db_pg_value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = 'kima-verifier'") >= 1);
}

/* The server ends the connection (a restart, a failover): the call that
 * meets it fails with -EIO, the next one outside a transaction reconnects;
 * inside a transaction the batch fails whole and the next one works. */
static void test_connection_lost(void **state) {
    struct store *s = open_store();
    struct node_record n, got;
    (void)state;

    make_node(&n, "node-1");
    assert_int_equal(store_node_put(s, &n), 0);
    terminate_verifiers();
    assert_int_equal(store_node_get(s, "node-1", &got), -EIO);
    assert_int_equal(store_node_get(s, "node-1", &got), 0);
    assert_int_equal(got.version, 1);

    assert_int_equal(store_begin(s), 0);
    got.attestations = 5;
    assert_int_equal(store_node_put(s, &got), 0);
    terminate_verifiers();
    make_node(&n, "node-2");
    assert_int_equal(store_node_put(s, &n), -EIO);
    assert_false(store_in_transaction(s));
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO); /* no reconnect mid-batch */
    assert_int_equal(store_commit(s), -EIO);
    store_rollback(s);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    assert_int_equal(n.version, 1); /* the lost batch wrote nothing */
    assert_int_equal(n.attestations, 0);
    n.attestations = 6;
    assert_int_equal(store_node_put(s, &n), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    assert_int_equal(n.attestations, 6);
    store_close(s);
}

/* The server refuses the reconnection for a while (a failover not done
 * yet): each call fails with -EIO, reconnection attempts back off, and
 * the store works again once the server takes it, without a reopen. */
static void test_reconnect_after_refusals(void **state) {
    const char *spec = getenv("KIMA_TEST_DB_PW");
    struct store *s = NULL;
    struct node_record n;
    int r = -EIO;
    (void)state;

    assert_non_null(spec);
    test_db_pg_sql("GRANT ALL ON SCHEMA public TO kima_pw");
    setenv("KIMA_DB_PASSWORD", "kima-test-pw", 1);
    assert_int_equal(store_open(spec, &s), 0);
    make_node(&n, "node-1");
    assert_int_equal(store_node_put(s, &n), 0);
    test_db_pg_sql("ALTER ROLE kima_pw NOLOGIN");
    terminate_verifiers();
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO); /* the loss */
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO); /* refused */
    assert_int_equal(store_begin(s), -EIO);
    assert_false(store_in_transaction(s));
    test_db_pg_sql("ALTER ROLE kima_pw LOGIN");
    for (int i = 0; i < 400 && r != 0; i++) {
        r = store_node_get(s, "node-1", &n); /* within the backoff: -EIO */
        if (r != 0) {
            usleep(50000); /* waits for a condition, up to 20 s */
        }
    }
    assert_int_equal(r, 0);
    assert_int_equal(n.version, 1);
    store_close(s);
}

/* What the database returns is input: a field longer than the record's is
 * an error, not an overflow; a state no verifier wrote reads as
 * untrusted. */
static int count_node2(const struct node_record *n, void *ud) {
    *(int *)ud += strcmp(n->name, "node-2") == 0 ? 1 : 100;
    return 0;
}

static void test_database_is_input(void **state) {
    struct store *s = open_store();
    struct node_record n;
    int seen;
    (void)state;

    make_node(&n, "node-1");
    assert_int_equal(store_node_put(s, &n), 0);
    test_db_pg_sql("UPDATE nodes SET state = 'bogus'");
    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    assert_int_equal(n.state, NODE_UNTRUSTED);
    test_db_pg_sql("UPDATE nodes SET ak_name = decode(repeat('00', 67), 'hex')");
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO);
    test_db_pg_sql("UPDATE nodes SET ak_name = '\\x00', boot_id = repeat('b', 65)");
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO);
    test_db_pg_sql("UPDATE nodes SET boot_id = repeat('b', 64)");
    assert_int_equal(store_node_get(s, "node-1", &n), 0);
    /* A bad row does not hide the others from a listing (the sweep). */
    make_node(&n, "node-2");
    assert_int_equal(store_node_put(s, &n), 0);
    test_db_pg_sql("UPDATE nodes SET boot_id = repeat('b', 65) WHERE name = 'node-1'");
    seen = 0;
    assert_int_equal(store_node_foreach(s, count_node2, &seen), 0);
    assert_int_equal(seen, 1);
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO);
    test_db_pg_sql("UPDATE nodes SET boot_id = 'b'");
    test_db_pg_sql("ALTER TABLE nodes ALTER COLUMN clock TYPE integer");
    assert_int_equal(store_node_get(s, "node-1", &n), -EIO); /* another type */
    store_close(s);
}

/* A COMMIT must be durable when acknowledged: synchronous_commit=off is
 * refused at open. */
static void test_synchronous_commit_off_refused(void **state) {
    struct store *s = NULL;
    (void)state;

    test_db_pg_sql("ALTER ROLE kima SET synchronous_commit = off");
    assert_int_equal(store_open(test_db_pg(), &s), -EPROTO);
    assert_null(s);
    test_db_pg_sql("ALTER ROLE kima RESET synchronous_commit");
    s = open_store();
    assert_true(store_shared(s));
    assert_string_equal(store_backend(s), "postgresql");
    store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_cas_waits_then_stale, fresh),
            cmocka_unit_test_setup(test_deadlock_between_batches, fresh),
            cmocka_unit_test_setup(test_cas_held_lock_gives_up, fresh),
            cmocka_unit_test_setup(test_nonce_once_across_connections, fresh),
            cmocka_unit_test_setup(test_migration_once, fresh),
            cmocka_unit_test_setup(test_secret_made_once_by_two, fresh),
            cmocka_unit_test_setup(test_password_sources, fresh),
            cmocka_unit_test_setup(test_connection_lost, fresh),
            cmocka_unit_test_setup(test_reconnect_after_refusals, fresh),
            cmocka_unit_test_setup(test_database_is_input, fresh),
            cmocka_unit_test_setup(test_synchronous_commit_off_refused, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
