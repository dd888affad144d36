// SPDX-License-Identifier: Apache-2.0
// Offline checks of the agents' identity in kima's manifests
// (tests/integration/test-manifests.sh, docs/kubernetes.md "Agent
// identity"). With MODE token (k8s/base): the DaemonSet sends a projected
// ServiceAccount token (audience kima, the shortest expiry, 600 s) of
// kima-agent, an account with no API token mounted; no client certificate
// or host path of certificates; the verifier's CA from the ConfigMap
// kima-ca; the verifier takes tokens (KIMA_AGENT_AUTH=token, not overridden
// by an argument) and may create TokenReviews. With MODE cert (a kustomize
// build of k8s/overlays/agent-mtls): per-node certificates from the host,
// no token, and the verifier takes certificates only.
// Prints each failed check; exit 1 when one failed.
// Usage: NODE_PATH=DIR/node_modules node check-agent-identity.cjs token K8S_DIR
//        NODE_PATH=DIR/node_modules node check-agent-identity.cjs cert BUILT.yaml
"use strict";
const fs = require("fs");
const YAML = require("yaml");

const [mode, where] = process.argv.slice(2);
const parse = (f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8"))
  .map((d) => d.toJSON()).filter((o) => o);
const all = mode === "token"
  ? ["agent.yaml", "verifier.yaml", "rbac.yaml", "kima-ca.yaml"]
    .flatMap((f) => parse(`${where}/base/${f}`))
  : parse(where);
const find = (kind, name) => all.find((o) => o.kind === kind && o.metadata.name === name);
const ds = find("DaemonSet", "kima-agent"), sts = find("StatefulSet", "kima-verifier");
const pod = ds.spec.template.spec, c = pod.containers[0];
const vc = sts.spec.template.spec.containers[0];
const env = (ct, name) => ((ct.env || []).find((e) => e.name === name) || {}).value;
const volume = (name) => (pod.volumes || []).find((v) => v.name === name) || {};
const mountOf = (path) => (c.volumeMounts || []).find((m) => path && path.startsWith(`${m.mountPath}/`));
const volumeOf = (path) => volume((mountOf(path) || {}).name);
const sa = find("ServiceAccount", "kima-agent");
const hostCerts = (pod.volumes || []).some((v) => v.hostPath && v.hostPath.path === "/etc/kima/agent");
const checks = {};
if (mode === "token") {
  const tokenFile = env(c, "KIMA_TOKEN_FILE");
  const projected = ((volumeOf(tokenFile).projected || {}).sources || [])
    .map((s) => s.serviceAccountToken).find((t) => t) || {};
  const m = mountOf(tokenFile);
  const role = find("ClusterRole", "kima-verifier");
  const binding = find("ClusterRoleBinding", "kima-verifier");
  checks["the agent sends its projected token (KIMA_TOKEN_FILE in a projected volume)"] =
    !!m && m.readOnly === true && tokenFile === `${m.mountPath}/${projected.path}`;
  checks["the token's audience is kima"] = projected.audience === "kima";
  checks["the token expires after 600 s"] = projected.expirationSeconds === 600;
  checks["the agent has no client certificate"] = !env(c, "KIMA_CERT") && !env(c, "KIMA_KEY") && !hostCerts;
  checks["the verifier's CA from the ConfigMap kima-ca"] =
    (volumeOf(env(c, "KIMA_CACERT")).configMap || {}).name === "kima-ca" &&
    env(c, "KIMA_CACERT") === `${mountOf(env(c, "KIMA_CACERT")).mountPath}/ca.crt` &&
    !!find("ConfigMap", "kima-ca");
  checks["ServiceAccount kima-agent without an API token"] = pod.serviceAccountName === "kima-agent" &&
    pod.automountServiceAccountToken === false && !!sa && sa.automountServiceAccountToken === false;
  checks["the verifier takes tokens (KIMA_AGENT_AUTH=token, no --agent-auth argument)"] =
    env(vc, "KIMA_AGENT_AUTH") === "token" && !(vc.args || []).some((a) => a.startsWith("--agent-auth"));
  checks["the verifier may create TokenReviews"] = !!role && (role.rules || []).some((r) =>
    (r.apiGroups || []).includes("authentication.k8s.io") &&
    (r.resources || []).includes("tokenreviews") && (r.verbs || []).includes("create")) &&
    !!binding && binding.roleRef.name === "kima-verifier" &&
    binding.subjects.some((s) => s.kind === "ServiceAccount" && s.name === "kima-verifier");
} else {
  checks["the agent has its node's certificate from the host"] = hostCerts &&
    env(c, "KIMA_CERT") === "/etc/kima/tls/tls.crt" && env(c, "KIMA_KEY") === "/etc/kima/tls/tls.key" &&
    volumeOf(env(c, "KIMA_CERT")).hostPath.path === "/etc/kima/agent";
  checks["the agent sends no token"] = !env(c, "KIMA_TOKEN_FILE") &&
    !(pod.volumes || []).some((v) => v.projected);
  checks["the verifier takes certificates only"] = env(vc, "KIMA_AGENT_AUTH") === "cert";
}
const failed = Object.keys(checks).filter((what) => !checks[what]);
for (const what of failed) console.log(`FAIL: ${what}`);
console.log(`${Object.keys(checks).length} checks, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
