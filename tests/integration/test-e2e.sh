#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end on one machine: swtpm, kima-verifier (HTTPS) and kima-agent
# processes on loopback; agent-tool plays the kernel (appends ima-cgpath
# entries to a securityfs-like folder and extends PCR 10 in the swtpm).
# Usage: test-e2e.sh KIMA_VERIFIER KIMA_AGENT KIMACTL AGENT_TOOL
set -u
V=$1
AG=$2
K=$3
A=$4
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
APID=
cleanup() {
    for p in $APID $VPID; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
for tool in swtpm curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "$tool not installed"; exit 77; }
done

GOOD=1111111111111111111111111111111111111111111111111111111111111111
EVIL=6666666666666666666666666666666666666666666666666666666666666666
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state" "$T/sfs/ima" "$T/var"
: >"$T/sfs/ima/binary_runtime_measurements"
echo 0 >"$T/sfs/ima/runtime_measurements_count"
echo "boot-$$" >"$T/boot_id"
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-000000000001 [smf]=aaaaaaaa-0000-4000-8000-000000000002
                 [upf]=aaaaaaaa-0000-4000-8000-000000000003)
items=""
for app in amf smf upf; do
    cat >"$T/policies/$app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-$app",
 "match": {"namespace": "open5gs", "podLabels": {"app": "$app"}},
 "digests": {"/usr/bin/open5gs-${app}d": ["sha256:$GOOD"], "/usr/lib/libc.so.6": ["sha256:$GOOD"]}}
JSON
    items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$app]}\", \"namespace\": \"open5gs\", \"name\": \"$app-0\", \"labels\": {\"app\": \"$app\"}}, \"spec\": {\"nodeName\": \"node-1\"}}"
done
echo "{\"kind\": \"PodList\", \"items\": [$items]}" >"$T/pods.json"
cat >"$T/policies/node.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "NodePolicy", "name": "node",
 "digests": {"/usr/bin/containerd": ["sha256:$GOOD"], "/usr/bin/kubelet": ["sha256:$GOOD"]}}
JSON

swtpm_start "$T/tpm" || exit 1
start_verifier() {
    verifier_start "$T/verifier.log" "$1" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
        --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 500
}
start_agent() {
    "$AG" --verifier "$URL" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
        --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" --cacert "$P/ca.pem" \
        --state-dir "$T/state" --boot-id-file "$T/boot_id" --interval-ms 500 \
        --min-interval-ms 100 "$@" >>"$T/agent.log" 2>&1 &
    APID=$!
}
measure() { POD_UID=${UIDS[${3:-upf}]:-} "$A" "$SWTPM_TCTI" "$T/state" measure \
    "$T/sfs/ima/binary_runtime_measurements" "$1" "$2" "${4:-pod}" || bad "measure $1"; }
state_of() {
    "$K" --server "$URL" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" \
        pod "open5gs/$1-0" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null
}
# wait_state APP STATE: up to 10 s.
wait_state() {
    for _ in $(seq 100); do
        [ "$(state_of "$1")" = "$2" ] && { ok; return 0; }
        sleep 0.1
    done
    bad "$1 should be $2, is $(state_of "$1")"
}
audit_count() { grep -c "\"type\":\"$1\"" "$T/var/audit.log"; }

start_verifier 1
start_agent
for app in amf smf upf; do
    measure "/usr/bin/open5gs-${app}d" $GOOD $app
    measure /usr/lib/libc.so.6 $GOOD $app
done
measure /usr/bin/containerd $GOOD "" node
for app in amf smf upf; do wait_state $app trusted; done

# one pod runs an unknown binary: only that pod turns untrusted
measure /usr/bin/cryptominer $EVIL smf
wait_state smf untrusted
[ "$(state_of amf)" = trusted ] && [ "$(state_of upf)" = trusted ] && ok ||
    bad "the other pods must stay trusted"
grep '"type":"violation"' "$T/var/audit.log" | grep -q '/usr/bin/cryptominer' && ok ||
    bad "the violation's path is not in the audit log"
grep '"type":"violation"' "$T/var/audit.log" | grep -q "sha256:$EVIL" && ok ||
    bad "the violation's digest is not in the audit log"

# the agent restarts: no new registration, no re-send from entry 0
regs=$(audit_count registration)
kill "$APID"
wait "$APID" && ok || bad "the agent's exit code on SIGTERM"
start_agent
measure /usr/lib/libc.so.6 $GOOD amf
sleep 1.5
wait_state amf trusted
[ "$(audit_count registration)" = "$regs" ] && ok || bad "the restarted agent registered again"
grep -q "the verifier expects entry" "$T/agent.log" && bad "the agent re-read from the start" || ok

# the verifier restarts: the agent carries on
kill "$VPID"
wait "$VPID"
start_verifier 2
kill "$APID"
wait "$APID"
start_agent
measure /usr/bin/open5gs-upfd $GOOD upf
sleep 1.5
wait_state upf trusted
measure /usr/bin/evil2 $EVIL upf
wait_state upf untrusted

# --once
kill "$APID"
wait "$APID"
APID=
"$AG" --verifier "$URL" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
    --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" --cacert "$P/ca.pem" \
    --state-dir "$T/state" --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
[ $? -eq 0 ] && ok || bad "--once on a trusted node"

# the agent stops: stale, pods unknown, never trusted
sleep 2
[ "$(state_of amf)" = unknown ] && ok || bad "a stale node's pods must read unknown, not $(state_of amf)"
"$AG" --verifier "https://127.0.0.1:1" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
    --state-dir "$T/state" --boot-id-file "$T/boot_id" --once >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--once with no verifier must exit 2"
summary
