#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Revocation end to end: `kimactl certs revoke` writes the CRL of a `kimactl
# certs init` PKI, and a running kima-verifier with --crl picks it up without
# a restart: the revoked agent and operator certificates get 401, the others
# still work, a re-issued certificate for the same node works. A CRL of
# another CA (with the same name) and a corrupt file are refused, logged,
# and leave the previous CRL in force; at start-up they stop the verifier.
# Also: the warnings of a verifier without --require-ek-cert.
# Usage: test-crl.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID= TPM2_PID=
cleanup() {
    [ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID"
    [ -n "$TPM2_PID" ] && kill "$TPM2_PID" 2>/dev/null && wait "$TPM2_PID"
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm curl
P=$T/pki
LOG=$T/verifier.log
expect 0 "$K" certs init --out "$P" --server-name 127.0.0.1 --node node-1 --node node-2 \
    --operator alice --operator bob
# kimactl certs revoke on its own: usage, an unknown node, a foreign certificate.
expect 64 "$K" certs revoke --node node-1
expect 64 "$K" certs revoke --out "$P" --node "../evil"
expect 66 "$K" certs revoke --out "$P" --node node-9
expect 0 "$K" certs init --out "$T/other" --node node-1
expect 2 "$K" certs revoke --out "$P" --cert "$T/other/agents/node-1/tls.crt"
[ ! -e "$P/crl.pem" ] && ok || bad "a refused revoke must not write a CRL"
# A CRL of the other CA, whose name is also "kima CA": refused by the verifier.
expect 0 "$K" certs revoke --out "$T/other" --node node-1
cp "$T/other/crl.pem" "$T/foreign-crl.pem"

mkdir -p "$T/var"
# Each node its own TPM and list (one TPM may stand for one node only).
swtpm_start "$T/tpm2" || exit 1
TPM2_PID=$SWTPM_PID
declare -A TCTI=([node-2]=$SWTPM_TCTI)
swtpm_start "$T/tpm" || exit 1
TCTI[node-1]=$SWTPM_TCTI
for n in node-1 node-2; do
    "$W" --securityfs "$T/sfs-$n" --tcti "${TCTI[$n]}" init || bad "ima-writer init $n"
done
echo boot >"$T/boot_id"
# The policy directory is only the test's clock (policy_turns below).
mkdir -p "$T/pol"
VARGS=(--tls-cert "$P/verifier/tls.crt" --tls-key "$P/verifier/tls.key" --client-ca "$P/ca.crt"
    --db "$T/var/kima.db" --audit-log "$T/var/audit.log" --audit-key "$T/var/audit.key"
    --policies "$T/pol")

# At start-up a refused CRL file stops the verifier (exit 1), naming why.
"$V" --listen 127.0.0.1:0 "${VARGS[@]}" --crl "$T/foreign-crl.pem" >"$T/start.log" 2>&1
[ $? -eq 1 ] && ok || bad "a foreign CRL at start-up must stop the verifier"
has "$T/start.log" "not signed by a CA of --client-ca" "start-up refusal names the reason"

# No CRL yet: nothing is revoked until the file appears.
verifier_start "$LOG" 1 "${VARGS[@]}" --crl "$P/crl.pem"
has "$LOG" "does not exist (yet)" "a missing CRL file is reported"
has "$LOG" "--require-ek-cert is off: the first TPM to register a node name is bound to it" \
    "the start-up warning without --require-ek-cert"
agent() { # NODE CERTDIR
    "$AG" --verifier "$URL" --node "$1" --tcti "${TCTI[$1]}" --securityfs "$T/sfs-$1" \
        --cert "$2/tls.crt" --key "$2/tls.key" --cacert "$2/ca.crt" --state-dir "$T/state-$1" \
        --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
}
# challenge CERTDIR NODE: the HTTP status of POST /v1/nodes/NODE/challenges, body in $T/body.
challenge() {
    curl -sS -o "$T/body" -w '%{http_code}' --cacert "$P/ca.crt" --cert "$1/tls.crt" \
        --key "$1/tls.key" -X POST "$URL/v1/nodes/$2/challenges"
}
op() { # CERTDIR ARGS...
    local d=$1
    shift
    "$K" --server "$URL" --cert "$d/tls.crt" --key "$d/tls.key" --cacert "$P/ca.crt" "$@"
}
agent node-1 "$P/agents/node-1"
[ $? -eq 0 ] && ok || bad "node-1 before revocation: $(tail -2 "$T/agent.log")"
agent node-2 "$P/agents/node-2"
[ $? -eq 0 ] && ok || bad "node-2 before revocation: $(tail -2 "$T/agent.log")"
has "$LOG" "node node-1 registered (EK certificate: no EK certificate): its TPM is bound to the name unverified" \
    "a registration without an EK certificate is a warning"
expect 0 op "$P/operators/bob" nodes

# wait_log TEXT N: until TEXT is in the log N times (the verifier checks the
# file once a second).
logged_times() { [ "$(grep -cF -- "$1" "$LOG")" -ge "$2" ]; }
wait_log() { wait_until 10 logged_times "$1" "$2"; }
# policy_turns N: N more turns of the verifier's 1 s service loop have
# ended. A turn reads a changed policy directory (and logs it) before it
# checks the CRL file, so a change made after a line was logged is read at
# a later turn, and the second of two changes read one after the other
# shows that the turn of the first, its CRL check included, is over.
TURN=0
policy_turns() {
    local i n
    for i in $(seq "$1"); do
        TURN=$((TURN + 1))
        n=$(grep -c "policies from $T/pol" "$LOG")
        printf '{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "turn-%d",
 "match": {"namespace": "kima-test-nowhere"}, "digests": {}}\n' "$TURN" >"$T/pol/turn.json"
        wait_until 10 logged_times "policies from $T/pol" $((n + 1)) || return 1
    done
}

# Revoke node-1's agent certificate: picked up without a restart.
expect 0 "$K" certs revoke --out "$P" --node node-1
has "$T/out" "wrote     $P/crl.pem (CRL number 1, 1 revoked" "kimactl reports the CRL"
REVOKED1=$(ls -d "$P"/revoked/agent-node-1-*)
wait_log "revokes 1 certificates" 1 && ok || bad "the verifier did not load the CRL: $(tail -3 "$LOG")"
agent node-1 "$REVOKED1"
[ $? -eq 2 ] && ok || bad "node-1's revoked certificate must be refused"
[ "$(challenge "$REVOKED1" node-1)" = 401 ] && ok || bad "node-1's own endpoint must be 401"
has "$T/body" '"detail":"the client certificate is revoked"' "the agent's 401 says revoked"
expect 1 op "$REVOKED1" nodes
has "$T/err" "401 unauthenticated: the client certificate is revoked" "401 says revoked"
has "$LOG" "CN=node-1,OU=kima-agent (serial" "the verifier logs the revoked certificate"
agent node-2 "$P/agents/node-2"
[ $? -eq 0 ] && ok || bad "node-2 must still work: $(tail -2 "$T/agent.log")"

# A revoked operator certificate; the other operator is unaffected.
expect 0 "$K" certs revoke --out "$P" --operator bob
has "$T/out" "(CRL number 2, 2 revoked" "the CRL keeps the previous entry"
wait_log "revokes 2 certificates" 1 && ok || bad "the second CRL was not loaded"
expect 1 op "$(ls -d "$P"/revoked/operator-bob-*)" nodes
has "$T/err" "401" "bob's revoked operator certificate"
expect 0 op "$P/operators/alice" nodes
has "$T/out" "node-2" "alice still sees the nodes"

# A CRL of another CA: refused, logged, the previous CRL stays in force.
cp "$P/crl.pem" "$T/good-crl.pem"
cp "$T/foreign-crl.pem" "$P/crl.pem.new" && mv "$P/crl.pem.new" "$P/crl.pem"
wait_log "refused: the CRL of CN=kima CA is not signed by a CA of --client-ca" 1 && ok ||
    bad "a foreign CRL must be refused with its reason: $(tail -3 "$LOG")"
has "$LOG" "the 2 revocations loaded before stay in force" "the refusal says what stays"
[ "$(challenge "$REVOKED1" node-1)" = 401 ] && ok || bad "node-1 stays revoked under a refused CRL"
agent node-2 "$P/agents/node-2"
[ $? -eq 0 ] && ok || bad "node-2 under a refused CRL"

# A corrupt file: the same.
printf -- '-----BEGIN X509 CRL-----\nnot base64 at all\n-----END X509 CRL-----\n' >"$P/crl.pem"
wait_log "refused: not a CRL" 1 && ok || bad "a corrupt CRL must be refused: $(tail -3 "$LOG")"
expect 1 op "$REVOKED1" nodes
has "$T/err" "revoked" "node-1 stays revoked under a corrupt CRL"
expect 1 op "$(ls -d "$P"/revoked/operator-bob-*)" nodes
# Logged once per change, not at every check of the unchanged file.
policy_turns 2 || bad "the verifier's service loop did not turn"
[ "$(grep -c "refused: not a CRL" "$LOG")" -eq 1 ] && ok || bad "a refused file is logged once"

# The good CRL back, and a new certificate for node-1: it works.
cp "$T/good-crl.pem" "$P/crl.pem"
wait_log "revokes 2 certificates" 2 && ok || bad "the good CRL back"
expect 0 "$K" certs init --out "$P" --node node-1
has "$T/out" "issued    $P/agents/node-1/tls.crt" "a new certificate for node-1"
agent node-1 "$P/agents/node-1"
[ $? -eq 0 ] && ok || bad "node-1's new certificate must work: $(tail -2 "$T/agent.log")"
expect 1 op "$REVOKED1" nodes
[ -n "$VPID" ] && kill -0 "$VPID" 2>/dev/null && ok || bad "the verifier must still run"
summary
