#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Kubernetes manifests, offline: every document of k8s/ parses and
# validates against the Kubernetes schema (npm kubernetes-models, which
# tests/tools/install-npm.sh installs into the build folder beforehand: this
# test never downloads), kustomizations name files that exist and
# policies that are kima policies without placeholder digests (the 5G
# overlay's are generated), and `kubectl kustomize` builds each
# kustomization (when kubectl is present) into valid objects. The validator
# must also refuse files of known errors. The base's verifier requires EK
# certificates (ConfigMap kima-ek-ca), reads the optional Secret kima-crl, and
# its terminationGracePeriodSeconds outlasts its drain (--drain-timeout-ms).
# Its three replicas elect their writer of labels and Events with a Lease,
# on PostgreSQL (the CloudNativePG example in k8s/postgres), or one replica
# on SQLite (k8s/overlays/single-sqlite). The quarantines of k8s/quarantine/
# (AdminNetworkPolicy, ClusterNetworkPolicy, Cilium, Calico) validate against strict schemas of
# their CRDs and, in an offline model of each engine's rule order, still cut
# off every pod not trusted when an operator's allow-all NetworkPolicy
# selects it (tests/tools/check-quarantine.mjs).
# Agents authenticate with projected ServiceAccount tokens
# (k8s/overlays/agent-mtls: certificates).
# Enforcement (eviction, taints) and its rights come with
# k8s/overlays/enforce only.
# Usage: test-manifests.sh SOURCE_ROOT NPM_DIR
set -u
SRC=$1
NPM=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
trap 'rm -rf "$T"' EXIT
need_tools node
for pkg in kubernetes-models yaml @kubernetes-models/cert-manager @marcbachmann/cel-js ajv \
    @kubernetes-models/cilium @kubernetes-models/prometheus-operator; do
    if [ ! -f "$NPM/node_modules/$pkg/package.json" ]; then
        echo "npm package $pkg is not installed in $NPM: run tests/tools/install-npm.sh $NPM"
        echo "(test.sh does) to check the manifests; this test does not download"
        exit 77
    fi
done
V="$SRC/tests/tools/validate-manifests.cjs"
export NODE_PATH=$NPM/node_modules
expect 0 node "$V" "$SRC/k8s"
has "$T/out" ", 0 errors" "k8s/ validates"
expect 1 node "$V" "$SRC/tests/fixtures/k8s"
has "$T/out" "replicas must be integer" "a wrong type is caught"
has "$T/out" "unknown kind v1 Widget" "an unknown kind is caught"
has "$T/out" "digest of /usr/bin/open5gs-upfd is an all-zero placeholder" "a placeholder digest is caught"
# k8s/monitoring: the Prometheus Operator's kinds against their schema, the
# Grafana dashboard's shape (tests/integration/test-monitoring.sh checks
# the PromQL and the metric names).
has "$T/out" "PrometheusRule broken-rule: data/spec/groups/0/rules must be array" \
    "a PrometheusRule's wrong type is caught"
has "$T/out" 'Grafana dashboard: panels[0] "no targets": no targets' "a panel without targets is caught"
has "$T/out" 'Grafana dashboard: panels[1] "no datasource": no datasource' \
    "a panel without a data source is caught"
has "$T/out" 'panels "no datasource" and "on another" overlap' "overlapping panels are caught"
# The shipped policies are generated (k8s/overlays/5g-core/generate-policies.sh):
# many files each, every digest a real one.
for f in "$SRC"/k8s/overlays/5g-core/policies/*.json; do
    n=$(python3 -c 'import json, re, sys
d = json.load(open(sys.argv[1]))["digests"]
ok = all(re.fullmatch("sha256:[0-9a-f]{64}", x) and x[7:].strip("0") for v in d.values() for x in v)
print(len(d) if ok else 0)' "$f")
    [ "$n" -ge 50 ] && ok || bad "$f: not a generated policy ($n real digests)"
done
# The shipped verifier requires EK certificates from the ConfigMap kima-ek-ca
# and reads revocations from the optional Secret kima-crl.
cat >"$T/hardening.cjs" <<'JS'
const fs = require("fs");
const YAML = require("yaml");
const base = process.argv[2];
const sts = YAML.parseAllDocuments(fs.readFileSync(`${base}/verifier.yaml`, "utf8"))
  .map((d) => d.toJSON()).find((o) => o && o.kind === "StatefulSet");
const pod = sts.spec.template.spec, c = pod.containers[0];
const mount = (name) => (c.volumeMounts.find((m) => m.name === name) || {}).mountPath;
const vol = (name) => pod.volumes.find((v) => v.name === name) || {};
const kust = YAML.parse(fs.readFileSync(`${base}/kustomization.yaml`, "utf8"));
const cm = fs.existsSync(`${base}/ek-ca.yaml`)
  ? YAML.parse(fs.readFileSync(`${base}/ek-ca.yaml`, "utf8")) : { metadata: {}, data: {} };
const drainArg = c.args.find((a) => a.startsWith("--drain-timeout-ms="));
const drainMs = drainArg ? Number(drainArg.split("=")[1]) : 30000;
const checks = {
  "terminationGracePeriodSeconds above --drain-timeout-ms plus 10 s of requests in flight":
    Number.isInteger(pod.terminationGracePeriodSeconds) &&
    pod.terminationGracePeriodSeconds * 1000 > drainMs + 10000,
  "--require-ek-cert": c.args.includes("--require-ek-cert"),
  "--ek-ca-dir from ConfigMap kima-ek-ca": c.args.includes("--ek-ca-dir=/etc/kima/ek-ca") &&
    mount("ek-ca") === "/etc/kima/ek-ca" && (vol("ek-ca").configMap || {}).name === "kima-ek-ca",
  "--crl from optional Secret kima-crl": c.args.includes("--crl=/etc/kima/crl/crl.pem") &&
    mount("crl") === "/etc/kima/crl" && (vol("crl").secret || {}).secretName === "kima-crl" &&
    vol("crl").secret.optional === true,
  "ek-ca.yaml in the base": kust.resources.includes("ek-ca.yaml") && cm.metadata.name === "kima-ek-ca" &&
    !Object.values(cm.data).some((v) => v.includes("BEGIN CERTIFICATE")),
};
const missing = Object.keys(checks).filter((what) => !checks[what]);
for (const what of missing) console.error(`missing: ${what}`);
process.exit(missing.length ? 1 : 0);
JS
expect 0 node "$T/hardening.cjs" "$SRC/k8s/base"
# Three verifier replicas: the Lease, the PodDisruptionBudget, the Role,
# the database from Secrets and the CloudNativePG example (its CRD schema is
# not available offline: validate-manifests.cjs checks its structure, the
# script below the fields kima relies on). The checks must fail on a
# manifest that breaks them.
expect 0 node "$SRC/tests/tools/check-verifier-replicas.cjs" "$SRC/k8s"
has "$T/out" ", 0 failed" "the verifier's replicas"
has "$T/out" "17 checks" "every check of the replicas ran"
cp -r "$SRC/k8s" "$T/k8s-broken"
sed -i 's/^  replicas: 3$/  replicas: 2/; s|            - --lease=kima-verifier|            - --lease=kima-verifier\n            - --db-password=hunter2|' \
    "$T/k8s-broken/base/verifier.yaml"
sed -i 's/verbs: \["get", "update"\]/verbs: ["get"]/' "$T/k8s-broken/base/rbac.yaml"
expect 1 node "$SRC/tests/tools/check-verifier-replicas.cjs" "$T/k8s-broken"
has "$T/out" "FAIL: replicas: 3" "two replicas are caught"
has "$T/out" "FAIL: no --db and no password in the arguments" "a password argument is caught"
has "$T/out" "FAIL: a Role lets the verifier get and update its Lease" "a Role without update is caught"
has "$T/out" "17 checks, 3 failed" "nothing else fails on the broken copy"
expect 1 node "$V" "$SRC/tests/fixtures/k8s"
has "$T/out" "Cluster broken: spec.instances must be an integer >= 1" "a CloudNativePG Cluster's wrong type is caught"
has "$T/out" "spec.instance is not a Cluster field" "a misspelled CloudNativePG field is caught"
# The quarantines' custom resources: broken copies are refused, each error
# by name (tests/fixtures/k8s/quarantine-invalid.yaml).
F="tests/fixtures/k8s/quarantine-invalid.yaml"
for m in "AdminNetworkPolicy anp-broken: spec.egres is not a field" \
    "AdminNetworkPolicy anp-broken: spec.priority must be <= 1000" \
    "AdminNetworkPolicy anp-broken: spec.subject must NOT have more than 1 properties" \
    "AdminNetworkPolicy anp-broken: spec.subject.pods.podSelector.matchExpressions[0].operator must be one of" \
    "AdminNetworkPolicy anp-broken: spec.ingress[0].action must be one of Allow, Deny, Pass" \
    "CiliumClusterwideNetworkPolicy ccnp-broken: spec.egresDeny is not a field" \
    "CiliumClusterwideNetworkPolicy ccnp-broken: metadata.namespace: a cluster-scoped object has no namespace" \
    "CiliumClusterwideNetworkPolicy ccnp-broken: data/spec/ingressDeny/0/fromEntities/0 must be equal to one of the allowed values" \
    "GlobalNetworkPolicy gnp-broken: spec.namespaceSelecter is not a field" \
    "GlobalNetworkPolicy gnp-broken: spec.order must be number" \
    "GlobalNetworkPolicy gnp-broken: spec.ingress[0].action must be one of Allow, Deny, Log, Pass" \
    "Tier tier-broken: spec.defaultAction must be one of Deny, Pass" \
    "ClusterNetworkPolicy cnp-broken: spec must have required property 'tier'" \
    "ClusterNetworkPolicy cnp-broken: spec.egress[0].ports is not a field" \
    "ClusterNetworkPolicy cnp-broken: spec.egress[0].action must be one of Accept, Deny, Pass"; do
    has "$T/out" "$F: $m" "a broken quarantine is refused"
done
[ "$(grep -c "$F" "$T/out")" -eq 16 ] && ok || bad "quarantine-invalid.yaml: not exactly its 16 known errors"
# Each quarantine wins over an operator's allow-all NetworkPolicy for the
# UPF: untrusted, unknown and unlabelled pods get no traffic (but from their
# own node: probes), trusted pods what the allow policy gives, pods of
# unprotected namespaces are untouched; the overlay's pair alone is
# reopened by it (the documented limit). Broken copies must fail.
Q="$SRC/tests/tools/check-quarantine.mjs"
OP="$SRC/tests/fixtures/quarantine/operator-allow.yaml"
expect 0 node "$Q" "$NPM" "$SRC/k8s" "$OP"
has "$T/out" "706 passed, 0 failed" "the quarantines hold beside an allow-all policy"
has "$T/out" "ok: the NetworkPolicy pair + the operator's allow-all (the documented limit): an untrusted UPF: from the trusted AMF open" \
    "the plain NetworkPolicy pair is shown not to hold beside an allow-all policy"
broken() { # WHAT FILE SED: the check fails on a copy of k8s/ with FILE edited
    rm -rf "$T/kq" && cp -r "$SRC/k8s" "$T/kq" && sed -i "$3" "$T/kq/$2"
    expect 1 node "$Q" "$NPM" "$T/kq" "$OP"
}
broken "ANP selecting untrusted only" quarantine/admin-network-policy/quarantine.yaml \
    's/operator: NotIn/operator: In/; s/values: \["trusted"\]/values: ["untrusted"]/'
has "$T/out" "FAILED: AdminNetworkPolicy alone + the operator's allow-all: an unknown UPF: to the world (IPv4) closed: is open" \
    "an ANP that misses unknown pods is caught"
broken "ClusterNetworkPolicy in the Baseline tier" quarantine/cluster-network-policy/quarantine.yaml 's/tier: Admin/tier: Baseline/'
has "$T/out" "FAILED: ClusterNetworkPolicy alone + the operator's allow-all: an untrusted UPF: to the trusted AMF closed: is open" \
    "a ClusterNetworkPolicy after the NetworkPolicies is caught"
broken "Cilium without egress deny" quarantine/cilium/quarantine.yaml 's/egressDeny:/egress:/'
has "$T/out" "FAILED: Cilium alone + the operator's allow-all: an untrusted UPF: to cluster DNS closed: is open" \
    "a Cilium policy whose egress allows is caught"
broken "Calico tier after the default tier" quarantine/calico/quarantine.yaml 's/^  order: 100$/  order: 2000000/'
has "$T/out" "FAILED: Calico alone + the operator's allow-all: an untrusted UPF: from the trusted AMF closed: is open" \
    "a Calico tier after the NetworkPolicies is caught"
# The agents' identity (docs/kubernetes.md, "Agent identity"): the base's
# agents send projected ServiceAccount tokens (audience kima, 600 s) and
# check the verifier against the ConfigMap kima-ca; the verifier takes
# tokens and may review them. The checks fail on a copy that breaks them.
expect 0 node "$SRC/tests/tools/check-agent-identity.cjs" token "$SRC/k8s"
has "$T/out" "8 checks, 0 failed" "the agents' tokens in the base"
cp -r "$SRC/k8s" "$T/k8s-token-broken"
sed -i 's/audience: kima$/audience: https:\/\/kubernetes.default.svc/; s/expirationSeconds: 600/expirationSeconds: 3600/' \
    "$T/k8s-token-broken/base/agent.yaml"
sed -i 's/resources: \["tokenreviews"\]/resources: ["subjectaccessreviews"]/' "$T/k8s-token-broken/base/rbac.yaml"
expect 1 node "$SRC/tests/tools/check-agent-identity.cjs" token "$T/k8s-token-broken"
has "$T/out" "FAIL: the token's audience is kima" "another audience is caught"
has "$T/out" "FAIL: the token expires after 600 s" "a longer expiry is caught"
has "$T/out" "FAIL: the verifier may create TokenReviews" "RBAC without tokenreviews is caught"
has "$T/out" "8 checks, 3 failed" "nothing else fails on the broken copy"
# Only the verifier may set the trust label the quarantine keys on (and the
# reason): the guard is in the base, and its CEL admits and denies what it
# should (evaluated offline).
grep -q "label-guard.yaml" "$SRC/k8s/base/kustomization.yaml" &&
    ok || bad "k8s/base must ship the trust-label admission guard"
expect 0 node "$SRC/tests/tools/check-admission-policy.mjs" "$NPM" "$SRC/k8s/base/label-guard.yaml"
has "$T/out" " 0 failed" "the trust-label guard admits and denies as it should"
# Only trusted pods get traffic in the 5G overlay's namespace (NetworkPolicy
# rules evaluated offline; also on the kustomize build below).
expect 0 node "$SRC/tests/tools/check-network-policies.mjs" "$NPM" \
    "$SRC/k8s/overlays/5g-core/quarantine.yaml" open5gs
has "$T/out" " 0 failed" "in the 5G overlay only trusted pods get traffic"
if command -v kubectl >/dev/null; then
    for k in base overlays/5g-core overlays/single-sqlite overlays/agent-mtls overlays/enforce cert-manager postgres \
        quarantine/admin-network-policy quarantine/cluster-network-policy quarantine/cilium \
        quarantine/calico monitoring; do
        kubectl kustomize "$SRC/k8s/$k" >"$T/built.yaml" 2>"$T/err" && ok || bad "kustomize $k: $(head -3 "$T/err")"
        mkdir -p "$T/empty"
        expect 0 node "$V" "$T/empty" "$T/built.yaml"
    done
    # One verifier on SQLite: one replica, its store a file, no database Secret.
    kubectl kustomize "$SRC/k8s/overlays/single-sqlite" >"$T/single.yaml"
    NODE_PATH=$NPM/node_modules node -e '
const YAML = require("yaml"), fs = require("fs");
const sts = YAML.parseAllDocuments(fs.readFileSync(process.argv[1], "utf8")).map((d) => d.toJSON())
  .find((o) => o && o.kind === "StatefulSet");
const pod = sts.spec.template.spec, env = pod.containers[0].env;
const db = env.find((e) => e.name === "KIMA_DB");
process.exit(sts.spec.replicas === 1 && db.value === "/var/lib/kima/kima.db" && !db.valueFrom &&
  !env.some((e) => e.name === "KIMA_DB_PASSWORD_FILE") &&
  !pod.volumes.some((v) => v.name.startsWith("db-")) ? 0 : 1);' "$T/single.yaml" && ok ||
        bad "the single-sqlite overlay is not one replica on SQLite"
    # Clusters before 1.30: per-node certificates, no tokens.
    kubectl kustomize "$SRC/k8s/overlays/agent-mtls" >"$T/mtls.yaml"
    expect 0 node "$SRC/tests/tools/check-agent-identity.cjs" cert "$T/mtls.yaml"
    has "$T/out" "3 checks, 0 failed" "the agent-mtls overlay"
    grep -q "name: kima-ca$" "$T/mtls.yaml" && bad "the agent-mtls overlay still ships kima-ca" || ok
    kubectl kustomize "$SRC/k8s/base" >"$T/base.yaml"
    expect 1 node "$SRC/tests/tools/check-agent-identity.cjs" cert "$T/base.yaml"
    # Enforcement: the overlay turns it on and grants pods/eviction create
    # and nodes get and patch; the base grants neither.
    kubectl kustomize "$SRC/k8s/overlays/enforce" >"$T/enforce.yaml"
    kubectl kustomize "$SRC/k8s/base" >"$T/base.yaml"
    enforce_rights() {
        NODE_PATH=$NPM/node_modules node -e '
const YAML = require("yaml"), fs = require("fs");
const docs = YAML.parseAllDocuments(fs.readFileSync(process.argv[1], "utf8")).map((d) => d.toJSON());
const sa = (b) => b.subjects.some((s) => s.kind === "ServiceAccount" && s.name === "kima-verifier" &&
                                    s.namespace === "kima-system");
const roles = docs.filter((o) => o && o.kind === "ClusterRoleBinding" && sa(o))
  .map((b) => docs.find((o) => o && o.kind === "ClusterRole" && o.metadata.name === b.roleRef.name));
const can = (res, verb) => roles.some((r) => r && r.rules.some((x) => x.apiGroups.includes("") &&
                                      x.resources.includes(res) && x.verbs.includes(verb)));
const env = docs.find((o) => o && o.kind === "StatefulSet").spec.template.spec.containers[0].env || [];
const on = (n) => env.some((e) => e.name === n && e.value === "1");
console.log([can("pods/eviction", "create"), can("nodes", "get"), can("nodes", "patch"),
             can("nodes", "update"), on("KIMA_EVICT_UNTRUSTED"), on("KIMA_TAINT_FAILED_NODES"),
             on("KIMA_TAINT_NOEXECUTE")].join(" "));' "$1"
    }
    [ "$(enforce_rights "$T/enforce.yaml")" = "true true true false true true false" ] && ok ||
        bad "the enforce overlay: $(enforce_rights "$T/enforce.yaml")"
    [ "$(enforce_rights "$T/base.yaml")" = "false false false false false false false" ] && ok ||
        bad "the base must not evict or taint, nor may it: $(enforce_rights "$T/base.yaml")"
    kubectl kustomize "$SRC/k8s/overlays/5g-core" >"$T/5g.yaml"
    grep -q "open5gs-upf.json" "$T/5g.yaml" && grep -q "kima-allow-trusted" "$T/5g.yaml" && ok ||
        bad "the 5G overlay lacks its policies or the quarantine"
    expect 0 node "$SRC/tests/tools/check-network-policies.mjs" "$NPM" "$T/5g.yaml" open5gs
    has "$T/out" " 0 failed" "in the 5G overlay only trusted pods get traffic"
else
    echo "kubectl not installed: kustomize builds not checked"
fi
summary
