#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build a minimal Linux VERSION (Debian's linux-source-VERSION, 6.1 or 6.12)
# with kima's pod-aware IMA template patches (ima/kernel/VERSION/*.patch, in
# name order) for the VM tests, and cache it in OUT_DIR/VERSION, keyed by
# the patches and the configuration: a second run with the same patches and
# configuration does nothing; a change of the patches rebuilds only
# security/integrity (and what includes its headers).
# Usage: build-kernel.sh SOURCE_ROOT OUT_DIR VERSION -> OUT_DIR/VERSION/bzImage
# Needs: linux-source-VERSION bc bison flex libelf-dev libssl-dev cpio xz-utils.
set -euo pipefail
SRC=$1
V=$3
OUT=$2/$V
case $V in
6.1 | 6.12) ;;
*) echo "unknown kernel version '$V' (6.1 or 6.12)"; exit 2 ;;
esac
TAR=/usr/src/linux-source-$V.tar.xz
[ -r "$TAR" ] || { echo "no $TAR (apt-get install linux-source-$V)"; exit 77; }
PATCHES=("$SRC"/ima/kernel/"$V"/*.patch)
[ -f "${PATCHES[0]}" ] || { echo "no patches in $SRC/ima/kernel/$V"; exit 1; }
mkdir -p "$OUT"
K=$OUT/linux
# What the VM tests boot: serial console, initramfs, devtmpfs, securityfs,
# cgroup v2, the TPM on TIS, IMA with SHA-1 and SHA-256, loopback TCP and
# unix sockets, what kima-verifier's event loop uses.
OPTS=(64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS
      PROC_FS SYSFS SECURITYFS SECURITY CGROUPS TCG_TPM TCG_TIS TCG_TIS_CORE IMA INTEGRITY
      CRYPTO_SHA1 CRYPTO_SHA256 BINFMT_ELF BINFMT_SCRIPT MULTIUSER TMPFS FUTEX
      EPOLL SHMEM POSIX_TIMERS NET INET UNIX FILE_LOCKING EVENTFD SIGNALFD TIMERFD
      INOTIFY_USER ADVISE_SYSCALLS IMA_NG_TEMPLATE IMA_DEFAULT_HASH_SHA256 RTC_CLASS)
# What crun needs for containers as the VM suite runs them (docs/kernel.md):
# overlayfs roots whose upper directories are on tmpfs (trusted.overlay.*
# xattrs), mount (always there), PID, UTS and IPC namespaces (IPC_NS needs
# SYSVIPC), USER_NS only for /proc/self/setgroups, which crun opens for every
# container, the pids controller, and cgroup v2's device controller, an eBPF
# program crun attaches to each container's cgroup (crun may go on without
# it when no device rule denies; not tried). crun needs no SECCOMP
# unless config.json has a seccomp section, and goes on without a keyring
# when keyctl is ENOSYS (no KEYS).
OPTS+=(OVERLAY_FS NAMESPACES PID_NS UTS_NS IPC_NS USER_NS SYSVIPC CGROUP_PIDS TMPFS_XATTR
       BPF_SYSCALL CGROUP_BPF)
# What tinyconfig, NET and olddefconfig would add that the guest does not
# need (build time). No ACPI: the TPM is found with tpm_tis.force=1 and the
# guest ends with a reboot, which QEMU's -no-reboot turns into an exit.
# TCG_TPM2_HMAC (6.10+, off by default) would encrypt every PCR extend.
OFF=(ACPI PCI IPV6 WIRELESS INET_DIAG HID VT VGA_CONSOLE INPUT ETHTOOL_NETLINK NET_VENDOR_INTEL
     INET_TCP_DIAG SYN_COOKIES XFRM_USER NETFILTER TCG_TPM2_HMAC)
config_key="${OPTS[*]} ${OFF[*]}"
stamp=$( (cat "${PATCHES[@]}"; echo "$config_key") | sha256sum | cut -c1-16)
if [ -f "$OUT/bzImage" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
if [ ! -f "$K/Makefile" ]; then
    rm -rf "$K" "$OUT/linux-source-$V" "$OUT/integrity.orig"
    tar -C "$OUT" -xf "$TAR"
    mv "$OUT/linux-source-$V" "$K"
fi
if [ ! -d "$OUT/integrity.orig" ]; then # (a cache of the time the patches touched ima/ only)
    rm -rf "$OUT/linux-source-$V" "$OUT/ima.orig"
    tar -C "$OUT" -xf "$TAR" "linux-source-$V/security/integrity"
    mv "$OUT/linux-source-$V/security/integrity" "$OUT/integrity.orig"
    rm -rf "$OUT/linux-source-$V"
fi
# the pristine integrity sources (IMA, EVM, the iint cache), then the patches
rm -rf "$K/security/integrity"
cp -r "$OUT/integrity.orig" "$K/security/integrity"
for p in "${PATCHES[@]}"; do
    patch -d "$K" -p1 --quiet --no-backup-if-mismatch <"$p"
done
if [ ! -f "$K/.config" ] || [ "$(cat "$OUT/config-stamp" 2>/dev/null)" != "$config_key" ]; then
    make -C "$K" -s tinyconfig
    for o in "${OPTS[@]}"; do "$K/scripts/config" --file "$K/.config" -e "$o"; done
    make -C "$K" -s olddefconfig
    for o in "${OFF[@]}"; do "$K/scripts/config" --file "$K/.config" -d "$o"; done
    make -C "$K" -s olddefconfig
    # every option asked for must have survived olddefconfig's dependencies
    for o in "${OPTS[@]}"; do
        grep -q "^CONFIG_$o=y" "$K/.config" || { echo "CONFIG_$o is not set on $V"; exit 1; }
    done
    echo "$config_key" >"$OUT/config-stamp"
fi
t0=$(date +%s)
make -C "$K" -s -j"$(($(nproc) + 1))" bzImage
echo "built Linux $V in $(($(date +%s) - t0)) s"
cp "$K/arch/x86/boot/bzImage" "$OUT/bzImage"
echo "$stamp" >"$OUT/stamp"
