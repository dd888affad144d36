#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima on a real kernel with real containers: Linux 6.1 or 6.12 with kima's
# patches (ima/kernel/VERSION/), booted under QEMU (TCG) with a swtpm vTPM on tpm-tis,
# `ima_template=ima-cgpath` and the node IMA policy of docs/kubernetes.md
# ("Preparing nodes", read from that file), not ima_policy=tcb. The guest
# moves to a tmpfs root and runs OCI containers with crun from the demo
# images (tests/tools/build-images.sh: real Debian packages): each image's
# layers unpacked once, one lower directory per layer shared by every
# container of the image (tests/vm/unpack-layers.py, as containerd's
# overlayfs snapshotter lays them out); each container's root an overlayfs
# with its own upper directory; its own mount, PID, UTS and IPC namespaces;
# the cgroup the kubelet would give it (systemd and cgroupfs drivers).
# Policies come from `kimactl policy generate` over the same images.
# kima-verifier and kima-agent run on the guest's loopback, the agent on
# /dev/tpmrm0 and the real securityfs; verdicts, list, PCR 10 and audit log
# come back over the serial console. The host asserts what docs/kernel.md
# ("Real containers in the VM") lists. On 6.12 (Linux >= 6.10 writes a list
# per PCR bank) the agent must read binary_runtime_measurements_sha256, the
# list of the bank the verifier has it quote, and each per-bank list must
# replay to its bank. With --fixture DIR the captured lists are kept there
# (tests/fixtures/ima/kernel-VERSION-cgpath).
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
need_tools qemu-system-x86_64 swtpm swtpm_setup cpio busybox crun setfattr umoci skopeo python3
K=$BUILD/cli/kimactl

# 1. the kernel (cached in the build folder)
t0=$(date +%s)
bash "$HERE/build-kernel.sh" "$SRC" "$BUILD/vm" "$KV" >"$T/kernel.log" 2>&1
rc=$?
[ $rc -eq 77 ] && { cat "$T/kernel.log"; exit 77; }
[ $rc -eq 0 ] || { tail -20 "$T/kernel.log"; echo "the kernel did not build"; exit 1; }
echo "Linux $KV ready in $(($(date +%s) - t0)) s"
grep "^built" "$T/kernel.log"

# 2. the images (cached in the build folder), their layers, the pods, their
# policies and the containers' bundles
bash "$SRC/tests/tools/build-images.sh" "$BUILD/images" >"$T/images.log" 2>&1
rc=$?
[ $rc -eq 77 ] && { cat "$T/images.log"; exit 77; }
[ $rc -eq 0 ] || { tail -20 "$T/images.log"; echo "the images did not build"; exit 1; }
LAYOUT=$BUILD/images/layout
R=$T/root
C=$R/var/lib/ctr # layers/, images/, bundles/: what the guest's "containerd" has
mkdir -p "$R"/{bin,sbin,proc,sys,dev,etc,tmp,run,newroot,var/lib/kima,usr/bin,etc/kima/policies,lib64} "$C"
python3 "$HERE/unpack-layers.py" "$LAYOUT" "$C" amf smf upf >"$T/unpack.log" 2>&1 ||
    { cat "$T/unpack.log"; echo "the layers did not unpack"; exit 1; }
for img in amf smf upf; do # overlayfs takes the top layer first
    sed 1d "$C/images/$img" | tac | sed "s|^|/var/lib/ctr/layers/|" | paste -sd: >"$C/images/$img.lower"
done
# The pods: two of the same image (amf), the drivers and QoS classes mixed.
declare -A UIDS=([amf-0]=aaaaaaaa-0000-4000-8000-00000000000a [amf-1]=aaaaaaaa-0000-4000-8000-00000000000d
                 [smf-0]=aaaaaaaa-0000-4000-8000-00000000000b [upf-0]=aaaaaaaa-0000-4000-8000-00000000000c)
declare -A DRIVER=([amf-0]=systemd [amf-1]=cgroupfs [smf-0]=cgroupfs [upf-0]=systemd)
declare -A QOS=([amf-0]=besteffort [amf-1]=besteffort [smf-0]=burstable [upf-0]=guaranteed)
PODS=(amf-0 amf-1 smf-0 upf-0)
cid() { printf '%s' "$1" | sha256sum | cut -c1-64; } # a container ID: 64 hex
declare -A CID
for pod in "${PODS[@]}"; do CID[$pod]=$(cid "$pod/0"); done
declare -A NEW=([amf-0]=$(cid amf-0/1) [amf-1]=$(cid amf-1/1)) # the containers after a restart
# The kubelet's cgroup of a container (cgroupsPath, from the root).
cgpath() { # POD ID
    local u=${UIDS[$1]} q=${QOS[$1]}
    if [ "${DRIVER[$1]}" = systemd ]; then
        local slice=kubepods.slice/kubepods-$q.slice/kubepods-$q-pod${u//-/_}.slice
        [ "$q" = guaranteed ] && slice=kubepods.slice/kubepods-pod${u//-/_}.slice
        echo "/$slice/cri-containerd-$2.scope"
    else
        local dir=/kubepods/$q/pod$u
        [ "$q" = guaranteed ] && dir=/kubepods/pod$u
        echo "$dir/$2"
    fi
}
for img in amf smf upf; do
    expect 0 "$K" policy generate --namespace open5gs --label "app=$img" --name "open5gs-$img" \
        -o "$R/etc/kima/policies/$img.json" "oci:$LAYOUT:$img"
done
# Each container: its first program, then it waits on its standard input
# (a FIFO the guest holds open) as a long-running service would.
declare -A ARGS=(
    [amf]='open5gs-amfd -h >/dev/null 2>&1; echo amf started; read x'
    [smf]='open5gs-smfd version; read x'
    [upf]='open5gs-upfd --version >/dev/null 2>&1; [ -e /usr/sbin/iptables-apply ] && echo whiteout-broken || echo whiteout-ok; read x'
)
bundle() { # POD ID: /var/lib/ctr/bundles/ID/config.json
    local img=${1%-*}
    mkdir -p "$C/bundles/$2"
    python3 - "$1" "$2" "$(cgpath "$1" "$2")" "${ARGS[$img]}" "${UIDS[$1]}" >"$C/bundles/$2/config.json" <<'PY'
import json, sys
pod, cid, cgroup, script, uid = sys.argv[1:]
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
        "CAP_NET_BIND_SERVICE"]
mounts = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1m"]},
    # containerd's /dev/shm: nosuid, noexec, nodev
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=1m"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    # an emptyDir of medium Memory: the kubelet's tmpfs, bind-mounted (no noexec)
    {"destination": "/cache", "type": "bind", "options": ["rbind", "rw"],
     "source": f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~empty-dir/cache"},
    # a hostPath volume: a node directory, the same inodes in every pod
    {"destination": "/opt/tools", "type": "bind", "source": "/srv/tools", "options": ["rbind", "ro"]},
]
print(json.dumps({
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/",
                "args": ["/bin/sh", "-c", script],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
    "root": {"path": f"/run/ctr/{cid}/rootfs"},
    "hostname": pod,
    "mounts": mounts,
    "linux": {"cgroupsPath": cgroup,
              "namespaces": [{"type": t} for t in ("mount", "pid", "uts", "ipc")]},
}, indent=1))
PY
}
for pod in "${PODS[@]}"; do bundle "$pod" "${CID[$pod]}"; done
for pod in amf-0 amf-1; do bundle "$pod" "${NEW[$pod]}"; done
# The PodList as the API gives it: containerStatuses with the container ID
# and the image's manifest digest (what containerd reports after a pull).
podlist() { # RESTARTED: 0, or 1 for amf-0's and amf-1's new containers
    local items="" pod img id restarts
    for pod in "${PODS[@]}"; do
        img=${pod%-*}
        id=${CID[$pod]}
        restarts=0
        [ "$1" = 1 ] && [ "$img" = amf ] && id=${NEW[$pod]} && restarts=1
        items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$pod]}\", \"namespace\": \"open5gs\", \"name\": \"$pod\", \"labels\": {\"app\": \"$img\"}}, \"spec\": {\"nodeName\": \"vm-node\"}, \"status\": {\"containerStatuses\": [{\"name\": \"$img\", \"containerID\": \"containerd://$id\", \"imageID\": \"docker.io/open5gs/$img@$(head -1 "$C/images/$img" | cut -d' ' -f1)\", \"restartCount\": $restarts}]}}"
    done
    echo "{\"kind\": \"PodList\", \"items\": [$items]}"
}
podlist 0 >"$R/etc/kima/pods.json"
podlist 1 >"$R/etc/kima/pods-restarted.json"
# The node's IMA policy: the block of docs/kubernetes.md, as users copy it.
awk '/\*\*IMA policy\.\*\*/ {p = 1} p && /```/ {n++; next} p && n == 1 {sub(/^   /, ""); print} n == 2 {exit}' \
    "$SRC/docs/kubernetes.md" >"$R/etc/ima-policy"
grep -q "^measure func=BPRM_CHECK" "$R/etc/ima-policy" && ok || bad "no IMA policy in docs/kubernetes.md"

# the guest's programs: busybox, crun, setfattr, kima's, with their libraries
cp "$(command -v busybox)" "$R/bin/busybox"
file -L "$R/bin/busybox" | grep -q "statically linked" || cp /bin/busybox "$R/bin/busybox"
copy_with_libs() {
    cp "$1" "$R/usr/bin/"
    ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$R$(dirname "$lib")"
        cp -L "$lib" "$R$lib"
    done
}
for b in "$BUILD/verifier/kima-verifier" "$BUILD/agent/kima-agent" "$K" "$(command -v crun)" \
    "$(command -v setfattr)"; do copy_with_libs "$b"; done
for lib in /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0; do # loaded by tctildr
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done
"$K" certs init --out "$T/pki" --server-name 127.0.0.1 --node vm-node --operator vm >/dev/null
cp -r "$T/pki" "$R/etc/kima/pki"
# what is copied into amf-1's container (a static busybox made distinct) and
# the program on the node's hostPath that both amf pods run
cp "$R/bin/busybox" "$R/usr/bin/cryptominer"
printf 'not in any policy\n' >>"$R/usr/bin/cryptominer"
MINER=$(sha256sum "$R/usr/bin/cryptominer" | cut -d' ' -f1)
mkdir -p "$R/srv/tools"
cp "$R/bin/busybox" "$R/srv/tools/tool"
printf 'a node tool\n' >>"$R/srv/tools/tool"

# Stage 1 (/init on the initramfs): copy it all to a tmpfs and switch_root
# to it (crun's pivot_root does not work from the initramfs's rootfs).
cat >"$R/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t tmpfs -o size=640m,mode=755 tmpfs /newroot
for d in /*; do
    case $d in /newroot|/proc|/sys|/dev) /bin/busybox mkdir -p /newroot$d ;;
    *) /bin/busybox cp -a $d /newroot/ ;; esac
done
exec /bin/busybox switch_root /newroot /init2
INIT
# Stage 2 (/init2 on the tmpfs root)
cat >"$R/init2" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
S=/sys/kernel/security/ima
cat /etc/ima-policy >\$S/policy && echo "IMA-POLICY loaded"
echo "GUEST \$(uname -r) \$(cat \$S/runtime_measurements_count) entries at start"
ip link set lo up
mkdir -p /run/ctr /run/crun
# the layers' opaque directories (an initramfs carries no xattrs)
for f in /var/lib/ctr/layers/*.opaque; do
    while read -r d; do setfattr -n trusted.overlay.opaque -v y "\${f%.opaque}\$d"; done <"\$f"
done
start() { # POD ID IMAGE UID: the container's overlayfs root, then crun
    b=/run/ctr/\$2
    mkdir -p \$b/upper \$b/work \$b/rootfs
    mount -t overlay overlay -o lowerdir=\$(cat /var/lib/ctr/images/\$3.lower),upperdir=\$b/upper,workdir=\$b/work \$b/rootfs
    v=/var/lib/kubelet/pods/\$4/volumes/kubernetes.io~empty-dir/cache
    if [ ! -d \$v ]; then mkdir -p \$v && mount -t tmpfs -o size=1m tmpfs \$v; fi
    mkfifo \$b/stdin
    crun --cgroup-manager=cgroupfs run -d --no-new-keyring -b /var/lib/ctr/bundles/\$2 \$2 \\
        <>\$b/stdin >\$b/log 2>&1
    echo "\$1 \$2 crun=\$?" >>/tmp/started
}
stop() { # ID
    crun kill \$1 KILL; crun delete -f \$1; umount /run/ctr/\$1/rootfs
}
P=/etc/kima/pki
kima-verifier --listen 127.0.0.1:8443 --tls-cert \$P/verifier/tls.crt --tls-key \$P/verifier/tls.key \\
    --client-ca \$P/ca.crt --db /var/lib/kima/kima.db --audit-log /var/lib/kima/audit.log \\
    --audit-key /var/lib/kima/audit.key --policies /etc/kima/policies --pods-file /etc/kima/pods.json \\
    >/tmp/verifier.log 2>&1 &
t0=\$(date +%s)
start amf-0 ${CID[amf-0]} amf ${UIDS[amf-0]}
start amf-1 ${CID[amf-1]} amf ${UIDS[amf-1]}
start smf-0 ${CID[smf-0]} smf ${UIDS[smf-0]}
start upf-0 ${CID[upf-0]} upf ${UIDS[upf-0]}
echo "CONTAINERS started in \$((\$(date +%s) - t0)) s"
kima-agent --verifier https://127.0.0.1:8443 --node vm-node --tcti device:/dev/tpmrm0 \\
    --cert \$P/agents/vm-node/tls.crt --key \$P/agents/vm-node/tls.key --cacert \$P/ca.crt \\
    --state-dir /var/lib/kima-agent >/tmp/agent.log 2>&1 &
export KIMA_SERVER=https://127.0.0.1:8443 KIMA_CERT=\$P/operators/vm/tls.crt \\
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
covered() { # until the verifier has judged every entry the kernel has now, at most 60 s
    n=\$(cat \$S/runtime_measurements_count)
    for i in \$(seq 120); do
        c=\$(kimactl nodes 2>/dev/null | awk '\$1 == "vm-node" {print \$3}')
        [ "\${c:-0}" -ge "\$n" ] && break
        sleep 0.5
    done
}
wait_pods "amf-0 .*trusted" "amf-1 .*trusted" "smf-0 .*trusted" "upf-0 .*trusted"
covered
kimactl pods >/tmp/pods 2>/dev/null
echo "===PODS1==="; cat /tmp/pods; echo "===END==="
# The same file through each container's overlayfs and on the shared lower
# layer: st_dev differs (one overlayfs superblock, so one inode, per container)
echo "===INODES==="
for id in ${CID[amf-0]} ${CID[amf-1]}; do
    echo "\$id \$(stat -c '%d:%i' /run/ctr/\$id/rootfs/usr/bin/open5gs-amfd)"
done
echo "lower \$(stat -c '%d:%i' \$(sed -n 4p /var/lib/ctr/images/amf | sed 's|^|/var/lib/ctr/layers/|')/usr/bin/open5gs-amfd)"
echo "===END==="
# amf-1: a binary replaced through its overlayfs (copy-up into its upper
# directory, as kubectl cp does) and run in the container
cat /usr/bin/cryptominer >/run/ctr/${CID[amf-1]}/rootfs/usr/bin/open5gs-amfd
crun exec ${CID[amf-1]} /usr/bin/open5gs-amfd >/dev/null 2>&1
ls /run/ctr/${CID[amf-1]}/upper/usr/bin/ >/tmp/upper
wait_pods "amf-1 .*untrusted"
covered
kimactl pods >/tmp/pods 2>/dev/null
echo "===PODS-COPYUP==="; cat /tmp/pods; echo "===END==="
# upf-0: a script handed to the interpreter from /dev/shm (noexec there, as
# containerd mounts it: run directly it is refused before IMA sees it)
crun exec ${CID[upf-0]} /bin/sh -c 'echo "echo y-ran" >/dev/shm/y.sh; sh /dev/shm/y.sh; /dev/shm/y.sh 2>/dev/null || echo y-direct-refused' >/tmp/upf-exec 2>&1
# smf-0: a script written to its emptyDir (a tmpfs) and run directly
printf '#!/bin/sh\necho x-ran\n' >/var/lib/kubelet/pods/${UIDS[smf-0]}/volumes/kubernetes.io~empty-dir/cache/x.sh
chmod 755 /var/lib/kubelet/pods/${UIDS[smf-0]}/volumes/kubernetes.io~empty-dir/cache/x.sh
crun exec ${CID[smf-0]} /cache/x.sh >/tmp/smf-exec 2>&1
wait_pods "amf-1 .*untrusted" "smf-0 .*untrusted"
covered
kimactl pods >/tmp/pods 2>/dev/null
echo "===PODS2==="; cat /tmp/pods; echo "===END==="
# amf-0's and amf-1's containers restart: a new container ID (and root,
# the image's again) in the same pod
stop ${CID[amf-0]}
stop ${CID[amf-1]}
start amf-0 ${NEW[amf-0]} amf ${UIDS[amf-0]}
start amf-1 ${NEW[amf-1]} amf ${UIDS[amf-1]}
cp /etc/kima/pods-restarted.json /etc/kima/pods.json.new && mv /etc/kima/pods.json.new /etc/kima/pods.json
covered
kimactl pods >/tmp/pods 2>/dev/null
echo "===PODS3==="; cat /tmp/pods; echo "===END==="
# A program on a node directory that two pods mount (hostPath): one inode,
# run by amf-0, then amf-1, then amf-0 again
for id in ${NEW[amf-0]} ${NEW[amf-1]} ${NEW[amf-0]}; do
    crun exec \$id /opt/tools/tool true >/dev/null 2>&1
done
echo "===CTRLOG==="
cat /tmp/started
for f in /run/ctr/*/log; do echo "\$f: \$(cat \$f)"; done
echo "upper: \$(cat /tmp/upper)"
echo "upf-exec: \$(cat /tmp/upf-exec)"
echo "smf-exec: \$(cat /tmp/smf-exec)"
echo "===END==="
kimactl nodes
tail -3 /tmp/agent.log
grep -o "list /sys/kernel/security/ima/[a-z0-9_]*" /tmp/agent.log | sed 's/^/AGENT /'
grep -o "reading /sys/kernel/security/ima/[a-z0-9_]*" /tmp/agent.log | sed 's/^/AGENT /'
echo "===AUDIT==="; base64 /var/lib/kima/audit.log; echo "===END==="
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
chmod +x "$R/init" "$R/init2"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$T/initrd.gz"

# 3. the boot, with a vTPM
mkdir -p "$T/tpm"
swtpm_setup --tpm2 --tpmstate "$T/tpm" --pcr-banks sha1,sha256 --config /dev/null --overwrite >/dev/null
swtpm socket --tpm2 --tpmstate "dir=$T/tpm" --ctrl "type=unixio,path=$T/tpm/sock" >"$T/swtpm.log" 2>&1 &
SPID=$!
for _ in $(seq 200); do [ -S "$T/tpm/sock" ] && break; sleep 0.02; done
t0=$(date +%s)
timeout 300 qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
    -kernel "$BUILD/vm/$KV/bzImage" -initrd "$T/initrd.gz" \
    -append "console=ttyS0 rootfstype=ramfs ima_template=ima-cgpath ima_hash=sha256 tpm_tis.force=1 panic=-1" \
    -chardev "socket,id=chrtpm,path=$T/tpm/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 </dev/null | tr -d '\r' >"$T/console.log"
echo "guest ran $(($(date +%s) - t0)) s"
SPID=
section() { sed -n "/===$1===/,/===END===/p" "$T/console.log" | sed '1d;$d'; }

# 4. the host's checks
grep -q "^GUEST $KV\." "$T/console.log" && ok || { bad "the guest did not start"; tail -30 "$T/console.log"; summary; exit 1; }
grep -q "^IMA-POLICY loaded" "$T/console.log" && ok || bad "the kernel refused docs/kubernetes.md's IMA policy"
section CTRLOG >"$T/ctrlog"
for pod in "${PODS[@]}"; do
    grep -q "^$pod ${CID[$pod]} crun=0" "$T/ctrlog" && ok || bad "crun did not start $pod: $(cat "$T/ctrlog")"
done
for pod in amf-0 amf-1; do
    grep -q "^$pod ${NEW[$pod]} crun=0" "$T/ctrlog" && ok || bad "crun did not restart $pod's container"
done
grep -q "${CID[amf-1]}/log: amf started" "$T/ctrlog" && ok || bad "amf-1's container did not run"
grep -q "${CID[smf-0]}/log: OpenSSL 3" "$T/ctrlog" && ok || bad "smf-0's container did not run openssl"
grep -q "whiteout-ok" "$T/ctrlog" && ok || bad "upf's whiteout of /usr/sbin/iptables-apply must hide it"
section PODS1 >"$T/pods1"
for pod in "${PODS[@]}"; do
    grep -Eq "$pod +vm-node +trusted" "$T/pods1" && ok || bad "$pod should be trusted: $(cat "$T/pods1")"
done
section LIST | base64 -d >"$T/list" 2>/dev/null && [ -s "$T/list" ] && ok || bad "no list from the guest"
"$K" ima dump "$T/list" >"$T/dump"
# entries POD [ID]: the dump's lines of that pod (of that container)
entries() {
    local u=${UIDS[$1]} key
    key="pod$u/${2:-}"
    [ "${DRIVER[$1]}" = systemd ] && key="pod${u//-/_}.slice/cri-containerd-${2:-}"
    grep -F -- "$key" "$T/dump"
}
# has_entry POD ID PATH: the container measured PATH (the container's path)
has_entry() { entries "$1" "$2" | awk -v p="$3" '$7 == p {f = 1} END {exit !f}'; }
L=/usr/lib/x86_64-linux-gnu
declare -A FILES=([amf]="/usr/bin/open5gs-amfd $L/libbsd.so.0.11.7 $L/libmd.so.0.0.5"
                  [smf]="/usr/bin/open5gs-smfd $L/libssl.so.3 $L/libcrypto.so.3"
                  [upf]="/usr/bin/open5gs-upfd $L/libxtables.so.12.7.0 $L/libnftnl.so.11.6.0")
for pod in "${PODS[@]}"; do
    for f in /usr/bin/dash $L/libc.so.6 $L/ld-linux-x86-64.so.2 ${FILES[${pod%-*}]}; do
        has_entry "$pod" "${CID[$pod]}" "$f" && ok || bad "$pod's container: no entry of $f under its pod"
    done
    entries "$pod" | awk '$7 ~ /^\/run\/|^\/var\/lib\/ctr/ {f = 1} END {exit f}' && ok ||
        bad "$pod's entries must have the container's paths, not the node's"
done
# The same image in two pods: each overlayfs mount has its own inodes, so
# IMA measures the shared lower files once per container.
a=$(entries amf-0 "${CID[amf-0]}" | awk '$7 == "/usr/bin/open5gs-amfd" {print $6}' | head -1)
b=$(entries amf-1 "${CID[amf-1]}" | awk '$7 == "/usr/bin/open5gs-amfd" {print $6; exit}')
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "both amf pods must measure the same open5gs-amfd ($a, $b)"
section INODES >"$T/inodes"
# Linux 6.1 compares the overlayfs inode's i_version with the backing
# inode's, which differ, so it measures overlayfs files again on every use:
# one entry per chain of executables (execve, then the kernel's mapping of
# it). 6.12 compares the backing inode's change cookie with itself: once.
namfd=$(entries amf-0 "${CID[amf-0]}" | awk '$7 == "/usr/bin/open5gs-amfd"' | wc -l)
echo "entries of open5gs-amfd in amf-0's first container: $namfd"
if [ "$KV" = 6.1 ]; then
    [ "$namfd" -ge 1 ] && ok || bad "amf-0's first container has no entry of open5gs-amfd"
else
    [ "$namfd" = 1 ] && ok || bad "Linux $KV measures an overlayfs file once per container ($namfd entries)"
fi
echo "inodes (st_dev:st_ino) of open5gs-amfd: $(tr '\n' ' ' <"$T/inodes")"
d0=$(awk -v id="${CID[amf-0]}" '$1 == id {print $2}' "$T/inodes")
d1=$(awk -v id="${CID[amf-1]}" '$1 == id {print $2}' "$T/inodes")
[ -n "$d0" ] && [ "${d0%%:*}" != "${d1%%:*}" ] && ok || bad "each container's overlayfs is its own superblock"
# amf-1's copied-up binary: only amf-1 untrusted, the path and digest audited
section PODS-COPYUP >"$T/pods-copyup"
grep -Eq "amf-1 +vm-node +untrusted .*/usr/bin/open5gs-amfd sha256:$MINER" "$T/pods-copyup" && ok ||
    bad "amf-1 should be untrusted for /usr/bin/open5gs-amfd: $(cat "$T/pods-copyup")"
for pod in amf-0 smf-0 upf-0; do
    grep -Eq "$pod +vm-node +trusted" "$T/pods-copyup" && ok || bad "only amf-1 turns untrusted: $(cat "$T/pods-copyup")"
done
section PODS2 >"$T/pods2"
grep -q "^upper: open5gs-amfd" "$T/ctrlog" && ok || bad "the binary must be in amf-1's upper directory (copy-up)"
entries amf-1 "${CID[amf-1]}" | awk -v d="sha256:$MINER" '$7 == "/usr/bin/open5gs-amfd" && $6 == d {f = 1} END {exit !f}' &&
    ok || bad "the replaced binary must be measured in amf-1"
entries amf-0 | grep -q "$MINER" && bad "amf-0 must not see amf-1's replaced binary" || ok
section AUDIT | base64 -d >"$T/audit.log" 2>/dev/null
expect 0 "$K" audit show --pod amf-1 "$T/audit.log"
grep "violation" "$T/out" | grep "/usr/bin/open5gs-amfd" | grep -q "$MINER" && ok ||
    bad "the audit log must name amf-1's path and digest: $(grep -i violation "$T/out" | head -3)"
# scripts: run from the emptyDir (tmpfs) directly, measured and untrusted;
# handed to the interpreter from /dev/shm, only the interpreter is measured
grep -Eq "smf-0 +vm-node +untrusted .*/cache/x.sh" "$T/pods2" && ok ||
    bad "smf-0 should be untrusted for /cache/x.sh: $(cat "$T/pods2")"
grep -q "smf-exec: x-ran" "$T/ctrlog" && ok || bad "x.sh did not run"
has_entry smf-0 "${CID[smf-0]}" /cache/x.sh && ok || bad "x.sh, run by its #! line, must be measured (BPRM_CHECK)"
grep -q "upf-exec: y-ran" "$T/ctrlog" && ok || bad "sh /dev/shm/y.sh did not run: $(cat "$T/ctrlog")"
grep -q "^y-direct-refused" "$T/ctrlog" && ok || bad "/dev/shm is noexec: /dev/shm/y.sh must not run directly"
grep -q "/dev/shm/y.sh" "$T/dump" && bad "a script handed to sh is not measured by the recommended policy" || ok
for pod in amf-0 upf-0; do
    grep -Eq "$pod +vm-node +trusted" "$T/pods2" && ok || bad "$pod should stay trusted: $(cat "$T/pods2")"
done
# the restarted containers: measured again (new overlayfs, new inodes),
# under the same pod, which keeps its state: amf-0 trusted, amf-1 untrusted
# (sticky) although its new container runs the image's binary again
section PODS3 >"$T/pods3"
grep -Eq "amf-0 +vm-node +trusted" "$T/pods3" && ok || bad "amf-0 should be trusted after its restart"
grep -Eq "amf-1 +vm-node +untrusted .*/usr/bin/open5gs-amfd sha256:$MINER" "$T/pods3" && ok ||
    bad "amf-1 stays untrusted after its restart, for the same reason: $(cat "$T/pods3")"
for pod in amf-0 amf-1; do
    for f in /usr/bin/dash /usr/bin/open5gs-amfd $L/libc.so.6; do
        has_entry "$pod" "${NEW[$pod]}" "$f" && ok || bad "$pod's new container: no entry of $f"
    done
done
good=$(entries amf-0 "${CID[amf-0]}" | awk '$7 == "/usr/bin/open5gs-amfd" {print $6; exit}')
entries amf-1 "${NEW[amf-1]}" | awk -v d="$good" '$7 == "/usr/bin/open5gs-amfd" && $6 == d {f = 1} END {exit !f}' &&
    ok || bad "amf-1's new container runs the image's open5gs-amfd (a new upper directory)"
# A program on a node directory both amf pods mount (hostPath): one inode.
# Stock IMA measures it once, for the first pod only; the second patch
# (ima/kernel/VERSION/0002-*) measures it again for another cgroup, and an
# identical entry is not added twice (amf-0's second run adds none).
n0=$(entries amf-0 | awk '$7 == "/opt/tools/tool"' | wc -l)
n1=$(entries amf-1 | awk '$7 == "/opt/tools/tool"' | wc -l)
echo "hostPath /opt/tools/tool run by amf-0, amf-1, amf-0: entries amf-0=$n0 amf-1=$n1"
[ "$n0" = 1 ] && ok || bad "amf-0 must measure /opt/tools/tool once ($n0 entries)"
[ "$n1" = 1 ] && ok || bad "amf-1 must measure /opt/tools/tool too: a shared inode ($n1 entries)"
read -r _ _ p1 q1 < <(grep "^PCR sha1:10=" "$T/console.log" | sed 's/=/ /')
read -r _ _ p2 q2 < <(grep "^PCR sha256:10=" "$T/console.log" | sed 's/=/ /')
[ "$p1" = "$q1" ] && [ "$p2" = "$q2" ] && ok || bad "PCR 10 moved while the list was copied"
expect 0 "$K" ima check --pcr "sha1:10=$p1" --pcr "sha256:10=$p2" "$T/list"
n=$(grep -o "the first [0-9]* of [0-9]* entries" "$T/out")
echo "list: $n"
expect 0 "$K" ima pods "$T/list"
cp "$T/out" "$T/attribution"
for pod in "${PODS[@]}"; do
    grep -q "pod ${UIDS[$pod]}" "$T/attribution" && ok || bad "no entries of $pod"
done
for pod in amf-0 amf-1; do
    grep -A2 "pod ${UIDS[$pod]}" "$T/attribution" | grep -c "  container" | grep -q 2 && ok ||
        bad "$pod must show its two containers: $(grep -A2 "pod ${UIDS[$pod]}" "$T/attribution")"
done
grep -q "driver=cgroupfs" "$T/attribution" && grep -q "driver=systemd" "$T/attribution" && ok ||
    bad "both cgroup layouts must be seen"
grep " / " "$T/dump" | grep -q "/usr/bin/kima-verifier" && ok || bad "host processes must be in the root cgroup (node scope)"
grep -q "ima-cgpath" "$T/dump" && ! grep -q " ima-ng " "$T/dump" && ok || bad "every entry must be ima-cgpath"
grep " / " "$T/dump" | awk '$7 ~ /^\/etc\/kima\/|\/pods.json/ {f = 1} END {exit f}' && ok ||
    bad "the node policy measures no reads (no FILE_CHECK rule)"
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
