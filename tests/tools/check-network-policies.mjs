// SPDX-License-Identifier: Apache-2.0
// Which pods of a namespace get traffic under the NetworkPolicies of a
// manifest file, by the Kubernetes rules: a pod no policy of a direction
// selects is open in that direction; a pod some policy selects gets only
// what the union of the selecting policies' rules allows (here: a rule
// `{}` allows all, a rule with peers allows some, none allows nothing).
// Checks that in the 5G overlay only pods labelled kima.dev/trust=trusted
// are open, in both directions. Prints one line a case and
// "N passed, N failed"; exit 1 on any failure.
// Usage: node check-network-policies.mjs NPM_DIR MANIFEST.yaml NAMESPACE
import {createRequire} from 'node:module';
import {readFileSync} from 'node:fs';
import {join, resolve} from 'node:path';

const [npm, file, ns] = process.argv.slice(2);
const require = createRequire(join(resolve(npm), 'node_modules', 'x.js'));
const YAML = require('yaml');
const policies = YAML.parseAllDocuments(readFileSync(file, 'utf8'))
                     .map((d) => d.toJS())
                     .filter((d) => d && d.kind === 'NetworkPolicy' && d.metadata.namespace === ns);
let passed = 0, failed = 0;

function selects(sel, labels) {
  const ml = sel.matchLabels || {};
  if (!Object.entries(ml).every(([k, v]) => labels[k] === v)) return false;
  return (sel.matchExpressions || []).every((e) => {
    const has = e.key in labels;
    switch (e.operator) {
      case 'In': return has && e.values.includes(labels[e.key]);
      case 'NotIn': return !has || !e.values.includes(labels[e.key]);
      case 'Exists': return has;
      case 'DoesNotExist': return !has;
      default: throw new Error(`unknown operator ${e.operator}`);
    }
  });
}

// 'open' (everything), 'some' (some peers) or 'closed', for one direction.
function reach(labels, dir) {
  const key = dir === 'Ingress' ? 'ingress' : 'egress';
  const mine = policies.filter((p) => selects(p.spec.podSelector || {}, labels) &&
                                      (p.spec.policyTypes || ['Ingress']).includes(dir));
  if (mine.length === 0) return 'open';
  const rules = mine.flatMap((p) => p.spec[key] || []);
  if (rules.some((r) => Object.keys(r).length === 0)) return 'open';
  return rules.length ? 'some' : 'closed';
}

function check(what, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAILED: ${what}${detail ? ': ' + detail : ''}`);
  }
}

check(`NetworkPolicies in ${ns}`, policies.length > 0, file);
const cases = [
  ['a trusted pod', {'app': 'upf', 'kima.dev/trust': 'trusted'}, 'open'],
  ['an untrusted pod', {'app': 'upf', 'kima.dev/trust': 'untrusted'}, 'closed'],
  ['an unknown pod', {'app': 'upf', 'kima.dev/trust': 'unknown'}, 'closed'],
  ['a pod without the label (new, or relabelled by its owner)', {'app': 'upf'}, 'closed'],
  ['a pod with the label in another case', {'app': 'upf', 'kima.dev/trust': 'Trusted'}, 'closed'],
];
for (const [what, labels, want] of cases) {
  for (const dir of ['Ingress', 'Egress']) {
    const got = reach(labels, dir);
    check(`${what}: ${dir.toLowerCase()} ${want}`, got === want, `is ${got}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
