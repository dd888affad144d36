// SPDX-License-Identifier: Apache-2.0
// Offline check of kima's Kubernetes manifests: every YAML document parses
// and validates against the Kubernetes schema of its apiVersion and kind
// (npm kubernetes-models; cert-manager's CRDs with
// @kubernetes-models/cert-manager, the Prometheus Operator's with
// @kubernetes-models/prometheus-operator). Kustomizations are checked for
// the files they name; policy files in configMapGenerators must be kima
// policies with digests, none of them a placeholder (all zeros: generate
// them, k8s/overlays/5g-core/generate-policies.sh); the files of a
// generator labelled grafana_dashboard must be Grafana dashboards (below).
// CloudNativePG's Cluster has no schema offline: its structure is checked
// (`structural` below). The quarantines' custom resources (k8s/quarantine/:
// AdminNetworkPolicy, ClusterNetworkPolicy, CiliumClusterwideNetworkPolicy,
// Calico's GlobalNetworkPolicy and Tier) are checked against strict schemas
// of their CRDs (tests/tools/schemas/, unknown fields refused: an API server
// would drop a misspelled field of a custom resource, and a dropped deny
// rule opens the quarantine), Cilium's also against
// @kubernetes-models/cilium. Unknown kinds are errors.
// Usage: NODE_PATH=DIR/node_modules node validate-manifests.cjs K8S_DIR [BUILT.yaml]
"use strict";
const fs = require("fs");
const path = require("path");
const url = require("url");
const YAML = require("yaml");
const Ajv = require("ajv");

function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion : "v1";
  const pkgs = ["kubernetes-models", "@kubernetes-models/cert-manager",
    "@kubernetes-models/prometheus-operator"];
  for (const pkg of pkgs) {
    try {
      return require(`${pkg}/${group}/${kind}`)[kind];
    } catch (e) {
      /* next package */
    }
  }
  return null;
}

// Custom resources whose schema is not available offline (CloudNativePG's
// CRDs): the document's structure and the fields kima relies on are
// checked instead (a misspelled top-level spec field is caught too), not
// the whole schema. Each returns its problems.
const CNPG_CLUSTER_SPEC = [
  "affinity", "backup", "bootstrap", "certificates", "description", "enablePDB",
  "enableSuperuserAccess", "env", "externalClusters", "imageCatalogRef", "imageName",
  "imagePullPolicy", "inheritedMetadata", "instances", "managed", "maxSyncReplicas",
  "minSyncReplicas", "monitoring", "nodeMaintenanceWindow", "plugins", "postgresGID",
  "postgresUID", "postgresql", "primaryUpdateMethod", "primaryUpdateStrategy", "priorityClassName",
  "projectedVolumeTemplate", "replica", "replicationSlots", "resources", "schedulerName",
  "seccompProfile", "serviceAccountTemplate", "smartShutdownTimeout", "startDelay", "stopDelay",
  "storage", "superuserSecret", "switchoverDelay", "tablespaces", "topologySpreadConstraints",
  "walStorage",
];
const structural = {
  "postgresql.cnpg.io/v1 Cluster": (obj) => {
    const p = [], spec = obj.spec || {};
    const isStr = (v) => typeof v === "string" && v.length > 0;
    if (!obj.metadata || !isStr(obj.metadata.name)) p.push("metadata.name is required");
    if (typeof spec !== "object" || Array.isArray(spec)) return p.concat("spec must be an object");
    for (const k of Object.keys(spec)) {
      if (!CNPG_CLUSTER_SPEC.includes(k)) p.push(`spec.${k} is not a Cluster field`);
    }
    if (!Number.isInteger(spec.instances) || spec.instances < 1) p.push("spec.instances must be an integer >= 1");
    if (!spec.storage || !isStr(spec.storage.size)) p.push("spec.storage.size is required");
    const initdb = (spec.bootstrap || {}).initdb;
    if (initdb && (!isStr(initdb.database) || !isStr(initdb.owner))) {
      p.push("spec.bootstrap.initdb needs database and owner");
    }
    const pg = spec.postgresql || {};
    if (pg.pg_hba && (!Array.isArray(pg.pg_hba) || !pg.pg_hba.every(isStr))) {
      p.push("spec.postgresql.pg_hba must be a list of strings");
    }
    if (pg.parameters && Object.values(pg.parameters).some((v) => typeof v !== "string")) {
      p.push("spec.postgresql.parameters values must be strings");
    }
    return p;
  },
};

// Strict schemas of custom resources, written from their CRDs
// (tests/tools/schemas/), and the ESM-only model packages that also know
// them (loaded with import() from NODE_PATH: ESM ignores NODE_PATH).
const SCHEMAS = {
  "policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy": "admin-network-policy.json",
  "policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy": "cluster-network-policy.json",
  "cilium.io/v2 CiliumClusterwideNetworkPolicy": "cilium-clusterwide-network-policy.json",
  "projectcalico.org/v3 GlobalNetworkPolicy": "calico-global-network-policy.json",
  "projectcalico.org/v3 Tier": "calico-tier.json",
};
const ESM_MODELS = { "cilium.io/v2": "@kubernetes-models/cilium" };
const ajv = new Ajv({ allErrors: true, strict: true });
const compiled = {};

function schemaFor(apiVersion, kind) {
  const name = SCHEMAS[`${apiVersion} ${kind}`];
  if (!name) return null;
  if (!compiled[name]) {
    const text = fs.readFileSync(path.join(__dirname, "schemas", name), "utf8");
    compiled[name] = ajv.compile(JSON.parse(text));
  }
  return compiled[name];
}

// "/spec/ingress/0/action" -> "spec.ingress[0].action"
function dotted(pointer) {
  return pointer.split("/").slice(1).map((p) => (/^[0-9]+$/.test(p) ? `[${p}]` : `.${p}`))
    .join("").replace(/^\./, "") || "(the object)";
}

function schemaErrors(validate) {
  return validate.errors.map((e) => {
    const at = dotted(e.instancePath);
    if (e.keyword === "additionalProperties" && at === "metadata" && e.params.additionalProperty === "namespace") {
      return "metadata.namespace: a cluster-scoped object has no namespace";
    }
    if (e.keyword === "additionalProperties") {
      return `${at === "(the object)" ? "" : at + "."}${e.params.additionalProperty} is not a field`;
    }
    if (e.keyword === "enum") return `${at} must be one of ${e.params.allowedValues.join(", ")}`;
    if (e.keyword === "const") return `${at} must be ${e.params.allowedValue}`;
    return `${at} ${e.message}`;
  });
}

async function esmModel(apiVersion, kind) {
  const pkg = ESM_MODELS[apiVersion];
  if (!pkg) return null;
  for (const dir of (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, pkg, apiVersion, `${kind}.js`);
    if (fs.existsSync(file)) return (await import(url.pathToFileURL(file).href))[kind] || null;
  }
  return null;
}

let checked = 0;
const pending = []; // documents validated against a model, after the walk
const errors = [];
function fail(file, msg) {
  errors.push(`${file}: ${msg}`);
}

// A shipped policy lists digests, and no placeholder: an all-zero digest
// never passes (docs/design.md section 6), so every pod would turn untrusted.
function checkDigests(file, digests) {
  const paths = Object.keys(digests);
  if (paths.length === 0) fail(file, "no digests (generate them from the images)");
  for (const p of paths) {
    const list = Array.isArray(digests[p]) ? digests[p] : [digests[p]];
    if (list.some((d) => typeof d === "string" && /^[a-z0-9]+:0+$/.test(d))) {
      fail(file, `digest of ${p} is an all-zero placeholder (generate the policy from the image)`);
    }
  }
}

// A Grafana dashboard's shape, as Grafana's sidecar loads it: a title and
// uid, panels (rows' panels too) each with a type, a title and a grid
// position; every non-row panel queries a data source with PromQL
// targets (refId, a non-empty expr). Returns its problems.
function dashboardProblems(d) {
  const p = [];
  const isStr = (v) => typeof v === "string" && v.length > 0;
  if (!d || typeof d !== "object" || Array.isArray(d)) return ["not a JSON object"];
  if (!isStr(d.title)) p.push("no title");
  if (!isStr(d.uid) || d.uid.length > 40) p.push("no uid (at most 40 characters)");
  if (!Number.isInteger(d.schemaVersion)) p.push("no integer schemaVersion");
  if (!Array.isArray(d.panels) || d.panels.length === 0) return p.concat("no panels");
  const ids = new Set();
  const panel = (x, where) => {
    if (!x || typeof x !== "object") return p.push(`${where}: not an object`);
    const name = `${where} ${JSON.stringify(x.title)}`;
    if (!isStr(x.type) || !isStr(x.title)) p.push(`${where}: needs a type and a title`);
    if (!Number.isInteger(x.id) || ids.has(x.id)) p.push(`${name}: needs a unique integer id`);
    ids.add(x.id);
    const g = x.gridPos || {};
    if (!["x", "y", "w", "h"].every((k) => Number.isInteger(g[k]) && g[k] >= 0) || g.x + g.w > 24) {
      p.push(`${name}: gridPos needs integers x, y, w, h within 24 columns`);
    }
    if (x.type === "row") {
      (x.panels || []).forEach((c, i) => panel(c, `${where}.panels[${i}]`));
      return;
    }
    const ds = x.datasource;
    if (!ds || (typeof ds === "object" ? !isStr(ds.uid) : !isStr(ds))) p.push(`${name}: no datasource`);
    if (!Array.isArray(x.targets) || x.targets.length === 0) return p.push(`${name}: no targets`);
    x.targets.forEach((t, i) => {
      if (!t || !isStr(t.expr) || !isStr(t.refId)) p.push(`${name}: target ${i} needs refId and expr`);
    });
  };
  d.panels.forEach((x, i) => panel(x, `panels[${i}]`));
  // No two panels on the same cells (Grafana would stack them).
  const boxes = d.panels.filter((x) => x && x.gridPos).map((x) => [x.title, x.gridPos]);
  boxes.forEach(([ta, a], i) => boxes.slice(i + 1).forEach(([tb, b]) => {
    if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
      p.push(`panels ${JSON.stringify(ta)} and ${JSON.stringify(tb)} overlap`);
    }
  }));
  return p;
}

function checkKustomization(file, doc) {
  const dir = path.dirname(file);
  for (const r of doc.resources || []) {
    if (!fs.existsSync(path.join(dir, r))) fail(file, `resource ${r} does not exist`);
  }
  for (const g of doc.configMapGenerator || []) {
    const dashboards = ((g.options || {}).labels || {}).grafana_dashboard !== undefined;
    for (const entry of g.files || []) {
      const f = entry.includes("=") ? entry.slice(entry.indexOf("=") + 1) : entry; // KEY=FILE
      const p = path.join(dir, f);
      if (!fs.existsSync(p)) {
        fail(file, `configMapGenerator file ${f} does not exist`);
        continue;
      }
      try {
        const pol = JSON.parse(fs.readFileSync(p, "utf8"));
        if (dashboards) {
          for (const e of dashboardProblems(pol)) fail(p, `Grafana dashboard: ${e}`);
        } else if (pol.apiVersion !== "kima.dev/v1" || !["PodPolicy", "NodePolicy"].includes(pol.kind) ||
            typeof pol.name !== "string" || typeof pol.digests !== "object") {
          fail(p, "not a kima policy (apiVersion kima.dev/v1, kind, name, digests)");
        } else {
          checkDigests(p, pol.digests);
        }
      } catch (e) {
        fail(p, `not JSON: ${e.message}`);
      }
    }
  }
}

function checkFile(file) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  } catch (e) {
    return fail(file, `cannot read: ${e.message}`);
  }
  docs.forEach((d, i) => {
    if (d.errors.length) return fail(file, `document ${i}: ${d.errors[0].message}`);
    const obj = d.toJSON();
    if (!obj) return;
    checked++;
    if (obj.kind === "Kustomization") return checkKustomization(file, obj);
    if (!obj.apiVersion || !obj.kind) return fail(file, `document ${i}: no apiVersion or kind`);
    const shape = structural[`${obj.apiVersion} ${obj.kind}`];
    if (shape) {
      for (const e of shape(obj)) fail(file, `${obj.kind} ${obj.metadata && obj.metadata.name}: ${e}`);
      return;
    }
    pending.push({ file, i, obj });
  });
}

async function checkModel({ file, i, obj }) {
  const what = `${obj.kind} ${obj.metadata && obj.metadata.name}`;
  const strict = schemaFor(obj.apiVersion, obj.kind);
  if (strict && !strict(obj)) {
    for (const e of schemaErrors(strict)) fail(file, `${what}: ${e}`);
  }
  const Model = modelFor(obj.apiVersion, obj.kind) || (await esmModel(obj.apiVersion, obj.kind));
  if (!Model && !strict) return fail(file, `document ${i}: unknown kind ${obj.apiVersion} ${obj.kind}`);
  if (!Model) return;
  try {
    new Model(obj).validate();
  } catch (e) {
    fail(file, `${what}: ${e.message}`);
  }
}

function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.ya?ml$/.test(e.name)) checkFile(p);
  }
}

async function main() {
  const root = process.argv[2];
  if (process.argv[3]) checkFile(process.argv[3]); // a kustomize build output too
  walk(root);
  for (const p of pending) await checkModel(p);
  for (const e of errors) console.log(`FAIL: ${e}`);
  console.log(`${checked} documents checked, ${errors.length} errors`);
  process.exit(errors.length ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL: ${e.stack || e}`);
  process.exit(2);
});
