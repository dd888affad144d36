#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Leader election (docs/kubernetes.md, "Several replicas"): two verifiers
# with --lease against the fake Kubernetes API server (each its own SQLite
# store; they share only the API). Only the Lease's holder writes labels:
# the pods the API shows labelled by a verifier that no longer tracks them
# (its store is new) are relabelled unknown, by the holder alone (the fake
# API records each request's User-Agent, kima-verifier/HOLDER). A hostile
# Lease and a stranger's unexpired Lease are never taken; a holder killed
# with -9 is replaced after the Lease expires; a holder told to stop
# releases the Lease and the other takes it at once; a holder whose renewals
# fail stops writing before its Lease could expire.
# Usage: test-kube-lease.sh KIMA_VERIFIER
set -u
V=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
FPID= PIDS=
cleanup() {
    for p in $PIDS $FPID; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools curl openssl python3
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies"
LEASE=kima-verifier
NS=kima-system
# a-0 as a verifier labelled it earlier: no verifier here tracks it, so the
# holder relabels it unknown.
cat >"$T/pods.json" <<JSON
{"kind": "PodList", "items": [{"metadata": {"uid": "bbbbbbbb-0000-4000-8000-000000000001",
 "namespace": "apps", "name": "a-0", "labels": {"app": "a", "kima.dev/trust": "trusted"}},
 "spec": {"nodeName": "node-1"}}]}
JSON
python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
fake_kubeconfig "$T/kubeconfig"
ln -s "$P" "$T/pki" 2>/dev/null

# start NAME N: verifier NAME (POD_NAME, its own store and audit log), the
# Nth start of its log; sets PID_NAME and URL_NAME.
start() {
    local name=$1 n=$2
    mkdir -p "$T/$name"
    POD_NAME=$name POD_NAMESPACE=$NS verifier_start "$T/$name.log" "$n" \
        --tls-cert "$P/server.pem" --tls-key "$P/server.key" --client-ca "$P/ca.pem" \
        --db "$T/$name/kima.db" --audit-log "$T/$name/audit.log" --audit-key "$T/$name/audit.key" \
        --policies "$T/policies" --kubeconfig "$T/kubeconfig" --lease $LEASE --drain-timeout-ms 500
    PIDS="$PIDS $VPID"
    eval "PID_$name=$VPID URL_$name=$URL"
}
# lease FIELD: the Lease's spec.FIELD ("-" without a Lease)
lease() {
    fake state | python3 -c '
import json, sys
ls = [l for l in json.load(sys.stdin)["leases"] if l["metadata"]["name"] == sys.argv[1]]
print(ls[0].get("spec", {}).get(sys.argv[2], "") if ls else "-")' $LEASE "$1"
}
holder_is() { [ "$(lease holderIdentity)" = "$1" ]; }
holder_is_verifier() { case "$(lease holderIdentity)" in v1 | v2) return 0 ;; esac; return 1; }
# patchers POD: the User-Agents of the PATCH requests on POD (sorted, unique)
patchers() {
    fake state | python3 -c '
import json, sys
print(" ".join(sorted({r["agent"] for r in json.load(sys.stdin)["requests"]
                       if r["method"] == "PATCH" and r["path"].endswith("/pods/" + sys.argv[1])})))' "$1"
}
patched() { [ -n "$(patchers "$1")" ]; }
label() {
    fake state | python3 -c '
import json, sys
for p in json.load(sys.stdin)["pods"]:
    if p["metadata"]["name"] == sys.argv[1]:
        print((p["metadata"].get("labels") or {}).get("kima.dev/trust", ""))' "$1"
}
label_is() { [ "$(label "$1")" = "$2" ]; }
add_pod() {
    fake pods "{\"uid\": \"$2\", \"namespace\": \"apps\", \"name\": \"$1\", \"labels\": {\"kima.dev/trust\": \"trusted\"}, \"nodeName\": \"node-1\"}" >/dev/null
}
metric() { # NAME: its kima_leader
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" \
        "$(eval echo "\$URL_$1")/metrics" | sed -n 's/^kima_leader //p'
}
now() { python3 -c 'import time; print(time.time())'; }
# lease_time: the Lease's renewTime as seconds since the epoch
lease_time() {
    python3 -c '
import datetime, sys
print(datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ")
      .replace(tzinfo=datetime.timezone.utc).timestamp())' "$(lease renewTime)"
}
other() { [ "$1" = v1 ] && echo v2 || echo v1; }

# 1. a hostile Lease (a duration of 11 days, a renewal long ago) is an
# error that says what is wrong, and is never taken
fake lease "{\"namespace\": \"$NS\", \"name\": \"$LEASE\", \"spec\": {\"holderIdentity\": \"stranger\", \"leaseDurationSeconds\": 999999, \"renewTime\": \"2020-01-01T00:00:00.000000Z\"}}" >/dev/null
start v1 1
start v2 1
for v in v1 v2; do
    wait_until 10 grep -q "unreadable (spec.leaseDurationSeconds is not an integer in 1..3600): never taken over" "$T/$v.log" &&
        ok || bad "$v did not say what is wrong with the hostile Lease: $(grep -i lease "$T/$v.log" | tail -3)"
done
# 2. a stranger's Lease that has not expired is never taken; once it has
# (its renewTime and duration past, and unchanged that long), one verifier
# takes it
fake lease "{\"namespace\": \"$NS\", \"name\": \"$LEASE\", \"spec\": {\"holderIdentity\": \"stranger\", \"leaseDurationSeconds\": 6, \"renewTime\": \"$(python3 -c 'import time; t=time.time(); print(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int(t % 1 * 1e6))')\", \"leaseTransitions\": 4}}" >/dev/null
T_STRANGER=$(lease_time)
wait_until 4 holder_is_verifier && bad "a stranger's unexpired Lease was taken" || ok
patched a-0 && bad "a verifier patched labels without the Lease: $(patchers a-0)" || ok
wait_until 20 holder_is_verifier && ok || bad "the expired stranger's Lease was not taken: $(lease holderIdentity)"
T_TAKEN=$(now)
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) + 6 else 1)' "$T_TAKEN" "$T_STRANGER" &&
    ok || bad "taken before the stranger's Lease expired ($T_TAKEN < $T_STRANGER + 6)"
[ "$(lease leaseTransitions)" = 5 ] && [ "$(lease leaseDurationSeconds)" = 15 ] && ok ||
    bad "leaseTransitions $(lease leaseTransitions) (want 5), duration $(lease leaseDurationSeconds)"
H=$(lease holderIdentity)
O=$(other "$H")

# 3. the holder alone writes labels; kima_leader and the audit records say who
wait_until 10 label_is a-0 unknown && ok || bad "a-0 was not relabelled unknown: '$(label a-0)'"
[ "$(patchers a-0)" = "kima-verifier/$H" ] && ok || bad "a-0 patched by '$(patchers a-0)', not only by $H"
[ "$(metric "$H")" = 1 ] && [ "$(metric "$O")" = 0 ] && ok ||
    bad "kima_leader: $H $(metric "$H"), $O $(metric "$O")"
grep -q '"leader-acquired"' "$T/$H/audit.log" && ! grep -q '"leader-acquired"' "$T/$O/audit.log" &&
    ok || bad "leader-acquired audited by the wrong verifier"
grep -q "holds Lease $NS/$LEASE" "$T/$H.log" && ok || bad "no log line of the acquisition"

# 4. the holder killed (-9): the other takes over once the Lease expired and labels
{ kill -9 "$(eval echo "\$PID_$H")"; wait "$(eval echo "\$PID_$H")"; } 2>/dev/null
T_KILL=$(now)
add_pod b-0 bbbbbbbb-0000-4000-8000-000000000002
wait_until 30 holder_is "$O" && ok || bad "$O did not take over from the killed $H: $(lease holderIdentity)"
echo "takeover after kill -9: $(python3 -c 'import sys,time; print("%.1f s" % (time.time() - float(sys.argv[1])))' "$T_KILL")"
wait_until 10 label_is b-0 unknown && ok || bad "b-0 was not relabelled by the new holder"
[ "$(patchers b-0)" = "kima-verifier/$O" ] && ok || bad "b-0 patched by '$(patchers b-0)'"

# 5. the killed one back (it does not hold the Lease), then the holder told
# to stop: it releases the Lease, the other takes it at once
start "$H" 2
H2=$O O2=$H
wait_until 3 holder_is "$O2" && bad "the restarted $O2 took a Lease held by $H2" || ok
kill -TERM "$(eval echo "\$PID_$H2")"
T_TERM=$(now)
wait_until 8 holder_is "$O2" && ok || bad "$O2 did not take the released Lease at once: '$(lease holderIdentity)'"
echo "takeover after SIGTERM: $(python3 -c 'import sys,time; print("%.1f s" % (time.time() - float(sys.argv[1])))' "$T_TERM")"
wait "$(eval echo "\$PID_$H2")" 2>/dev/null
grep -q "Lease $NS/$LEASE released" "$T/$H2.log" && ok || bad "$H2 did not log the release"
grep '"leader-lost"' "$T/$H2/audit.log" | grep -q '"released"' && ok || bad "$H2 did not audit leader-lost (released)"
add_pod c-0 bbbbbbbb-0000-4000-8000-000000000003
wait_until 10 label_is c-0 unknown && ok || bad "c-0 was not relabelled by $O2"
start "$H2" 2

# 6. the API refuses the Lease's requests: the holder stops writing before
# its Lease could expire (renewTime + 15 s), and nobody writes meanwhile
fake fail '{"path": "/leases", "status": 503, "count": 100000}' >/dev/null
T_LAST=$(lease_time)
wait_until 16 grep -q "lost Lease $NS/$LEASE (not renewed in time)" "$T/$O2.log" && ok ||
    bad "$O2 did not give up a Lease it could not renew"
T_LOST=$(now)
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) + 15 else 1)' "$T_LOST" "$T_LAST" &&
    ok || bad "$O2 stopped writing at $T_LOST, after its Lease expired ($T_LAST + 15)"
echo "stopped writing $(python3 -c 'import sys; print("%.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$T_LOST" "$T_LAST") s after its last renewal (the Lease lasts 15 s)"
[ "$(metric "$O2")" = 0 ] && ok || bad "kima_leader of $O2: $(metric "$O2")"
add_pod d-0 bbbbbbbb-0000-4000-8000-000000000004
wait_until 4 patched d-0 && bad "d-0 patched while no verifier holds the Lease: $(patchers d-0)" || ok
fake fail '{"clear": true}' >/dev/null
wait_until 30 label_is d-0 unknown && ok || bad "d-0 not labelled after the API came back"
[ "$(patchers d-0 | wc -w)" = 1 ] && ok || bad "d-0 patched by several: $(patchers d-0)"

# 7. the Lease deleted: it is created again (POST) by exactly one verifier
# (another POST is 409 AlreadyExists)
creates() {
    fake state | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["requests"]
          if r["method"] == "POST" and r["path"].endswith("/leases") and r.get("status") == int(sys.argv[1])))' "$1"
}
C0=$(creates 201)
fake lease "{\"namespace\": \"$NS\", \"name\": \"$LEASE\", \"delete\": true}" >/dev/null
wait_until 10 holder_is_verifier && ok || bad "the deleted Lease was not created again: $(lease holderIdentity)"
[ "$(creates 201)" = $((C0 + 1)) ] && [ "$(lease leaseTransitions)" = 0 ] && ok ||
    bad "the Lease created $(($(creates 201) - C0)) times, leaseTransitions $(lease leaseTransitions)"
echo "after the deletion: $(creates 409) creations refused (409 AlreadyExists)"
summary
