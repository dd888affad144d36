#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The store on PostgreSQL over TCP with TLS (127.0.0.1 only): a server
# with ssl=on and a certificate of make-certs.sh's CA (SAN 127.0.0.1);
# sslmode=verify-full with that CA connects and logs TLS; another CA is
# refused; sslmode=require connects with a loud warning (the server is not
# authenticated); so does no TLS at all. Usage: test-store-pg-tls.sh
# STORE_PROBE
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
. "$HERE/pg.sh"
PROBE=$1
pg_need

T=$(mktemp -d "${TMPDIR:-/tmp}/kima-pgtls-XXXXXX") || exit 1
chmod 0711 "$T"
trap 'pg_stop; rm -rf "$T"' EXIT
bash "$HERE/make-certs.sh" "$T/certs" >/dev/null || { echo "make-certs failed"; exit 1; }
mkdir "$T/srv"
cp "$T/certs/server.pem" "$T/certs/server.key" "$T/srv/"
chmod 0600 "$T/srv/server.key"
[ "$(id -u)" -ne 0 ] || chown -R nobody: "$T/srv"
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PG_CONF_EXTRA="listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = '$T/srv/server.pem'
ssl_key_file = '$T/srv/server.key'"
pg_start "$T/pg" >"$T/start.log" 2>&1 || { echo "pg_start failed: $(cat "$T/start.log")"; exit 1; }
base="host=127.0.0.1 port=$PG_PORT dbname=kima user=kima"

# verify-full with the server's CA: connected, TLS logged, no warning.
expect 0 "$PROBE" "$base sslmode=verify-full sslrootcert=$T/certs/ca.pem"
has "$T/out" "store postgresql ok" "the probe wrote and read a node over TLS"
has "$T/err" "with TLS (TLSv1." "TLS is logged"
if grep -q "WARNING" "$T/err"; then bad "verify-full warned: $(cat "$T/err")"; else ok; fi
# By the DNS name in the certificate, as a URI.
expect 0 "$PROBE" "postgresql://kima@localhost:$PG_PORT/kima?sslmode=verify-full&sslrootcert=$T/certs/ca.pem"
# Another CA: refused, and libpq says why.
expect 1 "$PROBE" "$base sslmode=verify-full sslrootcert=$T/certs/other-ca.pem"
has "$T/err" "certificate verify failed" "another CA is refused"
# TLS without verifying the server, and no TLS: connected, warned.
expect 0 "$PROBE" "$base sslmode=require"
has "$T/err" "WARNING: PostgreSQL over TCP (127.0.0.1) with sslmode=require" "require is warned about"
expect 0 "$PROBE" "$base sslmode=disable"
has "$T/err" "without TLS" "no TLS is logged"
has "$T/err" "WARNING: PostgreSQL over TCP" "no TLS is warned about"
summary
