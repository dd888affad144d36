#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The verifier's drain on SIGTERM (docs/verifier.md, "Draining"), on a real
# kima-verifier over HTTPS with quotes from swtpm (agent-tool) and curl as
# the agent's transport. The round in flight is held by the test itself:
# the challenge is taken before the SIGTERM and the evidence posted after,
# so nothing depends on timing.
# Usage: test-drain.sh KIMA_VERIFIER AGENT_TOOL IMA_WRITER
set -u
V=$1
A=$2
W=$3
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
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 || exit 1
mkdir -p "$T/policies" "$T/agent" "$T/var"
echo '{"apiVersion": "v1", "kind": "PodList", "items": []}' >"$T/pods.json"

# start N ARGS...: the Nth verifier of this test, logging to $T/verifier-N.log.
start() {
    local n=$1
    shift
    verifier_start "$T/verifier-$n.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
        --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 4000 "$@"
    LOG=$T/verifier-$n.log
}
# acurl METHOD PATH [BODYFILE]: as node-1's agent; status in $T/status,
# body in $T/body, headers in $T/headers.
acurl() {
    curl -s --cacert "$P/ca.pem" --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" \
        -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary @"$3"} -o "$T/body" \
        -D "$T/headers" -w '%{http_code}' "$URL$2" >"$T/status"
}
ocurl() {
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" -X "$1" \
        -o "$T/body" -w '%{http_code}' "$URL$2" >"$T/status"
}
# probe PATH: anonymous, like the kubelet's probes.
probe() { curl -s --cacert "$P/ca.pem" -o "$T/body" -w '%{http_code}' "$URL$1" >"$T/status"; }
status_is() { if [ "$(cat "$T/status")" = "$1" ]; then ok; else bad "$2: HTTP $(cat "$T/status"), wanted $1: $(head -c 300 "$T/body")"; fi; }
draining() { grep -q "draining: /readyz" "$LOG"; }
gone() { ! kill -0 "$VPID" 2>/dev/null; }
# stopped WHAT: the verifier ended by itself within 20 s (the drain
# timeouts below are far longer unless WHAT says otherwise) and exited 0.
stopped() {
    if WAIT_STEP=0.05 wait_until 20 gone; then
        wait "$VPID"
        local rc=$?
        [ "$rc" = 0 ] && ok || bad "$1: exit code $rc"
    else
        bad "$1: the verifier is still running"
    fi
    VPID=
}
# challenge FILE: a nonce for node-1 into FILE.
challenge() {
    WAIT_STEP=0.05 wait_until 2 eval 'acurl POST /v1/nodes/node-1/challenges; [ "$(cat "$T/status")" != 429 ]'
    status_is 200 "challenge"
    cp "$T/body" "$1"
}
# evidence CHALLENGE OUT: agent-tool's evidence for that challenge.
evidence() {
    local from
    from=$(sed -n 's/.*"ima_next_index":\([0-9]*\).*/\1/p' "$1")
    "$A" "$TCTI" "$T/agent" evidence "$1" "$LIST" "$from" boot-1 >"$2" || bad "agent-tool evidence"
}

swtpm_start "$T/tpm" || exit 1
TCTI=$SWTPM_TCTI
LIST=$T/sfs/ima/binary_runtime_measurements
"$W" --securityfs "$T/sfs" --tcti "$TCTI" init || bad "ima-writer init"
"$W" --securityfs "$T/sfs" --tcti "$TCTI" host /usr/bin/containerd $GOOD --template ima-cgpath ||
    bad "measure"

# --- 1. a round in flight finishes; the verifier stops once it has
start 1 --nonce-ttl-ms 120000 --drain-timeout-ms 120000
"$A" "$TCTI" "$T/agent" init >"$T/reg.json" || bad "agent-tool init"
acurl POST /v1/nodes/node-1/registration "$T/reg.json"
status_is 201 "registration"
"$A" "$TCTI" "$T/agent" activate node-1 "$T/body" >"$T/act.json" || bad "activate"
acurl POST /v1/nodes/node-1/activation "$T/act.json"
status_is 200 "activation"
probe /readyz
status_is 200 "readyz before the signal"
challenge "$T/c1.json"
kill -TERM "$VPID"
WAIT_STEP=0.02 wait_until 10 draining || bad "no drain in the log: $(tail -3 "$LOG")"
has "$LOG" "1 outstanding nonces" "the drain's start counts the nonce in flight"
probe /readyz
status_is 503 "readyz while draining"
probe /healthz
status_is 200 "healthz while draining"
acurl POST /v1/nodes/node-1/challenges
status_is 503 "a new challenge while draining"
has "$T/body" '"error":"draining"' "the challenge's refusal"
grep -qi '^Retry-After: 1' "$T/headers" && ok || bad "no Retry-After: 1 in $(tr '\r\n' '  ' <"$T/headers")"
acurl POST /v1/nodes/node-1/registration "$T/reg.json"
status_is 503 "a registration while draining"
has "$T/body" '"error":"draining"' "the registration's refusal"
ocurl GET /v1/nodes
status_is 200 "an operator read while draining"
kill -0 "$VPID" 2>/dev/null && ok || bad "the verifier stopped with a round in flight"
evidence "$T/c1.json" "$T/e1.json"
acurl POST /v1/nodes/node-1/evidence "$T/e1.json"
status_is 200 "the evidence of the round in flight"
has "$T/body" '"verdict":"trusted"' "its verdict"
stopped "the drain after its last round"
has "$LOG" "drain ended (done)" "the drain's end"
has "$LOG" "1 rounds finished while draining, 0 nonces left unused" "the drain's counts"
has "$T/var/audit.log" '"type":"drain-start"' "the audit record of the drain's start"
has "$T/var/audit.log" '"type":"drain-end"' "the audit record of the drain's end"
python3 - "$T/var/audit.log" <<'PY' && ok || bad "the drain's audit records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def find(t):
    return [r for r in recs if r.get("type") == t]
s, e = find("drain-start"), find("drain-end")
assert len(s) == 1 and len(e) == 1, (len(s), len(e))
def det(r):
    return r.get("details") or {}
assert det(s[0]).get("outstanding_nonces") == 1, s[0]
assert det(e[0]).get("why") == "done" and det(e[0]).get("rounds_finished") == 1, e[0]
assert det(e[0]).get("nonces_unused") == 0, e[0]
PY

# --- 2. a nonce never used: the drain timeout ends it
start 2 --nonce-ttl-ms 120000 --drain-timeout-ms 1500
challenge "$T/c2.json"
kill -TERM "$VPID"
WAIT_STEP=0.02 wait_until 10 draining || bad "no drain in the log: $(tail -3 "$LOG")"
stopped "the drain timeout"
has "$LOG" "drain ended (timeout)" "the drain's end by its timeout"
has "$LOG" "0 rounds finished while draining, 1 nonces left unused" "the timeout's counts"

# --- 3. a second signal stops at once
start 3 --nonce-ttl-ms 120000 --drain-timeout-ms 600000
challenge "$T/c3.json"
kill -TERM "$VPID"
WAIT_STEP=0.02 wait_until 10 draining || bad "no drain in the log: $(tail -3 "$LOG")"
probe /readyz
status_is 503 "readyz while draining (3)"
kill -INT "$VPID"
stopped "the second signal"
has "$LOG" "drain ended (signal)" "the drain's end by a second signal"

# --- 4. --drain-timeout-ms 0: no drain, as before
start 4 --nonce-ttl-ms 120000 --drain-timeout-ms 0
challenge "$T/c4.json"
kill -TERM "$VPID"
stopped "--drain-timeout-ms 0"
if grep -q "draining:" "$LOG"; then bad "--drain-timeout-ms 0 drained"; else ok; fi
has "$LOG" "finishing requests in flight and stopping" "the plain stop"

summary
