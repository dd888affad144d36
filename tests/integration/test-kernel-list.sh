#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real kernel's measurement list through the whole chain. The list that
# Debian's 6.1 kernel wrote under QEMU (tests/fixtures/ima/kernel-6.1) is
# replayed into a fresh swtpm by ima-writer, which then serves it as
# securityfs; kima-agent --once attests it to kima-verifier over mTLS with
# that boot's golden node policy. The list as the kernel wrote it must pass;
# a copy with one file digest changed (template digest recomputed, so only
# the TPM can tell) must fail; the list with the kernel's own open-writers
# violation must fail and name it.
# Usage: test-kernel-list.sh KIMA_VERIFIER KIMA_AGENT IMA_WRITER FIXTURES
set -u
V=$1
AG=$2
W=$3
F=$4/ima/kernel-6.1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
cleanup() {
    [ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID"
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm openssl python3
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-a node-b node-c >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
cp "$F/node-policy.json" "$T/policies/node.json"
echo '{"kind": "PodList", "items": []}' >"$T/pods.json"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json"

# attest NODE LIST [SERVED]: replay LIST into a fresh TPM, serve SERVED (default
# LIST) as the node's securityfs list, run the agent once; prints its exit code.
attest() {
    local node=$1 list=$2 served=${3:-$2}
    swtpm_stop
    swtpm_start "$T/tpm-$node" >/dev/null || return 99
    "$W" --securityfs "$T/sfs-$node" --tcti "$SWTPM_TCTI" init &&
        "$W" --securityfs "$T/sfs-$node" --tcti "$SWTPM_TCTI" replay "$list" || return 99
    cp "$served" "$T/sfs-$node/ima/binary_runtime_measurements"
    echo "boot-$node" >"$T/boot_id"
    mkdir -p "$T/state-$node"
    "$AG" --verifier "$URL" --node "$node" --tcti "$SWTPM_TCTI" --securityfs "$T/sfs-$node" \
        --cert "$P/agent-$node.pem" --key "$P/agent-$node.key" --cacert "$P/ca.pem" \
        --state-dir "$T/state-$node" --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
    echo $?
}

# 1. the kernel's list: trusted
[ "$(attest node-a "$F/binary_runtime_measurements")" = 0 ] && ok ||
    bad "the real kernel list must attest as trusted ($(tail -3 "$T/agent.log"))"

# 2. a changed copy: /etc/passwd's digest replaced, its template digest
# recomputed, so it parses and every template digest checks out
python3 - "$F/binary_runtime_measurements" "$T/changed" <<'PY'
import hashlib, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
off = 0
while off < len(data):
    nl = struct.unpack_from("<I", data, off + 24)[0]
    dl = struct.unpack_from("<I", data, off + 28 + nl)[0]
    start = off + 32 + nl
    tmpl = data[start:start + dl]
    if tmpl.endswith(b"/etc/passwd\0"):
        i = tmpl.index(b"sha256:\0") + 8
        tmpl[i] ^= 0x01
        data[start:start + dl] = tmpl
        data[off + 4:off + 24] = hashlib.sha1(bytes(tmpl)).digest()
        break
    off = start + dl
else:
    sys.exit("no /etc/passwd entry")
open(sys.argv[2], "wb").write(data)
PY
cmp -s "$F/binary_runtime_measurements" "$T/changed" && bad "the copy was not changed" || ok
[ "$(attest node-b "$F/binary_runtime_measurements" "$T/changed")" = 1 ] && ok ||
    bad "a changed copy of the kernel list must attest as untrusted"
grep '"type":"node-failure"' "$T/var/audit.log" | grep '"node-b"' | grep -q "does not replay" &&
    ok || bad "node-b's failure must say the list does not replay"

# 3. the kernel's violation entry: untrusted, recorded as an IMA violation
[ "$(attest node-c "$F/binary_runtime_measurements-violation")" = 1 ] && ok ||
    bad "the list with a violation must attest as untrusted"
grep '"type":"violation"' "$T/var/audit.log" | grep '"node-c"' | grep '/var/log/node.log' |
    grep -q '"ima_violation":true' && ok || bad "the kernel's violation is not in the audit log"
grep '"type":"node-failure"' "$T/var/audit.log" | grep '"node-c"' | grep -q "IMA violation" &&
    ok || bad "node-c's failure must name the IMA violation"
summary
