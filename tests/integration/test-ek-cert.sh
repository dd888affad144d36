#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --require-ek-cert, as k8s/base runs the verifier: a TPM whose EK
# certificate chains to --ek-ca-dir (swtpm_setup's local CA here, standing in
# for a TPM vendor's) registers; a TPM without one (a bare swtpm, as an
# attacker's software TPM would be) is refused with 403 and never bound to
# the node name; no "--require-ek-cert is off" warning.
# Usage: test-ek-cert.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
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
need_tools swtpm swtpm_setup swtpm_localca
P=$T/pki
LOG=$T/verifier.log
expect 0 "$K" certs init --out "$P" --server-name 127.0.0.1 --node node-a --node node-b \
    --operator alice

# A TPM with an EK certificate of a local CA (swtpm_localca, its own folder).
mkdir -p "$T/ca" "$T/tpm-a/state" "$T/ek-ca"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
    "$T/ca" "$T/ca" "$T/ca" "$T/ca" >"$T/localca.conf"
printf -- '--platform-manufacturer kima\n--platform-version 2.1\n--platform-model test\n' >"$T/localca.options"
printf 'create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\n' \
    "$T/localca.conf" "$T/localca.options" >"$T/setup.conf"
swtpm_setup --tpm2 --tpmstate "$T/tpm-a/state" --config "$T/setup.conf" --create-ek-cert \
    --pcr-banks sha1,sha256,sha384,sha512 --overwrite >"$T/setup.log" 2>&1 && ok ||
    { bad "swtpm_setup: $(tail -3 "$T/setup.log")"; summary; exit 1; }
cp "$T/ca/issuercert.pem" "$T/ca/swtpm-localca-rootca-cert.pem" "$T/ek-ca/"
echo "not a certificate: ignored, like the ConfigMap's README.txt" >"$T/ek-ca/README.txt"
echo boot >"$T/boot_id"

mkdir -p "$T/var"
verifier_start "$LOG" 1 --tls-cert "$P/verifier/tls.crt" --tls-key "$P/verifier/tls.key" \
    --client-ca "$P/ca.crt" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --require-ek-cert --ek-ca-dir "$T/ek-ca"
if grep -q "require-ek-cert is off" "$LOG"; then bad "no EK warning with --require-ek-cert"; else ok; fi
agent() { # NODE SFS
    "$AG" --verifier "$URL" --node "$1" --tcti "$SWTPM_TCTI" --securityfs "$2" \
        --cert "$P/agents/$1/tls.crt" --key "$P/agents/$1/tls.key" --cacert "$P/ca.crt" \
        --state-dir "$T/state-$1" --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
}

swtpm_start "$T/tpm-a" || exit 1
"$W" --securityfs "$T/sfs-a" --tcti "$SWTPM_TCTI" init || bad "ima-writer init (a)"
agent node-a "$T/sfs-a"
[ $? -eq 0 ] && ok || bad "a TPM with a valid EK certificate must register: $(tail -2 "$T/agent.log")"
has "$LOG" "node node-a registered (EK certificate: valid)" "the registration line says valid"
has "$T/var/audit.log" '"ek_cert_valid":true,"ek_cert":"valid"' "the audit record says valid"
swtpm_stop

# A bare software TPM: no EK certificate, refused, the name stays unbound.
swtpm_start "$T/tpm-b" || exit 1
"$W" --securityfs "$T/sfs-b" --tcti "$SWTPM_TCTI" init || bad "ima-writer init (b)"
agent node-b "$T/sfs-b"
[ $? -eq 2 ] && ok || bad "a TPM without an EK certificate must be refused"
has "$T/var/audit.log" '"type":"registration-refused","node":"node-b","details":{"reason":"no EK certificate"}' \
    "the refusal is audited with its reason"
expect 0 "$K" --server "$URL" --cert "$P/operators/alice/tls.crt" \
    --key "$P/operators/alice/tls.key" --cacert "$P/ca.crt" nodes
has "$T/out" "node-a" "node-a is registered"
if grep -q "node-b" "$T/out"; then bad "node-b must not be bound to the refused TPM"; else ok; fi
summary
