#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima on a real kernel: Linux 6.1 or 6.12 with kima's template patch
# (ima/kernel/VERSION/), booted under QEMU (TCG) with a swtpm vTPM on tpm-tis and
# `ima_policy=tcb ima_template=ima-cgpath rootfstype=ramfs`. In the guest,
# three "pods" are cgroups in the systemd and cgroupfs layouts; processes in
# them run their binaries; kima-verifier and kima-agent run on the guest's
# loopback, the agent on the kernel's /dev/tpmrm0 and the real securityfs.
# The verdicts come back over the serial console, with the list and PCR 10.
# The host asserts: every pod trusted; after a pod runs a binary outside its
# policy only that pod is untrusted; host processes are node scope; the list
# replays to the PCR 10 the guest read. On 6.12 (Linux >= 6.10 writes a
# list per PCR bank) the agent must read binary_runtime_measurements_sha256,
# the list of the bank the verifier has it quote, and each per-bank list
# must replay to its bank. With --fixture DIR the captured lists are kept
# there (tests/fixtures/ima/kernel-VERSION-cgpath).
# Usage: test-vm.sh SOURCE_ROOT BUILD_ROOT [VERSION] [--fixture DIR]
# (VERSION 6.1, the default, or 6.12)
set -u
SRC=$1
BUILD=$2
shift 2
KV=6.1
case "${1:-}" in 6.1 | 6.12) KV=$1 && shift ;; esac
FIXTURE=
[ "${1:-}" = --fixture ] && FIXTURE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$SRC/tests/integration/helpers.sh"
SPID=
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools qemu-system-x86_64 swtpm swtpm_setup cpio busybox
K=$BUILD/cli/kimactl

# 1. the kernel (cached in the build folder)
t0=$(date +%s)
bash "$HERE/build-kernel.sh" "$SRC" "$BUILD/vm" "$KV" >"$T/kernel.log" 2>&1
rc=$?
[ $rc -eq 77 ] && { cat "$T/kernel.log"; exit 77; }
[ $rc -eq 0 ] || { tail -20 "$T/kernel.log"; echo "the kernel did not build"; exit 1; }
echo "Linux $KV ready in $(($(date +%s) - t0)) s"
grep "^built" "$T/kernel.log"

# 2. the initramfs: busybox, kima's binaries and their libraries, a PKI,
# policies for the pods, and the guest's script
R=$T/root
mkdir -p "$R"/{bin,sbin,proc,sys,dev,etc,tmp,var/lib/kima,usr/bin,etc/kima/policies,lib64}
cp "$(command -v busybox)" "$R/bin/busybox"
file -L "$R/bin/busybox" | grep -q "statically linked" || cp /bin/busybox "$R/bin/busybox"
copy_with_libs() {
    cp "$1" "$R/usr/bin/"
    ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$R$(dirname "$lib")"
        cp -L "$lib" "$R$lib"
    done
}
for b in "$BUILD/verifier/kima-verifier" "$BUILD/agent/kima-agent" "$K"; do copy_with_libs "$b"; done
for lib in /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0; do # loaded by tctildr
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done
"$K" certs init --out "$T/pki" --server-name 127.0.0.1 --node vm-node --operator vm >/dev/null
cp -r "$T/pki" "$R/etc/kima/pki"
# each pod's binary: a copy of busybox made distinct (its own digest)
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-00000000000a [smf]=aaaaaaaa-0000-4000-8000-00000000000b
                 [upf]=aaaaaaaa-0000-4000-8000-00000000000c)
items=""
for app in amf smf upf; do
    cp "$R/bin/busybox" "$R/usr/bin/open5gs-${app}d"
    printf 'kima %s\n' "$app" >>"$R/usr/bin/open5gs-${app}d"
    d=$(sha256sum "$R/usr/bin/open5gs-${app}d" | cut -d' ' -f1)
    cat >"$R/etc/kima/policies/$app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-$app",
 "match": {"namespace": "open5gs", "podLabels": {"app": "$app"}},
 "digests": {"/usr/bin/open5gs-${app}d": ["sha256:$d"]}}
JSON
    items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$app]}\", \"namespace\": \"open5gs\", \"name\": \"$app-0\", \"labels\": {\"app\": \"$app\"}}, \"spec\": {\"nodeName\": \"vm-node\"}}"
done
echo "{\"kind\": \"PodList\", \"items\": [$items]}" >"$R/etc/kima/pods.json"
cp "$R/bin/busybox" "$R/usr/bin/cryptominer"
printf 'not in any policy\n' >>"$R/usr/bin/cryptominer"
u() { echo "${UIDS[$1]}" | tr - _; }
cat >"$R/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "GUEST \$(uname -r) \$(cat /sys/kernel/security/ima/runtime_measurements_count) entries at start"
# The pods' cgroups, as kubelet makes them: amf and upf with the systemd
# driver (besteffort, guaranteed), smf with cgroupfs (burstable).
CG=/sys/fs/cgroup
AMF=\$CG/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod$(u amf).slice/cri-containerd-$(printf 'a%.0s' {1..64}).scope
UPF=\$CG/kubepods.slice/kubepods-pod$(u upf).slice/cri-containerd-$(printf 'c%.0s' {1..64}).scope
SMF=\$CG/kubepods/burstable/pod${UIDS[smf]}/$(printf 'b%.0s' {1..64})
mkdir -p \$AMF \$UPF \$SMF
inpod() { # CGROUP COMMAND...: run COMMAND in that cgroup
    cg=\$1; shift
    sh -c 'echo \$\$ > '"\$cg"'/cgroup.procs; exec "\$@"' sh "\$@"
}
inpod \$AMF /usr/bin/open5gs-amfd >/dev/null 2>&1
inpod \$SMF /usr/bin/open5gs-smfd >/dev/null 2>&1
inpod \$UPF /usr/bin/open5gs-upfd >/dev/null 2>&1
P=/etc/kima/pki
kima-verifier --listen 127.0.0.1:8443 --tls-cert \$P/verifier/tls.crt --tls-key \$P/verifier/tls.key \
    --client-ca \$P/ca.crt --db /var/lib/kima/kima.db --audit-log /var/lib/kima/audit.log \
    --audit-key /var/lib/kima/audit.key --policies /etc/kima/policies --pods-file /etc/kima/pods.json \
    >/tmp/verifier.log 2>&1 &
sleep 1
kima-agent --verifier https://127.0.0.1:8443 --node vm-node --tcti device:/dev/tpmrm0 \
    --cert \$P/agents/vm-node/tls.crt --key \$P/agents/vm-node/tls.key --cacert \$P/ca.crt \
    --state-dir /var/lib/kima-agent >/tmp/agent.log 2>&1 &
export KIMA_SERVER=https://127.0.0.1:8443 KIMA_CERT=\$P/operators/vm/tls.crt \
    KIMA_KEY=\$P/operators/vm/tls.key KIMA_CACERT=\$P/ca.crt
wait_pods() { # STATE...: until kimactl pods shows them, at most 60 s
    for i in \$(seq 120); do
        kimactl pods >/tmp/pods 2>/dev/null
        ok=1
        for s in "\$@"; do grep -q "\$s" /tmp/pods || ok=0; done
        [ \$ok = 1 ] && break
        sleep 0.5
    done
}
wait_pods "amf-0 .*trusted" "smf-0 .*trusted" "upf-0 .*trusted"
echo "===PODS1==="; cat /tmp/pods; echo "===END==="
# smf's pod runs a binary no policy allows
inpod \$SMF /usr/bin/cryptominer >/dev/null 2>&1
wait_pods "smf-0 .*untrusted"
sleep 3
kimactl pods >/tmp/pods 2>/dev/null
echo "===PODS2==="; cat /tmp/pods; echo "===END==="
kimactl nodes
tail -3 /tmp/agent.log
grep -o "list /sys/kernel/security/ima/[a-z0-9_]*" /tmp/agent.log | sed 's/^/AGENT /'
grep -o "reading /sys/kernel/security/ima/[a-z0-9_]*" /tmp/agent.log | sed 's/^/AGENT /'
S=/sys/kernel/security/ima
p1=\$(cat /sys/class/tpm/tpm0/pcr-sha1/10); p2=\$(cat /sys/class/tpm/tpm0/pcr-sha256/10)
cp \$S/binary_runtime_measurements /tmp/list
for b in sha1 sha256; do # the per-bank lists (Linux >= 6.10)
    [ -e \$S/binary_runtime_measurements_\$b ] && cp \$S/binary_runtime_measurements_\$b /tmp/list_\$b
done
q1=\$(cat /sys/class/tpm/tpm0/pcr-sha1/10); q2=\$(cat /sys/class/tpm/tpm0/pcr-sha256/10)
echo "PCR sha1:10=\$p1 \$q1"
echo "PCR sha256:10=\$p2 \$q2"
echo "===LIST==="; base64 /tmp/list; echo "===END==="
for b in sha1 sha256; do
    [ -e /tmp/list_\$b ] && { echo "===LIST_\$b==="; base64 /tmp/list_\$b; echo "===END==="; }
done
reboot -f # with -no-reboot QEMU exits (no ACPI power-off in the test kernel)
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$T/initrd.gz"

# 3. the boot, with a vTPM
mkdir -p "$T/tpm"
swtpm_setup --tpm2 --tpmstate "$T/tpm" --pcr-banks sha1,sha256 --config /dev/null --overwrite >/dev/null
swtpm socket --tpm2 --tpmstate "dir=$T/tpm" --ctrl "type=unixio,path=$T/tpm/sock" >"$T/swtpm.log" 2>&1 &
SPID=$!
for _ in $(seq 200); do [ -S "$T/tpm/sock" ] && break; sleep 0.02; done
t0=$(date +%s)
timeout 300 qemu-system-x86_64 -accel tcg -m 768 -smp 1 -nographic -no-reboot \
    -kernel "$BUILD/vm/$KV/bzImage" -initrd "$T/initrd.gz" \
    -append "console=ttyS0 rootfstype=ramfs ima_policy=tcb ima_template=ima-cgpath ima_hash=sha256 tpm_tis.force=1 panic=-1" \
    -chardev "socket,id=chrtpm,path=$T/tpm/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 </dev/null | tr -d '\r' >"$T/console.log"
echo "guest ran $(($(date +%s) - t0)) s"
SPID=
section() { sed -n "/===$1===/,/===END===/p" "$T/console.log" | sed '1d;$d'; }

# 4. the host's checks
grep -q "^GUEST $KV\." "$T/console.log" && ok || { bad "the guest did not start"; tail -30 "$T/console.log"; summary; exit 1; }
section PODS1 >"$T/pods1"
for app in amf smf upf; do
    grep -Eq "$app-0 +vm-node +trusted" "$T/pods1" && ok || bad "$app-0 should be trusted: $(cat "$T/pods1")"
done
section PODS2 >"$T/pods2"
grep -Eq "smf-0 +vm-node +untrusted .*cryptominer" "$T/pods2" && ok || bad "smf-0 should be untrusted for cryptominer: $(cat "$T/pods2")"
for app in amf upf; do
    grep -Eq "$app-0 +vm-node +trusted" "$T/pods2" && ok || bad "$app-0 should stay trusted"
done
section LIST | base64 -d >"$T/list" 2>/dev/null && [ -s "$T/list" ] && ok || bad "no list from the guest"
read -r _ _ p1 q1 < <(grep "^PCR sha1:10=" "$T/console.log" | sed 's/=/ /')
read -r _ _ p2 q2 < <(grep "^PCR sha256:10=" "$T/console.log" | sed 's/=/ /')
[ "$p1" = "$q1" ] && [ "$p2" = "$q2" ] && ok || bad "PCR 10 moved while the list was copied"
expect 0 "$K" ima check --pcr "sha1:10=$p1" --pcr "sha256:10=$p2" "$T/list"
n=$(grep -o "the first [0-9]* of [0-9]* entries" "$T/out")
echo "list: $n"
expect 0 "$K" ima pods "$T/list"
cp "$T/out" "$T/attribution"
for app in amf smf upf; do
    grep -q "pod ${UIDS[$app]}" "$T/attribution" && ok || bad "no entries of $app's pod"
done
grep -q "driver=cgroupfs" "$T/attribution" && grep -q "driver=systemd" "$T/attribution" && ok ||
    bad "both cgroup layouts must be seen"
"$K" ima dump "$T/list" >"$T/dump"
grep " / " "$T/dump" | grep -q "/usr/bin/kima-verifier" && ok || bad "host processes must be in the root cgroup (node scope)"
grep -q "ima-cgpath" "$T/dump" && ! grep -q " ima-ng " "$T/dump" && ok || bad "every entry must be ima-cgpath"
# The list the agent read: the verifier quotes sha256:10, so the per-bank
# SHA-256 list where the kernel writes one (>= 6.10), else the SHA-1 list.
agent_list=$(grep "^AGENT " "$T/console.log" | tail -1 | sed 's|.*/||')
echo "the agent read $agent_list"
want_list=binary_runtime_measurements_sha256
[ "$KV" = 6.1 ] && want_list=binary_runtime_measurements
[ "$agent_list" = "$want_list" ] && ok || bad "the agent read '$agent_list', not $want_list"
section LIST_sha1 | base64 -d >"$T/list_sha1" 2>/dev/null
section LIST_sha256 | base64 -d >"$T/list_sha256" 2>/dev/null
if [ "$KV" = 6.1 ]; then
    [ ! -s "$T/list_sha256" ] && ok || bad "Linux 6.1 has no per-bank lists"
else
    # binary_runtime_measurements is the _sha1 list; the _sha256 one holds
    # the same entries with SHA-256 template digests, replays to both banks'
    # PCR 10 and attributes every entry as the SHA-1 list does.
    cmp -s "$T/list" "$T/list_sha1" && ok || bad "binary_runtime_measurements is not the _sha1 list"
    expect 0 "$K" ima check --pcr "sha1:10=$p1" --pcr "sha256:10=$p2" "$T/list_sha256"
    n256=$(grep -o "the first [0-9]* of [0-9]* entries" "$T/out")
    [ -n "$n" ] && [ "$n256" = "$n" ] && ok || bad "the _sha256 list: '$n256', the SHA-1 list: '$n'"
    expect 0 "$K" ima pods "$T/list_sha256"
    same "$T/attribution" "$T/out" "kimactl ima pods of the _sha256 list"
    # 12 more bytes per entry: 32-byte template digests instead of 20
    cnt=$(echo "$n" | awk '{print $5}')
    [ "$(stat -c %s "$T/list_sha256")" = $(($(stat -c %s "$T/list") + 12 * ${cnt:-0})) ] && ok ||
        bad "the _sha256 list is not the SHA-1 list with 32-byte template digests"
fi
if [ -n "$FIXTURE" ]; then
    mkdir -p "$FIXTURE"
    cp "$T/list" "$FIXTURE/binary_runtime_measurements"
    [ -s "$T/list_sha256" ] && cp "$T/list_sha256" "$FIXTURE/binary_runtime_measurements_sha256"
    printf 'sha1:10=%s\nsha256:10=%s\n' "$p1" "$p2" >"$FIXTURE/pcrs.txt"
    cp "$T/attribution" "$FIXTURE/attribution.txt"
    grep -e '^\[ *[0-9]' -e '^GUEST' "$T/console.log" >"$FIXTURE/boot.log" || true
fi
summary
