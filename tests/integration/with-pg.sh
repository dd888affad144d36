#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# with-pg.sh CMD [ARG...]: run CMD against a PostgreSQL server of its own
# (tests/integration/pg.sh: a fresh cluster in a temporary directory, on a
# Unix socket only), with KIMA_TEST_DB and PG_DSN set to its connection
# string, then stop the server and remove the directory. CMD's status is
# the script's; 77 (skip) when the PostgreSQL server binaries are missing.
# The server also has a role "kima_pw" that logs in only with the password
# "kima-test-pw" (scram-sha-256), for the tests of the password's sources:
# its connection string is in KIMA_TEST_DB_PW (without the password).
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/pg.sh
. "$here/pg.sh"

[ $# -ge 1 ] || { echo "usage: with-pg.sh CMD [ARG...]"; exit 2; }
pg_need
base=$(mktemp -d "${TMPDIR:-/tmp}/kima-pg-XXXXXX") || exit 1
chmod 0711 "$base"
cleanup() {
    pg_stop
    rm -rf "$base"
}
trap cleanup EXIT

pg_start "$base/pg" || exit 1
pg_sql "CREATE ROLE kima_pw LOGIN PASSWORD 'kima-test-pw';
        GRANT ALL ON SCHEMA public TO kima_pw" >/dev/null || exit 1
hba="$base/pg/data/pg_hba.conf"
{ echo "local all kima_pw scram-sha-256"; cat "$hba"; } >"$hba.new" && mv "$hba.new" "$hba" &&
    chown nobody: "$hba" 2>/dev/null
pg_restart || exit 1
export KIMA_TEST_DB="$PG_DSN"
export KIMA_TEST_DB_PW="host=$PG_DIR port=$PG_PORT dbname=kima user=kima_pw"
export PG_DSN PG_DIR
"$@"
