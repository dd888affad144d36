// SPDX-License-Identifier: Apache-2.0
// Offline checks of the verifier's replicas in kima's manifests
// (tests/integration/test-manifests.sh): three replicas electing their
// writer of labels and Events with a Lease, a PodDisruptionBudget over
// their pods, the Role that lets them use the Lease, the database from
// Secrets (no password in the arguments), each replica's audit log on its
// own volume, and the CloudNativePG example the Secrets point at (its CRD
// schema is not available offline: the fields kima relies on are checked).
// Prints each failed check; exit 1 when one failed.
// Usage: NODE_PATH=DIR/node_modules node check-verifier-replicas.cjs K8S_DIR
"use strict";
const fs = require("fs");
const YAML = require("yaml");

const k8s = process.argv[2];
const docs = (f) => YAML.parseAllDocuments(fs.readFileSync(`${k8s}/${f}`, "utf8"))
  .map((d) => d.toJSON()).filter((o) => o);
const find = (list, kind, name) => list.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const base = docs("base/verifier.yaml"), rbac = docs("base/rbac.yaml");
const pg = docs("postgres/cluster.yaml").concat(docs("postgres/db-secret.yaml"));
const sts = find(base, "StatefulSet", "kima-verifier");
const pdb = find(base, "PodDisruptionBudget");
const pod = sts.spec.template.spec, c = pod.containers[0];
const env = (name) => (c.env || []).find((e) => e.name === name) || {};
const arg = (name) => (c.args.find((a) => a.startsWith(`--${name}=`)) || "").slice(name.length + 3);
const mountOf = (path) => (c.volumeMounts || []).find((m) => path.startsWith(`${m.mountPath}/`));
const volume = (name) => (pod.volumes || []).find((v) => v.name === name) || {};
const lease = arg("lease");
const role = find(rbac, "Role", "kima-verifier-lease"), binding = find(rbac, "RoleBinding");
const cluster = find(pg, "Cluster", "kima-db"), dbSecret = find(pg, "Secret", "kima-db");
const conninfo = ((dbSecret || {}).stringData || {}).conninfo || "";
const sslroot = (conninfo.match(/sslrootcert=(\S+)/) || [])[1] || "";
const pwFile = env("KIMA_DB_PASSWORD_FILE").value || "";
const labels = sts.spec.template.metadata.labels;
const selects = (sel) => sel && sel.matchLabels && Object.keys(sel.matchLabels).length > 0 &&
  Object.entries(sel.matchLabels).every(([k, v]) => labels[k] === v);
const allows = (verb, named) => (role.rules || []).some((r) =>
  (r.apiGroups || []).includes("coordination.k8s.io") && (r.resources || []).includes("leases") &&
  (r.verbs || []).includes(verb) &&
  (named ? (r.resourceNames || []).includes(lease) : !r.resourceNames));
const secretVolume = (mount) => mount && (volume(mount.name).secret || {}).secretName;

const checks = {
  "replicas: 3": sts.spec.replicas === 3,
  "--lease names the Lease": /^[a-z0-9][a-z0-9.-]*$/.test(lease),
  "POD_NAME and POD_NAMESPACE from the downward API":
    ((env("POD_NAME").valueFrom || {}).fieldRef || {}).fieldPath === "metadata.name" &&
    ((env("POD_NAMESPACE").valueFrom || {}).fieldRef || {}).fieldPath === "metadata.namespace",
  "the PodDisruptionBudget selects the verifier's pods and keeps two": !!pdb &&
    pdb.metadata.namespace === sts.metadata.namespace && selects(pdb.spec.selector) &&
    (pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable === 2),
  "a Role lets the verifier get and update its Lease (by name) and create leases": !!role &&
    role.metadata.namespace === sts.metadata.namespace && allows("get", true) &&
    allows("update", true) && allows("create", false),
  "the RoleBinding gives the Role to the verifier's service account": !!binding &&
    binding.roleRef.kind === "Role" && binding.roleRef.name === "kima-verifier-lease" &&
    binding.subjects.some((s) => s.kind === "ServiceAccount" && s.name === pod.serviceAccountName &&
      s.namespace === sts.metadata.namespace),
  "no --db and no password in the arguments": !c.args.some((a) => /^--db[=]|password/i.test(a)) &&
    !(c.command || []).some((a) => /password/i.test(a)),
  "KIMA_DB from the Secret kima-db": ((env("KIMA_DB").valueFrom || {}).secretKeyRef || {}).name === "kima-db",
  "no KIMA_DB_PASSWORD value in the manifest": env("KIMA_DB_PASSWORD").value === undefined,
  "the password file from CloudNativePG's Secret of the app user":
    secretVolume(mountOf(pwFile)) === `${cluster.metadata.name}-app`,
  "each replica's audit log on its own volume (volumeClaimTemplates)":
    (sts.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === (mountOf(arg("audit-log")) || {}).name),
  "readiness on /readyz": ((c.readinessProbe || {}).httpGet || {}).path === "/readyz",
  "CloudNativePG: three instances": cluster.spec.instances >= 3,
  "CloudNativePG: the database and its owner": cluster.spec.bootstrap.initdb.database === "kima" &&
    cluster.spec.bootstrap.initdb.owner === "kima" && / dbname=kima /.test(` ${conninfo} `) &&
    / user=kima /.test(` ${conninfo} `),
  "the conninfo names the read-write Service and has no password":
    new RegExp(`host=${cluster.metadata.name}-rw\\.`).test(conninfo) && !/password/i.test(conninfo),
  "TLS: sslmode=verify-full against the operator's CA":
    / sslmode=verify-full /.test(` ${conninfo} `) &&
    secretVolume(mountOf(sslroot)) === `${cluster.metadata.name}-ca`,
  "CloudNativePG: TLS only (hostnossl rejected)":
    (cluster.spec.postgresql.pg_hba || [])[0] === "hostnossl all all all reject",
};
const failed = Object.keys(checks).filter((what) => !checks[what]);
for (const what of failed) console.log(`FAIL: ${what}`);
console.log(`${Object.keys(checks).length} checks, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
