#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real kima-verifier (HTTPS, client certificates, a temporary directory,
# its own CA and server certificate, a PodPolicy for the generated pods, a
# pods file with every simulated pod on its node) under kima-loadgen's
# simulated nodes; prints the figures (docs/scale.md).
#
# Usage: bench-load.sh [--nodes N] [--entries K] [--pods P] [--rate R | --interval-ms I]
#          [--duration S] [--warmup S] [--threads T] [--sources N] [--ek rsa|ecc]
#          [--ak rsa|ecc|mixed] [--cache-dir DIR] [--rsa-keys random|pool]
#          [--reconnect-every N] [--timeout-ms T] [--setup-timeout S]
#          [--verifier BIN] [--loadgen BIN] [--verifier-threads N] [--db SPEC]
#          [--json] [--check] [--keep]
# --db: the verifier's store (default an SQLite file in the temporary
# directory; or a PostgreSQL spec, of a database the caller emptied).
# --check (the loadgen-smoke test): fail unless every round was answered
# 200 with no error, every pod is trusted and the ack log has a line per node.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
V=${KIMA_VERIFIER:-}
L=${KIMA_LOADGEN:-}
NODES=100 ENTRIES=10 PODS=4 RATE= INTERVAL=2000 DURATION=10 WARMUP=2 CHECK= KEEP= VTHREADS= DB=
LGARGS=()
usage() { sed -n '8,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
while [ $# -gt 0 ]; do
    case $1 in
    --nodes) NODES=$2 ;;
    --entries) ENTRIES=$2 ;;
    --pods) PODS=$2 ;;
    --rate) RATE=$2 ;;
    --interval-ms) INTERVAL=$2 ;;
    --duration) DURATION=$2 ;;
    --warmup) WARMUP=$2 ;;
    --verifier) V=$2 ;;
    --loadgen) L=$2 ;;
    --verifier-threads) VTHREADS=$2 ;;
    --db) DB=$2 ;;
    --threads | --sources | --ek | --ak | --cache-dir | --timeout-ms | --setup-timeout | --reconnect-every | --rsa-keys)
        LGARGS+=("$1" "$2") ;;
    --json) LGARGS+=(--json); shift; continue ;;
    --check) CHECK=1; shift; continue ;;
    --keep) KEEP=1; shift; continue ;;
    *) usage ;;
    esac
    [ $# -ge 2 ] || usage
    shift 2
done
[ -n "$V" ] && [ -x "$V" ] || { echo "bench-load: --verifier BIN (kima-verifier) is needed" >&2; exit 64; }
[ -n "$L" ] && [ -x "$L" ] || { echo "bench-load: --loadgen BIN (kima-loadgen) is needed" >&2; exit 64; }
for t in openssl curl python3; do
    command -v $t >/dev/null || { echo "$t not installed"; exit 77; }
done

# Both sides hold a descriptor per node: as many as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((NODES + 128)) ]; then
    echo "bench-load: $NODES nodes need more than $(ulimit -n) open files (ulimit -Hn)" >&2
    exit 1
fi

T=$(mktemp -d)
VPID=
cleanup() {
    if [ -n "$VPID" ]; then
        kill "$VPID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$VPID" 2>/dev/null
    fi
    if [ -n "$KEEP" ]; then echo "bench-load: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

P=$T/pki
bash "$HERE/../integration/make-certs.sh" "$P" >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
cat >"$T/policies/load.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "load",
 "match": {"namespace": "load"},
 "digests": {"*": ["sha256:0000000000000000000000000000000000000000000000000000000000000001"]}}
JSON
"$L" --write-pods "$T/pods.json" --nodes "$NODES" --pods "$PODS" || exit 1

# The verifier's interval only says when a node is stale (3 missed): the
# nodes' own period, at least 2 s.
if [ -n "$RATE" ]; then
    PERIOD=$(python3 -c "print(int(1000 * $NODES / $RATE))")
    LGARGS+=(--rate "$RATE")
else
    PERIOD=$INTERVAL
    LGARGS+=(--interval-ms "$INTERVAL")
fi
[ "$PERIOD" -ge 2000 ] || PERIOD=2000
"$V" --listen 127.0.0.1:0 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "${DB:-$T/var/kima.db}" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
    --interval-ms "$PERIOD" --min-challenge-ms 0 --max-connections $((NODES + 64)) \
    ${VTHREADS:+--threads "$VTHREADS"} >"$T/verifier.log" 2>&1 &
VPID=$!
PORT=
for _ in $(seq 200); do
    PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/verifier.log" | tail -1)
    [ -n "$PORT" ] && break
    kill -0 "$VPID" 2>/dev/null || break
    sleep 0.05
done
[ -n "$PORT" ] || { echo "bench-load: the verifier did not start: $(tail -5 "$T/verifier.log")" >&2; exit 1; }
URL=https://127.0.0.1:$PORT
ocurl() { curl -s --max-time 10 --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" "$@"; }
for _ in $(seq 100); do
    [ "$(ocurl -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ] && break
    sleep 0.1
done
BASE=$(awk '/^VmRSS/ {print $2 * 1024}' "/proc/$VPID/status")

"$L" --target "127.0.0.1:$PORT" --cacert "$P/ca.pem" --ca-key "$P/ca.key" --nodes "$NODES" \
    --entries "$ENTRIES" --pods "$PODS" --duration "$DURATION" --warmup "$WARMUP" \
    --verifier-pid "$VPID" --baseline-rss "$BASE" --ack-log "$T/ack.log" --json \
    "${LGARGS[@]}" | tee "$T/loadgen.out"
LRC=${PIPESTATUS[0]}
kill -0 "$VPID" 2>/dev/null || { echo "bench-load: the verifier died: $(tail -5 "$T/verifier.log")"; exit 1; }
[ -n "$CHECK" ] || exit "$LRC"

# --check: what the smoke test asserts.
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ "$LRC" = 0 ] || bad "kima-loadgen exited $LRC (errors or failed setups above)"
tail -1 "$T/loadgen.out" >"$T/figures.json"
python3 - "$T/figures.json" "$NODES" <<'PY' || bad "figures"
import json, sys
f = json.load(open(sys.argv[1]))
ok = True
def want(c, what):
    global ok
    if not c:
        print("FAIL:", what, json.dumps(f)); ok = False
want(f["setup_failed"] == 0, "every node registered")
want(f["errors"] == 0, "no error of any kind")
want(f["rounds"] > 0, "rounds in the window")
want(f["handshakes"] >= int(sys.argv[2]), "a TLS connection per node")
# A short run never reaches the verifier's 60 s idle timeout: a request
# sent again on a new connection would hide answers the verifier dropped.
want(f["retried"] == 0, "no request sent again on a new connection")
want(f["failed_over"] == 0 and f["given_up"] == 0, "no round started again (no --failover here)")
sys.exit(0 if ok else 1)
PY
ocurl -o "$T/pods.out" "$URL/v1/pods" || bad "GET /v1/pods"
python3 - "$T/pods.out" "$NODES" "$PODS" <<'PY' || bad "pods"
import json, sys
pods = json.load(open(sys.argv[1]))["pods"]
want = int(sys.argv[2]) * int(sys.argv[3])
states = {}
for p in pods:
    states[p["state"]] = states.get(p["state"], 0) + 1
if len(pods) != want or states.get("trusted", 0) != want:
    print("FAIL: %d pods wanted trusted, the verifier has %s" % (want, states)); sys.exit(1)
PY
[ -s "$T/ack.log" ] || bad "the ack log is empty"
"$L" --target 10.0.0.1:443 --cacert "$P/ca.pem" --ca-key "$P/ca.key" --nodes 1 >/dev/null 2>"$T/refused"
[ $? = 64 ] && grep -q "loopback only" "$T/refused" || bad "a target outside 127.0.0.0/8 must be refused"
awk 'NF != 2 || $2 !~ /^[0-9]+$/ {exit 1}' "$T/ack.log" || bad "ack log lines are not \"node index\""
[ "$(cut -d' ' -f1 "$T/ack.log" | sort -u | wc -l)" = "$NODES" ] || bad "ack log: not every node"
[ "$fail" = 0 ] && echo "loadgen-smoke: ok"
exit "$fail"
