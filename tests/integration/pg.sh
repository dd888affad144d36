# SPDX-License-Identifier: Apache-2.0
# A PostgreSQL server of the test's own (sourced): Debian's postgresql-15
# binaries, a fresh cluster (initdb) in a directory of the test, reachable
# only on a Unix socket in that directory (no TCP), trust authentication,
# started and stopped with pg_ctl. It never uses, starts or stops the
# system's cluster or service. Every wait is bounded (PG_TIMEOUT seconds,
# default 30); several servers may run at once, from one test or from tests
# in parallel, each in its own directory with its own socket. The caller's
# EXIT trap calls pg_stop.
#
#   pg_need              exit 77 (skip) when the server binaries are missing
#   pg_bin_dir           print the highest /usr/lib/postgresql/*/bin that has
#                        initdb, pg_ctl, postgres and psql; 1 when none does
#                        ($PG_LIB instead of /usr/lib/postgresql if set)
#   pg_start DIR         a new cluster in DIR/data (DIR empty or missing; its
#                        parents reachable by the server's user, see below),
#                        socket DIR/.s.PGSQL.5432, log DIR/log, a database
#                        "kima" whose superuser is "kima"; then pg_env DIR
#   pg_env DIR           export PGHOST=DIR PGPORT PGDATABASE=kima PGUSER=kima
#                        and set PG_DSN ("host=DIR port=5432 dbname=kima
#                        user=kima", for PQconnectdb), PG_DIR=DIR
#   pg_sql SQL...        run SQL with psql on the server of $PGHOST, one
#                        row a line, fields separated by "|"
#   pg_pid [DIR]         print the postmaster's pid (postmaster.pid)
#   pg_restart [DIR]     pg_ctl restart -m fast (default: $PG_DIR)
#   pg_stop [DIR]        stop DIR's server, or with no DIR every server this
#                        shell started; nothing when none runs. It removes
#                        nothing: DIR is the caller's to remove.
#
# PostgreSQL refuses to run as root. As root, the servers run as "nobody"
# (runuser): it exists on every Debian system, owns nothing, and so cannot
# touch the system's cluster, which the package's "postgres" user owns; no
# user is created. DIR is made and chowned to nobody; its parents must let
# nobody through (mode o+x: a test's `mktemp -d` directory is 0700, chmod it
# 0711). As any other user, the servers run as that user.

PG_PORT=5432
PG_STARTED=()

pg_bin_dir() {
    local d best="" v bestv=0
    for d in "${PG_LIB:-/usr/lib/postgresql}"/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && [ -x "$d/psql" ] ||
            continue
        v=${d#"${PG_LIB:-/usr/lib/postgresql}"/}
        v=${v%/bin}
        [[ $v =~ ^[0-9]+$ ]] || continue
        if [ "$v" -gt "$bestv" ]; then
            bestv=$v
            best=$d
        fi
    done
    [ -n "$best" ] || return 1
    echo "$best"
}

pg_need() {
    if ! pg_bin_dir >/dev/null; then
        echo "postgresql-15 is not installed: tests/tools/install-deps.sh installs it"
        exit 77
    fi
    if [ "$(id -u)" -eq 0 ] && ! command -v runuser >/dev/null && [ ! -x /usr/sbin/runuser ]; then
        echo "runuser (util-linux) is missing: PostgreSQL cannot run as root without it"
        exit 77
    fi
}

# pg_as CMD...: CMD as the servers' user, from a directory that user can
# enter (the binaries complain about an unreadable working directory).
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && "$(command -v runuser || echo /usr/sbin/runuser)" -u nobody -- "$@")
    else
        (cd / && "$@")
    fi
}

# pg_dir_ok DIR: a path that fits a Unix socket address (108 bytes with the
# socket's name) and needs no quoting in postgresql.conf or a connection
# string.
pg_dir_ok() {
    local dir=$1
    case "$dir" in
    /*) ;;
    *) echo "pg: $dir is not an absolute path"; return 1 ;;
    esac
    if [[ $dir =~ [^A-Za-z0-9/._+-] ]]; then
        echo "pg: $dir has a character other than letters, digits and /._+-"
        return 1
    fi
    if [ $((${#dir} + ${#PG_PORT} + 10)) -gt 107 ]; then
        echo "pg: $dir is too long for a Unix socket path (at most $((97 - ${#PG_PORT})) bytes)"
        return 1
    fi
}

pg_start() {
    local dir=${1%/} bin t=${PG_TIMEOUT:-30}
    bin=$(pg_bin_dir) || { echo "pg: no PostgreSQL server binaries"; return 1; }
    pg_dir_ok "$dir" || return 1
    mkdir -p "$dir" || return 1
    if [ -n "$(ls -A "$dir")" ]; then
        echo "pg: $dir is not empty"
        return 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown nobody: "$dir" && chmod 0700 "$dir" || return 1
        if ! pg_as test -w "$dir"; then
            echo "pg: user nobody cannot reach $dir: its parents need mode o+x"
            return 1
        fi
    fi
    pg_as "$bin/initdb" -D "$dir/data" -U kima --auth=trust --no-locale -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1 || { echo "pg: initdb failed: $(tail -3 "$dir/initdb.log")"; return 1; }
    # Appended last, so these win over initdb's defaults. initdb's own
    # files need no fsync (a throwaway cluster); the server's writes do,
    # as in production.
    cat >>"$dir/data/postgresql.conf" <<EOF

# tests/integration/pg.sh
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
fsync = on
synchronous_commit = on
shared_buffers = 16MB
max_connections = 50
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
    [ -z "${PG_CONF_EXTRA:-}" ] || printf '%s\n' "$PG_CONF_EXTRA" >>"$dir/data/postgresql.conf"
    PG_STARTED+=("$dir")
    pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t "$t" start >"$dir/pg_ctl.log" 2>&1 ||
        { echo "pg: the server did not start: $(tail -5 "$dir/log" 2>/dev/null)"; return 1; }
    "$bin/psql" -X -q -h "$dir" -p "$PG_PORT" -U kima -d postgres -v ON_ERROR_STOP=1 \
        -c 'CREATE DATABASE kima' >>"$dir/pg_ctl.log" 2>&1 ||
        { echo "pg: CREATE DATABASE failed: $(tail -3 "$dir/pg_ctl.log")"; return 1; }
    pg_env "$dir"
}

pg_env() {
    PG_DIR=${1%/}
    export PGHOST=$PG_DIR PGPORT=$PG_PORT PGDATABASE=kima PGUSER=kima
    PG_DSN="host=$PG_DIR port=$PG_PORT dbname=kima user=kima"
}

pg_sql() {
    "$(pg_bin_dir)/psql" -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -c "$*"
}

pg_pid() {
    local dir=${1:-$PG_DIR} pid
    [ -r "$dir/data/postmaster.pid" ] || return 1
    read -r pid <"$dir/data/postmaster.pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

pg_restart() {
    local dir=${1:-$PG_DIR} t=${PG_TIMEOUT:-30}
    pg_as "$(pg_bin_dir)/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w -t "$t" restart \
        >>"$dir/pg_ctl.log" 2>&1 || { echo "pg: restart failed: $(tail -5 "$dir/log")"; return 1; }
}

# pg_stop_one DIR: fast shutdown (sessions ended, a checkpoint), then an
# immediate one, then SIGKILL: each bounded, so a stuck server cannot hang
# the test's cleanup.
pg_stop_one() {
    local dir=$1 bin pid t=${PG_TIMEOUT:-30}
    pid=$(pg_pid "$dir") || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    bin=$(pg_bin_dir) || return 1
    pg_as "$bin/pg_ctl" -D "$dir/data" -m fast -w -t "$t" stop >>"$dir/pg_ctl.log" 2>&1 && return 0
    pg_as "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >>"$dir/pg_ctl.log" 2>&1 &&
        return 0
    # Only a postgres process: a stale pid file may name another one now.
    if grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        echo "pg: the server in $dir did not stop; killed"
    fi
    return 1
}

pg_stop() {
    local d rc=0
    if [ $# -gt 0 ]; then
        pg_stop_one "${1%/}" || rc=1
        return $rc
    fi
    for d in "${PG_STARTED[@]}"; do
        pg_stop_one "$d" || rc=1
    done
    return $rc
}
