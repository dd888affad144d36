#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The audit log's tail against a running kima-verifier: the signed head
# (GET /v1/audit/head) catches a copy whose last records were cut or
# rewritten; kimactl audit verify refuses an unsigned tail unless told;
# the timer signs a quiet log's tail, also one left by kill -9.
# Usage: test-audit.sh KIMA_VERIFIER KIMACTL AGENT_TOOL
set -u
V=$1
K=$2
A=$3
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

P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 || exit 1
mkdir -p "$T/var" "$T/agent" "$T/agent2"
LOG=$T/var/audit.log
PUB=$T/var/audit.key.pub
start_verifier() {
    verifier_start "$T/verifier.log" "$1" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$LOG" \
        --audit-key "$T/var/audit.key" --audit-checkpoint-ms 1000
}
acurl() { # NODE METHOD PATH [BODYFILE]: status in $T/status, body in $T/body
    curl -s --cacert "$P/ca.pem" --cert "$P/agent-$1.pem" --key "$P/agent-$1.key" -X "$2" \
        -H 'Content-Type: application/json' ${4:+--data-binary @"$4"} -o "$T/body" \
        -w '%{http_code}' "$URL$3" >"$T/status"
}
ocurl() {
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" -X "$1" \
        -o "$T/body" -w '%{http_code}' "$URL$2" >"$T/status"
}
status_is() { if [ "$(cat "$T/status")" = "$1" ]; then ok; else bad "$2: HTTP $(cat "$T/status"), wanted $1: $(head -c 300 "$T/body")"; fi; }
# The operator's TLS key comes from the environment: after "audit verify",
# --key is the audit public key. No KIMA_SERVER: --server is explicit.
export KIMA_CERT=$P/operator.pem KIMA_KEY=$P/operator.key KIMA_CACERT=$P/ca.pem
# records N: N operator deletes of node-1, each followed by its new
# registration (two records, each synced before its answer; refusals would
# not do: repeated ones are rate-limited).
records() {
    for _ in $(seq "$1"); do
        ocurl DELETE /v1/nodes/node-1
        [ "$(cat "$T/status")" = 200 ] || bad "node delete: $(cat "$T/status")"
        acurl node-1 POST /v1/nodes/node-1/registration "$T/reg.json"
        [ "$(cat "$T/status")" = 201 ] || bad "registration: $(cat "$T/status")"
    done
}
last_type() { tail -1 "$LOG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["type"])'; }
# quiet_then_signed: with no activity, the log ends with a checkpoint within
# the interval (1 s) plus a tick (1 s); allow 8 s for a loaded machine.
last_is_checkpoint() { [ "$(last_type)" = checkpoint ]; }
quiet_then_signed() { WAIT_STEP=0.25 wait_until 8 last_is_checkpoint; }

swtpm_start "$T/tpm" || exit 1
start_verifier 1
"$A" "$SWTPM_TCTI" "$T/agent" init >"$T/reg.json" || bad "agent-tool init"
"$A" "$SWTPM_TCTI" "$T/agent2" init >"$T/reg2.json" || bad "agent-tool init 2"
acurl node-1 POST /v1/nodes/node-1/registration "$T/reg.json"
status_is 201 "registration"
records 3

# --- the signed head: operator only; it names a record of the file
ocurl GET /v1/audit/head
status_is 200 "GET /v1/audit/head"
cp "$T/body" "$T/head.json"
python3 - "$T/head.json" "$LOG" <<'PY' && ok || bad "the head names no record of the log: $(cat "$T/head.json")"
import json, re, sys
h = json.load(open(sys.argv[1]))
assert set(h) == {"seq", "hash", "time", "signature"}, h
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", h["time"]), h
recs = [json.loads(l) for l in open(sys.argv[2])]
assert any(r["seq"] == h["seq"] and r["hash"] == h["hash"] for r in recs), h
PY
acurl node-1 GET /v1/audit/head
status_is 403 "an agent asking for the audit head"

# --- the live log against the live head: intact, whatever the timer did
expect 0 "$K" audit verify --server "$URL" --key "$PUB" "$LOG"
has "$T/out" "intact:" "live log against the head"
has "$T/out" "signed head (seq" "the head is reported"

# --- a copy with the last records cut, checkpoint included: truncated
records 2
head -n -3 "$LOG" >"$T/cut.log"
expect 1 "$K" audit verify --server "$URL" --key "$PUB" "$T/cut.log"
has "$T/out" "truncated: the verifier's head is seq" "cut copy against the live head"

# --- an unsigned tail: refused offline unless --allow-unsigned-tail
python3 - "$LOG" "$T/tail.log" <<'PY' || bad "no unsigned record to end a copy with"
import json, sys
lines = open(sys.argv[1]).readlines()
while json.loads(lines[-1])["type"] == "checkpoint":
    lines.pop()
open(sys.argv[2], "w").writelines(lines)
PY
expect 1 "$K" audit verify --key "$PUB" "$T/tail.log"
has "$T/out" "unsigned tail: " "unsigned tail refused"
has "$T/out" "follow the last signed checkpoint" "unsigned tail explained"
expect 0 "$K" audit verify --allow-unsigned-tail --key "$PUB" "$T/tail.log"
has "$T/out" "intact:" "unsigned tail accepted when told"
has "$T/out" "accepted: --allow-unsigned-tail" "the accepted tail is named"

# --- quiet for more than the interval (1 s, 1 s ticks): the tail is signed
records 2
[ "$(last_type)" != checkpoint ] && ok || bad "the records were signed at once"
quiet_then_signed && ok || bad "the quiet log does not end with a checkpoint: $(tail -1 "$LOG")"
expect 0 "$K" audit verify --key "$PUB" "$LOG"
has "$T/out" "intact:" "the signed live log offline"

# --- the last record (the timer's checkpoint) rewritten and re-chained, no
# key needed: a checkpoint signs what precedes it, not its own time, so
# offline this goes unseen; the head, which signs its hash, names it
python3 - "$LOG" "$T/rewritten.log" <<'PY' || bad "rewrite"
import hashlib, json, sys
lines = open(sys.argv[1]).read().splitlines()
body = lines[-1][:lines[-1].rindex(',"hash":"')]
body = body.replace('"time":"2', '"time":"1', 1) + "}"
h = hashlib.sha256(body.encode()).hexdigest()
lines[-1] = body[:-1] + ',"hash":"%s"}' % h
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
expect 1 "$K" audit verify --server "$URL" --key "$PUB" "$T/rewritten.log"
has "$T/out" "tampered:" "rewritten last record against the head"
has "$T/out" "signed head" "the head names the rewrite"

# --- kill -9 with an unsigned tail: the restarted verifier signs it
records 2
kill -9 "$VPID"
wait "$VPID" 2>/dev/null
[ "$(last_type)" != checkpoint ] && ok || bad "the test needs an unsigned tail before kill -9"
start_verifier 2
quiet_then_signed && ok || bad "the tail left by kill -9 is not signed: $(tail -1 "$LOG")"
expect 0 "$K" audit verify --server "$URL" --key "$PUB" "$LOG"
has "$T/out" "intact:" "the log after kill -9"

# --- the flag's bounds
"$V" --audit-checkpoint-ms 999 >/dev/null 2>&1
[ $? -eq 64 ] && ok || bad "--audit-checkpoint-ms 999 must be a usage error"

kill -TERM "$VPID"
wait "$VPID"
VPID=
summary
