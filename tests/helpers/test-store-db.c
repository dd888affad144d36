/* SPDX-License-Identifier: Apache-2.0 */
#include "test-store-db.h"

#include "test-util.h"

#include <string.h>

#include "kima-config.h"
#include "store.h"

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

const char *test_db_pg(void) {
    const char *spec = getenv("KIMA_TEST_DB");

    if (!spec || !*spec || store_spec_kind(spec) != STORE_POSTGRESQL) {
        return NULL;
    }
#ifndef HAVE_LIBPQ
    fprintf(stderr, "KIMA_TEST_DB names PostgreSQL, but this build has no libpq\n");
    exit(1);
#endif
    if (strlen(spec) >= TEST_DB_SPEC_MAX) {
        fprintf(stderr, "KIMA_TEST_DB is longer than %d bytes\n", TEST_DB_SPEC_MAX - 1);
        exit(1);
    }
    return spec;
}

#ifdef HAVE_LIBPQ
static long run(const char *sql) {
    PGconn *c = PQconnectdb(test_db_pg());
    PGresult *res = NULL;
    long v = -1;

    if (!c || PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect to %s: %s", test_db_pg(), c ? PQerrorMessage(c) : "no memory");
    }
    res = PQexec(c, sql);
    if (!res ||
        (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0 &&
        !PQgetisnull(res, 0, 0)) {
        v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    PQfinish(c);
    return v;
}
#else
static long run(const char *sql) {
    fail_msg("no libpq: %s", sql);
    return -1;
}
#endif

void test_db_pg_clean(void) {
    run("SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
}

void test_db_pg_sql(const char *sql) {
    run(sql);
}

long test_db_pg_value(const char *sql) {
    return run(sql);
}

void test_db_choose(char *buf, size_t bufsz, const char *sqlite_path) {
    const char *pg = test_db_pg();

    if ((size_t)snprintf(buf, bufsz, "%s", pg ? pg : sqlite_path) >= bufsz) {
        fail_msg("the store's spec does not fit %zu bytes", bufsz);
    }
    if (pg) {
        test_db_pg_clean();
    }
}
