#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's list of verifier URLs (--verifier A,B; agent/verifiers.c),
# with swtpm, real verifiers and the real agent on loopback:
# (a) the first URL refuses connections: the agent moves to the second,
#     says so once, and the node's pod turns trusted there;
# (b) two verifiers V1 and V2 (each its own store and audit log, one PKI):
#     rounds go to V1 only; V1 killed with SIGKILL, the agent carries on
#     with V2 (registers there anew) and the pod turns trusted on V2; the
#     time this takes is printed;
# (c) a TLS stub in front of V2 answering 503 "draining" makes the agent
#     move to V2; one answering 403 does not (a refusal is an answer, never
#     asked again elsewhere).
# Usage: test-agent-failover.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
APID=
V1_PID=
V2_PID=
SPID=
cleanup() {
    # start_v sets V1_PID and V2_PID: both verifiers stopped, whatever ends
    # the test.
    for p in $APID $V1_PID $V2_PID $SPID; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm openssl python3

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
cat >"$T/policies/node.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "NodePolicy", "name": "node",
 "digests": {"/usr/bin/kubelet": ["sha256:$GOOD"]}, "excludes": ["^boot_aggregate$"]}
JSON
cat >"$T/pods.json" <<JSON
{"kind": "PodList", "items": [{"metadata": {"uid": "$POD", "namespace": "open5gs",
 "name": "amf-0", "labels": {"app": "amf"}}, "spec": {"nodeName": "node-1"}}]}
JSON

# start_v NAME: a verifier with its own store and audit log in $T/NAME;
# its URL in NAME_URL, its pid in NAME_PID.
start_v() {
    mkdir -p "$T/$1"
    verifier_start "$T/$1.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/$1/kima.db" --audit-log "$T/$1/audit.log" \
        --audit-key "$T/$1/audit.key" --policies "$T/policies" --pods-file "$T/pods.json" \
        --interval-ms 500
    printf -v "$1_URL" %s "$URL"
    printf -v "$1_PID" %s "$VPID"
}
# kctl URL ARGS...: kimactl against the verifier at URL.
kctl() {
    local u=$1
    shift
    "$K" --server "$u" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" "$@"
}
pod_state() {
    kctl "$1" pod open5gs/amf-0 --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null
}
pod_is() { [ "$(pod_state "$1")" = "$2" ]; }
knows_node() { kctl "$1" nodes --json 2>/dev/null | grep -q '"node-1"'; }
judged_on() { caught_up node-1 kctl "$1"; }
logged() { grep -qF -- "$1" "$T/agent.log"; }
stop_agent() { # SIGTERM: exit 0 (and no leak under the sanitizers)
    kill "$APID"
    wait "$APID" && ok || bad "the agent's exit code on SIGTERM: $?"
    APID=
}

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init --boot-aggregate || bad "ima-writer init"
measure "$POD" /usr/bin/amf $GOOD
measure host /usr/bin/kubelet $GOOD
start_v V1

# (a) the first URL refuses connections
DEAD=https://127.0.0.1:1
URL="$DEAD,$V1_URL" agent_start
wait_until 20 pod_is "$V1_URL" trusted && ok || bad "(a) the pod is $(pod_state "$V1_URL") on V1"
logged "verifier URL $V1_URL after $DEAD failed: no answer (Connection refused)" && ok ||
    bad "(a) no switch line in $(tail -5 "$T/agent.log")"
stop_agent

# (b) V1, V2: rounds go to V1; V1 dies; the agent goes on with V2.
start_v V2
: >"$T/agent.log"
URL="$V1_URL,$V2_URL" agent_start
measure "$POD" /usr/bin/amf $GOOD
wait_until 10 judged_on "$V1_URL" && ok || bad "(b) V1 did not judge the new entry"
knows_node "$V2_URL" && bad "(b) V2 knows node-1 while V1 answers" || ok
logged "verifier URL" && bad "(b) the agent switched while V1 answered" || ok
kill -KILL "$V1_PID"
wait "$V1_PID" 2>/dev/null
V1_PID=
t0=${EPOCHREALTIME/[.,]/}
measure "$POD" /usr/bin/amf $GOOD
if wait_until 15 pod_is "$V2_URL" trusted && wait_until 10 judged_on "$V2_URL"; then
    ok
    t1=${EPOCHREALTIME/[.,]/}
    echo "failover: pod trusted on V2 $(((t1 - t0) / 1000)) ms after V1 was killed (rounds every 500 ms)"
else
    bad "(b) the pod is $(pod_state "$V2_URL") on V2"
fi
logged "verifier URL $V2_URL after $V1_URL failed: no answer" && ok ||
    bad "(b) no switch line in $(tail -5 "$T/agent.log")"
grep -q '"type":"registration"' "$T/V2/audit.log" && ok || bad "(b) no registration at V2"
knows_node "$V2_URL" && ok || bad "(b) V2 does not list node-1"
stop_agent

# (c) a stub verifier over TLS answering every POST with STATUS; it counts
# the requests in $T/stub.count and writes its port to $T/stub.port.
stub_start() {
    rm -f "$T/stub.port" "$T/stub.count"
    python3 - "$1" "$P/server.pem" "$P/server.key" "$T" >"$T/stub.log" 2>&1 <<'PY' &
import http.server, json, ssl, sys
status, cert, key, d = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
count = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 1 << 22))
        error = "draining" if status == 503 else "forbidden"
        body = json.dumps({"error": error, "detail": "stub"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(body)
        count += 1
        with open(d + "/stub.count", "w") as f:
            f.write(str(count))
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(d + "/stub.port.tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(d + "/stub.port.tmp", d + "/stub.port")
srv.serve_forever()
PY
    SPID=$!
    wait_until 10 test -s "$T/stub.port" || { bad "the stub did not start: $(cat "$T/stub.log")"; exit 1; }
    STUB=https://127.0.0.1:$(cat "$T/stub.port")
}
stub_stop() {
    kill "$SPID"
    wait "$SPID" 2>/dev/null
    SPID=
}
stub_count_at_least() { [ "$(cat "$T/stub.count" 2>/dev/null || echo 0)" -ge "$1" ]; }

stub_start 503
: >"$T/agent.log"
URL="$STUB,$V2_URL" agent_start
measure "$POD" /usr/bin/amf $GOOD
wait_until 10 judged_on "$V2_URL" && ok || bad "(c) V2 did not judge past a draining stub"
stub_count_at_least 1 && ok || bad "(c) the stub was not asked first"
logged "verifier URL $V2_URL after $STUB failed: draining (HTTP 503)" && ok ||
    bad "(c) no switch line in $(tail -5 "$T/agent.log")"
stop_agent
stub_stop

stub_start 403
: >"$T/agent.log"
URL="$STUB,$V2_URL" agent_start
measure "$POD" /usr/bin/amf $GOOD
# A challenge refused (the agent registers again) and a registration
# refused: both answers of the stub, none sent on to V2.
wait_until 15 stub_count_at_least 3 && ok || bad "(c) the 403 stub got $(cat "$T/stub.count" 2>/dev/null) requests"
logged "verifier URL" && bad "(c) a 403 made the agent switch: $(grep 'verifier URL' "$T/agent.log")" || ok
judged_on "$V2_URL" && bad "(c) V2 judged entries past a 403" || ok
logged "registration refused: 403" && ok || bad "(c) the refusal is not logged"
stop_agent
stub_stop

# Bad lists are refused at start, naming the entry.
"$AG" --verifier "$V2_URL,http://127.0.0.1:2" --node node-1 --state-dir "$T/state" 2>"$T/err"
[ $? -eq 64 ] && grep -q "entry 2 (http://127.0.0.1:2): does not start with https://" "$T/err" &&
    ok || bad "a plain-HTTP entry: $(cat "$T/err")"
KIMA_VERIFIER_URL="$V2_URL,,$V1_URL" "$AG" --node node-1 --state-dir "$T/state" 2>"$T/err"
[ $? -eq 64 ] && grep -q "entry 2 is empty" "$T/err" && ok || bad "an empty entry: $(cat "$T/err")"
summary
