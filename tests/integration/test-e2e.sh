#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end on one machine: swtpm, kima-verifier (HTTPS) and kima-agent
# processes on loopback; ima-writer plays the kernel (appends ima-cgpath
# and ima-ng entries to a securityfs-like folder and extends PCR 10 of the
# swtpm in every bank).
# Usage: test-e2e.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
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
need_tools swtpm curl openssl python3

GOOD=1111111111111111111111111111111111111111111111111111111111111111
EVIL=6666666666666666666666666666666666666666666666666666666666666666
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state" "$T/var"
echo "boot-$$" >"$T/boot_id"
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-000000000001 [smf]=aaaaaaaa-0000-4000-8000-000000000002
                 [upf]=aaaaaaaa-0000-4000-8000-000000000003 [nrf]=aaaaaaaa-0000-4000-8000-000000000004)
# The pods' cgroups: amf and upf in the systemd layout, smf and nrf in the
# cgroupfs one, with different QoS classes and runtimes.
declare -A LAYOUT=([amf]="--layout systemd --qos besteffort"
                   [smf]="--layout cgroupfs --qos burstable"
                   [upf]="--layout systemd --qos guaranteed --runtime crio"
                   [nrf]="--layout cgroupfs --qos guaranteed")
items=""
for app in amf smf upf nrf; do
    cat >"$T/policies/$app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-$app",
 "match": {"namespace": "open5gs", "podLabels": {"app": "$app"}},
 "digests": {"/usr/bin/open5gs-${app}d": ["sha256:$GOOD"], "/usr/lib/libc.so.6": ["sha256:$GOOD"]},
 "excludes": ["^/tmp/"]}
JSON
    items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$app]}\", \"namespace\": \"open5gs\", \"name\": \"$app-0\", \"labels\": {\"app\": \"$app\"}}, \"spec\": {\"nodeName\": \"node-1\"}}"
done
echo "{\"kind\": \"PodList\", \"items\": [$items]}" >"$T/pods.json"
cat >"$T/policies/node.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "NodePolicy", "name": "node",
 "digests": {"/usr/bin/containerd": ["sha256:$GOOD"], "/usr/bin/kubelet": ["sha256:$GOOD"]},
 "excludes": ["^boot_aggregate$"]}
JSON

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init --boot-aggregate || bad "ima-writer init"
start_verifier() {
    verifier_start "$T/verifier.log" "$1" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
        --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 500
}
# app_measure PATH DIGEST APP: an entry of a process in APP's pod, in its
# cgroup layout; host PATH DIGEST: one of the node's.
# shellcheck disable=SC2086
app_measure() { measure "${UIDS[$3]}" "$1" "$2" ${LAYOUT[$3]}; }
host() { measure host "$1" "$2"; }
kctl() { "$K" --server "$URL" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" "$@"; }
field_of() {
    kctl pod "open5gs/$1-0" --json 2>/dev/null |
        python3 -c "import json,sys; print(json.load(sys.stdin)[\"$2\"])" 2>/dev/null
}
state_of() { field_of "$1" state; }
node_state() {
    kctl nodes --json 2>/dev/null |
        python3 -c 'import json,sys; print([n["state"] for n in json.load(sys.stdin)["nodes"] if n["name"] == "node-1"][0])' 2>/dev/null
}
state_is() { [ "$(state_of "$1")" = "$2" ]; }
node_is() { [ "$(node_state)" = "$1" ]; }
# wait_state APP STATE: up to 10 s.
wait_state() { wait_until 10 state_is "$1" "$2" && ok || bad "$1 should be $2, is $(state_of "$1")"; }
# wait_judged: the verifier has every entry written so far (up to 10 s).
wait_judged() { wait_until 10 caught_up node-1 kctl && ok || bad "the verifier did not read the whole list"; }
audited() { grep -q "$1" "$T/var/audit.log"; }
# A TCP server listens on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
audit_count() { grep -c "\"type\":\"$1\"" "$T/var/audit.log"; }

start_verifier 1
agent_start
for app in amf smf upf nrf; do
    app_measure "/usr/bin/open5gs-${app}d" $GOOD $app
    app_measure /usr/lib/libc.so.6 $GOOD $app
done
host /usr/bin/containerd $GOOD
for app in amf smf upf nrf; do wait_state $app trusted; done
# the probes of the DaemonSet
"$AG" --healthcheck live --state-dir "$T/state" && ok || bad "--healthcheck live"
"$AG" --healthcheck ready --state-dir "$T/state" --interval-ms 500 && ok || bad "--healthcheck ready"
"$AG" --healthcheck ready --state-dir "$T/nowhere" 2>/dev/null && bad "ready without a state" || ok

# one pod runs an unknown binary: only that pod turns untrusted
app_measure /usr/bin/cryptominer $EVIL smf
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
agent_start
app_measure /usr/lib/libc.so.6 $GOOD amf
wait_judged
wait_state amf trusted
[ "$(audit_count registration)" = "$regs" ] && ok || bad "the restarted agent registered again"
grep -q "the verifier expects entry" "$T/agent.log" && bad "the agent re-read from the start" || ok

# the verifier restarts: the agent carries on
kill "$VPID"
wait "$VPID"
start_verifier 2
kill "$APID"
wait "$APID"
agent_start
app_measure /usr/bin/open5gs-upfd $GOOD upf
wait_judged
wait_state upf trusted

# a ToMToU violation in nrf's pod: reported as a violation, nrf untrusted
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" violation /var/lib/nrf/db --pod "${UIDS[nrf]}" \
    ${LAYOUT[nrf]} || bad "violation"
wait_state nrf untrusted
case "$(field_of nrf reason)" in
*"IMA violation"*/var/lib/nrf/db*) ok ;;
*) bad "nrf's reason must name the violation: $(field_of nrf reason)" ;;
esac
grep '"type":"violation"' "$T/var/audit.log" | grep '/var/lib/nrf/db' | grep -q '"ima_violation":true' &&
    ok || bad "the audit log must record the IMA violation as such"
[ "$(state_of amf)" = trusted ] && [ "$(state_of upf)" = trusted ] && ok ||
    bad "a violation in one pod must leave the others trusted"
# a violation on a path the policy excludes is ignored, like its measurements
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" violation /tmp/scratch --pod "${UIDS[amf]}" \
    ${LAYOUT[amf]} || bad "violation"
app_measure /usr/lib/libc.so.6 $GOOD amf
wait_judged
[ "$(state_of amf)" = trusted ] && ok || bad "a violation on an excluded path made amf $(state_of amf)"

# reboot: the TPM is reset (swtpm power cycle: PCRs back to zero, resetCount
# up), the kernel starts a new list from entry 0, the boot id changes. The
# verifier replays from the start; pods within policy stay trusted.
kill "$APID"
wait "$APID"
swtpm_stop
swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init --boot-aggregate || bad "ima-writer init"
echo "boot-2-$$" >"$T/boot_id"
host /usr/bin/kubelet $GOOD
for app in amf upf; do
    app_measure "/usr/bin/open5gs-${app}d" $GOOD $app
done
agent_start
wait_until 10 audited '"type":"reboot"' && ok || bad "the reboot is not in the audit log"
app_measure /usr/lib/libc.so.6 $GOOD amf
wait_judged
for app in amf upf; do wait_state $app trusted; done
[ "$(node_state)" = trusted ] && ok || bad "the node after a reboot: $(node_state)"
grep -c '"type":"state-change"' "$T/var/audit.log" >"$T/changes"
grep '"type":"state-change"' "$T/var/audit.log" | grep -E '"(amf|upf)-0"' | grep -q '"untrusted"' &&
    bad "a reboot made a pod untrusted" || ok

# --once
kill "$APID"
wait "$APID"
APID=
"$AG" --verifier "$URL" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
    --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" --cacert "$P/ca.pem" \
    --state-dir "$T/state" --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
[ $? -eq 0 ] && ok || bad "--once on a trusted node"

# the agent stops: stale, pods unknown, never trusted
wait_until 10 state_is amf unknown && ok ||
    bad "a stale node's pods must read unknown, not $(state_of amf)"
"$AG" --verifier "https://127.0.0.1:1" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
    --state-dir "$T/state" --boot-id-file "$T/boot_id" --once >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--once with no verifier must exit 2"
"$AG" --verifier "$URL" --node "$(printf 'n%.0s' $(seq 254))" --state-dir "$T/state" --once \
    >/dev/null 2>"$T/err"
[ $? -eq 64 ] && grep -q "254 bytes long" "$T/err" && ok ||
    bad "a node name of 254 bytes must be a usage error: $(head -c 200 "$T/err")"

# TLS: the agent refuses a verifier whose certificate another CA signed, and
# one whose certificate (from the right CA) does not name the address asked
once_against() {
    "$AG" --verifier "$1" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
        --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" --cacert "$2" \
        --state-dir "$T/state" --boot-id-file "$T/boot_id" --once >"$T/tls.log" 2>&1
}
once_against "$URL" "$P/other-ca.pem"
[ $? -eq 2 ] && grep -q "certificate is refused" "$T/tls.log" && ok ||
    bad "an agent trusting another CA must refuse the verifier: $(tail -2 "$T/tls.log")"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl s_server -quiet -accept "127.0.0.1:$PORT" -cert "$P/server-as-client.pem" \
    -key "$P/server-as-client.key" -www >/dev/null 2>&1 &
SSPID=$!
wait_until 5 listening "$PORT" || bad "openssl s_server did not start"
once_against "https://127.0.0.1:$PORT" "$P/ca.pem"
[ $? -eq 2 ] && grep -q "certificate is refused" "$T/tls.log" && ok ||
    bad "a certificate that does not name 127.0.0.1 must be refused: $(tail -2 "$T/tls.log")"
kill "$SSPID"
wait "$SSPID" 2>/dev/null

# a forged list: a tampered binary runs in upf (the TPM is extended with its
# real digest), then the list is rewritten to claim the good one. The list no
# longer replays to the quote: the node and all its pods turn untrusted.
agent_start
wait_state amf trusted
wait_judged
kill "$APID"
wait "$APID"
L=$T/sfs/ima/binary_runtime_measurements
cp "$L" "$T/list.before"
app_measure /usr/bin/open5gs-upfd $EVIL upf
cp "$L" "$T/list.real"
cp "$T/list.before" "$L"
# shellcheck disable=SC2086
"$W" --securityfs "$T/sfs" --no-tpm pod "${UIDS[upf]}" /usr/bin/open5gs-upfd $GOOD ${LAYOUT[upf]} ||
    bad "forge"
[ "$(stat -c %s "$L")" = "$(stat -c %s "$T/list.real")" ] && ! cmp -s "$L" "$T/list.real" && ok ||
    bad "the forged list must differ from the real one in content only"
agent_start
wait_until 10 node_is untrusted && ok || bad "a forged list must make the node untrusted: $(node_state)"
for app in amf upf; do wait_state $app untrusted; done
grep '"type":"node-failure"' "$T/var/audit.log" | grep -q "does not replay" && ok ||
    bad "the node failure's reason is not in the audit log"
grep '"type":"violation"' "$T/var/audit.log" | grep -q "open5gs-upfd.*sha256:$GOOD" &&
    bad "a forged entry was judged" || ok
summary
