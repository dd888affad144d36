#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima demo on one machine: a real TPM 2.0 (swtpm), kima-verifier (HTTPS with
# client certificates), kima-agent, and a fake Kubernetes API server
# (tests/helpers/fake-kube-api.py: no real cluster can run here) holding a 5G
# core namespace with AMF, SMF and UPF pods. Their images are built from
# real Debian 12 packages (tests/tools/build-images.sh, cached in
# build/images; docs/policies.md, "Demo images") and their golden policies
# come from the images (kimactl policy generate). A kernel stand-in
# (tests/helpers/ima-writer) appends pod-aware IMA entries for the images'
# real files and extends PCR 10 exactly as the kernel does. The pods turn
# trusted and are labelled so; then a tampered copy of the UPF binary runs and the UPF pod turns untrusted (label, event,
# audit record, time taken) while AMF and SMF stay trusted. Installs missing
# Debian packages and builds first; cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")"
T0=$(date +%s)
tests/tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build >/dev/null
fi
meson compile -C build >/dev/null
B=build
K=$B/cli/kimactl
W=$B/tests/integration/ima-writer
T=$(mktemp -d)
VPID= APID= SPID= FPID=
cleanup() {
    for p in $APID $VPID $SPID $FPID; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-000000000001 [smf]=aaaaaaaa-0000-4000-8000-000000000002
                 [upf]=aaaaaaaa-0000-4000-8000-000000000003)

say "The IMA core on a real kernel's list: Debian's 6.1 kernel under QEMU, replayed to its PCR 10"
F=tests/fixtures/ima/kernel-6.1
$K ima check --pcr "sha256:10=$(sed -n 's/^sha256:10=//p' $F/pcrs.txt)" $F/binary_runtime_measurements

say "The 5G functions' images, built from Debian 12 packages (tests/tools/build-images.sh, cached)"
IMG=$B/images
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo tests/tools/build-images.sh "$IMG"
manifest_of() {
    python3 -c 'import json, sys
print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]
       if m["annotations"]["org.opencontainers.image.ref.name"] == sys.argv[2]][0])' "$IMG/layout/index.json" "$1"
}
for app in amf smf upf; do
    echo "oci:$IMG/layout:$app  $(manifest_of $app)  $(awk -v a="# $app" '$0 ~ "^# " {on = index($0, a) == 1; next} on {printf "%s ", $1}' "$IMG/packages.txt")"
done

say "Golden policies from the images: kimactl policy generate"
generate() { $K policy generate "$@"; }
mkdir -p "$T/policies" "$T/state" "$T/var" "$T/tpm"
items=""
for app in amf smf upf; do
    echo "\$ kimactl policy generate --name open5gs-$app --namespace open5gs --label app=$app oci:$IMG/layout:$app"
    t0=$(date +%s%3N)
    generate --name "open5gs-$app" --namespace open5gs --label "app=$app" -o "$T/policies/$app.json" \
        "oci:$IMG/layout:$app"
    echo "  $(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["digests"]))' \
        "$T/policies/$app.json") files (ELF or executable) in $(($(date +%s%3N) - t0)) ms," \
        "pinned to $(manifest_of $app | cut -c1-19)..."
    items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$app]}\", \"namespace\": \"open5gs\", \"name\": \"$app-0\", \"labels\": {\"app\": \"$app\"}}, \"spec\": {\"nodeName\": \"node-1\"}, \"status\": {\"containerStatuses\": [{\"imageID\": \"localhost/open5gs/$app@$(manifest_of $app)\"}]}}"
done
python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))
print("upf.json:", p["name"], "match", json.dumps(p["match"])[:90] + "...")
for f in ("/usr/bin/open5gs-upfd", "/usr/lib/x86_64-linux-gnu/libc.so.6"):
    print("  %s: %s" % (f, p["digests"][f]))' "$T/policies/upf.json"
echo "{\"kind\": \"PodList\", \"items\": [$items]}" >"$T/pods.json"
echo "demo-boot" >"$T/boot_id"

say "Setting up: kimactl certs init, a cluster with namespace open5gs running those images"
$K certs init --out "$T/pki" --server-name 127.0.0.1 --node node-1 --operator demo | sed 's|'"$T"'/||'

say "Starting swtpm, the fake Kubernetes API, kima-verifier and kima-agent on loopback"
swtpm socket --tpm2 --server "type=unixio,path=$T/tpm/sock" --ctrl "type=unixio,path=$T/tpm/sock.ctrl" \
    --tpmstate "dir=$T/tpm" --flags not-need-init,startup-clear >"$T/swtpm.log" 2>&1 &
SPID=$!
TCTI="swtpm:path=$T/tpm/sock"
python3 tests/helpers/fake-kube-api.py --cert "$T/pki/verifier/tls.crt" --key "$T/pki/verifier/tls.key" \
    --token demo-token --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
for _ in $(seq 200); do [ -S "$T/tpm/sock.ctrl" ] && [ -s "$T/api.port" ] && break; sleep 0.05; done
API=https://127.0.0.1:$(cat "$T/api.port")
cat >"$T/kubeconfig" <<YAML
apiVersion: v1
kind: Config
current-context: demo
clusters: [{name: demo, cluster: {server: "$API", certificate-authority: pki/ca.crt}}]
contexts: [{name: demo, context: {cluster: demo, user: kima}}]
users: [{name: kima, user: {token: demo-token}}]
YAML
$W --securityfs "$T/sfs" --tcti "$TCTI" init --boot-aggregate
$B/verifier/kima-verifier --listen 127.0.0.1:0 --tls-cert "$T/pki/verifier/tls.crt" \
    --tls-key "$T/pki/verifier/tls.key" --client-ca "$T/pki/ca.crt" --db "$T/var/kima.db" \
    --audit-log "$T/var/audit.log" --audit-key "$T/var/audit.key" --policies "$T/policies" \
    --kubeconfig "$T/kubeconfig" >"$T/verifier.log" 2>&1 &
VPID=$!
for _ in $(seq 200); do grep -q "listening on port" "$T/verifier.log" && break; sleep 0.05; done
URL=https://127.0.0.1:$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/verifier.log")
$B/agent/kima-agent --verifier "$URL" --node node-1 --tcti "$TCTI" --securityfs "$T/sfs" \
    --cert "$T/pki/agents/node-1/tls.crt" --key "$T/pki/agents/node-1/tls.key" \
    --cacert "$T/pki/ca.crt" --state-dir "$T/state" --boot-id-file "$T/boot_id" >"$T/agent.log" 2>&1 &
APID=$!
echo "verifier $URL, Kubernetes API $API, agent for node-1, TPM $TCTI"
# swtpm here has no EK certificate, so the verifier runs without --require-ek-cert and says so.
sed -n 's/.*msg="\*\*\* \(--require-ek-cert is off[^.]*\)\..*/verifier warns: \1 (no EK certificates in this demo)/p' \
    "$T/verifier.log"
export KIMA_SERVER=$URL KIMA_CERT=$T/pki/operators/demo/tls.crt KIMA_KEY=$T/pki/operators/demo/tls.key \
    KIMA_CACERT=$T/pki/ca.crt
measure() { $W --securityfs "$T/sfs" --tcti "$TCTI" pod "${UIDS[$3]}" "$1" "$2"; }
api() { curl -sS --cacert "$T/pki/ca.crt" "$API/_fake/state"; }
# kubectl get pods -n open5gs -L kima.dev/trust, from the fake API server
show_pods() {
    api | python3 -c '
import json, sys
print("%-8s %-10s %s" % ("NAME", "TRUST", "REASON (kima.dev/reason)"))
for p in sorted(json.load(sys.stdin)["pods"], key=lambda p: p["metadata"]["name"]):
    md = p["metadata"]
    print("%-8s %-10s %s" % (md["name"], md.get("labels", {}).get("kima.dev/trust", "-"),
                             md.get("annotations", {}).get("kima.dev/reason", "")[:100]))'
}
label_of() {
    api | python3 -c 'import json,sys; print([p["metadata"].get("labels", {}).get("kima.dev/trust", "") for p in json.load(sys.stdin)["pods"] if p["metadata"]["name"] == sys.argv[1]][0])' "$1"
}
wait_label() { # pod label
    for _ in $(seq 200); do [ "$(label_of "$1")" = "$2" ] && return 0; sleep 0.05; done
    echo "($1 did not become $2)"
}

say "The pods start: their binaries are measured (ima-cgpath entries, PCR 10 extended)"
# What each container runs, hashed from the image unpacked as a runtime would.
declare -A LIB=([amf]=/usr/lib/x86_64-linux-gnu/libbsd.so.0.11.7
                [smf]=/usr/lib/x86_64-linux-gnu/libssl.so.3
                [upf]=/usr/lib/x86_64-linux-gnu/libxtables.so.12.7.0)
for app in amf smf upf; do
    R=$IMG/bundles/$app/rootfs
    for p in /usr/bin/dash "/usr/bin/open5gs-${app}d" /usr/lib/x86_64-linux-gnu/libc.so.6 "${LIB[$app]}"; do
        measure "$p" "file:$R$p" $app
    done
    echo "$app-0: /usr/bin/dash /usr/bin/open5gs-${app}d libc.so.6 ${LIB[$app]##*/}"
done
for app in amf smf upf; do wait_label $app-0 trusted; done
show_pods

say "A tampered open5gs-upfd runs in the upf pod"
# The image's binary with one byte changed inside its code.
cp "$IMG/bundles/upf/rootfs/usr/bin/open5gs-upfd" "$T/open5gs-upfd"
printf '\xcc' | dd of="$T/open5gs-upfd" bs=1 seek=8192 conv=notrunc status=none
echo "sha256 of the image's file: $(sha256sum <"$IMG/bundles/upf/rootfs/usr/bin/open5gs-upfd" | cut -c1-16)..., tampered: $(sha256sum <"$T/open5gs-upfd" | cut -c1-16)..."
t0=$(date +%s%3N)
measure /usr/bin/open5gs-upfd "file:$T/open5gs-upfd" upf
wait_label upf-0 untrusted
echo "labelled untrusted $(($(date +%s%3N) - t0)) ms after the measurement"
show_pods
echo
echo "Event on upf-0 (kubectl describe pod upf-0):"
api | python3 -c '
import json, sys
for e in json.load(sys.stdin)["events"]:
    print("  %s  %s  %s" % (e["type"], e["reason"], e["message"]))'
echo
$K nodes
echo
echo "agent resident memory: $(awk '/VmRSS/ {print $2, $3}' /proc/$APID/status)," \
    "verifier: $(awk '/VmRSS/ {print $2, $3}' /proc/$VPID/status)"

say "The audit log: what happened, hash-chained and signed"
$K audit show --pod upf-0 "$T/var/audit.log" | cut -c1-200
kill "$VPID"
wait "$VPID" || true
VPID=
$K audit verify --key "$T/var/audit.key.pub" "$T/var/audit.log"

say "Done in $(($(date +%s) - T0)) s. Run ./test.sh for the whole test suite."
