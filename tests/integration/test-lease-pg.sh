#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two kima-verifier replicas on one PostgreSQL store and one (fake)
# Kubernetes API, both with --lease (docs/kubernetes.md, "Several
# replicas"): the node attests at the replica that does NOT hold the Lease;
# its verdicts reach the pod's label through the holder alone, within a few
# seconds (the holder reads every pod's state from the shared store each
# second), and only the holder writes labels and Events. Then the holder is
# stopped (SIGTERM: it releases the Lease) and the other replica, which
# judged the node, takes over and labels a new verdict itself.
# Skipped (77) when PostgreSQL is not installed or the verifier was built
# without its PostgreSQL backend.
# Usage: test-lease-pg.sh KIMA_VERIFIER AGENT_TOOL IMA_WRITER
set -u
V=$1
A=$2
W=$3
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
PIDS=() FPID=
cleanup() {
    local p
    for p in "${PIDS[@]}" $FPID; do kill -9 "$p" 2>/dev/null; done
    swtpm_stop
    pg_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

GOOD=1111111111111111111111111111111111111111111111111111111111111111
EVIL=6666666666666666666666666666666666666666666666666666666666666666
UID_A=1a2b3c4d-0000-4111-8222-933344445555
NS=kima-system
LEASE=kima-verifier
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/agent" "$T/v1" "$T/v2"
cat >"$T/policies/upf.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-upf",
 "match": {"namespace": "open5gs", "podLabels": {"app": "upf"}},
 "digests": {"/usr/bin/upfd": ["sha256:$GOOD"]}}
JSON
cat >"$T/pods.json" <<JSON
{"kind": "PodList", "items": [
 {"metadata": {"uid": "$UID_A", "namespace": "open5gs", "name": "upf-0", "labels": {"app": "upf"}},
  "spec": {"nodeName": "node-1"}}]}
JSON
python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
fake_kubeconfig "$T/kubeconfig"
ln -s "$P" "$T/pki" 2>/dev/null

pg_start "$T/pg" || exit 1

# start NAME: replica NAME on the shared store and API; PID_NAME, URL_NAME.
start() {
    POD_NAME=$1 POD_NAMESPACE=$NS verifier_start "$T/$1.log" 1 --tls-cert "$P/server.pem" \
        --tls-key "$P/server.key" --client-ca "$P/ca.pem" --db "$PG_DSN" --replica "$1" \
        --audit-log "$T/$1/audit.log" --audit-key "$T/$1/audit.key" --policies "$T/policies" \
        --kubeconfig "$T/kubeconfig" --lease $LEASE --interval-ms 60000 --nonce-ttl-ms 60000 \
        --min-challenge-ms 0 --drain-timeout-ms 500
    PIDS+=("$VPID")
    eval "PID_$1=$VPID URL_$1=$URL"
}
acurl() { # URL METHOD PATH [BODYFILE]: as node-1's agent, into $T/r.{status,body}
    curl -s --cacert "$P/ca.pem" --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" \
        -X "$2" -H 'Content-Type: application/json' ${4:+--data-binary @"$4"} -o "$T/r.body" \
        -w '%{http_code}' "$1$3" >"$T/r.status"
}
status_is() {
    local s
    s=$(cat "$T/r.status")
    if [ "$s" = "$1" ]; then ok; else bad "$2: HTTP $s, wanted $1: $(head -c 300 "$T/r.body")"; fi
}
lease_holder() {
    fake state | python3 -c '
import json, sys
ls = [l for l in json.load(sys.stdin)["leases"] if l["metadata"]["name"] == sys.argv[1]]
print(ls[0].get("spec", {}).get("holderIdentity", "") if ls else "-")' $LEASE
}
holder_is_replica() { case "$(lease_holder)" in v1 | v2) return 0 ;; esac; return 1; }
holder_is() { [ "$(lease_holder)" = "$1" ]; }
label() {
    fake state | python3 -c '
import json, sys
for p in json.load(sys.stdin)["pods"]:
    if p["metadata"]["name"] == "upf-0":
        print((p["metadata"].get("labels") or {}).get("kima.dev/trust", ""))'
}
label_is() { [ "$(label)" = "$1" ]; }
# writers: the User-Agents of every PATCH of a pod and every Event POST
writers() {
    fake state | python3 -c '
import json, sys
print(" ".join(sorted({r["agent"] for r in json.load(sys.stdin)["requests"]
                       if (r["method"] == "PATCH" and "/pods/" in r["path"])
                       or (r["method"] == "POST" and r["path"].endswith("/events"))})))'
}
other() { [ "$1" = v1 ] && echo v2 || echo v1; }
now_ms() { date +%s%3N; }
# round URL: one attestation round of node-1 at that replica (200 wanted)
round() {
    local from
    acurl "$1" POST /v1/nodes/node-1/challenges
    status_is 200 "challenge"
    cp "$T/r.body" "$T/c.json"
    from=$(sed -n 's/.*"ima_next_index":\([0-9]*\).*/\1/p' "$T/c.json")
    "$A" "$TCTI" "$T/agent" evidence "$T/c.json" "$LIST" "$from" boot-1 >"$T/e.json" ||
        bad "agent-tool evidence"
    acurl "$1" POST /v1/nodes/node-1/evidence "$T/e.json"
    status_is 200 "evidence at $1"
}

swtpm_start "$T/tpm" || exit 1
TCTI=$SWTPM_TCTI
LIST=$T/sfs/ima/binary_runtime_measurements
"$W" --securityfs "$T/sfs" --tcti "$TCTI" init || bad "ima-writer init"

start v1
start v2
wait_until 20 holder_is_replica && ok || bad "no replica took the Lease: $(lease_holder)"
H=$(lease_holder)
O=$(other "$H")
JUDGE=$(eval echo "\$URL_$O")

# Registered, activated and attested at the replica without the Lease.
"$A" "$TCTI" "$T/agent" init >"$T/reg.json" || bad "agent-tool init"
acurl "$JUDGE" POST /v1/nodes/node-1/registration "$T/reg.json"
status_is 201 "registration at $O"
"$A" "$TCTI" "$T/agent" activate node-1 "$T/r.body" >"$T/act.json" || bad "activate"
acurl "$JUDGE" POST /v1/nodes/node-1/activation "$T/act.json"
status_is 200 "activation at $O"
pg_sql "SELECT name FROM nodes" | grep -qx node-1 && ok || bad "the node is not in PostgreSQL"

"$W" --securityfs "$T/sfs" --tcti "$TCTI" pod "$UID_A" /usr/bin/upfd $GOOD || bad "measure"
round "$JUDGE"
t0=$(now_ms)
wait_until 10 label_is trusted && ok || bad "$O's verdict did not reach the label: '$(label)'"
echo "a verdict at $O labelled by $H in $(($(now_ms) - t0)) ms"

"$W" --securityfs "$T/sfs" --tcti "$TCTI" pod "$UID_A" /tmp/miner $EVIL || bad "measure"
round "$JUDGE"
grep -q '"verdict":"trusted"' "$T/r.body" && ok || bad "the node's verdict: $(head -c 300 "$T/r.body")"
t0=$(now_ms)
wait_until 10 label_is untrusted && ok || bad "the untrusted verdict did not reach the label: '$(label)'"
echo "an untrusted verdict at $O labelled by $H in $(($(now_ms) - t0)) ms"
wait_until 5 test -n "$(writers)" && [ "$(writers)" = "kima-verifier/$H" ] && ok ||
    bad "labels and Events written by '$(writers)', not only by $H"
grep -q '"to":"untrusted"' "$T/$O/audit.log" && ok || bad "the judge's audit chain has no verdict"
grep -q '"to":"untrusted"' "$T/$H/audit.log" && bad "the holder's chain claims a verdict it did not judge" || ok

# The holder stops (SIGTERM: released); the judge takes the Lease and
# labels its next verdict itself.
kill -TERM "$(eval echo "\$PID_$H")"
wait_until 15 holder_is "$O" && ok || bad "$O did not take the released Lease: $(lease_holder)"
curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" -X POST \
    -H 'Content-Type: application/json' --data '{"reason": "the miner was removed"}' \
    -o /dev/null -w '%{http_code}' "$JUDGE/v1/pods/$UID_A/reset" | grep -qx 200 && ok ||
    bad "the operator's reset"
wait_until 10 label_is unknown && ok || bad "the new holder did not label the reset pod: '$(label)'"
case " $(writers) " in *" kima-verifier/$O "*) ok ;; *) bad "$O never wrote after taking the Lease: $(writers)" ;; esac
summary
