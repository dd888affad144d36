// SPDX-License-Identifier: Apache-2.0
// Offline check of kima's Kubernetes manifests: every YAML document parses
// and validates against the Kubernetes schema of its apiVersion and kind
// (npm kubernetes-models; cert-manager's CRDs with
// @kubernetes-models/cert-manager). Kustomizations are checked for the files
// they name; policy files in configMapGenerators must be kima policies
// with digests, none of them a placeholder (all zeros: generate them,
// k8s/overlays/5g-core/generate-policies.sh).
// Usage: NODE_PATH=DIR/node_modules node validate-manifests.cjs K8S_DIR
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion : "v1";
  const pkgs = ["kubernetes-models", "@kubernetes-models/cert-manager"];
  for (const pkg of pkgs) {
    try {
      return require(`${pkg}/${group}/${kind}`)[kind];
    } catch (e) {
      /* next package */
    }
  }
  return null;
}

let checked = 0;
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

function checkKustomization(file, doc) {
  const dir = path.dirname(file);
  for (const r of doc.resources || []) {
    if (!fs.existsSync(path.join(dir, r))) fail(file, `resource ${r} does not exist`);
  }
  for (const g of doc.configMapGenerator || []) {
    for (const f of g.files || []) {
      const p = path.join(dir, f);
      if (!fs.existsSync(p)) {
        fail(file, `configMapGenerator file ${f} does not exist`);
        continue;
      }
      try {
        const pol = JSON.parse(fs.readFileSync(p, "utf8"));
        if (pol.apiVersion !== "kima.dev/v1" || !["PodPolicy", "NodePolicy"].includes(pol.kind) ||
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
    const Model = modelFor(obj.apiVersion, obj.kind);
    if (!Model) return fail(file, `document ${i}: unknown kind ${obj.apiVersion} ${obj.kind}`);
    try {
      new Model(obj).validate();
    } catch (e) {
      fail(file, `${obj.kind} ${obj.metadata && obj.metadata.name}: ${e.message}`);
    }
  });
}

function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.ya?ml$/.test(e.name)) checkFile(p);
  }
}

const root = process.argv[2];
if (process.argv[3]) checkFile(process.argv[3]); // a kustomize build output too
walk(root);
for (const e of errors) console.log(`FAIL: ${e}`);
console.log(`${checked} documents checked, ${errors.length} errors`);
process.exit(errors.length ? 1 : 0);
