// SPDX-License-Identifier: Apache-2.0
// Evaluate the trust-label guards (k8s/base/label-guard.yaml), two
// ValidatingAdmissionPolicies (pods; pod templates), offline: their CEL
// variables and validations run
// as the API server runs them (in order, `variables` bound) with a CEL
// implementation from npm (@marcbachmann/cel-js), against admission
// requests a tenant and the verifier would send. Prints one line a case and
// "N passed, N failed"; exit 1 on any failure.
// Usage: node check-admission-policy.mjs NPM_DIR POLICY_YAML
import {createRequire} from 'node:module';
import {readFileSync} from 'node:fs';
import {join, resolve} from 'node:path';
import {pathToFileURL} from 'node:url';

const [npm, file] = process.argv.slice(2);
const require = createRequire(join(resolve(npm), 'node_modules', 'x.js'));
const YAML = require('yaml');
const {evaluate} = await import(
    pathToFileURL(join(resolve(npm), 'node_modules/@marcbachmann/cel-js/lib/index.js')).href);

const docs = YAML.parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS());
const policies = docs.filter((d) => d && d.kind === 'ValidatingAdmissionPolicy');
const bindings = docs.filter((d) => d && d.kind === 'ValidatingAdmissionPolicyBinding');
const policy = policies.find((p) => p.metadata.name === 'kima-trust-label-guard');
const templates = policies.find((p) => p.metadata.name === 'kima-template-label-guard');
let passed = 0, failed = 0;

function check(what, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAILED: ${what}${detail ? ': ' + detail : ''}`);
  }
}

// The messages of the validations that deny (an empty list: admitted).
function admit(user, object, oldObject, p = policy, kind = 'Pod') {
  const ctx = {request: {userInfo: {username: user}, kind: {kind}}, object, oldObject,
               variables: {}};
  for (const v of p.spec.variables || []) {
    ctx.variables[v.name] = evaluate(v.expression, ctx);
  }
  return p.spec.validations.filter((v) => evaluate(v.expression, ctx) !== true)
      .map((v) => v.message);
}

const VERIFIER = 'system:serviceaccount:kima-system:kima-verifier';
const TENANT = 'system:serviceaccount:open5gs:deployer';
const pod = (labels, annotations) => ({
  metadata: {name: 'upf-0', namespace: 'open5gs',
             ...(labels ? {labels} : {}), ...(annotations ? {annotations} : {})},
});
const untrusted = pod({'app': 'upf', 'kima.dev/trust': 'untrusted'},
                      {'kima.dev/reason': '/tmp/miner is not in policy upf'});

for (const p of [policy, templates]) {
  const b = p && bindings.find((x) => x.spec.policyName === p.metadata.name);
  check(`the policy ${p ? p.metadata.name : '(missing)'} and its binding are there`,
        p && b && b.spec.validationActions.includes('Deny') && p.spec.failurePolicy === 'Fail');
}
const rule = policy.spec.matchConstraints.resourceRules[0];
check('pods, pods/status and pods/binding, on create and update',
      ['pods', 'pods/status', 'pods/binding'].every((r) => rule.resources.includes(r)) &&
      ['CREATE', 'UPDATE'].every((o) => rule.operations.includes(o)),
      JSON.stringify(rule));

const cases = [
  ['a tenant relabels a quarantined pod trusted', TENANT,
   pod({'app': 'upf', 'kima.dev/trust': 'trusted'}, untrusted.metadata.annotations), untrusted,
   false],
  ['a tenant removes the trust label', TENANT, pod({'app': 'upf'}, untrusted.metadata.annotations),
   untrusted, false],
  ['a tenant removes every label', TENANT, pod(null, untrusted.metadata.annotations), untrusted,
   false],
  ['a tenant creates a pod labelled trusted', TENANT, pod({'kima.dev/trust': 'trusted'}), null,
   false],
  ['a tenant rewrites the reason', TENANT,
   pod(untrusted.metadata.labels, {'kima.dev/reason': 'fine'}), untrusted, false],
  ['a tenant sets attested-at', TENANT,
   pod(untrusted.metadata.labels,
       {...untrusted.metadata.annotations, 'kima.dev/attested-at': '2030-01-01T00:00:00Z'}),
   untrusted, false],
  ['a tenant changes another label', TENANT,
   pod({...untrusted.metadata.labels, 'tier': 'core'}, untrusted.metadata.annotations), untrusted,
   true],
  ['a tenant changes another annotation', TENANT,
   pod(untrusted.metadata.labels, {...untrusted.metadata.annotations, 'note': 'x'}), untrusted,
   true],
  ['a tenant creates a pod without kima labels', TENANT, pod({'app': 'upf'}), null, true],
  ['a tenant updates a pod that has no labels', TENANT, pod(null, {'a': 'b'}), pod(null, null),
   true],
  ['a binding that carries a kima.dev/reason annotation onto the pod', TENANT,
   {metadata: {name: 'upf-0', namespace: 'open5gs', annotations: {'kima.dev/reason': 'fine'}},
    target: {kind: 'Node', name: 'node-1'}},
   null, false],
  ['the scheduler binds a pod', 'system:kube-scheduler',
   {metadata: {name: 'upf-0', namespace: 'open5gs'}, target: {kind: 'Node', name: 'node-1'}}, null,
   true],
  ['a tenant sets another kima.dev/ label', TENANT,
   pod({...untrusted.metadata.labels, 'kima.dev/foo': 'bar'}, untrusted.metadata.annotations),
   untrusted, false],
  ['a tenant sets another kima.dev/ annotation', TENANT,
   pod(untrusted.metadata.labels, {...untrusted.metadata.annotations, 'kima.dev/foo': 'bar'}),
   untrusted, false],
  ['a tenant removes the reason annotation', TENANT, pod(untrusted.metadata.labels, {}), untrusted,
   false],
  ['a tenant removes every annotation', TENANT, pod(untrusted.metadata.labels, null), untrusted,
   false],
  ['a tenant sets the trust label to an empty value', TENANT,
   pod({'app': 'upf', 'kima.dev/trust': ''}, untrusted.metadata.annotations), untrusted, false],
  ['a tenant adds an empty trust label to a pod without one', TENANT,
   pod({'app': 'upf', 'kima.dev/trust': ''}), pod({'app': 'upf'}), false],
  ['a tenant creates a pod with a kima.dev/ annotation', TENANT,
   pod({'app': 'upf'}, {'kima.dev/reason': 'fine'}), null, false],
  ['a tenant sets a label of another prefix that ends in kima.dev', TENANT,
   pod({...untrusted.metadata.labels, 'notkima.dev/trust': 'trusted'},
       untrusted.metadata.annotations), untrusted, true],
  ['a tenant changes another label while the kima.dev/ ones stay', TENANT,
   pod({...untrusted.metadata.labels, 'app': 'upf2'}, untrusted.metadata.annotations), untrusted,
   true],
  ['the verifier removes a kima.dev/ label', VERIFIER, pod({'app': 'upf'}, {}), untrusted, true],
  ['the verifier creates a status update with its labels', VERIFIER,
   pod({'kima.dev/trust': 'unknown'}), null, true],
  ['the verifier labels a pod trusted', VERIFIER,
   pod({'app': 'upf', 'kima.dev/trust': 'trusted'},
       {'kima.dev/reason': 'every measurement is in policy upf',
        'kima.dev/attested-at': '2026-12-01T00:00:00Z'}),
   untrusted, true],
];
for (const [what, user, object, oldObject, allowed] of cases) {
  let denied;
  try {
    denied = admit(user, object, oldObject);
  } catch (e) {
    check(what, false, `CEL error: ${e.message}`);
    continue;
  }
  check(`${what}: ${allowed ? 'admitted' : 'denied'}`, allowed === (denied.length === 0),
        denied.join('; '));
}

// Pod templates: no kima.dev/ key, whoever writes them.
const tpl = (meta) => ({spec: {template: {metadata: meta, spec: {containers: []}}}});
const templateCases = [
  ['a Deployment whose template is labelled trusted', 'Deployment', TENANT,
   tpl({labels: {'app': 'upf', 'kima.dev/trust': 'trusted'}}), false],
  ['a StatefulSet whose template carries a kima.dev/reason annotation', 'StatefulSet', TENANT,
   tpl({labels: {'app': 'upf'}, annotations: {'kima.dev/reason': 'fine'}}), false],
  ['a CronJob whose job template is labelled trusted', 'CronJob', TENANT,
   {spec: {schedule: '* * * * *', jobTemplate: {spec: {template: {
     metadata: {labels: {'kima.dev/trust': 'trusted'}}}}}}}, false],
  ['a PodTemplate labelled trusted', 'PodTemplate', TENANT,
   {template: {metadata: {labels: {'kima.dev/trust': 'trusted'}}}}, false],
  ['the verifier writes a template labelled trusted', 'Deployment', VERIFIER,
   tpl({labels: {'kima.dev/trust': 'trusted'}}), false],
  ['a Deployment with ordinary labels', 'Deployment', TENANT, tpl({labels: {'app': 'upf'}}), true],
  ['a Deployment whose template has no metadata', 'Deployment', TENANT,
   {spec: {template: {spec: {}}}}, true],
  ['a ReplicationController without a template', 'ReplicationController', TENANT,
   {spec: {replicas: 0}}, true],
  ['a CronJob with ordinary labels', 'CronJob', TENANT,
   {spec: {jobTemplate: {spec: {template: {metadata: {labels: {'app': 'x'}}}}}}}, true],
  ['a PodTemplate without metadata', 'PodTemplate', TENANT, {template: {spec: {}}}, true],
];
const trules = templates ? templates.spec.matchConstraints.resourceRules : [];
check('templates of deployments, statefulsets, daemonsets, replicasets, jobs, cronjobs, ' +
      'replicationcontrollers and podtemplates',
      ['deployments', 'statefulsets', 'daemonsets', 'replicasets', 'jobs', 'cronjobs',
       'replicationcontrollers', 'podtemplates']
          .every((r) => trules.some((t) => t.resources.includes(r))), JSON.stringify(trules));
for (const [what, kind, user, object, allowed] of templateCases) {
  let denied;
  try {
    denied = admit(user, object, null, templates, kind);
  } catch (e) {
    check(what, false, `CEL error: ${e.message}`);
    continue;
  }
  check(`${what}: ${allowed ? 'admitted' : 'denied'}`, allowed === (denied.length === 0),
        denied.join('; '));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
