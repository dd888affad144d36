#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kimactl certs init makes a PKI that kima-verifier, kima-agent and kimactl
# accept and that keeps roles apart: a node's certificate attests that node
# only; re-running keeps what exists and adds nodes under the same CA.
# Usage: test-certs.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
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
need_tools swtpm
P=$T/pki
expect 0 "$K" certs init --out "$P" --server-name 127.0.0.1 --node node-1 --operator alice \
    --metrics prometheus
has "$T/out" "issued    $P/metrics/prometheus/tls.crt (CN=prometheus, OU=kima-metrics)" \
    "scraper certificate"
has "$T/out" "issued    $P/agents/node-1/tls.crt (CN=node-1, OU=kima-agent)" "agent certificate"
[ "$(stat -c %a "$P/ca.key")" = 600 ] && [ "$(stat -c %a "$P/agents/node-1/tls.key")" = 600 ] && ok ||
    bad "private keys must be 0600"
cp "$P/ca.crt" "$T/ca.before"
expect 0 "$K" certs init --out "$P" --server-name 127.0.0.1 --node node-2
has "$T/out" "kept      $P/ca.crt" "the CA is reused"
same "$P/ca.crt" "$T/ca.before" "the CA must not change"
expect 64 "$K" certs init --out "$P" --node "../evil"
expect 64 "$K" certs init
mkdir -p "$T/var"
swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init || bad "ima-writer init"
echo boot >"$T/boot_id"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/verifier/tls.crt" --tls-key "$P/verifier/tls.key" \
    --client-ca "$P/ca.crt" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key"
agent() { # NODE CERTDIR
    "$AG" --verifier "$URL" --node "$1" --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
        --cert "$2/tls.crt" --key "$2/tls.key" --cacert "$2/ca.crt" --state-dir "$T/state-$1" \
        --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
}
agent node-1 "$P/agents/node-1"
[ $? -eq 0 ] && ok || bad "node-1 with its own certificate: $(tail -2 "$T/agent.log")"
agent node-1 "$P/agents/node-2"
[ $? -eq 2 ] && ok || bad "node-2's certificate must not attest node-1"
expect 0 "$K" --server "$URL" --cert "$P/operators/alice/tls.crt" --key "$P/operators/alice/tls.key" \
    --cacert "$P/ca.crt" nodes
has "$T/out" "node-1" "the operator sees node-1"
expect 1 "$K" --server "$URL" --cert "$P/agents/node-1/tls.crt" --key "$P/agents/node-1/tls.key" \
    --cacert "$P/ca.crt" nodes
has "$T/err" "403" "an agent certificate is not an operator's"
# A scraper's certificate (OU kima-metrics) reads /metrics and nothing else.
mcurl() { # METHOD PATH: the HTTP status with the scraper's certificate
    curl -s -o "$T/body" -w '%{http_code}' --cacert "$P/ca.crt" --cert "$P/metrics/prometheus/tls.crt" \
        --key "$P/metrics/prometheus/tls.key" -X "$1" "$URL$2"
}
[ "$(mcurl GET /metrics)" = 200 ] && grep -q '^kima_attestations_total' "$T/body" && ok ||
    bad "the scraper's certificate must read /metrics: $(head -c 200 "$T/body")"
for route in "GET /v1/nodes" "GET /v1/pods" "GET /v1/audit/head" "DELETE /v1/nodes/node-1" \
    "POST /v1/nodes/node-1/challenges"; do
    got=$(mcurl $route)
    [ "$got" = 403 ] && ok || bad "the scraper's certificate on $route: $got, wanted 403"
done
expect 0 "$K" --server "$URL" --cert "$P/operators/alice/tls.crt" --key "$P/operators/alice/tls.key" \
    --cacert "$P/ca.crt" nodes
has "$T/out" "node-1" "node-1 is still there after the scraper's DELETE"
summary
