#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Failover between replicas as a Kubernetes Service gives it: two
# kima-verifier processes on one PostgreSQL store (pg.sh) behind haproxy
# (TCP, round robin, health checks every 300 ms, as kube-proxy and a
# readiness probe would), one real kima-agent (swtpm, ima-writer as the
# kernel) given the haproxy address only. The replica the agent talks to is
# killed with SIGKILL: the agent carries on through the other within a few
# seconds (printed), the node never reads stale there, every entry is
# judged once, and no round the agent got a 200 for is missing from the
# database (docs/verifier.md, "Several verifiers").
# Skipped (77) without haproxy, PostgreSQL or the verifier's PostgreSQL
# backend.
# Usage: test-haproxy-failover.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/helpers.sh"
. "$HERE/pg.sh"
need_tools swtpm openssl python3 curl haproxy
pg_need
if ! "$V" --help 2>&1 | grep -q PostgreSQL; then
    echo "this kima-verifier has no PostgreSQL store (--help): skipped"
    exit 77
fi
T=$(mktemp -d)
chmod 0711 "$T"
APID=
HPID=
V1_PID=
V2_PID=
cleanup() {
    local p
    for p in $APID $HPID $V1_PID $V2_PID; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    swtpm_stop
    pg_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

GOOD=1111111111111111111111111111111111111111111111111111111111111111
POD=aaaaaaaa-0000-4000-8000-000000000001
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state"
echo "boot-$$" >"$T/boot_id"
cat >"$T/policies/amf.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "amf",
 "match": {"namespace": "open5gs", "podLabels": {"app": "amf"}},
 "digests": {"/usr/bin/amf": ["sha256:$GOOD"]}}
JSON
cat >"$T/pods.json" <<JSON
{"kind": "PodList", "items": [{"metadata": {"uid": "$POD", "namespace": "open5gs",
 "name": "amf-0", "labels": {"app": "amf"}}, "spec": {"nodeName": "node-1"}}]}
JSON
pg_start "$T/pg" || exit 1

# start_v NAME: a replica on the shared store with its own audit log; its
# URL in NAME_URL, its port in NAME_PORT, its pid in NAME_PID. Nodes are
# stale after 3 missed intervals (6 s).
start_v() {
    mkdir -p "$T/$1"
    verifier_start "$T/$1.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$PG_DSN" --audit-log "$T/$1/audit.log" \
        --audit-key "$T/$1/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 2000
    printf -v "$1_URL" %s "$URL"
    printf -v "$1_PORT" %s "${URL##*:}"
    printf -v "$1_PID" %s "$VPID"
}
kctl() {
    local u=$1
    shift
    "$K" --server "$u" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" "$@"
}
node_state() {
    kctl "$1" nodes --json 2>/dev/null | python3 -c '
import json, sys
print([n["state"] for n in json.load(sys.stdin)["nodes"] if n["name"] == "node-1"][0])' 2>/dev/null
}
pod_is() {
    [ "$(kctl "$1" pod open5gs/amf-0 --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null)" = "$2" ]
}
judged_on() { caught_up node-1 kctl "$1"; }
# rounds URL: evidence rounds judged by that replica since it started.
rounds() {
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" "$1/metrics" |
        sed -n 's/^kima_evidence_seconds_count \([0-9]*\).*/\1/p'
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init --boot-aggregate || bad "ima-writer init"
measure "$POD" /usr/bin/amf $GOOD
start_v V1
start_v V2

HPORT=$(free_port)
cat >"$T/haproxy.cfg" <<CFG
global
    maxconn 200
defaults
    mode tcp
    timeout connect 1s
    timeout client 90s
    timeout server 90s
    retries 3
    option redispatch
frontend verifiers
    bind 127.0.0.1:$HPORT
    default_backend replicas
backend replicas
    balance roundrobin
    server v1 127.0.0.1:$V1_PORT check inter 300ms fall 2 rise 2
    server v2 127.0.0.1:$V2_PORT check inter 300ms fall 2 rise 2
CFG
haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 &
HPID=$!
WAIT_STEP=0.05 wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $HPORT), 1)" ||
    { bad "haproxy did not start: $(tail -3 "$T/haproxy.log")"; exit 1; }

URL=https://127.0.0.1:$HPORT agent_start --log-level debug
wait_until 20 pod_is "$V1_URL" trusted && ok || bad "the pod did not turn trusted through haproxy"
measure "$POD" /usr/bin/amf $GOOD
wait_until 10 judged_on "$V2_URL" && ok || bad "the new entry was not judged"

# The replica the agent's connection goes to: the one judging its rounds.
r1=$(rounds "$V1_URL") r2=$(rounds "$V2_URL")
sleep 1.5
d1=$(($(rounds "$V1_URL") - r1)) d2=$(($(rounds "$V2_URL") - r2))
if [ "$d1" -ge "$d2" ]; then
    DEAD=V1 LIVE_URL=$V2_URL DEAD_PID=$V1_PID
else
    DEAD=V2 LIVE_URL=$V1_URL DEAD_PID=$V2_PID
fi
[ $((d1 + d2)) -gt 0 ] && ok || bad "no rounds went through in 1.5 s"

# Kill it; a new entry must be judged by the other replica soon, and the
# node must never read stale there meanwhile.
kill -KILL "$DEAD_PID"
wait "$DEAD_PID" 2>/dev/null
if [ "$DEAD" = V1 ]; then V1_PID=; else V2_PID=; fi
t0=${EPOCHREALTIME/[.,]/}
measure "$POD" /usr/bin/amf $GOOD
stale=0 judged=0
for _ in $(seq 1 100); do
    s=$(node_state "$LIVE_URL")
    [ "$s" = stale ] && stale=$((stale + 1))
    if judged_on "$LIVE_URL"; then
        judged=1
        break
    fi
    sleep 0.1
done
t1=${EPOCHREALTIME/[.,]/}
[ "$judged" = 1 ] && ok || bad "the entry after the kill was not judged within 10 s"
echo "failover: the first entry after $DEAD was killed judged by the other replica in" \
    "$(((t1 - t0) / 1000)) ms (agent rounds every 500 ms, haproxy checks every 300 ms)"
# Rounds go on for a while, each entry judged.
for i in 1 2 3; do
    measure "$POD" /usr/bin/amf $GOOD
    wait_until 10 judged_on "$LIVE_URL" && ok || bad "entry $i after the failover not judged"
    s=$(node_state "$LIVE_URL")
    [ "$s" = stale ] && stale=$((stale + 1))
done
[ "$stale" = 0 ] && ok || bad "the node read stale $stale times during the failover"
[ "$(node_state "$LIVE_URL")" = trusted ] && ok || bad "node-1 is $(node_state "$LIVE_URL")"
pod_is "$LIVE_URL" trusted && ok || bad "the pod is not trusted after the failover"

kill "$APID"
wait "$APID" 2>/dev/null
APID=
# Every round the agent got a 200 for is in the database: its count of
# rounds is at most one short (a round in flight when its replica died may
# have been recorded without an answer).
got=$(grep -c 'round: trusted' "$T/agent.log")
row=$(pg_sql "SELECT attestations, ima_index FROM nodes WHERE name = 'node-1'")
att=${row%%|*}
if [ "$att" -ge "$got" ] && [ "$att" -le $((got + 1)) ]; then ok; else
    bad "the database has $att rounds, the agent got 200 for $got"
fi
[ "${row##*|}" = "$(cat "$T/sfs/ima/runtime_measurements_count")" ] && ok ||
    bad "ima_index ${row##*|}, the list has $(cat "$T/sfs/ima/runtime_measurements_count")"
echo "rounds: $got answered 200 to the agent, $att recorded"
summary
