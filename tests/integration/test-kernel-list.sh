#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real kernel's measurement list through the whole chain. The list that
# Debian's 6.1 kernel wrote under QEMU (tests/fixtures/ima/kernel-6.1) is
# replayed into a fresh swtpm by ima-writer, which then serves it as
# securityfs; kima-agent --once attests it to kima-verifier over mTLS with
# that boot's golden node policy. The list as the kernel wrote it must pass;
# a copy with one file digest changed (template digest recomputed, so only
# the TPM can tell) must fail; the list with the kernel's own open-writers
# violation must fail and name it. Linux 6.12's lists
# (tests/fixtures/ima/kernel-6.12-cgpath) likewise, with the per-bank lists
# 6.12 writes: the SHA-256 list ima-writer keeps must be the kernel's own,
# and the agent must send it (the verifier quotes sha256:10).
# Usage: test-kernel-list.sh KIMA_VERIFIER KIMA_AGENT IMA_WRITER FIXTURES
set -u
V=$1
AG=$2
W=$3
F=$4/ima/kernel-6.1
F12=$4/ima/kernel-6.12-cgpath
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
bash "$HERE/make-certs.sh" "$P" node-a node-b node-c node-d >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
# The 6.1 boot's golden NodePolicy, with the digests of the 6.12 boot added
# (ima-cgpath entries: dep, cg-path, d-ng, n-ng) and the files that boot's
# kima-verifier and agent wrote while they were read (the kernel's
# open-writers violations on /var/lib/kima/audit.log and /tmp/agent.log
# under ima_policy=tcb) excluded.
python3 - "$F/node-policy.json" "$F12/binary_runtime_measurements" "$T/policies/node.json" <<'PY' ||
import json, struct, sys
pol = json.load(open(sys.argv[1]))
data = open(sys.argv[2], "rb").read()
off = 0
while off < len(data):
    nl = struct.unpack_from("<I", data, off + 24)[0]
    dl = struct.unpack_from("<I", data, off + 28 + nl)[0]
    fields, p = [], off + 32 + nl
    while p < off + 32 + nl + dl:
        fl = struct.unpack_from("<I", data, p)[0]
        fields.append(data[p + 4:p + 4 + fl])
        p += 4 + fl
    algo, digest = fields[2].split(b"\0", 1)
    path = fields[3].rstrip(b"\0").decode()
    d = algo.decode() + digest.hex()
    pol["digests"].setdefault(path, [])
    if d not in pol["digests"][path]:
        pol["digests"][path].append(d)
    off = p
pol["excludes"] = pol.get("excludes", []) + ["/var/lib/kima/", "/tmp/agent\\.log$"]
json.dump(pol, open(sys.argv[3], "w"))
PY
    { echo "cannot make the node policy"; exit 1; }
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
    # Called in $(...): its swtpm is this subshell's to stop.
    swtpm_stop
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

# 4. Linux 6.12: ima-writer replays the SHA-1 list into a fresh TPM and keeps
# the per-bank lists as 6.12 does; the SHA-256 one must be the kernel's.
swtpm_stop
swtpm_start "$T/tpm-node-d" >/dev/null || exit 1
S=$T/sfs-node-d/ima
"$W" --securityfs "$T/sfs-node-d" --tcti "$SWTPM_TCTI" init --per-bank &&
    "$W" --securityfs "$T/sfs-node-d" --tcti "$SWTPM_TCTI" replay "$F12/binary_runtime_measurements" &&
    ok || bad "ima-writer could not replay the 6.12 list"
same "$F12/binary_runtime_measurements" "$S/binary_runtime_measurements" "the replayed SHA-1 list"
same "$F12/binary_runtime_measurements_sha256" "$S/binary_runtime_measurements_sha256" \
    "the SHA-256 list ima-writer keeps and Linux 6.12's"
echo boot-node-d >"$T/boot_id"
mkdir -p "$T/state-node-d"
"$AG" --verifier "$URL" --node node-d --tcti "$SWTPM_TCTI" --securityfs "$T/sfs-node-d" \
    --cert "$P/agent-node-d.pem" --key "$P/agent-node-d.key" --cacert "$P/ca.pem" \
    --state-dir "$T/state-node-d" --boot-id-file "$T/boot_id" --once >"$T/agent-d.log" 2>&1
[ $? = 0 ] && ok || bad "Linux 6.12's list must attest as trusted ($(tail -3 "$T/agent-d.log"))"
has "$T/agent-d.log" "list $S/binary_runtime_measurements_sha256" "the agent must read the SHA-256 list"
summary
