#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima-verifier's pod inventory from a Kubernetes watch, against the fake
# API server (tests/helpers/fake-kube-api.py), with swtpm, kima-agent and
# the kernel stand-in:
#  1. the verifier starts while the API is unreachable; an agent's
#     measurements of pods nobody lists yet wait; when the API comes up
#     (answering 503 to its first two requests) the pods are judged (trusted, and untrusted for a tampered binary) without
#     operator action;
#  2. pods created afterwards are known from the watch, without a LIST;
#  3. a watch whose resourceVersion is too old (410 Gone) costs one re-LIST;
#  4. a malformed event line ends the watch, which resumes from the last
#     good resourceVersion: no crash, no LIST, nothing missed;
#  5. the LIST comes in pages of 500 (1,200 more pods here), and a continue
#     token that expired starts it again.
# Usage: test-kube-watch.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
set -u
V=$1
AG=$2
K=$3
W=$4
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID= APID= FPID=
cleanup() {
    for p in $APID $VPID $FPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm curl openssl python3
GOOD=1111111111111111111111111111111111111111111111111111111111111111
EVIL=6666666666666666666666666666666666666666666666666666666666666666
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state" "$T/var"
echo "boot-$$" >"$T/boot_id"
cat >"$T/policies/app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "app",
 "match": {"namespace": "apps"},
 "digests": {"/usr/bin/app": ["sha256:$GOOD"]}}
JSON
uid() { printf 'dddddddd-0000-4000-8000-%012d' "$1"; }
pod_json() { # N: pod app-N on node-1
    echo "{\"uid\": \"$(uid "$1")\", \"namespace\": \"apps\", \"name\": \"app-$1\", \"nodeName\": \"node-1\"}"
}
# A port nothing listens on yet: the API's, once it comes up.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
API=https://127.0.0.1:$PORT
fake_kubeconfig "$T/kubeconfig"
kctl() { "$K" --server "$URL" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" "$@"; }
state_of() {
    kctl pod "apps/app-$1" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null
}
state_is() { [ "$(state_of "$1")" = "$2" ]; }
wait_state() { # N STATE [SECONDS]
    wait_until "${3:-10}" state_is "$1" "$2" && ok || bad "app-$1 should be $2, is '$(state_of "$1")'"
}

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init || bad "ima-writer init"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig" \
    --interval-ms 500 --attribution-grace-ms 600000
agent_start

# 1. the API down: measurements of app-1 (good) and app-2 (tampered) wait
measure "$(uid 1)" /usr/bin/app $GOOD
measure "$(uid 2)" /usr/bin/app $EVIL
wait_until 15 caught_up node-1 kctl && ok || bad "node-1's measurements were not read"
[ -z "$(state_of 1)" ] && [ -z "$(state_of 2)" ] && ok ||
    bad "pods nobody lists got a verdict: '$(state_of 1)' '$(state_of 2)'"
kill -0 "$VPID" && ok || bad "the verifier died with the API down"
grep -q "kubernetes: " "$T/verifier.log" && ok || bad "the unreachable API is not in the log"
# ... then it comes up with both pods
items="$(pod_json 1 | sed 's/"uid"/"metadata": {"uid"/; s/, "nodeName": "node-1"}/}, "spec": {"nodeName": "node-1"}}/')"
items="$items,$(pod_json 2 | sed 's/"uid"/"metadata": {"uid"/; s/, "nodeName": "node-1"}/}, "spec": {"nodeName": "node-1"}}/')"
python3 -c '
import json, sys
items = json.loads("[" + sys.argv[1] + "]")
items += [{"metadata": {"uid": "eeeeeeee-0000-4000-8000-%012d" % i, "namespace": "filler",
                        "name": "filler-%04d" % i}, "spec": {"nodeName": "node-1"}}
          for i in range(1200)]
print(json.dumps({"kind": "PodList", "items": items}))' "$items" >"$T/pods.json"
python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port "$PORT" --port-file "$T/api.port" \
    --bookmark-seconds 0.5 --down-requests 2 >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
# Its first two requests are 503, whenever they come: the verifier's backoff
# after the time the API was down (0.5-30 s, doubling) decides when.
wait_until 45 grep -q "kubernetes: listing pods: 503" "$T/verifier.log" && ok || bad "no 503 while the API was coming up"
wait_state 1 trusted 45
wait_state 2 untrusted 5

# 2. pods created after the start: from the watch, without a LIST
watching() { [ "$(fake_count watches)" -ge 1 ]; }
wait_until 10 watching && ok || bad "the verifier does not watch"
L0=$(fake_count lists)
fake pods "$(pod_json 3)" >/dev/null
measure "$(uid 3)" /usr/bin/app $GOOD
wait_state 3 trusted
fake pods "$(pod_json 4)" >/dev/null
measure "$(uid 4)" /usr/bin/app $EVIL
wait_state 4 untrusted
# ... and one measured before its pod was created waits for it
measure "$(uid 5)" /usr/bin/app $GOOD
wait_until 15 caught_up node-1 kctl && ok || bad "app-5's measurement was not read"
[ -z "$(state_of 5)" ] && ok || bad "app-5 got a verdict before it existed: $(state_of 5)"
fake pods "$(pod_json 5)" >/dev/null
wait_state 5 trusted
[ "$(fake_count lists)" = "$L0" ] && ok || bad "new pods cost LISTs: $L0 -> $(fake_count lists)"

# 3. 410 Gone: the watch is held while a pod is created and the history
# is dropped, then closed; the verifier's resourceVersion is too old now:
# exactly one re-LIST, which has the pod
fake watch '{"hold": true}' >/dev/null
fake pods "$(pod_json 6)" >/dev/null
fake watch '{"compact": true, "close": true, "hold": false}' >/dev/null
relisted() { [ "$(fake_count lists)" -gt "$L0" ]; }
wait_until 10 relisted && ok || bad "no re-LIST after 410"
measure "$(uid 6)" /usr/bin/app $GOOD
wait_state 6 trusted
W0=$(fake_count watches)
rewatched() { [ "$(fake_count watches)" -gt "$W0" ]; }
fake watch '{"close": true}' >/dev/null # one more watch from the new resourceVersion
wait_until 10 rewatched && ok || bad "no watch after the re-LIST"
[ "$(fake_count lists)" = $((L0 + 1)) ] && ok || bad "410 should cost one LIST: $L0 -> $(fake_count lists)"
grep -q "kubernetes: .*410" "$T/verifier.log" && ok || bad "the 410 is not in the log"

# 4. a malformed event line (it takes the place of app-7's ADDED): the
# watch ends with the reason logged and resumes from the last good
# resourceVersion, which replays app-7
L1=$(fake_count lists)
fake watch '{"garbage": "{\"type\": \"ADDED\", \"object\": [1, 2"}' >/dev/null
fake pods "$(pod_json 7)" >/dev/null
measure "$(uid 7)" /usr/bin/app $GOOD
wait_state 7 trusted
fake watch '{"garbage": "not json at all"}' >/dev/null
fake pods "$(pod_json 8)" >/dev/null
measure "$(uid 8)" /usr/bin/app $EVIL
wait_state 8 untrusted
# a line longer than 4 MiB (5 MB before its newline)
fake watch '{"garbage": "a", "repeat": 5000000}' >/dev/null
fake pods "$(pod_json 9)" >/dev/null
measure "$(uid 9)" /usr/bin/app $GOOD
wait_state 9 trusted 15
grep -q "kubernetes: watch: malformed event (a line longer than 4194304 bytes)" "$T/verifier.log" && ok ||
    bad "the overlong event line is not in the log"
grep -q "kubernetes: watch.*malformed event (not JSON" "$T/verifier.log" && ok || bad "the malformed event is not in the log"
kill -0 "$VPID" && ok || bad "the verifier died"
[ "$(fake_count lists)" = "$L1" ] && ok || bad "a malformed event cost a LIST: $L1 -> $(fake_count lists)"


# 5. pages: 1,200 pods and more are 3 pages a LIST; an expired continue
# token (410) starts the list again. A pod created while the watch is held
# (and then compacted away) sorts last: only the restarted list's last page
# has it.
P0=$(fake_count pages)
L2=$(fake_count lists)
LATE=ffffffff-0000-4000-8000-000000000001
fake watch '{"hold": true}' >/dev/null
fake pods "{\"uid\": \"$LATE\", \"namespace\": \"zz\", \"name\": \"late\", \"nodeName\": \"node-1\"}" >/dev/null
fake watch '{"expire_continue": 1, "compact": true, "close": true, "hold": false}' >/dev/null
relisted2() { [ "$(fake_count lists)" -ge $((L2 + 2)) ] && [ "$(fake_count pages)" -ge $((P0 + 4)) ]; }
wait_until 10 relisted2 && ok ||
    bad "the list was not restarted after 410 on its continue token: lists $L2 -> $(fake_count lists), pages $P0 -> $(fake_count pages)"
grep -q "kubernetes: listing pods: 410" "$T/verifier.log" && ok || bad "the expired continue token is not in the log"
measure $LATE /usr/bin/app $GOOD
late_state() {
    kctl pod zz/late --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null
}
late_known() { [ "$(late_state)" = unknown ]; } # known; no policy matches it
wait_until 10 late_known && ok || bad "the last page's pod is not known: '$(late_state)'"
summary
