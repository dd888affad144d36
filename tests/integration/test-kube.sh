#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima-verifier against a fake Kubernetes API server (the one stand-in:
# tests/helpers/fake-kube-api.py), with swtpm, kima-agent and the kernel
# stand-in: pods come from the API (a LIST, then a watch), verdicts become labels, annotations and
# Events; conflicts, throttling and an outage are retried and caught up;
# attestation never waits for the API.
# Usage: test-kube.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID= APID= FPID=
cleanup() {
    for p in $APID $VPID $FPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm curl openssl python3
GOOD=1111111111111111111111111111111111111111111111111111111111111111
EVIL=6666666666666666666666666666666666666666666666666666666666666666
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 node-2 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state" "$T/var"
echo "boot-$$" >"$T/boot_id"
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-000000000001 [smf]=aaaaaaaa-0000-4000-8000-000000000002
                 [upf]=aaaaaaaa-0000-4000-8000-000000000003 [nrf]=aaaaaaaa-0000-4000-8000-000000000004
                 [ausf]=aaaaaaaa-0000-4000-8000-000000000005)
items=""
for app in amf smf upf nrf ausf; do
    cat >"$T/policies/$app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-$app",
 "match": {"namespace": "open5gs", "podLabels": {"app": "$app"}},
 "digests": {"/usr/bin/open5gs-${app}d": ["sha256:$GOOD"]}}
JSON
    [ $app = nrf ] || [ $app = ausf ] && continue # created later
    items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$app]}\", \"namespace\": \"open5gs\", \"name\": \"$app-0\", \"labels\": {\"app\": \"$app\"}}, \"spec\": {\"nodeName\": \"node-1\"}}"
done
echo "{\"kind\": \"PodList\", \"items\": [$items]}" >"$T/pods.json"

python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --readonly-token viewer --pods "$T/pods.json" --port-file "$T/api.port" \
    >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
cat >"$T/kubeconfig" <<YAML
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: $API
    certificate-authority: pki/ca.pem
contexts:
- name: test
  context: {cluster: fake, user: kima}
- name: viewer
  context: {cluster: fake, user: viewer}
users:
- name: kima
  user: {token: sekret}
- name: viewer
  user: {token: viewer}
YAML

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init || bad "ima-writer init"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig" \
    --interval-ms 500 --attribution-grace-ms 60000
# Every thread but the main one (which takes them in sigtimedwait) blocks
# SIGTERM and SIGINT, the Kubernetes client's included: a thread that did
# not would end the process at a SIGTERM with no cleanup.
unblocked_threads() {
    local task blk
    for task in /proc/"$VPID"/task/*; do
        [ "${task##*/}" = "$VPID" ] && continue
        blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$task/status" 2>/dev/null) || continue
        [ -n "$blk" ] || continue
        (((0x$blk & 0x4002) == 0x4002)) || echo "${task##*/}"
    done
}
[ "$(ls /proc/"$VPID"/task | wc -l)" -ge 3 ] && [ -z "$(unblocked_threads)" ] && ok ||
    bad "threads without SIGTERM and SIGINT blocked: $(unblocked_threads)"
agent_start
# app_measure PATH DIGEST APP: an entry of a process in APP's pod.
app_measure() { measure "${UIDS[$3]}" "$1" "$2"; }
kctl() { "$K" --server "$URL" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" "$@"; }
# label APP [KEY]: the pod's label (or annotation KEY) as the API has it
label() {
    fake state | python3 -c '
import json, sys
app, key = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["pods"]:
    if p["metadata"]["name"] == app + "-0":
        md = p["metadata"]
        print((md.get("labels") or {}).get(key, (md.get("annotations") or {}).get(key, "")))' "$1" "${2:-kima.dev/trust}"
}
label_is() { [ "$(label "$1")" = "$2" ]; }
wait_label() { # APP VALUE [SECONDS]
    wait_until "${3:-10}" label_is "$1" "$2" && ok || bad "$1's label should be $2, is '$(label "$1")'"
}
state_of() { state_of_ns open5gs "$1-0"; }
state_of_ns() {
    kctl pod "$1/$2" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null
}
state_is() { [ "$(state_of "$1")" = "$2" ]; }
state_is_ns() { [ "$(state_of_ns "$1" "$2")" = "$3" ]; }
# node_field FIELD: node-1's FIELD as the verifier has it.
node_field() {
    kctl nodes --json 2>/dev/null | python3 -c '
import json, sys
print([n[sys.argv[1]] for n in json.load(sys.stdin)["nodes"] if n["name"] == "node-1"][0])' "$1" 2>/dev/null
}
# rounds_since N: node-1 has attested at least N times since COUNT0.
rounds_since() { [ "$(node_field attestations)" -ge $((COUNT0 + $1)) ] 2>/dev/null; }
patches() { fake state | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["requests"] if r["method"] == "PATCH"))'; }

# 1. pods from the API, verdicts as labels and annotations
for app in amf smf upf; do app_measure "/usr/bin/open5gs-${app}d" $GOOD $app; done
for app in amf smf upf; do wait_label $app trusted; done
[ "$(label upf kima.dev/reason)" = "every measurement is in policy open5gs-upf" ] && ok ||
    bad "the reason annotation: $(label upf kima.dev/reason)"
label upf kima.dev/attested-at | grep -Eq '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' && ok ||
    bad "the attested-at annotation: $(label upf kima.dev/attested-at)"
fake state | python3 -c '
import json, sys
rs = [r for r in json.load(sys.stdin)["requests"] if r["method"] == "PATCH"]
sys.exit(0 if rs and all(r["content_type"] == "application/merge-patch+json" for r in rs) else 1)' &&
    ok || bad "patches must be JSON merge patches"

# 2. only when a value changes: idle rounds write nothing (six rounds of
# 500 ms, all within policy)
n1=$(patches)
COUNT0=$(node_field attestations)
wait_until 10 rounds_since 6 && ok || bad "node-1 did not attest six more times"
[ "$(patches)" = "$n1" ] && ok || bad "labels were patched again without a change ($n1 -> $(patches))"

# 3. a tampered binary: label untrusted, an Event, the others stay trusted
app_measure /usr/bin/open5gs-upfd $EVIL upf
wait_label upf untrusted
[ "$(label amf)" = trusted ] && [ "$(label smf)" = trusted ] && ok || bad "amf and smf must stay trusted"
event_sent() { fake state | grep -q IntegrityViolation; }
wait_until 5 event_sent
fake state | python3 -c '
import json, sys
ev = [e for e in json.load(sys.stdin)["events"] if e["reason"] == "IntegrityViolation"]
ok = len(ev) == 1 and ev[0]["involvedObject"]["name"] == "upf-0" and ev[0]["type"] == "Warning" \
    and "open5gs-upfd" in ev[0]["message"] and ev[0]["involvedObject"]["uid"] == sys.argv[1]
sys.exit(0 if ok else 1)' "${UIDS[upf]}" && ok || bad "one IntegrityViolation event on upf-0"

# 4. a pod created after the verifier started: found at once, judged, labelled
fake pods "{\"uid\": \"${UIDS[nrf]}\", \"namespace\": \"open5gs\", \"name\": \"nrf-0\", \"labels\": {\"app\": \"nrf\"}, \"nodeName\": \"node-1\"}" >/dev/null
app_measure /usr/bin/open5gs-nrfd $GOOD nrf
wait_label nrf trusted

# 4b. a pod replaced under its name (force-deleted and recreated, as a
# StatefulSet's pods are) before the verifier hears of it (the watch is
# held): a verdict of the old pod is not written on the new one (the patch
# names the old UID: 409).
NRF1_OLD=aaaaaaaa-0000-4000-8000-000000000006
NRF1_NEW=aaaaaaaa-0000-4000-8000-000000000007
fake pods "{\"uid\": \"$NRF1_OLD\", \"namespace\": \"open5gs\", \"name\": \"nrf-1\", \"labels\": {\"app\": \"nrf\"}, \"nodeName\": \"node-1\"}" >/dev/null
measure $NRF1_OLD /usr/bin/open5gs-nrfd $GOOD
wait_until 10 state_is_ns open5gs nrf-1 trusted && ok || bad "nrf-1 should read trusted"
fake watch '{"hold": true}' >/dev/null
fake pods "{\"uid\": \"$NRF1_NEW\", \"namespace\": \"open5gs\", \"name\": \"nrf-1\", \"labels\": {\"app\": \"nrf\"}, \"nodeName\": \"node-1\"}" >/dev/null
measure $NRF1_OLD /usr/bin/evil $EVIL # the old pod, stopping
wait_until 8 grep -q "kubernetes: labelling open5gs/nrf-1 untrusted: 409" "$T/verifier.log" && ok ||
    bad "the old nrf-1's verdict was not refused by its UID (no 409 logged)"
fake watch '{"hold": false}' >/dev/null
[ "$(python3 -c '
import json, sys
for p in json.load(sys.stdin)["pods"]:
    if p["metadata"]["name"] == "nrf-1":
        print((p["metadata"].get("labels") or {}).get("kima.dev/trust", ""))' < <(fake state))" != untrusted ] &&
    ok || bad "the new nrf-1 got its predecessor's verdict"
fake delete '{"namespace": "open5gs", "name": "nrf-1"}' >/dev/null

# 5. conflicts and throttling are retried
fake fail '{"method": "PATCH", "status": 409, "count": 1}' >/dev/null
fake fail '{"method": "PATCH", "status": 429, "count": 1}' >/dev/null
fake fail '{"method": "PATCH", "status": 500, "count": 1}' >/dev/null
app_measure /usr/bin/evil $EVIL smf
wait_label smf untrusted 15

# 6. an outage: attestation goes on, labels catch up afterwards
fake down '{"seconds": 4}' >/dev/null
app_measure /usr/bin/evil $EVIL nrf
wait_until 3 state_is nrf untrusted && ok || bad "the verdict must not wait for the API"
[ "$(label nrf)" = trusted ] && ok || bad "the label changed during the outage?"
wait_label nrf untrusted 40
grep -q "kubernetes: .*503" "$T/verifier.log" && ok || bad "the outage is not in the log"

# 6b. a slow API never holds up attestation: measurements of a pod the
# inventory does not know yet wait for it instead of a list under the
# engine's lock. Another node's requests answer at once meanwhile.
# node-2 asks while node-1's measurement of the unknown pod arrives and is
# read, and eight times more once it is.
fake slow '{"seconds": 8, "delay": 3}' >/dev/null
max=0
probe() {
    local t
    t=$(curl -s -o /dev/null -w '%{time_total}' --cacert "$P/ca.pem" --cert "$P/agent-node-2.pem" \
        --key "$P/agent-node-2.key" -X POST "$URL/v1/nodes/node-2/challenges")
    max=$(python3 -c 'import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))' "$max" "$t")
}
probe_until_read() { probe; caught_up node-1 kctl; }
for i in 1 2 3; do
    app_measure /usr/bin/open5gs-ausfd $GOOD ausf
    WAIT_STEP=0 wait_until 10 probe_until_read || bad "node-1's measurement $i was not read"
    for _ in $(seq 8); do probe; done
done
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)' "$max" && ok ||
    bad "another node waited ${max}s while the API was slow"
[ -z "$(state_of ausf)" ] && ok || bad "a pod the API does not have got a verdict: $(state_of ausf)"
# ... and is judged once it appears
fake pods "{\"uid\": \"${UIDS[ausf]}\", \"namespace\": \"open5gs\", \"name\": \"ausf-0\", \"labels\": {\"app\": \"ausf\"}, \"nodeName\": \"node-1\"}" >/dev/null
wait_label ausf trusted 20

# 6c. an operator deletes the node: its pods' labels go to unknown, not
# stay trusted (the agent is paused, so it cannot register again meanwhile)
kill -STOP "$APID"
kctl node delete node-1 >/dev/null || bad "node delete"
wait_label amf unknown 5
label amf kima.dev/reason | grep -q "does not track this pod" && ok ||
    bad "the untracked reason: $(label amf kima.dev/reason)"
kill -CONT "$APID"
wait_label amf trusted 15

# 6d. a tenant's pod the verifier listed, force-deleted, whose container
# runs a binary while it is stopped: still that pod's own measurement, not
# a failure of the node (found by the security review)
JOB=bbbbbbbb-0000-4000-8000-00000000000a
rv=$(fake pods "{\"uid\": \"$JOB\", \"namespace\": \"tenant\", \"name\": \"job-0\", \"nodeName\": \"node-1\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
# The verifier's watch has had it (the deletion comes after it on the stream)
sent() { [ "$(fake state | python3 -c 'import json,sys; print(json.load(sys.stdin)["sent_rv"])')" -ge "$rv" ]; }
wait_until 10 sent && ok || bad "job-0 was not sent on the watch"
fake delete '{"namespace": "tenant", "name": "job-0"}' >/dev/null
measure "$JOB" /bin/sh $GOOD
judged() { [ -n "$(state_of_ns tenant job-0)" ]; }
wait_until 10 judged
[ "$(state_of_ns tenant job-0)" = unknown ] && ok || bad "job-0's measurement is not job-0's: $(state_of_ns tenant job-0)"
node_state=$(kctl nodes --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["state"])')
[ "$node_state" = trusted ] && ok || bad "a deleted pod's measurement changed node-1: $node_state"
[ "$(label amf)" = trusted ] && ok || bad "amf-0 must stay trusted"

# 7. the agent stops: the node goes stale, the labels read unknown
kill "$APID"
wait "$APID"
APID=
wait_label amf unknown 10
[ "$(label amf kima.dev/reason)" = "the node is stale (not attested lately, or its newest measurements not judged yet)" ] && ok ||
    bad "the stale reason: $(label amf kima.dev/reason)"

# 8. a token that may not write: 403 logged, attestation unaffected
kill "$VPID"
wait "$VPID"
rc=$?
[ $rc -eq 0 ] && ok || bad "SIGTERM with the Kubernetes client running: exit $rc, wanted 0"
verifier_start "$T/verifier.log" 2 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig" \
    --kube-context viewer --interval-ms 500
kctl pod reset "${UIDS[upf]}" --reason "reinstalled" >/dev/null || bad "pod reset"
wait_until 5 grep -q "kubernetes: labelling.*403" "$T/verifier.log" && ok || bad "403 not logged"
summary
