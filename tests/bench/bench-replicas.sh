#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Several verifiers behind haproxy (tests/integration/haproxy.sh) under
# kima-loadgen's simulated nodes, offered more rounds than they can take:
# rounds/s answered and CPU per round of each part (verifiers, PostgreSQL,
# haproxy, the generator) with 1, 2 and 3 replicas on PostgreSQL, and with
# one replica on SQLite for comparison; then the failover time (one replica
# killed with SIGKILL in the middle of a run, the longest wait of a node
# between two 200s less its period). Everything on this machine: the
# figures say what the parts cost and how they share its cores, not how
# replicas on machines of their own would scale (docs/scale.md, "Several
# replicas").
#
# Usage: bench-replicas.sh --verifier BIN --loadgen BIN [--nodes N] [--rate R]
#          [--duration S] [--warmup S] [--replicas "1 2 3"] [--no-postgres]
#          [--no-sqlite] [--no-failover] [--keep]
# Without the verifier's PostgreSQL store (--db postgres://) or the
# postgresql-15 binaries, only the SQLite runs are made (said so).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
I=$HERE/../integration
. "$I/helpers.sh"
. "$I/pg.sh"
. "$I/haproxy.sh"
V= L= NODES=400 RATE=2000 DURATION=20 WARMUP=3 REPLICAS="1 2 3" PG=1 SQLITE=1 FAILOVER=1 KEEP=
usage() { sed -n '14,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
while [ $# -gt 0 ]; do
    case $1 in
    --verifier) V=$2 ;;
    --loadgen) L=$2 ;;
    --nodes) NODES=$2 ;;
    --rate) RATE=$2 ;;
    --duration) DURATION=$2 ;;
    --warmup) WARMUP=$2 ;;
    --replicas) REPLICAS=$2 ;;
    --no-postgres) PG=; shift; continue ;;
    --no-sqlite) SQLITE=; shift; continue ;;
    --no-failover) FAILOVER=; shift; continue ;;
    --keep) KEEP=1; shift; continue ;;
    *) usage ;;
    esac
    [ $# -ge 2 ] || usage
    shift 2
done
[ -n "$V" ] && [ -x "$V" ] || { echo "bench-replicas: --verifier BIN is needed" >&2; exit 64; }
[ -n "$L" ] && [ -x "$L" ] || { echo "bench-replicas: --loadgen BIN is needed" >&2; exit 64; }
need_tools openssl curl python3
haproxy_need
verifier_has_pg() { "$V" --help 2>&1 | grep -qi postgres || ldd "$V" 2>/dev/null | grep -q libpq; }
if [ -n "$PG" ] && ! { verifier_has_pg && pg_bin_dir >/dev/null; }; then
    echo "bench-replicas: no PostgreSQL runs: the verifier has no PostgreSQL store" \
        "(--db postgres://...) or postgresql-15 is not installed"
    PG=
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null

T=$(mktemp -d)
chmod 711 "$T"
VPIDS=()
stop_all() {
    local p
    for p in "${VPIDS[@]}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    VPIDS=()
    haproxy_stop
}
cleanup() {
    stop_all
    pg_stop
    if [ -n "$KEEP" ]; then echo "bench-replicas: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

P=$T/pki
bash "$I/make-certs.sh" "$P" >/dev/null || exit 1
mkdir -p "$T/policies"
cat >"$T/policies/load.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "load",
 "match": {"namespace": "load"},
 "digests": {"*": ["sha256:0000000000000000000000000000000000000000000000000000000000000001"]}}
JSON
"$L" --write-pods "$T/pods.json" --nodes "$NODES" --pods 2 || exit 1
PERIOD=2000 # the verifier's --interval-ms: stale after 6 s; the nodes' period is shorter
[ -n "$PG" ] && { pg_start "$T/pg" >/dev/null || { echo "PostgreSQL did not start" >&2; exit 1; }; }

# replicas RUN N DB: N verifiers on DB behind haproxy; sets HPORT, CPU
# (--cpu-pid options for the generator).
replicas() {
    local run=$1 n=$2 db=$3 i port backends=() replica=()
    CPU=()
    "$V" --help 2>&1 | grep -q -- '--replica' && replica=(--replica)
    for i in $(seq "$n"); do
        port=$(haproxy_free_port)
        "$V" --listen "127.0.0.1:$port" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
            --client-ca "$P/ca.pem" --db "$db" --audit-log "$T/$run/audit-v$i.log" \
            --audit-key "$T/$run/audit-v$i.key" --policies "$T/policies" \
            --pods-file "$T/pods.json" --interval-ms "$PERIOD" --min-challenge-ms 0 \
            --max-connections $((2 * NODES + 600)) ${replica[@]:+"${replica[@]}" "v$i"} \
            >"$T/$run/verifier-v$i.log" 2>&1 &
        VPIDS+=($!)
        CPU+=(--cpu-pid "verifier=$!")
        # shellcheck disable=SC2317
        up() { grep -qs "listening on port" "$T/$run/verifier-v$i.log"; }
        wait_until 30 up || { echo "verifier v$i did not start: $(tail -3 "$T/$run/verifier-v$i.log")" >&2; return 1; }
        backends+=("127.0.0.1:$port")
    done
    HPORT=$(haproxy_free_port)
    haproxy_start "$T/$run/hp" "$HPORT" "${backends[@]}" >&2 || return 1
    haproxy_wait_up "$T/$run/hp" "$n" 20 || { echo "haproxy: not every verifier up" >&2; return 1; }
    CPU+=(--cpu-pid "haproxy=$HAPROXY_PID")
    if [[ $db != /* ]]; then
        local pm
        pm=$(pg_pid "$T/pg")
        CPU+=(--cpu-pid "postgres=$pm")
        for i in $(ps -o pid= --ppid "$pm"); do CPU+=(--cpu-pid "postgres=$i"); done
    fi
}

# bench RUN N BACKEND [kill]: one run; its figures' JSON line in $T/RUN.json.
bench() {
    local run=$1 n=$2 backend=$3 db lpid kill_ms= shape
    # throughput: more offered than taken, no request given up early and
    # none started again (a round over its time would only add load);
    # failover: a node every 2 s, rounds started again on a new connection
    shape=(--rate "$RATE" --timeout-ms 30000)
    [ "${4:-}" = kill ] && shape=(--rate $((NODES / 2)) --timeout-ms 5000 --failover)
    mkdir -p "$T/$run"
    if [ "$backend" = postgres ]; then
        pg_sql "CREATE DATABASE $run OWNER kima" >/dev/null || return 1
        db="host=$T/pg port=$PG_PORT dbname=$run user=kima"
    else
        db=$T/$run/kima.db
    fi
    replicas "$run" "$n" "$db" || { stop_all; return 1; }
    "$L" --target "127.0.0.1:$HPORT" --cacert "$P/ca.pem" --ca-key "$P/ca.key" \
        --nodes "$NODES" --pods 2 --entries 5 --warmup "$WARMUP" \
        --duration "$DURATION" --rsa-keys pool "${shape[@]}" \
        --rounds-log "$T/$run/rounds.log" "${CPU[@]}" --json >"$T/$run/loadgen.out" 2>&1 &
    lpid=$!
    if [ "${4:-}" = kill ]; then
        # the middle of the window: set-up done, warm-up and half the window
        # shellcheck disable=SC2317
        set_up() { [ -f "$T/$run/rounds.log" ] && [ "$(wc -l <"$T/$run/rounds.log")" -ge "$NODES" ]; }
        wait_until 300 set_up
        sleep "$(python3 -c "print($WARMUP + $DURATION / 2)")"
        kill_ms=$(($(date +%s%N) / 1000000))
        { kill -9 "${VPIDS[$((n - 1))]}"; wait "${VPIDS[$((n - 1))]}"; } 2>/dev/null
        VPIDS[n - 1]=
        if [ "$backend" = sqlite ]; then
            echo "bench-replicas: a SQLite verifier is not replicated: no failover to measure" >&2
        fi
    fi
    wait "$lpid"
    tail -1 "$T/$run/loadgen.out" >"$T/$run.json"
    if [ -n "$kill_ms" ]; then
        python3 - "$T/$run/rounds.log" "$kill_ms" "$PERIOD" >"$T/$run.failover" <<'PY'
import sys
kill, period = int(sys.argv[2]), int(sys.argv[3])
last, worst = {}, 0
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 4:
        t = int(f[0])
        if f[1] in last and last[f[1]] < kill < t:
            worst = max(worst, t - last[f[1]])
        last[f[1]] = t
print("%.2f" % (max(0, worst - period) / 1000.0))
PY
    fi
    stop_all
}

summary_line() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
try:
    f = json.loads(open(sys.argv[1]).read())
except Exception:
    print("%-26s the run failed" % sys.argv[2]); sys.exit(0)
c = f.get("cpu_ms_per_round", {})
def ms(k):
    v = c.get(k)
    return "   -  " if v is None else "%6.3f" % v
print("%-26s %8.1f %7.1f %6.1f  %s %s %s %6.3f  %6d %6d" % (
    sys.argv[2], f["rounds_per_s"], f["latency_ms"]["p50"], f["latency_ms"]["p99"],
    ms("verifier"), ms("postgres"), ms("haproxy"), f["loadgen_cpu_ms_per_round"],
    f["failed_over"], f["errors"]))
PY
}

RUNS=()
if [ -n "$SQLITE" ]; then
    bench sqlite_r1 1 sqlite && RUNS+=("sqlite_r1|SQLite, 1 replica")
fi
if [ -n "$PG" ]; then
    for n in $REPLICAS; do
        bench "pg_r$n" "$n" postgres && RUNS+=("pg_r$n|PostgreSQL, $n replica(s)")
    done
fi
echo
echo "$NODES nodes offered $RATE rounds/s (more than is taken), $DURATION s measured after" \
    "$WARMUP s; $(nproc) cores shared by every part; CPU in ms per round answered"
echo "run                        rounds/s  p50 ms p99 ms  verif. postgr haprox loadgen failov errors"
for r in "${RUNS[@]}"; do summary_line "$T/${r%%|*}.json" "${r#*|}" "${r%%|*}"; done
# what the errors were, when there were any
for r in "${RUNS[@]}"; do
    grep -h "^  errors: [1-9]\|^kima-loadgen: load-" "$T/${r%%|*}/loadgen.out" 2>/dev/null |
        sed "s/^/${r%%|*}: /"
done

if [ -n "$FAILOVER" ] && [ -n "$PG" ]; then
    n=${REPLICAS##* }
    if [ "$n" -ge 2 ]; then
        bench "pg_kill$n" "$n" postgres kill
        echo "and with $n replicas, $((NODES / 2)) rounds/s offered (a round per node every 2 s)," \
            "one killed with SIGKILL mid-window:"
        summary_line "$T/pg_kill$n.json" "PostgreSQL, $n, one killed" "pg_kill$n"
        echo "failover time ($n replicas, one killed with SIGKILL mid-window): the longest wait" \
            "of a node between two 200s less its period: $(cat "$T/pg_kill$n.failover" 2>/dev/null || echo ?) s"
    fi
elif [ -n "$FAILOVER" ]; then
    echo "failover time: needs replicas on PostgreSQL (tests/integration/test-failover.sh" \
        "measures a SQLite verifier's restart instead)"
fi
