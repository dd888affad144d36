#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Detection latency: the time from a measurement appended by the kernel
# stand-in (ima-writer) to the pod's state change in the verifier, with the
# agent's and the verifier's default settings, over swtpm, mTLS and loopback.
#
# PODS pods are in the inventory and under policy. Each sample appends one
# entry for one pod at a random moment (0-500 ms after the previous change,
# so it falls anywhere in the agent's polling and rate-limit cycle): first a
# good binary (unknown -> trusted), later a tampered one (trusted ->
# untrusted). The change time is the verifier's own timestamp of the
# state-change audit record (ms); the start is taken just before the writer
# is asked to append (so the writer's append and PCR extend count too).
#
# Usage: bench-latency.sh KIMA_VERIFIER KIMA_AGENT IMA_WRITER [PODS]   (default 100: 200 samples)
set -u
V=$1
AG=$2
W=$3
PODS=${4:-100}
HERE=$(cd "$(dirname "$0")" && pwd)
IT=$HERE/../integration
T=$(mktemp -d)
. "$IT/helpers.sh"
APID= VPID=
cleanup() {
    for p in $APID $VPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
GOOD=1111111111111111111111111111111111111111111111111111111111111111
EVIL=6666666666666666666666666666666666666666666666666666666666666666
P=$T/pki
bash "$IT/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state" "$T/var"
echo bench >"$T/boot_id"
cat >"$T/policies/app.json" <<JSON
{"apiVersion": "kima.dev/v1", "kind": "PodPolicy", "name": "app",
 "match": {"namespace": "bench"}, "digests": {"/usr/bin/app": ["sha256:$GOOD"]}}
JSON
python3 - "$PODS" >"$T/pods.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({"kind": "PodList", "items": [
    {"metadata": {"uid": "bbbbbbbb-0000-4000-8000-%012d" % i, "namespace": "bench",
                  "name": "app-%d" % i},
     "spec": {"nodeName": "node-1"}} for i in range(n)]}))
PY
swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init --boot-aggregate || exit 1
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --pods-file "$T/pods.json"
"$AG" --verifier "$URL" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
    --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key" --cacert "$P/ca.pem" \
    --state-dir "$T/state" --boot-id-file "$T/boot_id" >"$T/agent.log" 2>&1 &
APID=$!
for _ in $(seq 100); do grep -q '"type":"activation"' "$T/var/audit.log" 2>/dev/null && break; sleep 0.1; done
echo "kima-verifier and kima-agent with default settings (agent interval 2000 ms," \
    "min interval 200 ms), $PODS pods, $((2 * PODS)) samples"

python3 - "$W" "$T/sfs" "$SWTPM_TCTI" "$T/var/audit.log" "$PODS" "$APID" <<'PY'
import datetime, json, os, random, subprocess, sys, time
W, sfs, tcti, audit, pods, apid = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
GOOD = "1" * 64
EVIL = "6" * 64
writer = subprocess.Popen([W, "--securityfs", sfs, "--tcti", tcti, "--ack", "batch"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
log = open(audit)
log.seek(0, os.SEEK_END)
random.seed(1)

def wait_change(name, want, deadline):
    while time.time() < deadline:
        line = log.readline()
        if not line:
            time.sleep(0.001)
            continue
        if not line.endswith("\n"):
            log.seek(log.tell() - len(line))
            time.sleep(0.001)
            continue
        r = json.loads(line)
        if r.get("type") == "state-change" and r.get("pod", {}).get("name") == name and \
                r["details"].get("to") == want:
            t = datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            return t.replace(tzinfo=datetime.timezone.utc).timestamp()
    return None

samples, lost = [], 0
for phase, digest, want in (("good", GOOD, "trusted"), ("tampered", EVIL, "untrusted")):
    for i in range(pods):
        time.sleep(random.uniform(0, 0.5))
        uid = "bbbbbbbb-0000-4000-8000-%012d" % i
        t0 = time.time()
        writer.stdin.write("pod %s /usr/bin/app sha256:%s\n" % (uid, digest))
        if not writer.stdout.readline().startswith("ok"):
            sys.exit("ima-writer failed")
        t1 = wait_change("app-%d" % i, want, t0 + 10)
        if t1 is None:
            lost += 1
        else:
            samples.append(max(0.0, t1 - t0) * 1000)
writer.stdin.close()
writer.wait()
samples.sort()
def pct(p):
    return samples[min(len(samples) - 1, int(round(p / 100 * (len(samples) - 1))))]
rss = [l.split()[1] for l in open("/proc/%s/status" % apid) if l.startswith("VmRSS")][0]
print("detection latency over %d samples (%d never changed): p50 %.0f ms, p90 %.0f ms, "
      "p99 %.0f ms, max %.0f ms, mean %.0f ms" % (len(samples), lost, pct(50), pct(90), pct(99),
      samples[-1], sum(samples) / len(samples)))
print("targets: p50 < 300 ms, p99 < 1000 ms: %s" %
      ("met" if pct(50) < 300 and pct(99) < 1000 and lost == 0 else "NOT met"))
print("agent resident memory after the run: %s kB" % rss)
PY
