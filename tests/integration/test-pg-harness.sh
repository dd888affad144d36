#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The PostgreSQL harness (pg.sh) that the store's tests stand on: a server
# started in a temporary directory answers SELECT 1 over its Unix socket,
# listens on no TCP port, runs beside a second server in another directory,
# keeps a committed table across pg_ctl restart, and is gone, with every
# process of it, after pg_stop. With PG_PROBE, libpq's PQconnectdb($PG_DSN)
# reaches it too. Skipped (77) only when the server binaries are missing.
# Usage: test-pg-harness.sh [PG_PROBE]
set -u
PROBE=${1:-}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
. "$HERE/pg.sh"
pg_need
T=$(mktemp -d "${TMPDIR:-/tmp}/kima-pg.XXXXXX")
# The servers run as nobody when this runs as root: let it through.
chmod 0711 "$T"
cleanup() {
    pg_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

# pg_sockets PID: "unix PATH" for each Unix socket PID listens on, "tcp
# PORT" for each TCP one (v4 or v6), from the socket inodes of its fds.
pg_sockets() {
    python3 - "$1" <<'EOF'
import os, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes.add(link[8:-1])
for name in ("tcp", "tcp6"):
    try:
        lines = open(f"/proc/net/{name}").read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if f[3] == "0A" and f[9] in inodes:
            print("tcp", int(f[1].split(":")[1], 16))
for line in open("/proc/net/unix").read().splitlines()[1:]:
    f = line.split()
    if len(f) >= 8 and f[6] in inodes:
        print("unix", f[7])
EOF
}

# pg_tree PID: PID and its children (the postmaster's backends and workers).
pg_tree() {
    python3 - "$1" <<'EOF'
import os, sys
root = sys.argv[1]
print(root)
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        stat = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    if stat[stat.rindex(")") + 2:].split()[1] == root:
        print(p)
EOF
}

# alive PID...: one of them runs (a zombie, exited but not yet reaped by
# whoever adopted it, does not count).
alive() {
    local p st
    for p in "$@"; do
        st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        st=${st##*) }
        [ "${st%% *}" = Z ] || return 0
    done
    return 1
}

# The harness's own refusals, before anything starts.
mkdir -p "$T/full" && touch "$T/full/x"
expect 1 pg_start "$T/full"
has "$T/out" "is not empty" "a directory with files"
expect 1 pg_start "$T/$(printf 'd%.0s' {1..100})"
has "$T/out" "too long for a Unix socket path" "a long path"
expect 1 pg_start "$T/with space"
has "$T/out" "has a character other than" "a path with a space"

# One server: SELECT 1 over the socket, the variables a test uses.
pg_start "$T/a" || { cat "$T/a/log" 2>/dev/null; exit 1; }
[ "$PGHOST" = "$T/a" ] && [ "$PGDATABASE" = kima ] && [ "$PGUSER" = kima ] && ok ||
    bad "PGHOST=$PGHOST PGDATABASE=$PGDATABASE PGUSER=$PGUSER"
[ "$PG_DSN" = "host=$T/a port=5432 dbname=kima user=kima" ] && ok || bad "PG_DSN=$PG_DSN"
[ "$(bash -c 'echo "$PGHOST"')" = "$T/a" ] && ok || bad "PGHOST is not exported"
[ "$(pg_sql 'SELECT 1')" = 1 ] && ok || bad "SELECT 1 over $T/a"
[ "$(pg_sql 'SELECT current_database(), current_user')" = "kima|kima" ] && ok ||
    bad "not database kima as kima"
[ "$(pg_sql 'SHOW fsync')" = on ] && ok || bad "fsync is not on"
[ "$(pg_sql 'SHOW listen_addresses')" = "" ] && ok || bad "listen_addresses is not empty"
pid_a=$(pg_pid) || bad "no postmaster.pid in $T/a"
[ "$(pg_sql 'SELECT pg_postmaster_start_time() IS NOT NULL')" = t ] && ok || bad "start time"

# Its sockets: the Unix one in $T/a (so the inode walk sees them) and no TCP.
pg_sockets "$pid_a" >"$T/sockets.a"
has "$T/sockets.a" "unix $T/a/.s.PGSQL.5432" "the Unix socket"
if grep -q '^tcp' "$T/sockets.a"; then bad "TCP: $(grep '^tcp' "$T/sockets.a")"; else ok; fi
if command -v ss >/dev/null; then
    if ss -Hltnp | grep -q "pid=$pid_a,"; then bad "ss sees a TCP listener of $pid_a"; else ok; fi
fi

# libpq: PQconnectdb($PG_DSN), SELECT 1, the server's version.
if [ -n "$PROBE" ]; then
    PG_DSN=$PG_DSN expect 0 "$PROBE"
    has "$T/out" "select 1" "pg-probe"
    want=$(pg_sql 'SHOW server_version_num')
    has "$T/out" "server_version $want" "pg-probe's PQserverVersion"
    PG_DSN="host=$T/nowhere dbname=kima user=kima" expect 1 "$PROBE"
    has "$T/err" "cannot connect" "pg-probe without a server"
    PG_DSN= expect 2 "$PROBE"
else
    echo "libpq not found at build time: pg-probe not built, its checks left out"
fi

# A second server at the same time, in its own directory: each sees only
# its own tables.
pg_sql 'CREATE TABLE only_a (v int)' || bad "CREATE TABLE on a"
pg_start "$T/b" || { cat "$T/b/log" 2>/dev/null; exit 1; }
pid_b=$(pg_pid) || bad "no postmaster.pid in $T/b"
[ "$pid_a" != "$pid_b" ] && alive "$pid_a" && alive "$pid_b" && ok || bad "two servers"
[ "$(pg_sql 'SELECT 1')" = 1 ] && ok || bad "SELECT 1 over $T/b"
[ "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename = 'only_a'")" = 0 ] && ok ||
    bad "b sees a's table"
pg_sockets "$pid_b" >"$T/sockets.b"
has "$T/sockets.b" "unix $T/b/.s.PGSQL.5432" "b's Unix socket"
if grep -q '^tcp' "$T/sockets.b"; then bad "TCP on b"; else ok; fi
pg_env "$T/a"
[ "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename = 'only_a'")" = 1 ] && ok ||
    bad "a lost its table with b started"

# A committed row survives a restart (a new postmaster).
pg_sql "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')" ||
    bad "write on a"
pg_restart || bad "pg_restart"
pid_a2=$(pg_pid) || bad "no postmaster.pid after restart"
[ "$pid_a2" != "$pid_a" ] && ok || bad "the postmaster is the same process after restart"
# It removes postmaster.pid just before it exits: wait for the exit.
wait_until 10 eval '! alive "$pid_a"' && ok || bad "the old postmaster $pid_a still runs"
[ "$(pg_sql 'SELECT v FROM kept')" = "before restart" ] && ok || bad "the row after restart"
pg_env "$T/b"
[ "$(pg_sql 'SELECT 1')" = 1 ] && ok || bad "b after a's restart"

# Stop both: no process of either is left, nor their sockets.
procs=$( (pg_tree "$pid_a2"; pg_tree "$pid_b") | tr '\n' ' ')
[ "$(echo "$procs" | wc -w)" -gt 4 ] && ok || bad "too few server processes: $procs"
expect 0 pg_stop
# shellcheck disable=SC2086
wait_until 10 eval '! alive $procs' && ok || bad "processes left after pg_stop: $procs"
[ ! -e "$T/a/.s.PGSQL.5432" ] && [ ! -e "$T/b/.s.PGSQL.5432" ] && ok || bad "a socket is left"
[ ! -e "$T/a/data/postmaster.pid" ] && [ ! -e "$T/b/data/postmaster.pid" ] && ok ||
    bad "a postmaster.pid is left"
[ -d "$T/a/data" ] && [ -s "$T/a/log" ] && ok || bad "pg_stop removed the data or the log"
expect 0 pg_stop
summary
