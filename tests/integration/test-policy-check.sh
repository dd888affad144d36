#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kimactl policy check, both ways: against a live kima-verifier on loopback
# (quotes from swtpm through agent-tool, ima-writer as the kernel) and
# against a recorded kernel list (tests/fixtures/ima/kernel-6.1-cgpath).
# Also GET /v1/pods/{ns}/{name}/measurements and the policy ids it shares
# with GET /v1/policies.
# Usage: test-policy-check.sh KIMA_VERIFIER KIMACTL AGENT_TOOL IMA_WRITER FIXTURES
set -u
V=$1
K=$2
A=$3
W=$4
FIX=$5
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
cleanup() {
    [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm curl openssl python3

GOOD=1111111111111111111111111111111111111111111111111111111111111111
UID_A=1a2b3c4d-0000-4111-8222-933344445555
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 || exit 1
mkdir -p "$T/policies" "$T/agent" "$T/var" "$T/try"
cat >"$T/policies/upf.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-upf",
 "match": {"namespace": "open5gs", "podLabels": {"app": "upf"}},
 "digests": {"/usr/bin/upfd": ["sha256:$GOOD"], "/usr/lib/libc.so.6": ["sha256:$GOOD"]}}
JSON
cat >"$T/pods.json" <<JSON
{"apiVersion": "v1", "kind": "PodList", "items": [
 {"metadata": {"uid": "$UID_A", "namespace": "open5gs", "name": "upf-0", "labels": {"app": "upf"}},
  "spec": {"nodeName": "node-1"}}]}
JSON

acurl() {
    curl -s --cacert "$P/ca.pem" --cert "$P/agent-$1.pem" --key "$P/agent-$1.key" -X "$2" \
        -H 'Content-Type: application/json' ${4:+--data-binary @"$4"} -o "$T/body" \
        -w '%{http_code}' "$URL$3" >"$T/status"
}
ocurl() {
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" -X "$1" \
        -o "$T/body" -w '%{http_code}' "$URL$2" >"$T/status"
}
status_is() { if [ "$(cat "$T/status")" = "$1" ]; then ok; else bad "$2: HTTP $(cat "$T/status"), wanted $1: $(head -c 300 "$T/body")"; fi; }
# jq_body EXPR: a Python expression over the answer `d`.
jq_body() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/body" "$1" 2>/dev/null; }
export KIMA_CERT=$P/operator.pem KIMA_KEY=$P/operator.key KIMA_CACERT=$P/ca.pem

swtpm_start "$T/tpm" || exit 1
TCTI=$SWTPM_TCTI
LIST=$T/sfs/ima/binary_runtime_measurements
"$W" --securityfs "$T/sfs" --tcti "$TCTI" init || bad "ima-writer init"
measure_pod() { "$W" --securityfs "$T/sfs" --tcti "$TCTI" pod "$UID_A" "$1" "$2" || bad "measure $1"; }
challenged() {
    acurl node-1 POST /v1/nodes/node-1/challenges
    [ "$(cat "$T/status")" != 429 ]
}
round() {
    WAIT_STEP=0.02 wait_until 2 challenged
    cp "$T/body" "$T/challenge.json"
    local from
    from=$(sed -n 's/.*"ima_next_index":\([0-9]*\).*/\1/p' "$T/challenge.json")
    "$A" "$TCTI" "$T/agent" evidence "$T/challenge.json" "$LIST" "$from" boot-1 >"$T/evidence.json" ||
        bad "agent-tool evidence"
    acurl node-1 POST /v1/nodes/node-1/evidence "$T/evidence.json"
}

verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
    --interval-ms 4000
export KIMA_SERVER=$URL

"$A" "$TCTI" "$T/agent" init >"$T/reg.json" || bad "agent-tool init"
acurl node-1 POST /v1/nodes/node-1/registration "$T/reg.json"
status_is 201 "registration"
cp "$T/body" "$T/regresp.json"
"$A" "$TCTI" "$T/agent" activate node-1 "$T/regresp.json" >"$T/act.json" || bad "activate"
acurl node-1 POST /v1/nodes/node-1/activation "$T/act.json"
status_is 200 "activation"
measure_pod /usr/bin/upfd $GOOD
measure_pod /usr/lib/libc.so.6 $GOOD
measure_pod /usr/bin/upfd $GOOD
round
status_is 200 "evidence"

# --- which policy judged the pod, and what it judged
ocurl GET /v1/policies
status_is 200 "GET /v1/policies"
ID=$(jq_body 'd["policies"][0]["id"]')
case "$ID" in open5gs-upf@sha256:????????????????????????????????????????????????????????????????) ok ;; *) bad "policy id: $ID" ;; esac
[ "$(jq_body 'd["policies"][0]["digest"]')" = "${ID#open5gs-upf@}" ] && ok || bad "policy digest"
ocurl GET /v1/pods/open5gs/upf-0
[ "$(jq_body 'd["policy"]')" = "$ID" ] && ok || bad "the pod's policy: $(cat "$T/body")"
[ "$(jq_body 'd["labels"]["app"]')" = upf ] && ok || bad "the pod's labels: $(cat "$T/body")"
ocurl GET /v1/pods/open5gs/upf-0/measurements
status_is 200 "GET .../measurements"
[ "$(jq_body '",".join(m["path"] + "=" + m["result"] for m in d["measurements"])')" = \
    "/usr/bin/upfd=pass,/usr/lib/libc.so.6=pass" ] && ok || bad "measurements: $(cat "$T/body")"
[ "$(jq_body 'd["policy"]')" = "$ID" ] && ok || bad "measurements' policy"
[ "$(jq_body 'd["dropped"]')" = 0 ] && ok || bad "measurements dropped"
ocurl GET /v1/pods/open5gs/nope/measurements
status_is 404 "measurements of an unknown pod"
curl -s --cacert "$P/ca.pem" --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" \
    -o /dev/null -w '%{http_code}' "$URL/v1/pods/open5gs/upf-0/measurements" >"$T/status"
status_is 403 "measurements for an agent"
grep -q "\"policy\":\"$ID\"" "$T/var/audit.log" && ok || bad "the audit log names $ID"

# --- the dry run against the verifier
expect 0 "$K" policy check --policy "$T/policies/upf.json"
has "$T/out" "open5gs/upf-0: would stay trusted (2 measurements judged, 0 excluded)" "same policy"
has "$T/out" "policy $ID: 1 checked, 1 would stay trusted, 0 would not" "same policy summary"
# The next version drops libc and moves to match by namespace only.
cat >"$T/try/upf-v2.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-upf",
 "match": {"namespace": "open5gs"}, "digests": {"/usr/bin/upfd": ["sha256:$GOOD"]}}
JSON
expect 1 "$K" policy check --policy "$T/try/upf-v2.json"
has "$T/out" "open5gs/upf-0: would turn untrusted: 1 of 2 measurements fail" "v2"
has "$T/out" "  /usr/lib/libc.so.6 sha256:$GOOD not in policy" "v2 reason"
has "$T/out" ": 1 checked, 0 would stay trusted, 1 would not" "v2 summary"
expect 1 "$K" policy check --policy "$T/try/upf-v2.json" --pod open5gs/upf-0 --max-reasons 0
has "$T/out" "  (and 1 more; --max-reasons shows more)" "reasons counted"
expect 1 "$K" policy check --policy "$T/try/upf-v2.json" --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["would_not_stay_trusted"] == 1, d
p = d["pods"][0]
assert p["pod"] == "open5gs/upf-0" and p["would_be"] == "untrusted" and p["failed"] == 1, p
assert p["reasons"][0]["path"] == "/usr/lib/libc.so.6" and p["reasons"][0]["result"] == "fail", p' \
    "$T/out" && ok || bad "--json: $(head -c 400 "$T/out")"
# A policy of another name that matches the pod too: the verifier keeps the
# first one in file-name order, and check says so (the pod is judged today
# by open5gs-upf).
sed 's/"name": "open5gs-upf"/"name": "zz-upf"/' "$T/try/upf-v2.json" >"$T/try/zz.json"
expect 1 "$K" policy check --policy "$T/try/zz.json"
has "$T/err" "open5gs/upf-0 is judged today by policy $ID" "another policy judges the pod"
expect 1 "$K" policy check --policy "$T/try/upf-v2.json"
if grep -q "judged today" "$T/err"; then bad "a warning for the policy that judges the pod"; else ok; fi
# A policy for another namespace matches no pod here.
sed 's/"open5gs"}/"other"}/' "$T/try/upf-v2.json" >"$T/try/other.json"
expect 0 "$K" policy check --policy "$T/try/other.json"
has "$T/out" ": 0 checked, 0 would stay trusted, 0 would not" "no pod matched"
expect 66 "$K" policy check --policy "$T/try/upf-v2.json" --pod open5gs/nope
expect 64 "$K" policy check --policy "$T/try/upf-v2.json" --pod upf-0
echo '{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "x", "digests": {}}' >"$T/try/bad.json"
expect 2 "$K" policy check --policy "$T/try/bad.json"
has "$T/err" "bad.json: not a valid policy: " "malformed policy"
has "$T/err" "is missing (a PodPolicy needs one)" "malformed policy reason"
expect 66 "$K" policy check --policy "$T/try/none.json"
expect 69 "$K" --server https://127.0.0.1:1 policy check --policy "$T/try/upf-v2.json"
expect 64 "$K" policy check
(unset KIMA_SERVER; expect 64 "$K" policy check --policy "$T/try/upf-v2.json")

# --- the dry run against a recorded list (a real kernel's, three pods)
L=$FIX/ima/kernel-6.1-cgpath/binary_runtime_measurements
cat >"$T/try/open5gs.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs", "match": {"namespace": "open5gs"},
 "digests": {"/usr/bin/open5gs-amfd": ["sha256:339dca4f3154bb81f2ebfa82bea9ab78659326709f7873d19266decc0edb1d4c"],
             "/usr/bin/open5gs-upfd": ["sha256:e449f66ff2f3ffb44078d57fb5f4ce393d39a9f6b3f474a7abed2835cbf9ae88"],
             "/usr/bin/open5gs-smfd": ["sha256:a9c5bbb46a31075c0ba4d80271a782a45653920ebd22ac02129fbc66c62fc762"]}}
JSON
(unset KIMA_SERVER; expect 1 "$K" policy check --policy "$T/try/open5gs.json" --list "$L")
has "$T/out" "pod aaaaaaaa-0000-4000-8000-00000000000a: would stay trusted (1 measurements judged" "list pod a"
has "$T/out" "pod aaaaaaaa-0000-4000-8000-00000000000b: would turn untrusted: 1 of 2 measurements fail" "list pod b"
has "$T/out" "  /usr/bin/cryptominer sha256:7b2b9592eb9e9d5412ffca5a00edb8dac2300052221a9d0a800816c3871cb1ca not in policy" "list reason"
has "$T/out" ": 3 checked, 2 would stay trusted, 1 would not" "list summary"
expect 0 "$K" policy check --policy "$T/try/open5gs.json" --list "$L" --pod aaaaaaaa-0000-4000-8000-00000000000c
has "$T/out" ": 1 checked, 1 would stay trusted, 0 would not" "list --pod"
# A NodePolicy judges the host's entries only (71 of them, boot_aggregate too).
printf '{"apiVersion": "kima.dev/v1", "kind": "NodePolicy", "name": "host", "digests": {"/init": ["sha256:b2208c8b140a27d877f06a63975d107e2dab36efbb5eeb93e53110753371dd08"]}}' >"$T/try/node.json"
expect 1 "$K" policy check --policy "$T/try/node.json" --list "$L" --max-reasons 1
has "$T/out" "node: would turn untrusted: 70 of 71 measurements fail" "node policy"
has "$T/out" "  (and 69 more" "node policy reasons counted"
expect 64 "$K" policy check --policy "$T/try/node.json"
# Broken lists: cut inside an entry, and absent.
head -c 1000 "$L" >"$T/try/cut.bin"
expect 2 "$K" policy check --policy "$T/try/open5gs.json" --list "$T/try/cut.bin"
expect 66 "$K" policy check --policy "$T/try/open5gs.json" --list "$T/try/none.bin"

summary
