#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# PostgreSQL restarted under load (docs/verifier.md, "A lost connection"):
# simulated nodes (kima-loadgen) attest against a verifier on a PostgreSQL
# store (pg.sh) while the server is restarted three times. The verifier
# recovers by itself (rounds answered 200 again after each restart, no
# restart of its own); no round is told 404 "unknown node" meanwhile (an
# agent would register again); every round answered 200 is in the store;
# the audit chain holds; SIGTERM still ends the verifier.
# Skipped (77) without PostgreSQL or the verifier's PostgreSQL backend.
# Usage: test-pg-restart.sh KIMA-VERIFIER KIMA-LOADGEN KIMACTL
set -u
V=$1
L=$2
K=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
. "$HERE/pg.sh"
need_tools curl openssl python3
pg_need
if ! "$V" --help 2>&1 | grep -q PostgreSQL; then
    echo "this kima-verifier has no PostgreSQL store (--help): skipped"
    exit 77
fi
NODES=20
T=$(mktemp -d)
chmod 0711 "$T"
VPID= LPID=
cleanup() {
    [ -n "$LPID" ] && kill -9 "$LPID" 2>/dev/null
    [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null
    pg_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
cat >"$T/policies/load.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "load",
 "match": {"namespace": "load"},
 "digests": {"*": ["sha256:0000000000000000000000000000000000000000000000000000000000000001"]}}
JSON
"$L" --write-pods "$T/pods.json" --nodes $NODES --pods 2 || exit 1
pg_start "$T/pg" || exit 1

"$V" --listen 127.0.0.1:0 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$PG_DSN" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
    --min-challenge-ms 0 --threads 2 >"$T/verifier.log" 2>&1 &
VPID=$!
port_known() {
    PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/verifier.log" | tail -1)
    [ -n "$PORT" ]
}
wait_until 20 port_known || { echo "the verifier did not start: $(tail -3 "$T/verifier.log")"; exit 1; }
URL=https://127.0.0.1:$PORT
ocurl() { curl -s --max-time 10 --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" "$@"; }

"$L" --target "127.0.0.1:$PORT" --cacert "$P/ca.pem" --ca-key "$P/ca.key" --nodes $NODES \
    --pods 2 --entries 10 --rate 200 --warmup 0 --duration 30 --timeout-ms 5000 \
    --rsa-keys pool --ack-log "$T/ack.log" >"$T/loadgen.out" 2>&1 &
LPID=$!
acks() { wc -l <"$T/ack.log" 2>/dev/null || echo 0; }
# more_acks N: at least 50 rounds acknowledged past N.
more_acks() { [ "$(acks)" -ge $(($1 + 50)) ]; }
if ! wait_until 120 more_acks "$NODES"; then
    bad "no load: $(acks) rounds acknowledged in 120 s: $(tail -3 "$T/loadgen.out")"
    summary
    exit 1
fi
for i in 1 2 3; do
    pg_restart || bad "restart $i of PostgreSQL"
    a=$(acks)
    # Rounds answered 200 again, without a restart of the verifier.
    wait_until 20 more_acks "$a" && ok || bad "no round acknowledged in 20 s after restart $i"
done
# The generator's end (its duration; bounded) and its figures.
loadgen_done() { ! kill -0 "$LPID" 2>/dev/null; }
wait_until 150 loadgen_done || bad "the generator did not end"
wait "$LPID" 2>/dev/null
LPID=
grep -E "rounds:|errors:" "$T/loadgen.out"
kill -0 "$VPID" 2>/dev/null && ok || bad "the verifier is gone: $(tail -3 "$T/verifier.log")"
# While the store was away rounds could fail (500, retried), but no node
# was told it is unknown (404: an agent would register again).
grep -q "errors:" "$T/loadgen.out" && ! grep -q "HTTP 404" "$T/loadgen.out" && ok ||
    bad "404 answers (or no figures): $(grep errors: "$T/loadgen.out")"

# Every round answered 200 is in the store (the node's IMA position and its
# count of attestations at least what was acknowledged).
got=
for _ in 1 2 3; do # the reader's first read after a restart may fail (500)
    got=$(ocurl -o "$T/nodes.json" -w '%{http_code}' "$URL/v1/nodes")
    [ "$got" = 200 ] && break
    sleep 1
done
[ "$got" = 200 ] && ok || bad "GET /v1/nodes answered $got: $(head -c 300 "$T/nodes.json")"
python3 - "$T/ack.log" "$T/nodes.json" <<'PY' && ok || bad "acknowledged rounds missing from the store"
import json, sys
acked, count = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 2:
        continue
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
sys.exit(1 if lost or len(acked) != len(nodes) else 0)
PY

kill -TERM "$VPID"
verifier_gone() { ! kill -0 "$VPID" 2>/dev/null; }
wait_until 30 verifier_gone && ok || bad "SIGTERM did not end the verifier"
wait "$VPID" 2>/dev/null
VPID=
expect 0 "$K" audit verify --key "$T/var/audit.key.pub" "$T/var/audit.log"
summary
