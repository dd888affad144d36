#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Slow suite: boot Debian's kernel under QEMU again (make-fixture.sh) into a
# temporary folder and check that what it captured is a consistent fixture:
# both lists replay to the PCR 10 values the guest read, in both banks, and
# with the same kernel they equal the committed fixture.
# Skips (77) without QEMU or a kernel image.
# Usage: test-kernel-boot.sh KIMACTL FIXTURES
set -u
K=$1
F=$2/ima/kernel-6.1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
bash "$F/make-fixture.sh" "$T/boot" >"$T/make.log" 2>&1
rc=$?
[ $rc -eq 77 ] && { cat "$T/make.log"; exit 77; }
[ $rc -eq 0 ] && ok || { bad "make-fixture.sh failed: $(tail -5 "$T/make.log")"; summary; exit; }
for tag in "" -violation; do
    pcr() { sed -n "s/^$1:10=//p" "$T/boot/pcrs$tag.txt"; }
    expect 0 "$K" ima check --pcr "sha1:10=$(pcr sha1)" --pcr "sha256:10=$(pcr sha256)" \
        "$T/boot/binary_runtime_measurements$tag"
    n=$(grep -c . "$T/boot/ascii_runtime_measurements$tag")
    has "$T/out" "the first $n of $n entries" "the whole list$tag replays"
done
grep -q "^10 0\{40\} ima-ng sha256:0\{64\} /var/log/node.log" \
    "$T/boot/ascii_runtime_measurements-violation" && ok || bad "no violation entry"
# The boot is deterministic: with the same kernel package (boot.log's first
# line) and QEMU, the lists are the committed fixture's, byte for byte.
if [ "$(head -1 "$T/boot/boot.log")" = "$(head -1 "$F/boot.log")" ]; then
    for f in binary_runtime_measurements binary_runtime_measurements-violation pcrs.txt; do
        same "$T/boot/$f" "$F/$f" "$f differs from the committed fixture"
    done
fi
summary
