#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The verifier's HTTPS front against clients that try to exhaust it: bodies
# sent without a certificate or to a route of another role (refused before a
# byte of the body is read), JSON too wide, more bodies in flight than the
# memory budget, request headers trickled, and ~1,100 connections that never
# finish their TLS handshake while agents must still be answered; 400
# agents' kept-alive connections from one address (conn-probe.py). The abusive
# clients are tests/helpers/http-limits.py (each check prints its figures).
# Usage: test-http-limits.sh KIMA_VERIFIER KIMACTL
set -u
V=$1
K=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
cleanup() {
    [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools openssl python3 ss

# Under AddressSanitizer freed blocks wait in a quarantine (256 MB) that
# would count in the RSS these checks bound (a 20 MB body read in TLS records
# leaves ~100 MB there): keep it small for this test. Ignored otherwise.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=1:thread_local_quarantine_size_kb=64"

P=$T/pki
# node-3..node-50: many nodes behind one address (the snat check).
bash "$HERE/make-certs.sh" "$P" $(seq -f "node-%g" 1 50) || exit 1
mkdir -p "$T/var"

# The verifier raises its soft open-file limit to the hard one: start it
# from a low soft limit to see it do so.
if [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -gt 1024 ]; then
    ulimit -Sn 1024
    RAISED=1
fi

# start NAME ARGS...: a verifier logging to $T/NAME.log
start() {
    local name=$1
    shift
    verifier_start "$T/$name.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/$name.db" --audit-log "$T/var/$name-audit.log" \
        --audit-key "$T/var/audit.key" "$@"
}
stop() {
    kill "$VPID"
    wait "$VPID" 2>/dev/null
    VPID=
}
# check NAME [ARGS...]: one check of the helper against the running verifier.
check() {
    if python3 "$HERE/../helpers/http-limits.py" "$@" --port "${URL##*:}" --pki "$P" \
        --pid "$VPID" >"$T/check-$1.log" 2>&1; then
        ok
    else
        bad "$1"
    fi
    sed "s/^/    [$1] /" "$T/check-$1.log"
}

start main
[ -n "${RAISED:-}" ] && has "$T/main.log" "soft limit raised from 1024 to the hard limit" "RLIMIT_NOFILE"
has "$T/main.log" "connections: at most" "the connection limits are logged"

# --- threats 3 and 8: the role and the body's length decided on the headers
check noauth-stall
check role-early
check noauth-flood
check wide-array
check headers

# --- one certificate cannot hold the body budget
check upload-hold

# --- threat 4: slots
check trickle
before=$(wc -l <"$T/main.log")
check slots
# Count once the verifier has let go of every attack connection (from
# 127.0.0.2-5), so that lines about their ends are counted too.
attack_gone() {
    ! ss -Htn state syn-recv state established state close-wait "( sport = :${URL##*:} )" |
        grep -qE '127\.0\.0\.[2-5]:[0-9]+ *$'
}
wait_until 10 attack_gone || bad "attack connections still open 10 s after the attack"
after=$(wc -l <"$T/main.log")
echo "    the verifier's log gained $((after - before)) lines during the attack"
[ $((after - before)) -le 50 ] && ok || bad "the attack wrote $((after - before)) log lines (at most 50)"
expect 0 "$K" --server "$URL" --cert "$P/operator.pem" --key "$P/operator.key" \
    --cacert "$P/ca.pem" nodes

# --- many nodes behind one address (SNAT): 400 authenticated kept-alive
# connections from 127.0.0.9 (50 node certificates, 8 each) are all served
# and kept; only unauthenticated connections are counted per address.
if python3 "$HERE/../helpers/conn-probe.py" --port "${URL##*:}" --pki "$P" --pid "$VPID" \
    --nodes 50 --connections 400 --sources 1 --resume 20 >"$T/check-snat.log" 2>&1; then
    ok
else
    bad "snat"
fi
sed "s/^/    [snat] /" "$T/check-snat.log"
has "$T/check-snat.log" "resumption: 20 of 20 reconnects resumed" "reconnects resume their TLS session"
stop

# --- one agent certificate cannot take every slot, from however many
# addresses (review 2, F10): it gets 8 connections, node-1 still gets in
start certs --max-connections 32
has "$T/certs.log" "at most 32, of which 16 without a client certificate yet (4 per address), 8 per client certificate" "the per-certificate cap is logged"
check cert-slots --max-connections 32 --per-cert 8
has "$T/certs.log" "the agent certificate CN=node-2 has 8 connections open already" "the refusals are logged"
stop

# --- a hard open-file limit too low for the default: fewer connections,
# and a warning that says what to raise
printf '#!/usr/bin/env bash\nulimit -n 2048 || exit 70\nexec "%s" "$@"\n' "$V" >"$T/low-fds.sh"
chmod +x "$T/low-fds.sh"
V=$T/low-fds.sh start lowfds
has "$T/lowfds.log" "connections: at most 1984, of which 992" "the limits follow the open-file limit"
has "$T/lowfds.log" "the limit leaves room for 1984 connections, fewer than the 16384 of the default; raise the hard limit of open files to 16448 or more" \
    "a hard limit too low is explained"
stop

# --- the body budget, and the flags
expect 64 "$V" --max-body-memory 1000
expect 64 "$V" --max-connections 2
expect 64 "$V" --max-connections-per-cert 0
start budget --max-body-memory 4194304 --max-connections 100 --max-connections-per-cert 3
has "$T/budget.log" "connections: at most 100, of which 50" "--max-connections"
has "$T/budget.log" "3 per client certificate" "--max-connections-per-cert"
check budget
check cert-slots --max-connections 100 --per-cert 3
(cd "$T" && KIMA_MAX_BODY_MEMORY=1000 "$V" --listen 127.0.0.1:0 --db "$T/var/env.db" \
    --audit-log "$T/var/env-audit.log" --audit-key "$T/var/audit.key" >"$T/out" 2>&1)
[ $? -eq 64 ] && ok || bad "KIMA_MAX_BODY_MEMORY=1000 must be a usage error"
stop

summary
