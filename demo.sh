#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima demo on one machine: a real TPM 2.0 (swtpm), kima-verifier (HTTPS with
# client certificates) and kima-agent on loopback. A stand-in kernel
# (tests/helpers/ima-writer) appends pod-aware IMA entries and extends PCR 10
# exactly as the kernel does; three open5gs pods turn trusted, then one runs a
# tampered binary and turns untrusted. Installs missing Debian packages and
# builds first.
set -euo pipefail
cd "$(dirname "$0")"
tests/tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build >/dev/null
fi
meson compile -C build >/dev/null
B=build
K=$B/cli/kimactl
W=$B/tests/integration/ima-writer
T=$(mktemp -d)
VPID= APID= SPID=
cleanup() {
    for p in $APID $VPID $SPID; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
GOOD=1111111111111111111111111111111111111111111111111111111111111111
TAMPERED=6666666666666666666666666666666666666666666666666666666666666666
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-000000000001 [smf]=aaaaaaaa-0000-4000-8000-000000000002
                 [upf]=aaaaaaaa-0000-4000-8000-000000000003)

say "The IMA core on real lists: a vTPM boot's list replays to the PCR 10 it reported"
$K ima check --pcr "sha256:10=$(sed -n 2p tests/fixtures/ima/ibmtss/imakvtpcr10.txt | sed 's/.*://; s/ //g')" \
    tests/fixtures/ima/ibmtss/sha256.log

say "Setting up: a test PKI, golden policies for amf, smf, upf, a pod inventory"
bash tests/integration/make-certs.sh "$T/pki" node-1 >/dev/null
mkdir -p "$T/policies" "$T/state" "$T/var" "$T/tpm"
echo "demo-boot" >"$T/boot_id"
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
ls "$T/policies"

say "Starting swtpm, kima-verifier and kima-agent on loopback"
swtpm socket --tpm2 --server "type=unixio,path=$T/tpm/sock" --ctrl "type=unixio,path=$T/tpm/sock.ctrl" \
    --tpmstate "dir=$T/tpm" --flags not-need-init,startup-clear >"$T/swtpm.log" 2>&1 &
SPID=$!
TCTI="swtpm:path=$T/tpm/sock"
for _ in $(seq 200); do [ -S "$T/tpm/sock.ctrl" ] && break; sleep 0.02; done
$W --securityfs "$T/sfs" --tcti "$TCTI" init
$B/verifier/kima-verifier --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" \
    --tls-key "$T/pki/server.key" --client-ca "$T/pki/ca.pem" --db "$T/var/kima.db" \
    --audit-log "$T/var/audit.log" --audit-key "$T/var/audit.key" --policies "$T/policies" \
    --pods-file "$T/pods.json" >"$T/verifier.log" 2>&1 &
VPID=$!
for _ in $(seq 200); do grep -q "listening on port" "$T/verifier.log" && break; sleep 0.05; done
URL=https://127.0.0.1:$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/verifier.log")
$B/agent/kima-agent --verifier "$URL" --node node-1 --tcti "$TCTI" --securityfs "$T/sfs" \
    --cert "$T/pki/agent-node-1.pem" --key "$T/pki/agent-node-1.key" --cacert "$T/pki/ca.pem" \
    --state-dir "$T/state" --boot-id-file "$T/boot_id" >"$T/agent.log" 2>&1 &
APID=$!
echo "verifier $URL, agent for node-1, TPM $TCTI"
export KIMA_SERVER=$URL KIMA_CERT=$T/pki/operator.pem KIMA_KEY=$T/pki/operator.key KIMA_CACERT=$T/pki/ca.pem
measure() { $W --securityfs "$T/sfs" --tcti "$TCTI" pod "${UIDS[$3]}" "$1" "$2"; }
wait_for() { # app state
    for _ in $(seq 100); do
        $K pod "open5gs/$1-0" --json 2>/dev/null | grep -q "\"state\": \"$2\"" && return 0
        sleep 0.1
    done
    echo "($1 did not become $2)"
}

say "The pods start: their binaries are measured (ima-cgpath entries, PCR 10 extended)"
for app in amf smf upf; do
    measure "/usr/bin/open5gs-${app}d" $GOOD $app
    measure /usr/lib/libc.so.6 $GOOD $app
done
for app in amf smf upf; do wait_for $app trusted; done
$K pods

say "A tampered open5gs-upfd runs in the upf pod"
t0=$(date +%s%3N)
measure /usr/bin/open5gs-upfd $TAMPERED upf
wait_for upf untrusted
echo "detected in $(($(date +%s%3N) - t0)) ms (measurement appended -> kimactl sees untrusted)"
$K pods
$K nodes

echo "agent resident memory: $(awk '/VmRSS/ {print $2, $3}' /proc/$APID/status)," \
    "verifier: $(awk '/VmRSS/ {print $2, $3}' /proc/$VPID/status)"

say "The audit log: what happened, hash-chained and signed"
$K audit show --pod upf-0 "$T/var/audit.log" | cut -c1-200
kill "$VPID"
wait "$VPID" || true
VPID=
$K audit verify --key "$T/var/audit.key.pub" "$T/var/audit.log"

say "Done. Run ./test.sh for the whole test suite."
