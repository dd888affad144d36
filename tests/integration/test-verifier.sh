#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The verifier as operators run it: a real kima-verifier process over HTTPS
# with client certificates, quotes from swtpm (through kima's TPM layer, in
# agent-tool), ima-writer as the kernel, curl as the agent's transport and
# kimactl as the operator.
# Usage: test-verifier.sh KIMA_VERIFIER KIMACTL AGENT_TOOL IMA_WRITER
set -u
V=$1
K=$2
A=$3
W=$4
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
EVIL=6666666666666666666666666666666666666666666666666666666666666666
NEW=2222222222222222222222222222222222222222222222222222222222222222
UID_A=1a2b3c4d-0000-4111-8222-933344445555
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 node-2 || exit 1
mkdir -p "$T/policies" "$T/agent" "$T/agent2" "$T/var"
cat >"$T/policies/upf.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-upf",
 "match": {"namespace": "open5gs", "podLabels": {"app": "upf"}},
 "digests": {"/usr/bin/upfd": ["sha256:$GOOD"], "/usr/lib/libc.so.6": ["sha256:$GOOD"]},
 "excludes": ["^/tmp/cache/"]}
JSON
cat >"$T/pods.json" <<JSON
{"apiVersion": "v1", "kind": "PodList", "items": [
 {"metadata": {"uid": "$UID_A", "namespace": "open5gs", "name": "upf-0", "labels": {"app": "upf"}},
  "spec": {"nodeName": "node-1"},
  "status": {"containerStatuses": [{"containerID": "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}}]}
JSON

start_verifier() {
    verifier_start "$T/verifier.log" "$1" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
        --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 4000 --nonce-ttl-ms 1500
}

# acurl NODE METHOD PATH [BODYFILE]: as that node's agent; status in $T/status, body in $T/body.
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
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[int(k)] if k.isdigit() else d[k]
print(d)' "$T/body" "$1" 2>/dev/null; }
export KIMA_CERT=$P/operator.pem KIMA_KEY=$P/operator.key KIMA_CACERT=$P/ca.pem

swtpm_start "$T/tpm" || exit 1
TCTI=$SWTPM_TCTI
LIST=$T/sfs/ima/binary_runtime_measurements
"$W" --securityfs "$T/sfs" --tcti "$TCTI" init || bad "ima-writer init"
# measure PATH DIGEST [node]: an entry of the test pod (or of the host)
measure() {
    if [ "${3:-pod}" = pod ]; then
        "$W" --securityfs "$T/sfs" --tcti "$TCTI" pod 1a2b3c4d-0000-4111-8222-933344445555 "$1" "$2"
    else
        "$W" --securityfs "$T/sfs" --tcti "$TCTI" host "$1" "$2" --template ima-cgpath
    fi || bad "measure $1"
}
# challenged: node-1 asks for a challenge; false while it is too early
# (429: the previous one came less than --min-challenge-ms before).
challenged() {
    acurl node-1 POST /v1/nodes/node-1/challenges
    [ "$(cat "$T/status")" != 429 ]
}
# round [DROP]: one attestation round of node-1; the verdict is in $T/body.
round() {
    WAIT_STEP=0.02 wait_until 2 challenged
    cp "$T/body" "$T/challenge.json"
    local from
    from=$(sed -n 's/.*"ima_next_index":\([0-9]*\).*/\1/p' "$T/challenge.json")
    "$A" "$TCTI" "$T/agent" evidence "$T/challenge.json" "$LIST" "$from" boot-1 ${1:-} >"$T/evidence.json" ||
        bad "agent-tool evidence"
    acurl node-1 POST /v1/nodes/node-1/evidence "$T/evidence.json"
}
pod_state() { "$K" --server "$URL" pod open5gs/upf-0 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }

start_verifier 1
export KIMA_SERVER=$URL

# --- registration and activation
"$A" "$TCTI" "$T/agent" init >"$T/reg.json" || bad "agent-tool init"
acurl node-1 POST /v1/nodes/node-1/registration "$T/reg.json"
status_is 201 "registration"
cp "$T/body" "$T/regresp.json"
"$A" "$TCTI" "$T/agent" activate node-1 "$T/regresp.json" >"$T/act.json" || bad "activate"
acurl node-1 POST /v1/nodes/node-1/activation "$T/act.json"
status_is 200 "activation"

# --- a trusted pod
measure /usr/bin/upfd $GOOD
measure /usr/lib/libc.so.6 $GOOD
measure /usr/bin/containerd $EVIL node
round
status_is 200 "first evidence"
[ "$(jget verdict)" = trusted ] && ok || bad "node verdict: $(cat "$T/body")"
[ "$(pod_state)" = trusted ] && ok || bad "pod should be trusted"
expect 0 "$K" nodes
has "$T/out" "node-1" "kimactl nodes"
has "$T/out" "trusted" "kimactl nodes state"

# --- the negative rules of the protocol
cp "$T/evidence.json" "$T/replayed.json"
acurl node-1 POST /v1/nodes/node-1/evidence "$T/replayed.json"
status_is 409 "replayed nonce"
acurl node-1 POST /v1/nodes/node-1/challenges
# The nonce was issued before this moment: it has expired once its
# expires_in_ms have passed from here.
issued=${EPOCHREALTIME/[.,]/}
cp "$T/body" "$T/challenge.json"
"$A" "$TCTI" "$T/agent" evidence "$T/challenge.json" "$LIST" 3 boot-1 >"$T/late.json"
expires=$((issued + $(jget expires_in_ms) * 1000))
expired() { [ "${EPOCHREALTIME/[.,]/}" -gt "$expires" ]; }
WAIT_STEP=0.02 wait_until 5 expired || bad "the nonce's expiry did not come"
acurl node-1 POST /v1/nodes/node-1/evidence "$T/late.json"
status_is 409 "expired nonce"
acurl node-1 POST /v1/nodes/node-2/challenges
status_is 403 "another node's endpoint"
acurl node-2 POST /v1/nodes/node-1/evidence "$T/evidence.json"
status_is 403 "evidence for another node"
acurl node-1 POST /v1/nodes/node-1/challenges
cp "$T/body" "$T/challenge.json"
"$A" "$TCTI" "$T/agent" evidence "$T/challenge.json" "$LIST" 0 boot-1 >"$T/wrongidx.json"
acurl node-1 POST /v1/nodes/node-1/evidence "$T/wrongidx.json"
status_is 409 "log that starts at the wrong index"
head -c 120000 /dev/zero | tr '\0' 'a' >"$T/big.json"
acurl node-1 POST /v1/nodes/node-1/registration "$T/big.json"
status_is 413 "oversized body"
python3 -c 'print("["*40 + "]"*40)' >"$T/deep.json"
acurl node-1 POST /v1/nodes/node-1/registration "$T/deep.json"
status_is 400 "deep JSON"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["ak_pub"]="%%%"; print(json.dumps(d))' "$T/reg.json" >"$T/b64.json"
acurl node-1 POST /v1/nodes/node-1/registration "$T/b64.json"
status_is 400 "malformed base64"
"$A" "$TCTI" "$T/agent2" init >"$T/reg2.json"
acurl node-1 POST /v1/nodes/node-1/registration "$T/reg2.json"
status_is 409 "re-registration with another AK"
# ... refused again and again: the audit log takes a few, not all of them
for _ in $(seq 30); do acurl node-1 POST /v1/nodes/node-1/registration "$T/reg2.json"; done
status_is 409 "the 31st conflicting registration"
n=$(grep -c '"type":"registration-refused"' "$T/var/audit.log")
[ "$n" -le 6 ] && ok || bad "31 refusals wrote $n audit records (at most 5 a minute)"
# another TPM altogether
mkdir -p "$T/agent3"
SW1_PID=$SWTPM_PID
SW1_TCTI=$SWTPM_TCTI
swtpm_start "$T/tpm2" || bad "the second swtpm did not start"
"$A" "$SWTPM_TCTI" "$T/agent3" init >"$T/reg3.json"
swtpm_stop
SWTPM_PID=$SW1_PID
SWTPM_TCTI=$SW1_TCTI
acurl node-1 POST /v1/nodes/node-1/registration "$T/reg3.json"
status_is 409 "re-registration with another TPM"
# two challenges at once: the second is too early
burst=()
for i in 1 2; do
    curl -s --cacert "$P/ca.pem" --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" \
        -X POST -o /dev/null -w '%{http_code}\n' "$URL/v1/nodes/node-1/challenges" >>"$T/burst" &
    burst+=($!)
done
wait "${burst[@]}"
grep -q 429 "$T/burst" && ok || bad "challenges in a burst: $(tr '\n' ' ' <"$T/burst")"
ocurl GET /v1/nodes
status_is 200 "operator listing"
acurl node-1 GET /v1/nodes
status_is 403 "agent on an operator endpoint"
curl -s --cacert "$P/ca.pem" -o "$T/body" -w '%{http_code}' "$URL/v1/nodes" >"$T/status"
status_is 401 "no client certificate"
curl -s --cacert "$P/ca.pem" --cert "$P/foreign.pem" --key "$P/foreign.key" -o "$T/body" \
    -w '%{http_code}' "$URL/v1/nodes" >"$T/status"
status_is 401 "certificate of another CA"
node_stale() { "$K" nodes --json 2>/dev/null | grep -q '"state": "stale"'; }
st=$(pod_state)
# (On a loaded machine the steps since the last round can outlast three
# intervals: the node is then stale and its pods unknown, which is not the
# rejected requests' doing; anything else is.)
if [ "$st" = trusted ] || { [ "$st" = unknown ] && node_stale; }; then
    ok
else
    bad "rejected requests changed the pod ($st): $($K nodes 2>&1 | tail -1)"
fi

# --- an unknown binary: untrusted, and it stays so
measure /usr/bin/xmrig $EVIL
round
status_is 200 "evidence with an unknown binary"
[ "$(pod_state)" = untrusted ] && ok || bad "pod should be untrusted"
measure /usr/bin/upfd $GOOD
round
[ "$(pod_state)" = untrusted ] && ok || bad "untrusted must be sticky"
expect 0 "$K" pods --state untrusted
has "$T/out" "upf-0" "kimactl pods --state untrusted"

# --- an operator reset, then a clean round
expect 64 "$K" pod reset "$UID_A"
expect 64 "$K" pod reset "$UID_A" --reason ""
expect 0 "$K" pod reset "$UID_A" --reason "xmrig removed, image rebuilt"
[ "$(pod_state)" = unknown ] && ok || bad "reset pod should be unknown"
measure /usr/lib/libc.so.6 $GOOD
round
[ "$(pod_state)" = trusted ] && ok || bad "pod should be trusted after a clean round"

# --- policy reload without restart; a broken file is reported and ignored
python3 - "$T/policies/upf.json" "$NEW" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["digests"]["/usr/bin/newtool"] = ["sha256:" + sys.argv[2]]
json.dump(p, open(sys.argv[1], "w"))
PY
echo '{"apiVersion": "kima.dev/v1", "kind": "PodPolicy",' >"$T/policies/broken.json"
# Both files are read once the broken one is reported (it came last).
policies_report() { ocurl GET /v1/policies && grep -q "broken.json" "$T/body"; }
wait_until 5 policies_report || bad "the policy directory was not read again"
measure /usr/bin/newtool $NEW
round
[ "$(pod_state)" = trusted ] && ok || bad "a new digest must take effect without a restart"
ocurl GET /v1/policies
has "$T/body" "broken.json" "broken policy reported"

# --- kill -9 and restart: resumes from the stored state, no acknowledged record lost
acked=$(wc -l <"$T/var/audit.log")
kill -9 "$VPID"
wait "$VPID" 2>/dev/null
start_verifier 2
export KIMA_SERVER=$URL
[ "$(wc -l <"$T/var/audit.log")" -ge "$acked" ] && ok || bad "acknowledged audit records lost"
measure /usr/bin/upfd $GOOD
round
status_is 200 "evidence after kill -9"
[ "$(jget ima_next_index)" = 8 ] && ok || bad "resume index: $(cat "$T/body")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ima"]["from"] > 0' "$T/evidence.json" &&
    ok || bad "the agent had to re-send the whole list"

# --- stale after 3 missed intervals (12 s), pods read unknown
WAIT_STEP=0.5 wait_until 20 node_stale || bad "node-1 did not go stale"
expect 0 "$K" nodes --json
has "$T/out" '"state": "stale"' "stale node"
[ "$(pod_state)" = unknown ] && ok || bad "pods of a stale node must read unknown"
round
[ "$(pod_state)" = trusted ] && ok || bad "back to trusted when the node attests again"

# --- metrics
ocurl GET /metrics
has "$T/body" 'kima_pods{state="trusted"} 1' "metrics"
has "$T/body" 'kima_evidence_seconds_count' "metrics histogram"

# --- a truncated log and a bad quote make the node and its pods untrusted
measure /usr/bin/upfd $GOOD
round 1
[ "$(jget verdict)" = untrusted ] && ok || bad "truncated log: $(cat "$T/body")"
[ "$(pod_state)" = untrusted ] && ok || bad "pods of a failed node are untrusted"

# --- an operator deletes the node: the name can be registered again
expect 0 "$K" node delete node-1
acurl node-1 POST /v1/nodes/node-1/registration "$T/reg3.json"
status_is 201 "registration after the node was deleted"
expect 1 "$K" node delete node-9

# --- the audit log: intact, and tampering is named
kill -TERM "$VPID"
wait "$VPID"
[ $? -eq 0 ] && ok || bad "SIGTERM exit code"
VPID=
expect 0 "$K" audit verify --key "$T/var/audit.key.pub" "$T/var/audit.log"
has "$T/out" "intact" "audit verify"
sed '5s/node-1/node-9/' "$T/var/audit.log" >"$T/tampered.log"
expect 1 "$K" audit verify --key "$T/var/audit.key.pub" "$T/tampered.log"
has "$T/out" "tampered:" "edited audit record"
sed '6d' "$T/var/audit.log" >"$T/deleted.log"
expect 1 "$K" audit verify --key "$T/var/audit.key.pub" "$T/deleted.log"
expect 0 "$K" audit show --pod upf-0 "$T/var/audit.log"
has "$T/out" "violation" "audit show"

# --- plain HTTP only behind its flag, and it says so
"$V" --listen 127.0.0.1:0 --insecure-plain-http --db "$T/var/plain.db" \
    --audit-log "$T/var/plain.log" --audit-key "$T/var/audit.key" >"$T/plain.log" 2>&1 &
PLAIN=$!
WAIT_STEP=0.05 wait_until 5 grep -q "listening on port" "$T/plain.log" || bad "plain HTTP did not start"
PPORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/plain.log")
has "$T/plain.log" "NO TLS, NO CLIENT AUTHENTICATION" "plain HTTP warning"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PPORT/v1/nodes" 2>"$T/curl.err")" = 200 ] && ok ||
    bad "plain HTTP demo mode (port $PPORT: $(cat "$T/curl.err"); $(tail -3 "$T/plain.log"))"
kill "$PLAIN"
wait "$PLAIN"

# --- a SIGTERM while the services open (SIGTERM and SIGINT are blocked
# before anything opens): the verifier opens, then stops cleanly, exit 0
"$V" --listen 127.0.0.1:0 --insecure-plain-http --db "$T/var/early.db" \
    --audit-log "$T/var/early.log" --audit-key "$T/var/audit.key" >"$T/early.log" 2>&1 &
EARLY=$!
WAIT_STEP=0.002 wait_until 10 grep -q "NO TLS" "$T/early.log" || bad "the early verifier did not log"
kill -TERM "$EARLY"
wait "$EARLY"
rc=$?
[ $rc -eq 0 ] && ok || bad "SIGTERM during start-up: exit $rc, wanted 0 ($(tail -2 "$T/early.log"))"
has "$T/early.log" "signal 15: finishing requests in flight and stopping" "early SIGTERM handled"

# --- excludes: one that matches every path is refused, naming it, unless
# --allow-match-all-excludes loads it with a warning; one over /tmp warns
mkdir -p "$T/xpol"
echo '{"apiVersion": "kima.dev/v1", "kind": "NodePolicy", "name": "all", "digests": {}, "excludes": ["^/"]}' \
    >"$T/xpol/all.json"
echo '{"digests": {}, "excludes": ["/tmp"]}' >"$T/xpol/keylime.json"
for flag in "" --allow-match-all-excludes; do
    "$V" --listen 127.0.0.1:0 --insecure-plain-http --db "$T/var/x$flag.db" --audit-log "$T/var/x$flag.log" \
        --audit-key "$T/var/audit.key" --policies "$T/xpol" $flag >"$T/x.log" 2>&1 &
    XPID=$!
    WAIT_STEP=0.05 wait_until 5 grep -q "listening on port" "$T/x.log" || bad "the verifier did not start"
    XPORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/x.log")
    curl -sS "http://127.0.0.1:$XPORT/v1/policies" >"$T/body" 2>"$T/curl.err"
    python3 - "$T/body" "$flag" <<'PY' && ok || bad "policies with${flag:+ $flag} (port $XPORT: $(cat "$T/curl.err"); $(tail -3 "$T/x.log")): $(cat "$T/body")"
import json, sys
d = json.load(open(sys.argv[1])); err = d["errors"]; names = [p["name"] for p in d["policies"]]
assert 'keylime.json: warning: "excludes[0]" ("/tmp") matches /tmp/x' in err
if sys.argv[2]:
    assert names == ["all", "keylime.json"], names
    assert 'all.json: warning: "excludes[0]" ("^/") matches every path' in err
else:
    assert names == ["keylime.json"], names
    assert 'all.json: "excludes[0]" ("^/") matches every path' in err
PY
    has "$T/x.log" 'matches /tmp/x' "exclude warnings are logged"
    kill "$XPID"
    wait "$XPID"
done
"$V" --help >"$T/out"
has "$T/out" "--allow-match-all-excludes" "the flag is in --help"
has "$T/out" "KIMA_ALLOW_MATCH_ALL_EXCLUDES=1" "its variable is in --help"

summary
