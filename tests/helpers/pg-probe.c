/* SPDX-License-Identifier: Apache-2.0 */
/* Connects to PostgreSQL through libpq, for tests/integration/
 * test-pg-harness.sh: PQconnectdb() with the connection string in $PG_DSN
 * (tests/integration/pg.sh sets it), then `SELECT 1`. Prints
 * "server_version N" (PQserverVersion, e.g. 150018) and "select 1"; on an
 * error its sentence on stderr and exit 1, 2 for a usage error.
 * Usage: pg-probe (with PG_DSN in the environment) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* A connection string longer than this is refused before libpq sees it. */
#define PG_PROBE_DSN_MAX 4096

static void conn_freep(PGconn **c) {
    if (*c) {
        PQfinish(*c);
    }
}

static void result_freep(PGresult **r) {
    if (*r) {
        PQclear(*r);
    }
}

/* `SELECT 1` on conn must give one row of one field, "1". */
static int select_one(PGconn *conn) {
    __attribute__((cleanup(result_freep))) PGresult *res = PQexec(conn, "SELECT 1");

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pg-probe: SELECT 1 failed: %s", PQerrorMessage(conn));
        return -EIO;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        fprintf(stderr, "pg-probe: SELECT 1 gave %d rows of %d fields\n", PQntuples(res),
                PQnfields(res));
        return -EBADMSG;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *dsn = getenv("PG_DSN");
    __attribute__((cleanup(conn_freep))) PGconn *conn = NULL;

    (void)argv;
    if (argc != 1 || !dsn || !*dsn) {
        fprintf(stderr, "usage: PG_DSN='host=DIR dbname=kima user=kima' pg-probe\n");
        return 2;
    }
    if (strlen(dsn) > PG_PROBE_DSN_MAX) {
        fprintf(stderr, "pg-probe: PG_DSN is longer than %d bytes\n", PG_PROBE_DSN_MAX);
        return 2;
    }
    conn = PQconnectdb(dsn);
    if (!conn) {
        fprintf(stderr, "pg-probe: out of memory\n");
        return 1;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pg-probe: cannot connect: %s", PQerrorMessage(conn));
        return 1;
    }
    printf("server_version %d\n", PQserverVersion(conn));
    if (select_one(conn) < 0) {
        return 1;
    }
    printf("select 1\n");
    return 0;
}
