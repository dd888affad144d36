#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Failover under load: verifiers behind haproxy (haproxy.sh, TCP mode: the
# agents' client certificates reach the verifiers), kima-loadgen's
# simulated nodes attesting through it (--failover: a round whose
# connection breaks starts again on a new one), one verifier killed with
# SIGKILL in the middle. Asserted:
#   - rounds go on: 200s after the kill, and no node waited longer between
#     two 200s than its period plus FAILOVER_MAX_S (the failover time, the
#     longest such wait less the period, is printed);
#   - no node goes stale (the verifiers' node list during the run and at
#     its end; no "stale" state change in any audit log);
#   - nothing acknowledged is lost: each node's attestations counter in the
#     store is at least its rounds answered 200, its ima_next_index at
#     least the highest index acknowledged;
#   - no nonce accepted twice: no two rounds answered 200 carry the same
#     nonce, and every such nonce is recorded as used in the store (so it
#     can never be accepted again);
#   - every audit chain holds (an unsigned tail is expected after a kill).
# With PostgreSQL (the verifier takes --db postgres://, tests/integration/
# pg.sh), three verifiers share one database and one of them is killed for
# good; with SQLite only (a store of one replica), one verifier is killed
# and started again on its store, as a StatefulSet restarts its pod.
#
# Usage: test-failover.sh KIMA-VERIFIER KIMA-LOADGEN KIMACTL
#   FAILOVER_MODE=sqlite forces the one-verifier case.
set -u
V=$1 L=$2 K=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
. "$HERE/pg.sh"
. "$HERE/haproxy.sh"
need_tools openssl curl python3
haproxy_need
T=$(mktemp -d)
chmod 711 "$T"
VPIDS=() LPID=
cleanup() {
    local p
    [ -n "$LPID" ] && kill -9 "$LPID" 2>/dev/null
    for p in "${VPIDS[@]}"; do [ -n "$p" ] && { kill -9 "$p"; wait "$p"; } 2>/dev/null; done
    haproxy_stop
    pg_stop
    if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# A round per node every second (some rounds are under way when the kill
# comes); the verifiers call a node stale after 3 x 2 s.
NODES=200 RATE=200 PERIOD_MS=2000 DURATION=30 FAILOVER_MAX_S=4
NODE_PERIOD_MS=$((1000 * NODES / RATE))
# The verifier's store speaks PostgreSQL when it is linked with libpq.
verifier_has_pg() { "$V" --help 2>&1 | grep -qi postgres || ldd "$V" 2>/dev/null | grep -q libpq; }
MODE=${FAILOVER_MODE:-}
if [ -z "$MODE" ]; then
    if verifier_has_pg && pg_bin_dir >/dev/null; then
        MODE=postgres
    else
        MODE=sqlite
        echo "SKIP (part): three verifiers on one PostgreSQL database need the verifier's" \
            "PostgreSQL store (--db postgres://..., branch i16-store) and the postgresql-15" \
            "binaries; testing one SQLite verifier behind haproxy killed and started again"
    fi
fi

P=$T/pki
bash "$HERE/make-certs.sh" "$P" >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
cat >"$T/policies/load.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "load",
 "match": {"namespace": "load"},
 "digests": {"*": ["sha256:0000000000000000000000000000000000000000000000000000000000000001"]}}
JSON
"$L" --write-pods "$T/pods.json" --nodes $NODES --pods 2 || exit 1

if [ "$MODE" = postgres ]; then
    pg_start "$T/pg" >/dev/null || { echo "PostgreSQL did not start"; exit 1; }
    DB=$PG_DSN
    REPLICAS=3
else
    DB=$T/var/kima.db
    REPLICAS=1
fi
VPORTS=()
for i in $(seq $REPLICAS); do VPORTS+=("$(haproxy_free_port)"); done

# start_replica I: verifier vI on its port, its own audit log and key.
start_replica() {
    local i=$1 port=${VPORTS[$(($1 - 1))]}
    "$V" --listen "127.0.0.1:$port" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$DB" --audit-log "$T/var/audit-v$i.log" \
        --audit-key "$T/var/audit-v$i.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms $PERIOD_MS --min-challenge-ms 0 --max-connections $((2 * NODES + 600)) \
        --nonce-ttl-ms 600000 \
        --replica "v$i" >>"$T/verifier-v$i.log" 2>&1 &
    VPIDS[$((i - 1))]=$!
    # shellcheck disable=SC2317
    listening() { [ "$(grep -c "listening on port" "$T/verifier-v$i.log")" -ge "$1" ]; }
    wait_until 20 listening "$2" || { echo "verifier v$i did not start: $(tail -3 "$T/verifier-v$i.log")"; exit 1; }
}
for i in $(seq $REPLICAS); do start_replica "$i" 1; done
BACKENDS=()
for p in "${VPORTS[@]}"; do BACKENDS+=("127.0.0.1:$p"); done
HPORT=$(haproxy_free_port)
haproxy_start "$T/hp" "$HPORT" "${BACKENDS[@]}" || exit 1
haproxy_wait_up "$T/hp" $REPLICAS 20 && ok || bad "haproxy does not see $REPLICAS verifiers up"

ocurl() { curl -s --max-time 10 --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" "$@"; }
# no_stale OUT: through haproxy, the nodes' list has every node and none stale.
no_stale() {
    ocurl -o "$1" "$HAPROXY_URL/v1/nodes" && python3 - "$1" "$NODES" <<'PY'
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
stale = [n["name"] for n in nodes if n["state"] == "stale"]
if stale or len(nodes) != int(sys.argv[2]):
    print("%d nodes, stale: %s" % (len(nodes), " ".join(stale[:20])))
    sys.exit(1)
PY
}

"$L" --target "127.0.0.1:$HPORT" --cacert "$P/ca.pem" --ca-key "$P/ca.key" --nodes $NODES \
    --pods 2 --entries 5 --rate $RATE --warmup 0 --duration $DURATION --timeout-ms 3000 \
    --rsa-keys pool --failover --rounds-log "$T/rounds.log" --json >"$T/loadgen.out" 2>&1 &
LPID=$!
rounds() { if [ -f "$T/rounds.log" ]; then wc -l <"$T/rounds.log"; else echo 0; fi; }
# Every node set up and ~8 s of rounds before the kill (set-up takes
# seconds, more on a loaded machine).
loaded() { [ "$(rounds)" -ge $((NODES + 8 * RATE)) ]; }
if ! wait_until 120 loaded; then
    bad "no load: $(rounds) rounds answered 200 in 120 s; the generator says: $(tail -3 "$T/loadgen.out")"
    summary
    exit 1
fi
no_stale "$T/nodes-before.json" && ok || bad "a node is stale before the kill"

# With other replicas, the victim hangs first (SIGSTOP), as a machine lost
# does, for about half a second of load (the others answer RATE/2 rounds
# meanwhile), so that rounds are under way on it when it dies: their
# connections break and they must start again elsewhere. The failure's
# time is the hang's.
VICTIM=$REPLICAS # v3 with PostgreSQL, the only one with SQLite
KILL_MS=$(($(date +%s%N) / 1000000))
R0=$(rounds)
if [ "$REPLICAS" -gt 1 ]; then
    kill -STOP "${VPIDS[$((VICTIM - 1))]}"
    moved_on() { [ "$(rounds)" -ge $((R0 + RATE / 2)) ]; }
    WAIT_STEP=0.02 wait_until 10 moved_on
fi
{
    kill -9 "${VPIDS[$((VICTIM - 1))]}"
    wait "${VPIDS[$((VICTIM - 1))]}"
} 2>/dev/null
VPIDS[$((VICTIM - 1))]=
echo "v$VICTIM killed (SIGKILL) after $(rounds) rounds (hung with SIGSTOP after $R0 if not alone)"
if [ "$MODE" = sqlite ]; then
    start_replica "$VICTIM" 2
    haproxy_wait_up "$T/hp" 1 20 && ok || bad "haproxy does not see the restarted verifier up"
fi
# The generator's window ends by itself; during it, twice, no node stale.
sleep_until_ms() { [ $(($(date +%s%N) / 1000000)) -ge "$1" ]; }
for k in 1 2; do
    wait_until 30 sleep_until_ms $((KILL_MS + k * 5000))
    no_stale "$T/nodes-during.json" && ok || bad "a node went stale $((k * 5)) s after the kill"
done
wait_until 120 eval '! kill -0 "$LPID" 2>/dev/null' || bad "the generator did not end"
wait "$LPID"
LRC=$?
LPID=
cat "$T/loadgen.out"
[ "$LRC" = 0 ] && ok || bad "kima-loadgen exited $LRC (errors: rounds given up or refused)"
# The killed verifier's nodes connected again (through haproxy, to the
# others): more TLS handshakes than nodes; the rounds under way on it
# started again.
python3 - "$T/loadgen.out" "$NODES" <<'PY' && ok || bad "the generator's figures"
import json, sys
f = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print("rounds answered 200 in the window: %d; started again after a broken connection: %d;"
      " given up: %d; recorded but the answer lost: %d; TLS handshakes %d for %s nodes"
      % (f["rounds"], f["failed_over"], f["given_up"], f["answers_lost"], f["handshakes"],
         sys.argv[2]))
sys.exit(0 if f["errors"] == 0 and f["given_up"] == 0 and f["setup_failed"] == 0 and
         f["handshakes"] > int(sys.argv[2]) and f["failed_over"] > 0 else 1)
PY
no_stale "$T/nodes-end.json" && ok || bad "a node is stale at the end"

# The failover time, and rounds after the kill.
python3 - "$T/rounds.log" "$KILL_MS" "$NODE_PERIOD_MS" "$FAILOVER_MAX_S" <<'PY' && ok || bad "failover"
import sys
kill, period, most = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
# the waits that span the kill: the nodes whose verifier went away
last, worst, worst_node, after, times = {}, 0, None, 0, []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 4:
        continue
    t, node = int(f[0]), f[1]
    times.append(t)
    after += t > kill
    if node in last and last[node] <= kill < t and t - last[node] > worst:
        worst, worst_node = t - last[node], node
    last[node] = t
times.sort()
gap = max((b - a for a, b in zip(times, times[1:]) if b > kill - 1000), default=0)
fo = max(0, worst - period) / 1000.0
print("failover: the longest wait of a node between two 200s around the kill was %d ms (%s; its period %d ms):"
      " failover time %.2f s; the longest time with no 200 at all %d ms; %d rounds answered"
      " 200 after the kill" % (worst, worst_node, period, fo, gap, after))
sys.exit(0 if after > 0 and fo <= most else 1)
PY

# Nothing acknowledged lost (the nonces' lifetime, 10 min, keeps every
# used one recorded until the end) (the nodes as the store has them, read through
# a surviving verifier at the end), no nonce twice (the store's record of
# used nonces).
if [ "$MODE" = postgres ]; then
    pg_sql "SELECT encode(nonce, 'base64') FROM used_nonces" | tr -d ' ' >"$T/store-nonces"
else
    python3 - "$DB" "$T/store-nonces" <<'PY'
import base64, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
with open(sys.argv[2], "w") as o:
    for (n,) in db.execute("SELECT nonce FROM used_nonces"):
        o.write(base64.b64encode(n).decode() + "\n")
PY
fi
[ -s "$T/store-nonces" ] ||
    echo "SKIP (part): the store records no used nonce (a SQLite verifier's nonces are its" \
        "own, not shared); only checked: no two rounds answered 200 with one nonce"
python3 - "$T/rounds.log" "$T/nodes-end.json" "$T/store-nonces" "$T/loadgen.out" <<'PY' && ok || bad "acknowledged rounds lost or a nonce accepted twice"
import json, sys
acked, top, nonces = {}, {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 4:
        continue
    acked[f[1]] = acked.get(f[1], 0) + 1
    top[f[1]] = max(top.get(f[1], 0), int(f[3]))
    nonces[f[2]] = nonces.get(f[2], 0) + 1
store = {n["name"]: (n["attestations"], n["ima_next_index"])
         for n in json.load(open(sys.argv[2]))["nodes"]}
used = set(l.strip() for l in open(sys.argv[3]) if l.strip())
ok = True
lost = [n for n in acked if n not in store or store[n][0] < acked[n] or store[n][1] < top[n]]
for n in lost[:10]:
    print("lost: %s: %d rounds answered 200 up to index %d; the store has %s"
          % (n, acked[n], top[n], store.get(n)))
twice = [x for x, c in nonces.items() if c > 1]
for x in twice[:10]:
    print("nonce answered 200 twice: %s" % x)
unused = [x for x in nonces if x not in used] if used else []
for x in unused[:10]:
    print("nonce answered 200 but not recorded as used: %s" % x)
# Every round the verifiers recorded is one answered 200 or one whose
# answer was lost (the generator saw it in its next challenge): none
# recorded twice, none recorded that nobody sent.
lost_answers = json.loads(open(sys.argv[4]).read().strip().splitlines()[-1])["answers_lost"]
recorded = sum(v[0] for v in store.values())
print("%d nodes, %d rounds answered 200 checked against the store: %d nodes lost some;"
      " %d nonces twice, %d not recorded as used (of %d recorded); rounds recorded %d ="
      " answered 200 %d + answers lost %d?"
      % (len(acked), sum(acked.values()), len(lost), len(twice), len(unused), len(used),
         recorded, sum(acked.values()), lost_answers))
sys.exit(1 if lost or twice or unused or not acked or
         recorded != sum(acked.values()) + lost_answers else 0)
PY

# The audit chains, checked together as a deployment's (the killed
# replica's last records may be an unsigned tail); no node was ever seen
# stale.
chains=() names=()
for i in $(seq $REPLICAS); do
    chains+=(--chain "$T/var/audit-v$i.key.pub:$T/var/audit-v$i.log")
    names+=("v$i")
done
expect 0 "$K" audit verify "${chains[@]}" --expect-replicas "$(IFS=,; echo "${names[*]}")" \
    --allow-unsigned-tail
for i in $(seq $REPLICAS); do
    if grep -q '"to":"stale"' "$T/var/audit-v$i.log"; then
        bad "v$i's audit log records a node gone stale: $(grep -m1 '"to":"stale"' "$T/var/audit-v$i.log")"
    else
        ok
    fi
done

[ "$fail" = 0 ] || for i in $(seq $REPLICAS); do
    echo "    v$i's log, its last lines:"
    tail -5 "$T/verifier-v$i.log" | sed 's/^/    /'
done
summary
