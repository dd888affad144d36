#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kimactl's command line, through the binary: the dispatch of cli/main.c and
# each command's option parser. Unknown commands and options, missing
# arguments and bad values exit 64 with the usage on stderr; --help exits 0
# with it on stdout; the connection options come from the environment
# (KIMA_SERVER, KIMA_CERT, KIMA_KEY, KIMA_CACERT) unless given before or
# after the command, checked against a real kima-verifier.
# Usage: test-kimactl-args.sh KIMACTL KIMA_VERIFIER
set -u
K=$1
V=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
cleanup() {
    [ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools openssl
unset KIMA_SERVER KIMA_CERT KIMA_KEY KIMA_CACERT KIMA_LOG_LEVEL KIMA_LOG_FORMAT

# usage CODE WHERE CMD...: exits CODE with the usage text on WHERE (out, err).
usage() {
    local code=$1 where=$2
    shift 2
    expect "$code" "$@"
    has "$T/$where" "Usage: kimactl" "$*: the usage on std$where"
}

# --- cli/main.c: the dispatch and the global options
usage 64 err "$K"
expect 64 "$K" frobnicate
has "$T/err" 'unknown command "frobnicate"' "an unknown command is named"
usage 64 err "$K" --frobnicate version
usage 64 err "$K" -x version
usage 64 err "$K" --server
for h in --help -h help; do
    usage 0 out "$K" $h
    has "$T/out" "Commands:" "$h lists the commands"
done
expect 0 "$K" --version
grep -Eq '^kimactl [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" && ok || bad "--version: $(cat "$T/out")"
expect 0 "$K" version
grep -Eq '^kimactl [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" && ok || bad "version: $(cat "$T/out")"
# --help wins over what follows it; options stop at the command.
usage 0 out "$K" --help frobnicate
expect 0 "$K" --log-level debug --log-format json version
expect 64 "$K" --log-level loud version
has "$T/err" "--log-level takes error, warn, info or debug" "a bad --log-level"
expect 64 "$K" --log-format xml version
KIMA_LOG_LEVEL=loud expect 64 "$K" version
KIMA_LOG_FORMAT=xml expect 64 "$K" version
# The option beats the environment.
KIMA_LOG_LEVEL=loud expect 0 "$K" --log-level warn version

# --- each command's parser
usage 64 err "$K" ima
usage 0 out "$K" ima --help
expect 64 "$K" ima frobnicate x
usage 64 err "$K" ima dump --frobnicate x
usage 0 out "$K" ima dump --help
usage 64 err "$K" quote
usage 0 out "$K" quote --help
expect 64 "$K" quote frobnicate
has "$T/err" 'unknown command "frobnicate"' "quote names the unknown command"
usage 64 err "$K" quote verify --frobnicate
expect 64 "$K" quote verify
has "$T/err" "missing or extra arguments" "quote verify without its files"
usage 0 out "$K" quote verify --help
for cmd in nodes pods "pod x/y" "node delete n" "audit show"; do
    # shellcheck disable=SC2086
    usage 0 out "$K" $cmd --help
    # shellcheck disable=SC2086
    usage 64 err "$K" $cmd --frobnicate
done
usage 64 err "$K" nodes extra
usage 64 err "$K" pods extra
usage 64 err "$K" node
usage 64 err "$K" node delete
usage 64 err "$K" node frobnicate n
usage 64 err "$K" pod
usage 64 err "$K" pod noslash
usage 64 err "$K" pods --state
expect 64 "$K" pod reset 1a2b3c4d-0000-4111-8222-933344445555
has "$T/err" "--reason TEXT is required" "pod reset without a reason"
usage 64 err "$K" audit
usage 64 err "$K" audit frobnicate
expect 64 "$K" audit verify "$T/none.log"
has "$T/err" "--key PUBKEY and at least one FILE needed" "audit verify without --key"
usage 64 err "$K" certs
usage 0 out "$K" certs --help
usage 64 err "$K" certs frobnicate
usage 64 err "$K" certs init
usage 64 err "$K" certs init --out "$T/pki" --frobnicate
expect 64 "$K" certs init --out "$T/pki" --days 0
expect 64 "$K" certs init --out "$T/pki" --node "../evil"
[ ! -e "$T/pki" ] && ok || bad "a refused certs init wrote $T/pki"
expect 0 "$K" certs revoke --help
has "$T/out" "certs revoke" "certs revoke --help"
expect 64 "$K" certs revoke --frobnicate

# --- the connection options, against a verifier
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/var"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key"

# No verifier named anywhere: said so, exit 69 (unavailable).
expect 69 "$K" nodes
has "$T/err" "give --server URL or set KIMA_SERVER" "no server"

export KIMA_SERVER=$URL KIMA_CERT=$P/operator.pem KIMA_KEY=$P/operator.key KIMA_CACERT=$P/ca.pem
# All four from the environment.
expect 0 "$K" nodes --json
has "$T/out" '"nodes"' "nodes --json from the environment"
expect 0 "$K" pods
has "$T/out" "NAMESPACE" "pods from the environment"
# Before the command and after it, each option beats its variable.
KIMA_SERVER=https://127.0.0.1:1 expect 0 "$K" --server "$URL" nodes
KIMA_SERVER=https://127.0.0.1:1 expect 0 "$K" nodes --server "$URL"
KIMA_SERVER=https://127.0.0.1:1 expect 69 "$K" nodes
KIMA_CACERT=$P/other-ca.pem expect 69 "$K" nodes
KIMA_CACERT=$P/other-ca.pem expect 0 "$K" --cacert "$P/ca.pem" nodes
KIMA_CACERT=$P/other-ca.pem expect 0 "$K" nodes --cacert "$P/ca.pem"
# The certificate decides the role: an agent's is refused (403), none 401.
KIMA_CERT=$P/agent-node-1.pem KIMA_KEY=$P/agent-node-1.key expect 1 "$K" nodes
has "$T/err" "403" "an agent certificate from the environment"
KIMA_CERT=$P/agent-node-1.pem KIMA_KEY=$P/agent-node-1.key \
    expect 0 "$K" --cert "$P/operator.pem" --key "$P/operator.key" nodes
KIMA_CERT=$P/agent-node-1.pem KIMA_KEY=$P/agent-node-1.key \
    expect 0 "$K" nodes --cert "$P/operator.pem" --key "$P/operator.key"
expect 1 env -u KIMA_CERT -u KIMA_KEY "$K" nodes
has "$T/err" "401" "no client certificate"
summary
