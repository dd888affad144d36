#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enforcement in Kubernetes (docs/kubernetes.md, "Enforcement") against the
# fake API server (tests/helpers/fake-kube-api.py), with swtpm, kima-agent
# and the kernel stand-in:
#  1. a trust label changed by another user is restored, audited, counted
#     (kima_label_tamper_total) and told by an Event; the verifier's own
#     patches are not tampers; a pod's records are rate-limited;
#  2. without --evict-untrusted nothing is evicted; with it an untrusted pod
#     is evicted through the Eviction API (its UID a precondition), a
#     disruption budget's 429 is retried, unknown pods are never evicted;
#  3. with --taint-failed-nodes (and --taint-noexecute) a failed node is
#     tainted, others' taints kept, a conflicting write (409) retried, and
#     the taint removed when the node attests trusted again;
#  4. with --lease, only the Lease's holder evicts.
# Usage: test-kube-enforce.sh KIMA_VERIFIER KIMA_AGENT KIMACTL IMA_WRITER
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
declare -A UIDS=([amf]=aaaaaaaa-0000-4000-8000-000000000001 [smf]=aaaaaaaa-0000-4000-8000-000000000002
                 [upf]=aaaaaaaa-0000-4000-8000-000000000003 [misc]=aaaaaaaa-0000-4000-8000-000000000004)
items=""
for app in amf smf upf misc; do
    [ $app = misc ] || cat >"$T/policies/$app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "open5gs-$app",
 "match": {"namespace": "open5gs", "podLabels": {"app": "$app"}},
 "digests": {"/usr/bin/open5gs-${app}d": ["sha256:$GOOD"]}}
JSON
    items="$items${items:+,}{\"metadata\": {\"uid\": \"${UIDS[$app]}\", \"namespace\": \"open5gs\", \"name\": \"$app-0\", \"labels\": {\"app\": \"$app\"}}, \"spec\": {\"nodeName\": \"node-1\"}}"
done
echo "{\"kind\": \"PodList\", \"items\": [$items]}" >"$T/pods.json"

python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
fake_kubeconfig "$T/kubeconfig"
# node-1 in the API, with a taint of someone else's
fake nodes '{"name": "node-1", "taints": [{"key": "example.com/gpu", "value": "a100", "effect": "NoSchedule"}]}' >/dev/null

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init || bad "ima-writer init"
start_verifier() { # N ARGS...
    local n=$1
    shift
    verifier_start "$T/verifier.log" "$n" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
        --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
        --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig" \
        --interval-ms 500 "$@"
}
start_verifier 1
agent_start
app_measure() { measure "${UIDS[$3]}" "$1" "$2"; }
kctl() { "$K" --server "$URL" --cert "$P/operator.pem" --key "$P/operator.key" --cacert "$P/ca.pem" "$@"; }
# label APP [KEY]: the pod's label (or annotation KEY) as the API has it
label() {
    fake state | python3 -c '
import json, sys
app, key = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["pods"]:
    if p["metadata"]["name"] == app + "-0":
        md = p["metadata"]
        print((md.get("labels") or {}).get(key, (md.get("annotations") or {}).get(key, "")))' "$1" "${2:-kima.dev/trust}"
}
label_is() { [ "$(label "$1")" = "$2" ]; }
wait_label() { # APP VALUE [SECONDS]
    wait_until "${3:-10}" label_is "$1" "$2" && ok || bad "$1's label should be $2, is '$(label "$1")'"
}
metric() { # NAME_WITH_LABELS: its value in /metrics
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" "$URL/metrics" |
        awk -v m="$1" '$1 == m {print $2}'
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
# audited TYPE [POD_NAME]: how many records of TYPE (about that pod)
audited() {
    python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == sys.argv[2] and (len(sys.argv) < 4 or (r.get("pod") or {}).get("name") == sys.argv[3]):
        n += 1
print(n)' "$T/var/audit.log" "$@"
}
tamper() { # APP JSON_LABELS
    fake tamper "{\"namespace\": \"open5gs\", \"name\": \"$1-0\", \"labels\": $2, \"manager\": \"kubectl-label\"}" >/dev/null
}
events() { # REASON: Events with that reason, as "name uid" lines
    fake state | python3 -c '
import json, sys
for e in json.load(sys.stdin)["events"]:
    if e["reason"] == sys.argv[1]:
        print(e["involvedObject"]["name"], e["involvedObject"]["uid"], e["type"])' "$1"
}

# 1. verdicts as labels; the verifier's own patches are no tamper, a
# verdict that changes (upf untrusted) neither
for app in amf smf upf; do app_measure "/usr/bin/open5gs-${app}d" $GOOD $app; done
# misc-0 runs what no policy covers: unknown
app_measure /usr/bin/misc $GOOD misc
for app in amf smf upf; do wait_label $app trusted; done
wait_label misc unknown
app_measure /usr/bin/open5gs-upfd $EVIL upf
wait_label upf untrusted
one_violation() { [ "$(events IntegrityViolation | wc -l)" -eq 1 ]; }
wait_until 5 one_violation || bad "no IntegrityViolation event"
metric_is kima_label_tamper_total 0 && ok || bad "the verifier's own patches counted as tampers: $(metric kima_label_tamper_total)"
fake state | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["pods"] if p["metadata"]["name"] == "upf-0"][0]
sys.exit(0 if [m["manager"] for m in p["metadata"]["managedFields"]] == ["kima-verifier"] else 1)' &&
    ok || bad "the fake API should name the verifier the manager of its labels"

# 1b. another user relabels the quarantined pod trusted: restored, an
# Event, counted, audited with who did it
t0=$EPOCHREALTIME
tamper upf '{"kima.dev/trust": "trusted"}'
wait_label upf untrusted
# (a figure, not a check: from the tamper's request to the restoring PATCH)
fake state | python3 -c '
import json, sys
t0 = float(sys.argv[1].replace(",", "."))
ts = [r["time"] for r in json.load(sys.stdin)["requests"]
      if r["method"] == "PATCH" and r["path"].endswith("/upf-0") and r["time"] > t0]
print("the tampered label was restored %.0f ms after the tamper" % ((ts[0] - t0) * 1000) if ts else "no restoring PATCH")' "$t0"
wait_until 5 metric_is kima_label_tamper_total 1 && ok || bad "kima_label_tamper_total: $(metric kima_label_tamper_total)"
upf_event() { [ "$(events TrustLabelTampered)" = "upf-0 ${UIDS[upf]} Warning" ]; }
wait_until 5 upf_event && ok ||
    bad "one TrustLabelTampered Warning on upf-0: $(events TrustLabelTampered)"
[ "$(audited label-tampered upf-0)" = 1 ] && ok || bad "label-tampered records of upf-0: $(audited label-tampered upf-0)"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == "label-tampered":
        d, p = r["details"], r["pod"]
        ok = p["namespace"] == "open5gs" and p["name"] == "upf-0" and p["uid"] == sys.argv[2] \
            and d["seen"] == "trusted" and d["verdict"] == "untrusted" and d["wrote"] == "untrusted" \
            and d["label"] == "kima.dev/trust" and r["node"] == "node-1" \
            and [m["manager"] for m in d["managers"]] == ["kubectl-label"]
        sys.exit(0 if ok else 1)
sys.exit(1)' "$T/var/audit.log" "${UIDS[upf]}" && ok || bad "the label-tampered record: $(grep label-tampered "$T/var/audit.log")"
grep 'label kima.dev/trust changed to' "$T/verifier.log" | grep -q 'trusted.*by someone else' && ok || bad "the tamper is not logged"

# 1c. a removed label is a tamper too; a pod's second one within a minute
# is counted and restored, not audited again
tamper amf '{"kima.dev/trust": null}'
wait_until 10 metric_is kima_label_tamper_total 2 && ok || bad "a removed label: $(metric kima_label_tamper_total)"
wait_label amf trusted
tamper amf '{"kima.dev/trust": "untrusted"}'
wait_until 10 metric_is kima_label_tamper_total 3 && ok || bad "a second tamper: $(metric kima_label_tamper_total)"
wait_label amf trusted
[ "$(audited label-tampered amf-0)" = 1 ] && ok || bad "amf-0's second tamper within a minute was audited again"
[ "$(events TrustLabelTampered | grep -c amf-0)" = 1 ] && ok || bad "amf-0's second tamper got another Event"
# an unrelated label of another user is no tamper
# (a tamper of amf after them, in the same stream: once it is counted and
# restored, they have been seen)
tamper smf '{"tier": "core"}'
tamper smf '{"tier": "edge"}'
tamper amf '{"kima.dev/trust": "unknown"}'
wait_until 10 metric_is kima_label_tamper_total 4 && ok || bad "amf's third tamper: $(metric kima_label_tamper_total)"
wait_label amf trusted
label_is smf trusted && [ "$(label smf tier)" = edge ] && ok || bad "smf's own label"
metric_is kima_label_tamper_total 4 && ok || bad "another label counted: $(metric kima_label_tamper_total)"

# 2. no eviction without --evict-untrusted (upf has been untrusted all along)
[ "$(fake state | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["evictions"]))')" = 0 ] &&
    ok || bad "an eviction was requested without --evict-untrusted"
nodes_taints() { # the taints of node-1 as "key:effect" lines
    fake state | python3 -c '
import json, sys
for n in json.load(sys.stdin)["nodes"]:
    for t in (n.get("spec") or {}).get("taints") or []:
        print("%s:%s" % (t["key"], t["effect"]))'
}
[ "$(nodes_taints)" = "example.com/gpu:NoSchedule" ] && ok || bad "node-1 tainted without the option: $(nodes_taints)"

# 2b. with it, a disruption budget refuses twice, then the pod is evicted
kill "$VPID"
wait "$VPID"
rc=$?
[ $rc -eq 0 ] && ok || bad "the verifier's stop: exit $rc, wanted 0 (a sanitizer's report?)"
fake pdb '{"namespace": "open5gs", "name": "upf-0", "count": 2}' >/dev/null
start_verifier 2 --evict-untrusted --taint-failed-nodes --taint-noexecute
upf_gone() {
    fake state | python3 -c '
import json, sys
sys.exit(0 if all(p["metadata"]["name"] != "upf-0" for p in json.load(sys.stdin)["pods"]) else 1)'
}
wait_until 20 upf_gone && ok || bad "upf-0 was not evicted"
fake state | python3 -c '
import json, sys
ev = json.load(sys.stdin)["evictions"]
ok = [e["status"] for e in ev] == [429, 429, 201] and all(e["name"] == "upf-0" and e["uid"] == sys.argv[1] for e in ev)
sys.exit(0 if ok else 1)' "${UIDS[upf]}" && ok || bad "evictions: $(fake state | python3 -c 'import json,sys; print(json.load(sys.stdin)["evictions"])')"
[ "$(audited eviction-requested upf-0)" = 1 ] && [ "$(audited eviction-refused upf-0)" = 1 ] &&
    [ "$(audited eviction-done upf-0)" = 1 ] && ok ||
    bad "eviction records: requested $(audited eviction-requested upf-0), refused $(audited eviction-refused upf-0), done $(audited eviction-done upf-0)"
metric_is 'kima_evictions_total{result="refused"}' 2 && metric_is 'kima_evictions_total{result="done"}' 1 &&
    metric_is 'kima_evictions_total{result="requested"}' 3 && ok || bad "kima_evictions_total: $(metric 'kima_evictions_total{result="refused"}') refused, $(metric 'kima_evictions_total{result="done"}') done"
# misc-0 is unknown: never evicted (every pod had its passes by now)
fake state | python3 -c '
import json, sys
sys.exit(0 if all(e["name"] == "upf-0" for e in json.load(sys.stdin)["evictions"]) else 1)' &&
    label_is misc unknown && ok || bad "an unknown pod was evicted"
# the trusted node-1 is not tainted: nothing written
[ "$(nodes_taints)" = "example.com/gpu:NoSchedule" ] && ok || bad "a trusted node tainted: $(nodes_taints)"
fake state | python3 -c '
import json, sys
sys.exit(0 if not [r for r in json.load(sys.stdin)["requests"] if r["method"] == "PATCH" and "/nodes/" in r["path"]] else 1)' &&
    ok || bad "a trusted node without our taint was patched"

# 3. node-1 fails (a forged list no longer replays to the quote): tainted,
# the other taint kept; another writer adds a taint between our read and
# our write (409): read again, both kept
fake nodes '{"name": "node-1", "race_taint": {"key": "example.com/maintenance", "effect": "NoSchedule"}}' >/dev/null
kill "$APID"
wait "$APID"
L=$T/sfs/ima/binary_runtime_measurements
cp "$L" "$T/list.before"
app_measure /usr/bin/open5gs-amfd $EVIL amf
cp "$L" "$T/list.real"
cp "$T/list.before" "$L"
"$W" --securityfs "$T/sfs" --no-tpm pod "${UIDS[amf]}" /usr/bin/open5gs-amfd $GOOD || bad "forge"
agent_start
node_state() { kctl nodes --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["state"])' 2>/dev/null; }
node_is() { [ "$(node_state)" = "$1" ]; }
taints_are() { [ "$(nodes_taints)" = "$want" ]; }
wait_until 15 node_is untrusted && ok || bad "node-1 should be untrusted: $(node_state)"
want="example.com/gpu:NoSchedule
example.com/maintenance:NoSchedule
kima.dev/untrusted:NoSchedule
kima.dev/untrusted:NoExecute"
wait_until 10 taints_are && ok || bad "node-1's taints: $(nodes_taints)"
fake state | python3 -c '
import json, sys
st = [r["status"] for r in json.load(sys.stdin)["requests"] if r["method"] == "PATCH" and "/nodes/" in r["path"]]
sys.exit(0 if st == [409, 200] else 1)' && ok || bad "the conflicting write was not retried once"
[ "$(audited node-tainted)" = 1 ] && ok || bad "node-tainted records: $(audited node-tainted)"
metric_is 'kima_node_taints_total{change="added"}' 1 && ok || bad "kima_node_taints_total added: $(metric 'kima_node_taints_total{change="added"}')"
grep -q "409" "$T/verifier.log" && ok || bad "the conflict is not logged"

# 3b. the node is trusted again (the real list back, the node deleted and
# registered again): the taint goes, the others stay
kill -STOP "$APID"
cp "$T/list.real" "$L"
kctl node delete node-1 >/dev/null || bad "node delete"
kill -CONT "$APID"
wait_until 20 node_is trusted && ok || bad "node-1 should be trusted again: $(node_state)"
want="example.com/gpu:NoSchedule
example.com/maintenance:NoSchedule"
wait_until 10 taints_are && ok || bad "node-1's taints after recovery: $(nodes_taints)"
[ "$(audited node-untainted)" = 1 ] && ok || bad "node-untainted records: $(audited node-untainted)"
metric_is 'kima_node_taints_total{change="removed"}' 1 && ok || bad "kima_node_taints_total removed"

# 4. only the Lease's holder enforces: while a stranger holds it, an
# untrusted pod is neither labelled nor evicted; once it is released, both
kill "$VPID"
wait "$VPID"
rc=$?
[ $rc -eq 0 ] && ok || bad "the verifier's stop: exit $rc, wanted 0 (a sanitizer's report?)"
now=$(python3 -c 'import time; t=time.time(); print(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int(t % 1 * 1e6))')
fake lease "{\"namespace\": \"default\", \"name\": \"kima-verifier\", \"spec\": {\"holderIdentity\": \"stranger\", \"leaseDurationSeconds\": 3600, \"renewTime\": \"$now\"}}" >/dev/null
start_verifier 3 --evict-untrusted --lease kima-verifier
kill "$APID"
wait "$APID"
agent_start # the verifier's new port
UPF1=aaaaaaaa-0000-4000-8000-000000000009
fake pods "{\"uid\": \"$UPF1\", \"namespace\": \"open5gs\", \"name\": \"upf-1\", \"labels\": {\"app\": \"upf\"}, \"nodeName\": \"node-1\"}" >/dev/null
measure $UPF1 /usr/bin/open5gs-upfd $EVIL
upf1_state() { kctl pod open5gs/upf-1 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null; }
upf1_untrusted() { [ "$(upf1_state)" = untrusted ]; }
wait_until 10 upf1_untrusted && ok || bad "upf-1 should be judged untrusted: $(upf1_state)"
attestations() { kctl nodes --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["attestations"])' 2>/dev/null; }
A0=$(attestations)
rounds() { [ "$(attestations)" -ge $((A0 + 4)) ] 2>/dev/null; }
wait_until 10 rounds || bad "node-1 did not attest 4 more times"
evictions_of() { fake state | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)["evictions"] if e["name"] == sys.argv[1]))' "$1"; }
[ "$(evictions_of upf-1)" = 0 ] && ok || bad "a verifier without the Lease evicted"
upf1_label() { fake state | python3 -c '
import json, sys
print([(p["metadata"].get("labels") or {}).get("kima.dev/trust", "") for p in json.load(sys.stdin)["pods"]
       if p["metadata"]["name"] == "upf-1"][0])'; }
[ -z "$(upf1_label)" ] && ok || bad "a verifier without the Lease labelled: $(upf1_label)"
fake lease '{"namespace": "default", "name": "kima-verifier", "spec": {"holderIdentity": "", "leaseDurationSeconds": 1}}' >/dev/null
upf1_evicted() { [ "$(evictions_of upf-1)" = 1 ]; }
wait_until 15 upf1_evicted && ok || bad "the holder did not evict upf-1: $(evictions_of upf-1) requests"
grep -q '"type":"eviction-done".*upf-1' "$T/var/audit.log" && ok || bad "upf-1's eviction-done record"

kill "$VPID"
wait "$VPID"
rc=$?
VPID=
[ $rc -eq 0 ] && ok || bad "the verifier's stop: exit $rc, wanted 0 (a sanitizer's report?)"
! grep -q "Sanitizer\|runtime error" "$T/verifier.log" && ok || bad "sanitizer reports in the verifier's log"
summary
