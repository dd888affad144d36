#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The dashboard and the alerts of k8s/monitoring (docs/kubernetes.md,
# "Dashboards and alerts"): the PrometheusRule's groups pass `promtool
# check rules` and the unit tests of tests/monitoring/rules.test.yaml
# (`promtool test rules`), every alert has a firing and a silent case
# there, and the tests fail on rules that sum the replicas' counts or call
# the verifier down when one replica is; the dashboard's queries are valid
# PromQL; and every metric the rules and the dashboard name is one the real
# verifier exports: a kima-verifier with a Lease (against the fake
# Kubernetes API, so that kima_leader is there) is scraped and the names
# compared (tests/tools/monitoring.py), which must fail on a wrong name.
# Skips (77) without promtool (Debian's prometheus package) or PyYAML.
# Usage: test-monitoring.sh SOURCE_ROOT KIMA_VERIFIER
set -u
SRC=$1
V=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
FPID= VPID=
cleanup() {
    for p in $VPID $FPID; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools curl openssl python3
if ! command -v promtool >/dev/null; then
    echo "promtool not installed (Debian: apt-get install prometheus): skipped"
    exit 77
fi
python3 -c 'import yaml' 2>/dev/null || { echo "python3-yaml not installed: skipped"; exit 77; }
M="python3 $SRC/tests/tools/monitoring.py"
RULE=$SRC/k8s/monitoring/prometheus-rule.yaml
DASH=$SRC/k8s/monitoring/grafana-dashboard.json

# --- the rules and their unit tests
mkdir -p "$T/rules"
expect 0 $M rules "$RULE" "$T/rules/rules.yaml"
cp "$SRC/tests/monitoring/rules.test.yaml" "$T/rules/"
expect 0 promtool check rules "$T/rules/rules.yaml"
has "$T/out" "SUCCESS: 11 rules found" "promtool check rules"
(cd "$T/rules" && promtool test rules rules.test.yaml) >"$T/out" 2>&1 && ok ||
    bad "promtool test rules: $(head -40 "$T/out")"
expect 0 $M tested "$RULE" "$SRC/tests/monitoring/rules.test.yaml"
has "$T/out" "11 alerts, 0 missing tests" "every alert is tested firing and silent"
# The tests must catch replicas' counts summed (three replicas: 3 pods
# where there is 1) and the verifier called down when one replica is.
mutant() { # NAME SED: the unit tests fail on the rules changed by SED
    mkdir -p "$T/$1"
    sed "$2" "$T/rules/rules.yaml" >"$T/$1/rules.yaml"
    cp "$T/rules/rules.test.yaml" "$T/$1/"
    cmp -s "$T/rules/rules.yaml" "$T/$1/rules.yaml" && { bad "$1: the change did not apply"; return; }
    if (cd "$T/$1" && promtool test rules rules.test.yaml) >"$T/out" 2>&1; then
        bad "$1: the unit tests pass on broken rules"
    else
        has "$T/out" "$3" "$1: the unit tests name the broken alert"
    fi
}
mutant summed 's/max by (namespace) (kima_namespace_pods/sum by (namespace) (kima_namespace_pods/' \
    "alertname: KimaPodUntrusted"
mutant one-down 's/sum(up{job="kima-verifier"}) == 0/min(up{job="kima-verifier"}) == 0/' \
    "alertname: KimaVerifierDown"
mutant no-interval 's/> 10 \* scalar(max(kima_attestation_interval_seconds))/> 20/' \
    "alertname: KimaNodeNotAttesting"

# --- the dashboard's queries are PromQL
expect 0 $M dashboard-rules "$DASH" "$T/dashboard.yaml"
expect 0 promtool check rules "$T/dashboard.yaml"
has "$T/out" "SUCCESS" "the dashboard's queries parse"

# --- every metric named is exported by the real verifier
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
echo '{"kind": "PodList", "items": []}' >"$T/pods.json"
python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
fake_kubeconfig "$T/kubeconfig"
POD_NAME=v0 POD_NAMESPACE=kima-system verifier_start "$T/verifier.log" 1 \
    --tls-cert "$P/server.pem" --tls-key "$P/server.key" --client-ca "$P/ca.pem" \
    --db "$T/var/kima.db" --audit-log "$T/var/audit.log" --audit-key "$T/var/audit.key" \
    --policies "$T/policies" --kubeconfig "$T/kubeconfig" --lease kima-verifier
scrape() {
    curl -s --cacert "$P/ca.pem" --cert "$P/operator.pem" --key "$P/operator.key" \
        -o "$T/metrics" -w '%{http_code}' "$URL/metrics" >"$T/status"
    [ "$(cat "$T/status")" = 200 ] && grep -q '^kima_leader 1$' "$T/metrics"
}
wait_until 20 scrape || bad "no /metrics with kima_leader 1: HTTP $(cat "$T/status"), $(tail -3 "$T/verifier.log")"
# The text format holds (each metric's lines together, HELP and TYPE).
promtool check metrics <"$T/metrics" >"$T/out" 2>&1 && ok || bad "promtool check metrics: $(head -5 "$T/out")"
expect 0 $M check "$T/metrics" "$RULE" "$DASH"
has "$T/out" ", 0 unknown" "every metric of the rules and the dashboard is exported"
# A wrong name is caught, in the rules and in the dashboard.
sed 's/kima_node_state{state="stale"}/kima_node_states{state="stale"}/' "$RULE" >"$T/broken-rule.yaml"
expect 1 $M check "$T/metrics" "$T/broken-rule.yaml"
has "$T/out" "KimaNodeStale: metric kima_node_states is not exported" "a wrong metric in a rule is caught"
sed 's/max(kima_waiting_measurements)/max(kima_waiting_measurement)/' "$DASH" >"$T/broken-dashboard.json"
expect 1 $M check "$T/metrics" "$T/broken-dashboard.json"
has "$T/out" "metric kima_waiting_measurement is not exported" "a wrong metric in the dashboard is caught"
# The scan itself: names inside functions, after aggregations, beside
# label lists, offsets and numbers; none of the label names or keywords.
$M names /dev/stdin >"$T/names" <<'YAML'
groups:
  - name: scan
    rules:
      - record: x
        expr: >-
          sum by (le, node) (rate(a_bucket{job="b",le=~"c|d"}[5m] offset 1h)) / on (node)
          group_left (pod) b_total * 1e3 > bool 0.5 and ignoring (x) absent(c_seconds) or time() - d:rec
YAML
printf 'a_bucket\nb_total\nc_seconds\nd:rec\n' >"$T/names.want"
same "$T/names" "$T/names.want" "the PromQL scan's names"
summary
