#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two kima-verifier replicas on one PostgreSQL store (tests/integration/
# pg.sh), one node (swtpm, agent-tool for the quotes, ima-writer as the
# kernel, curl as the agent's transport): a nonce of one replica is
# answered at the other; the same evidence again is refused; and, many
# times over, two rounds of the node (one nonce from each replica) are sent
# to the two replicas at the same moment: the node's replay state is never
# advanced by both (docs/verifier.md, "Several verifiers").
# Skipped (77) when PostgreSQL is not installed or the verifier was built
# without its PostgreSQL backend.
# Usage: test-replica-race.sh KIMA_VERIFIER AGENT_TOOL IMA_WRITER [ITERATIONS]
set -u
V=$1
A=$2
W=$3
ITER=${4:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
. "$HERE/pg.sh"
need_tools swtpm curl openssl python3
pg_need
if ! "$V" --help 2>&1 | grep -q PostgreSQL; then
    echo "this kima-verifier has no PostgreSQL store (--help): skipped"
    exit 77
fi
T=$(mktemp -d)
chmod 0711 "$T"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    swtpm_stop
    pg_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

GOOD=1111111111111111111111111111111111111111111111111111111111111111
UID_A=1a2b3c4d-0000-4111-8222-933344445555
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 || exit 1
mkdir -p "$T/policies" "$T/agent" "$T/var1" "$T/var2"
cat >"$T/policies/upf.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-upf",
 "match": {"namespace": "open5gs", "podLabels": {"app": "upf"}},
 "digests": {"/usr/bin/upfd": ["sha256:$GOOD"]}}
JSON
cat >"$T/pods.json" <<JSON
{"apiVersion": "v1", "kind": "PodList", "items": [
 {"metadata": {"uid": "$UID_A", "namespace": "open5gs", "name": "upf-0", "labels": {"app": "upf"}},
  "spec": {"nodeName": "node-1"}}]}
JSON

pg_start "$T/pg" || exit 1

# start N: replica N on the shared store, its own audit log and key;
# URL_N is its URL.
start() {
    local n=$1
    verifier_start "$T/verifier-$n.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$PG_DSN" --audit-log "$T/var$n/audit.log" \
        --audit-key "$T/var$n/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 60000 --nonce-ttl-ms 60000 --min-challenge-ms 0
    PIDS+=("$VPID")
    eval "URL_$n=\$URL"
}
# acurl URL METHOD PATH [BODYFILE [OUT]]: as node-1's agent; the status in
# OUT.status (default $T/r), the body in OUT.body.
acurl() {
    local out=${5:-$T/r}
    curl -s --cacert "$P/ca.pem" --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" \
        -X "$2" -H 'Content-Type: application/json' ${4:+--data-binary @"$4"} -o "$out.body" \
        -w '%{http_code}' "$1$3" >"$out.status"
}
# ocurl URL METHOD PATH [JSON]: as the operator.
ocurl() {
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" -X "$2" \
        -H 'Content-Type: application/json' ${4:+--data "$4"} -o "$T/r.body" \
        -w '%{http_code}' "$1$3" >"$T/r.status"
}
status_is() {
    local s
    s=$(cat "${3:-$T/r}.status")
    if [ "$s" = "$1" ]; then ok; else bad "$2: HTTP $s, wanted $1: $(head -c 300 "${3:-$T/r}.body")"; fi
}
# challenge URL FILE: a nonce for node-1 from that replica into FILE.
challenge() {
    acurl "$1" POST /v1/nodes/node-1/challenges
    status_is 200 "challenge at $1"
    cp "$T/r.body" "$2"
}
# evidence CHALLENGE OUT: agent-tool's evidence for that challenge.
evidence() {
    local from
    from=$(sed -n 's/.*"ima_next_index":\([0-9]*\).*/\1/p' "$1")
    "$A" "$TCTI" "$T/agent" evidence "$1" "$LIST" "$from" boot-1 >"$2" || bad "agent-tool evidence"
}
register() {
    "$A" "$TCTI" "$T/agent" init >"$T/reg.json" || bad "agent-tool init"
    acurl "$URL_1" POST /v1/nodes/node-1/registration "$T/reg.json"
    status_is 201 "registration"
    "$A" "$TCTI" "$T/agent" activate node-1 "$T/r.body" >"$T/act.json" || bad "activate"
    acurl "$URL_2" POST /v1/nodes/node-1/activation "$T/act.json"
    status_is 200 "activation at the other replica"
}
# The node's row: "attestations|ima_index".
node_row() { pg_sql "SELECT attestations, ima_index FROM nodes WHERE name = 'node-1'"; }
entries() { cat "$T/sfs/ima/runtime_measurements_count"; }
# The audit records of judged rounds in both replicas' logs: one per round
# answered 200 here (each round judges the pod, reset to unknown before,
# trusted; or fails the node).
judged_records() {
    python3 - "$T/var1/audit.log" "$T/var2/audit.log" <<'PY'
import json, sys
n = 0
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        d = r.get("details") or {}
        if r.get("type") == "node-failure" or (
                r.get("type") == "state-change" and r.get("pod") and d.get("to") == "trusted"):
            n += 1
print(n)
PY
}

swtpm_start "$T/tpm" || exit 1
TCTI=$SWTPM_TCTI
LIST=$T/sfs/ima/binary_runtime_measurements
"$W" --securityfs "$T/sfs" --tcti "$TCTI" init || bad "ima-writer init"
measure() {
    "$W" --securityfs "$T/sfs" --tcti "$TCTI" pod "$UID_A" /usr/bin/upfd $GOOD || bad "measure"
}

start 1
start 2
register
if ! pg_sql "SELECT name FROM nodes" 2>/dev/null | grep -qx node-1; then
    echo "the verifier does not store in PostgreSQL (built without its backend?): skipped"
    exit 77
fi

# --- (a) a nonce of V1 answered at V2; (b) the same evidence again at V1
measure
challenge "$URL_1" "$T/c1.json"
evidence "$T/c1.json" "$T/e1.json"
acurl "$URL_2" POST /v1/nodes/node-1/evidence "$T/e1.json"
status_is 200 "V1's nonce answered at V2"
has "$T/r.body" '"verdict":"trusted"' "its verdict"
acurl "$URL_1" POST /v1/nodes/node-1/evidence "$T/e1.json"
status_is 409 "the same evidence again at V1"
has "$T/r.body" 'used already' "the refusal's reason"
acurl "$URL_2" POST /v1/nodes/node-1/evidence "$T/e1.json"
status_is 409 "the same evidence again at V2"
[ "$(node_row)" = "1|$(entries)" ] && ok || bad "after (a) and (b): node row $(node_row)"
[ "$(judged_records)" = 1 ] && ok || bad "after (a): $(judged_records) judged records"

# --- (c) the race: each time the pod is reset (so that a judged round
# leaves one audit record), one new entry, a nonce from each replica, and
# both evidences posted to their replicas at once.
total=1 since=1 changed=0 index=0 serial=0
for i in $(seq 1 "$ITER"); do
    ocurl "$URL_1" POST /v1/pods/$UID_A/reset '{"reason": "race iteration"}'
    measure
    challenge "$URL_1" "$T/ca.json"
    challenge "$URL_2" "$T/cb.json"
    evidence "$T/ca.json" "$T/ea.json"
    evidence "$T/cb.json" "$T/eb.json"
    acurl "$URL_1" POST /v1/nodes/node-1/evidence "$T/ea.json" "$T/ra" &
    pa=$!
    acurl "$URL_2" POST /v1/nodes/node-1/evidence "$T/eb.json" "$T/rb" &
    wait "$pa" $!
    sa=$(cat "$T/ra.status") sb=$(cat "$T/rb.status")
    n200=0
    for x in a b; do
        s=$(cat "$T/r$x.status")
        if [ "$s" = 200 ]; then
            n200=$((n200 + 1))
        elif [ "$s" = 409 ] && grep -q '"error":"node changed"' "$T/r$x.body"; then
            changed=$((changed + 1))
        elif [ "$s" = 409 ] && grep -q '"error":"wrong IMA index"' "$T/r$x.body"; then
            index=$((index + 1))
        else
            bad "iteration $i: replica $x answered $s: $(head -c 300 "$T/r$x.body")"
        fi
    done
    total=$((total + n200))
    since=$((since + n200))
    if [ "$n200" = 2 ]; then
        # Both judged, one after the other, never both from one state:
        # the round with the older quote, judged after the other, fails
        # the node (its TPM clock went back: a replayed quote).
        if grep -q '"verdict":"untrusted"' "$T/ra.body" "$T/rb.body" &&
            grep -q 'not after the previous quote' "$T/ra.body" "$T/rb.body"; then
            ok
        else
            bad "iteration $i: two rounds judged: $(head -c 300 "$T/ra.body") / $(head -c 300 "$T/rb.body")"
        fi
        serial=$((serial + 1))
    fi
    row=$(node_row)
    [ "${row%%|*}" = "$since" ] && ok ||
        bad "iteration $i ($sa/$sb): attestations ${row%%|*}, rounds answered 200 $since"
    if [ "$n200" = 1 ]; then
        [ "${row##*|}" = "$(entries)" ] && ok ||
            bad "iteration $i: ima_index ${row##*|}, the list has $(entries) entries"
    fi
    [ "$(judged_records)" = "$total" ] && ok ||
        bad "iteration $i: $(judged_records) judged records in the audit logs, $total rounds answered 200"
    if [ "$n200" = 2 ]; then
        # Start the node over: deleted, registered and activated again.
        ocurl "$URL_2" DELETE /v1/nodes/node-1
        status_is 200 "the failed node deleted"
        register
        since=0
    fi
done
echo "race: $ITER iterations, $((total - 1)) rounds judged, $changed lost their node (409 node" \
    "changed), $index came after the other's commit (409 wrong IMA index), $serial judged one" \
    "after the other"
[ "$(pg_sql "SELECT count(*) FROM used_nonces")" -ge $((total)) ] && ok ||
    bad "fewer used nonces than judged rounds"

# --- each replica's log: no error
for n in 1 2; do
    if grep -q 'level=error' "$T/verifier-$n.log"; then
        bad "replica $n logged errors: $(grep 'level=error' "$T/verifier-$n.log" | head -3)"
    else
        ok
    fi
done
summary
