#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ima-writer plays the kernel: what it writes must parse, attribute to the
# right pods in both cgroup layouts, and replay to the PCR 10 it extended in
# every bank of a real TPM (swtpm), read back with tpm2-tools.
# Usage: test-ima-writer.sh IMA_WRITER KIMACTL
set -u
W=$1
K=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
cleanup() {
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm tpm2_pcrread xxd
swtpm_start "$T/tpm" || exit 1
export KIMA_TCTI=$SWTPM_TCTI KIMA_SECURITYFS=$T/sfs
L=$T/sfs/ima/binary_runtime_measurements
G=1111111111111111111111111111111111111111111111111111111111111111
U1=aaaaaaaa-0000-4000-8000-000000000001
U2=aaaaaaaa-0000-4000-8000-000000000002
U3=aaaaaaaa-0000-4000-8000-000000000003

expect 0 "$W" init --per-bank --boot-aggregate
expect 0 "$W" pod $U1 /usr/bin/amf "sha256:$G" --layout cgroupfs --qos burstable
expect 0 "$W" pod $U2 /usr/bin/smf "$G" --layout systemd --qos guaranteed --runtime docker
expect 0 "$W" host /usr/bin/kubelet "file:$W"
expect 0 "$W" violation /var/log/x --pod $U3
printf 'pod %s /usr/bin/upf file:%s --runtime crio\n# a comment\nhost /bin/sh %s --template ima-cgpath\n' \
    $U3 "$K" $G | "$W" --ack batch >"$T/acks"
[ "$(cat "$T/acks")" = "$(printf 'ok 1\nok 3')" ] && ok || bad "batch acknowledgements: $(cat "$T/acks")"
[ "$(cat "$T/sfs/ima/runtime_measurements_count")" = 7 ] && ok || bad "runtime_measurements_count"

# attribution: three pods, both layouts, the rest node scope
expect 0 "$K" ima pods "$L"
has "$T/out" "pod $U1 qos=burstable driver=cgroupfs entries=1" "cgroupfs pod"
has "$T/out" "pod $U2 qos=guaranteed driver=systemd entries=1" "systemd guaranteed pod"
has "$T/out" "runtime=docker" "docker runtime"
has "$T/out" "pod $U3 qos=besteffort driver=systemd entries=2" "violation + crio pod"
has "$T/out" "node entries=3" "boot_aggregate, kubelet, sh"
expect 0 "$K" ima dump "$L"
has "$T/out" "10 0000000000000000000000000000000000000000 ima-cgpath" "the violation's zero digest"
has "$T/out" "ima-ng sha256:" "ima-ng host entries"
grep -q "boot_aggregate" "$T/out" && ok || bad "no boot_aggregate entry"

# the list replays to every bank of PCR 10; each per-bank list to its bank
args=()
for bank in sha1 sha256 sha384 sha512; do
    tpm2_pcrread -T "$SWTPM_TCTI" "$bank:10" -o "$T/pcr.$bank" >/dev/null 2>&1 || bad "pcrread $bank"
    args+=(--pcr "$bank:10=$(xxd -p -c 256 "$T/pcr.$bank")")
    expect 0 "$K" ima check --pcr "$bank:10=$(xxd -p -c 256 "$T/pcr.$bank")" "${L}_$bank"
done
expect 0 "$K" ima check "${args[@]}" "$L"
has "$T/out" "the first 7 of 7 entries replay" "replay of all banks"
cmp -s "$L" "${L}_sha1" && ok || bad "the sha1 per-bank list must equal the main list"

# --no-tpm writes the list only: with one more real entry after it, no
# prefix of the list replays to the TPM any more
expect 0 "$W" --no-tpm host /usr/bin/forged "$G"
expect 0 "$W" host /usr/bin/real "$G"
args=()
for bank in sha1 sha256; do
    tpm2_pcrread -T "$SWTPM_TCTI" "$bank:10" -o "$T/pcr.$bank" >/dev/null 2>&1 || bad "pcrread $bank"
    args+=(--pcr "$bank:10=$(xxd -p -c 256 "$T/pcr.$bank")")
done
expect 1 "$K" ima check "${args[@]}" "$L"

# errors: usage, bad digests, bad layouts, no TPM
expect 64 "$W"
expect 0 "$W" --help
has "$T/out" "Usage: ima-writer" "--help"
expect 1 "$W" host /x sha256:abc
has "$T/err" "bad digest" "a short digest"
expect 1 "$W" pod $U1 /x $G --layout flat
expect 1 "$W" pod $U1 /x
expect 69 env -u KIMA_TCTI "$W" host /x $G
summary
