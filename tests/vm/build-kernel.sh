#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build a minimal Linux 6.1 (Debian's linux-source-6.1) with kima's
# pod-aware IMA template patches (ima/kernel/*.patch) for the VM tests, and
# cache it: a second run with the same patches and configuration does
# nothing; a change of the patches rebuilds only security/integrity.
# Usage: build-kernel.sh SOURCE_ROOT OUT_DIR   -> OUT_DIR/bzImage
# Needs: linux-source-6.1 bc bison flex libelf-dev libssl-dev cpio xz-utils.
set -euo pipefail
SRC=$1
OUT=$2
TAR=/usr/src/linux-source-6.1.tar.xz
[ -r "$TAR" ] || { echo "no $TAR (apt-get install linux-source-6.1)"; exit 77; }
mkdir -p "$OUT"
K=$OUT/linux
OPTS=(64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS
      PROC_FS SYSFS SECURITYFS SECURITY CGROUPS TCG_TPM TCG_TIS TCG_TIS_CORE IMA INTEGRITY
      CRYPTO_SHA1 CRYPTO_SHA256 BINFMT_ELF BINFMT_SCRIPT MULTIUSER TMPFS FUTEX
      EPOLL SHMEM POSIX_TIMERS NET INET UNIX FILE_LOCKING EVENTFD SIGNALFD TIMERFD
      INOTIFY_USER ADVISE_SYSCALLS IMA_NG_TEMPLATE IMA_DEFAULT_HASH_SHA256 RTC_CLASS
      OVERLAY_FS TMPFS_XATTR NAMESPACES PID_NS UTS_NS IPC_NS USER_NS SYSVIPC BPF_SYSCALL CGROUP_BPF)
# The second line is what crun's containers need: overlayfs roots whose
# upper directories are on tmpfs (trusted.overlay.* xattrs), their own PID,
# UTS and IPC namespaces (IPC_NS needs SYSVIPC; USER_NS only for
# /proc/self/setgroups, which crun opens for every container), and cgroup v2's device
# controller, an eBPF program crun attaches to each container's cgroup.
# What tinyconfig, NET and olddefconfig would add that the guest does not
# need (build time). No ACPI: the TPM is found with tpm_tis.force=1 and the
# guest ends with a reboot, which QEMU's -no-reboot turns into an exit.
OFF=(ACPI PCI IPV6 WIRELESS INET_DIAG HID VT VGA_CONSOLE INPUT ETHTOOL_NETLINK NET_VENDOR_INTEL
     INET_TCP_DIAG SYN_COOKIES XFRM_USER NETFILTER)
stamp=$( (cat "$SRC"/ima/kernel/*.patch; echo "${OPTS[*]} ${OFF[*]}") | sha256sum | cut -c1-16)
if [ -f "$OUT/bzImage" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
if [ ! -f "$K/Makefile" ]; then
    rm -rf "$K" "$OUT/linux-source-6.1" "$OUT/integrity.orig"
    tar -C "$OUT" -xf "$TAR"
    mv "$OUT/linux-source-6.1" "$K"
fi
if [ ! -d "$OUT/integrity.orig" ]; then # (a cache of the time the patches touched ima/ only)
    rm -rf "$OUT/linux-source-6.1" "$OUT/ima.orig"
    tar -C "$OUT" -xf "$TAR" linux-source-6.1/security/integrity
    mv "$OUT/linux-source-6.1/security/integrity" "$OUT/integrity.orig"
    rm -rf "$OUT/linux-source-6.1"
fi
# the pristine integrity sources (IMA, EVM, the iint cache), then the patches
rm -rf "$K/security/integrity"
cp -r "$OUT/integrity.orig" "$K/security/integrity"
for p in "$SRC"/ima/kernel/*.patch; do
    patch -d "$K" -p1 --quiet <"$p"
done
if [ ! -f "$K/.config" ] || [ "$(cat "$OUT/config-stamp" 2>/dev/null)" != "${OPTS[*]} ${OFF[*]}" ]; then
    make -C "$K" -s tinyconfig
    for o in "${OPTS[@]}"; do "$K/scripts/config" --file "$K/.config" -e "$o"; done
    make -C "$K" -s olddefconfig
    for o in "${OFF[@]}"; do "$K/scripts/config" --file "$K/.config" -d "$o"; done
    make -C "$K" -s olddefconfig
    echo "${OPTS[*]} ${OFF[*]}" >"$OUT/config-stamp"
fi
make -C "$K" -s -j"$(($(nproc) + 1))" bzImage
cp "$K/arch/x86/boot/bzImage" "$OUT/bzImage"
echo "$stamp" >"$OUT/stamp"
