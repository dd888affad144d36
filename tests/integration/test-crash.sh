#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Nothing acknowledged is lost: simulated nodes (kima-loadgen) attest as fast
# as they can against a real verifier over HTTPS; the verifier is killed with
# SIGKILL in the middle and started again on the same store and audit log.
# Every evidence answered 200 (kima-loadgen's ack log) must be in the store
# (the node's ima_next_index at least what was acknowledged, its
# attestations counted) and every acknowledged node's first verdict in the
# audit log, whose chain must still hold.
#
# Usage: test-crash.sh KIMA-VERIFIER KIMA-LOADGEN KIMACTL
set -u
V=$1 L=$2 K=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
need_tools openssl curl python3
T=$(mktemp -d)
VPID= LPID=
cleanup() {
    [ -n "$LPID" ] && kill -9 "$LPID" 2>/dev/null
    [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

NODES=40
P=$T/pki
bash "$HERE/make-certs.sh" "$P" >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
cat >"$T/policies/load.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "load",
 "match": {"namespace": "load"},
 "digests": {"*": ["sha256:0000000000000000000000000000000000000000000000000000000000000001"]}}
JSON
"$L" --write-pods "$T/pods.json" --nodes $NODES --pods 2 || exit 1

start_verifier() {
    : >"$T/verifier.log"
    "$V" --listen 127.0.0.1:0 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
        --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --min-challenge-ms 0 --threads 2 >"$T/verifier.log" 2>&1 &
    VPID=$!
    PORT=
    port_known() {
        PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/verifier.log" | tail -1)
        [ -n "$PORT" ]
    }
    wait_until 20 port_known || { echo "the verifier did not start: $(tail -3 "$T/verifier.log")"; exit 1; }
    URL=https://127.0.0.1:$PORT
}
ocurl() { curl -s --max-time 10 --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" "$@"; }
ready() { [ "$(ocurl -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ]; }

start_verifier
wait_until 20 ready || bad "the verifier is not ready"

# As many rounds as the nodes can get answered, for up to 120 s; the kill
# comes once a few hundred rounds were acknowledged after the set-up.
"$L" --target "127.0.0.1:$PORT" --cacert "$P/ca.pem" --ca-key "$P/ca.key" --nodes $NODES \
    --pods 2 --entries 10 --rate 2000 --warmup 0 --duration 120 --timeout-ms 2000 \
    --rsa-keys pool --ack-log "$T/ack.log" >"$T/loadgen.out" 2>&1 &
LPID=$!
acked() { [ "$(wc -l <"$T/ack.log" 2>/dev/null || echo 0)" -ge $((NODES + 300)) ]; }
# The generator's keys and set-up take seconds, more on a loaded machine;
# without load there is nothing to check.
if wait_until 120 acked; then
    ok
else
    bad "no load: $(wc -l <"$T/ack.log" 2>/dev/null || echo 0) rounds acknowledged in 120 s; the generator says: $(tail -3 "$T/loadgen.out")"
    summary
    exit 1
fi
kill -9 "$VPID"
wait "$VPID" 2>/dev/null
VPID=
# What was acknowledged before the kill (the generator goes on failing).
sleep 0.2
cp "$T/ack.log" "$T/acked"
kill -9 "$LPID" 2>/dev/null
wait "$LPID" 2>/dev/null
LPID=
echo "acknowledged before the kill: $(wc -l <"$T/acked") rounds"

start_verifier
wait_until 20 ready || bad "the verifier does not start again on its store"
code=$(ocurl -o "$T/nodes.json" -w '%{http_code}' "$URL/v1/nodes")
[ "$code" = 200 ] && ok || bad "GET /v1/nodes answered $code: $(head -c 300 "$T/nodes.json")"
python3 - "$T/acked" "$T/nodes.json" <<'PY' && ok || {
import json, sys
acked, count = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 2:
        continue  # the line being written at the kill
    acked[f[0]] = max(acked.get(f[0], 0), int(f[1]))
    count[f[0]] = count.get(f[0], 0) + 1
nodes = {n["name"]: n for n in json.load(open(sys.argv[2]))["nodes"]}
lost = 0
for name, idx in sorted(acked.items()):
    n = nodes.get(name)
    if n is None or n["ima_next_index"] < idx or n["attestations"] < count[name]:
        lost += 1
        print("lost: %s acknowledged up to index %d in %d rounds, the store has %s"
              % (name, idx, count[name], n and (n["ima_next_index"], n["attestations"])))
print("%d nodes, %d acknowledged rounds checked, %d nodes lost some" %
      (len(acked), sum(count.values()), lost))
sys.exit(1 if lost or not acked else 0)
PY
    bad "acknowledged rounds lost (or no node list to check them against)"
    echo "    the verifier's log, its last lines:"
    tail -20 "$T/verifier.log" | sed 's/^/    /'
}

# The audit log: its chain holds (an unsigned tail is expected after a
# kill), and each acknowledged node's first verdict is there.
expect 0 "$K" audit verify --key "$T/var/audit.key.pub" --allow-unsigned-tail "$T/var/audit.log"
for n in $(cut -d' ' -f1 "$T/acked" | sort -u); do
    "$K" audit show --node "$n" "$T/var/audit.log" >"$T/shown" 2>&1
    grep -q "state-change" "$T/shown" || { bad "no state-change record of $n in the audit log"; break; }
done
ok

summary
