/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_TEST_STORE_DB_H
#define KIMA_TESTS_TEST_STORE_DB_H

/* The store the tests open: an SQLite file by default, or the PostgreSQL
 * database of KIMA_TEST_DB (a libpq spec: tests/integration/with-pg.sh
 * starts a server and sets it). A test that opens a store takes
 * test_db_pg() when it is not NULL, after test_db_pg_clean(). */

#include <stddef.h>

#define TEST_DB_SPEC_MAX 512

/* KIMA_TEST_DB when it names PostgreSQL, else NULL. Set but not usable
 * (too long, or no libpq in this build): the program exits 1. */
const char *test_db_pg(void);
/* Empty the database (DROP SCHEMA public CASCADE; CREATE SCHEMA public):
 * the next store_open makes the schema anew. Fails the test on error. */
void test_db_pg_clean(void);
/* Run SQL on the database (a connection of its own). Fails the test on
 * error. */
void test_db_pg_sql(const char *sql);
/* The first field of the first row of `sql`'s result as a number, -1
 * when there is none. Fails the test on error. */
long test_db_pg_value(const char *sql);
/* The spec a test's store_open takes into buf (bufsz bytes): the
 * PostgreSQL database, emptied, when KIMA_TEST_DB names one, else
 * sqlite_path. Fails the test when it does not fit. */
void test_db_choose(char *buf, size_t bufsz, const char *sqlite_path);

#endif
