// SPDX-License-Identifier: Apache-2.0
// Does kima's quarantine hold when the namespace also has an allow policy?
// An offline model of how each policy engine orders its rules, applied to
// the manifests of k8s/quarantine/ and the 5G overlay's NetworkPolicy pair,
// with an operator's allow-all NetworkPolicy for the UPF beside them
// (tests/fixtures/quarantine/operator-allow.yaml):
//   NetworkPolicy: policies add up; a pod no policy of a direction selects is
//     open in it; the pod's own node always reaches it.
//   AdminNetworkPolicy (and its successor, ClusterNetworkPolicy): ANPs (the
//     Admin tier) by priority (lower first), their rules in order; Allow
//     (Accept) and Deny are final, Pass goes to the NetworkPolicies; then
//     BaselineAdminNetworkPolicy (the Baseline tier) rules; then open.
//     Ingress peers are pods only: nodes and the world fall through.
//   Cilium: a matching deny rule of any policy wins over every allow; the
//     pod's own node reaches it (allow-localhost); a pod some policy selects
//     in a direction gets only what an allow rule or NetworkPolicy allows.
//   Calico: tiers by order, their policies by order then name (Kubernetes
//     NetworkPolicies: tier default, order 1000); the first matching rule
//     decides (Allow, Deny; Pass: next tier); a tier whose policies select
//     the pod but match nothing ends in its defaultAction (Deny); no policy
//     at all: open; the pod's own node reaches it.
// A construct the model does not know (ports, CIDR peers of NetworkPolicies,
// ...) is an error, never ignored. Prints one line a case and "N passed,
// N failed"; exit 1 on a failure, 2 on an unusable input.
// Usage: node check-quarantine.mjs NPM_DIR K8S_DIR OPERATOR_ALLOW.yaml
import {createRequire} from 'node:module';
import {existsSync, readFileSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';

const [npm, k8s, operatorFile] = process.argv.slice(2);
const require = createRequire(join(resolve(npm), 'node_modules', 'x.js'));
const YAML = require('yaml');
const MAX_SELECTOR = 4096; /* a Calico selector expression, in characters */
const MAX_DEPTH = 32;      /* its nesting */

function readDocs(file) {
  return YAML.parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS()).filter((d) => d);
}

// The objects a kustomization lists (plain files only).
function readKustomization(dir) {
  const k = readDocs(join(dir, 'kustomization.yaml'))[0];
  return (k.resources || []).flatMap((r) => {
    const p = join(dir, r);
    if (!existsSync(p)) throw new Error(`${dir}: resource ${r} does not exist`);
    return readDocs(p);
  });
}

/* ---- the cluster of the cases ---- */
const NAMESPACES = {
  'open5gs': {'kima.dev/protect': 'enforce'},
  'edge': {},
  'kube-system': {},
};
for (const [ns, labels] of Object.entries(NAMESPACES)) labels['kubernetes.io/metadata.name'] = ns;
const LOCAL_NODE = 'node-a', REMOTE_NODE = 'node-b';
const pod = (ns, labels, ip, node) => ({kind: 'pod', ns, labels, ip, node});
const PEERS = {
  'the trusted AMF': pod('open5gs', {'app': 'amf', 'kima.dev/trust': 'trusted'}, '10.0.1.5', REMOTE_NODE),
  'a pod of another namespace': pod('edge', {'app': 'client'}, '10.0.1.9', REMOTE_NODE),
  'cluster DNS': pod('kube-system', {'k8s-app': 'kube-dns'}, '10.0.1.3', REMOTE_NODE),
  'the world (IPv4)': {kind: 'world', ip: '203.0.113.7'},
  'the world (IPv6)': {kind: 'world', ip: '2001:db8::7'},
  'its own node': {kind: 'node', name: LOCAL_NODE, ip: '192.0.2.10'},
  'another node': {kind: 'node', name: REMOTE_NODE, ip: '192.0.2.11'},
};

/* ---- label selectors and CIDRs ---- */
function selects(sel, labels, keyOf = (k) => k) {
  if (!sel) return false;
  const ml = sel.matchLabels || {};
  if (!Object.entries(ml).every(([k, v]) => labels[keyOf(k)] === v)) return false;
  return (sel.matchExpressions || []).every((e) => {
    const key = keyOf(e.key), has = key in labels;
    switch (e.operator) {
      case 'In': return has && e.values.includes(labels[key]);
      case 'NotIn': return !has || !e.values.includes(labels[key]);
      case 'Exists': return has;
      case 'DoesNotExist': return !has;
      default: throw new Error(`unknown selector operator ${e.operator}`);
    }
  });
}

function ipBits(ip) {
  if (ip.includes(':')) {
    const [head, tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    if (groups.length !== 8 || !groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) {
      throw new Error(`bad IPv6 address ${ip}`);
    }
    return {v: 6, n: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n), len: 128};
  }
  const parts = ip.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) < 256)) {
    throw new Error(`bad IPv4 address ${ip}`);
  }
  return {v: 4, n: parts.reduce((a, p) => (a << 8n) | BigInt(p), 0n), len: 32};
}

function inCidr(ip, cidr) {
  const [net, bits] = cidr.split('/');
  const a = ipBits(ip), b = ipBits(net), prefix = Number(bits);
  if (!/^[0-9]{1,3}$/.test(bits || '') || prefix > b.len) throw new Error(`bad CIDR ${cidr}`);
  if (a.v !== b.v) return false;
  const shift = BigInt(b.len - prefix);
  return (a.n >> shift) === (b.n >> shift);
}

/* ---- NetworkPolicy ---- */
function npTypes(np) {
  return np.spec.policyTypes || (np.spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);
}

function npSelects(np, p, dir) {
  return p.kind === 'pod' && np.metadata.namespace === p.ns && selects(np.spec.podSelector || {}, p.labels) &&
      npTypes(np).includes(dir === 'ingress' ? 'Ingress' : 'Egress');
}

function npRuleMatches(np, rule, dir, peer) {
  if (rule.ports) throw new Error(`NetworkPolicy ${np.metadata.name}: ports are not modelled`);
  const peers = rule[dir === 'ingress' ? 'from' : 'to'];
  if (!peers) return true;
  return peers.some((q) => {
    if (q.ipBlock) throw new Error(`NetworkPolicy ${np.metadata.name}: ipBlock is not modelled`);
    if (peer.kind !== 'pod') return false;
    const nsOk = q.namespaceSelector ? selects(q.namespaceSelector, NAMESPACES[peer.ns]) :
                                       peer.ns === np.metadata.namespace;
    return nsOk && (!q.podSelector || selects(q.podSelector, peer.labels));
  });
}

// 'allow', 'deny', or 'none' when no NetworkPolicy isolates the pod.
function npVerdict(nps, dir, p, peer) {
  const mine = nps.filter((np) => npSelects(np, p, dir));
  if (mine.length === 0) return 'none';
  if (dir === 'ingress' && peer.kind === 'node' && peer.name === p.node) return 'allow';
  return mine.some((np) => (np.spec[dir] || []).some((r) => npRuleMatches(np, r, dir, peer))) ? 'allow' : 'deny';
}

/* ---- AdminNetworkPolicy ---- */
function anpSubject(subject, p) {
  if (p.kind !== 'pod') return false;
  if (subject.namespaces) return selects(subject.namespaces, NAMESPACES[p.ns]);
  return selects(subject.pods.namespaceSelector || {}, NAMESPACES[p.ns]) && selects(subject.pods.podSelector, p.labels);
}

function anpPeerMatches(q, peer) {
  if (q.networks) return q.networks.some((c) => inCidr(peer.ip, c));
  if (peer.kind !== 'pod') return false;
  if (q.namespaces) return selects(q.namespaces, NAMESPACES[peer.ns]);
  if (q.pods) {
    return selects(q.pods.namespaceSelector || {}, NAMESPACES[peer.ns]) && selects(q.pods.podSelector, peer.labels);
  }
  throw new Error(`an ANP peer the model does not know: ${JSON.stringify(q)}`);
}

// Allow/Deny/Pass of the first matching rule of the policies, or null.
function anpAction(policies, dir, p, peer) {
  for (const a of policies) {
    if (!anpSubject(a.spec.subject, p)) continue;
    for (const rule of a.spec[dir] || []) {
      if (rule.ports || rule.protocols) throw new Error(`${a.kind} ${a.metadata.name}: ports are not modelled`);
      if ((rule.from || rule.to).some((q) => anpPeerMatches(q, peer))) return rule.action === 'Accept' ? 'Allow' : rule.action;
    }
  }
  return null;
}

function tierOf(objs, kind, cnpTier) {
  const list = objs.filter((o) => o.kind === kind || (o.kind === 'ClusterNetworkPolicy' && o.spec.tier === cnpTier));
  const prios = list.map((a) => a.spec.priority ?? 0);
  if (new Set(prios).size !== prios.length) throw new Error(`two ${cnpTier} policies share a priority: their order is undefined`);
  return list.sort((a, b) => (a.spec.priority ?? 0) - (b.spec.priority ?? 0));
}

function anpEngine(objs) {
  const anps = tierOf(objs, 'AdminNetworkPolicy', 'Admin');
  const banps = tierOf(objs, 'BaselineAdminNetworkPolicy', 'Baseline');
  const nps = objs.filter((o) => o.kind === 'NetworkPolicy');
  return (dir, p, peer) => {
    const a = anpAction(anps, dir, p, peer);
    if (a === 'Allow' || a === 'Deny') return a === 'Allow';
    const np = npVerdict(nps, dir, p, peer);
    if (np !== 'none') return np === 'allow';
    const b = anpAction(banps, dir, p, peer);
    return b !== 'Deny';
  };
}

/* ---- Cilium ---- */
function ciliumLabels(p) {
  const l = {...p.labels, 'io.kubernetes.pod.namespace': p.ns};
  for (const [k, v] of Object.entries(NAMESPACES[p.ns])) l[`io.cilium.k8s.namespace.labels.${k}`] = v;
  return l;
}
const ciliumKey = (k) => k.replace(/^(k8s|any):/, '');

function ciliumEntity(entity, p, peer) {
  switch (entity) {
    case 'all': return true;
    case 'world': return peer.kind === 'world';
    case 'cluster': return peer.kind !== 'world';
    case 'host': return peer.kind === 'node' && peer.name === p.node;
    case 'remote-node': return peer.kind === 'node' && peer.name !== p.node;
    default: return false; /* init, health, unmanaged, ingress, kube-apiserver, none: no such peer here */
  }
}

function ciliumRuleMatches(rule, dir, p, peer) {
  const pre = dir === 'ingress' ? 'from' : 'to';
  const known = [`${pre}Endpoints`, `${pre}Entities`];
  for (const k of Object.keys(rule)) {
    if (!known.includes(k)) throw new Error(`Cilium rule field ${k} is not modelled`);
  }
  const eps = rule[`${pre}Endpoints`] || [], ents = rule[`${pre}Entities`] || [];
  if (eps.some((s) => peer.kind === 'pod' && selects(s, ciliumLabels(peer), ciliumKey))) return true;
  return ents.some((e) => ciliumEntity(e, p, peer));
}

function ciliumEngine(objs) {
  const rules = objs.filter((o) => o.kind === 'CiliumClusterwideNetworkPolicy')
                    .flatMap((o) => (o.spec ? [o.spec] : []).concat(o.specs || []));
  const nps = objs.filter((o) => o.kind === 'NetworkPolicy');
  return (dir, p, peer) => {
    const mine = rules.filter((r) => selects(r.endpointSelector, ciliumLabels(p), ciliumKey));
    const denies = mine.flatMap((r) => r[`${dir}Deny`] || []);
    if (denies.some((d) => ciliumRuleMatches(d, dir, p, peer))) return false;
    if (dir === 'ingress' && peer.kind === 'node' && peer.name === p.node) return true;
    const allows = mine.flatMap((r) => r[dir] || []);
    const isolated = mine.some((r) => r[dir] || r[`${dir}Deny`]);
    const np = npVerdict(nps, dir, p, peer);
    if (!isolated && np === 'none') return true;
    return np === 'allow' || allows.some((a) => ciliumRuleMatches(a, dir, p, peer));
  };
}

/* ---- Calico ---- */
// A selector expression as a function of a label map: ==, !=, in, not in,
// has(), all(), !, &&, ||, parentheses.
function calicoSelector(text) {
  if (typeof text !== 'string' || text.length > MAX_SELECTOR) throw new Error('bad Calico selector');
  const toks = text.match(/\s+|'[^']*'|"[^"]*"|==|!=|&&|\|\||[!(){},]|[A-Za-z0-9_./-]+|./g)
                   .filter((t) => !/^\s+$/.test(t));
  let i = 0;
  const peek = () => toks[i], next = () => toks[i++];
  const want = (t) => {
    if (next() !== t) throw new Error(`Calico selector "${text}": expected ${t}`);
  };
  const str = () => {
    const t = next();
    if (!t || !/^(['"]).*\1$/.test(t)) throw new Error(`Calico selector "${text}": expected a string`);
    return t.slice(1, -1);
  };
  const label = () => {
    const t = next();
    if (!t || !/^[A-Za-z0-9_./-]+$/.test(t)) throw new Error(`Calico selector "${text}": expected a label`);
    return t;
  };
  const set = () => {
    want('{');
    const vals = [];
    while (peek() !== '}') {
      vals.push(str());
      if (peek() === ',') next();
      else if (peek() !== '}') throw new Error(`Calico selector "${text}": expected , or }`);
    }
    next();
    return vals;
  };
  function primary(depth) {
    if (depth > MAX_DEPTH) throw new Error(`Calico selector "${text}": too deep`);
    const t = peek();
    if (t === '!') return next(), ((e) => (l) => !e(l))(primary(depth + 1));
    if (t === '(') {
      next();
      const e = or(depth + 1);
      want(')');
      return e;
    }
    if (t === 'all') return next(), want('('), want(')'), () => true;
    if (t === 'has') {
      next(), want('(');
      const k = label();
      want(')');
      return (l) => k in l;
    }
    const k = label(), op = next();
    if (op === '==') return ((v) => (l) => l[k] === v)(str());
    if (op === '!=') return ((v) => (l) => l[k] !== v)(str());
    if (op === 'in') return ((vs) => (l) => k in l && vs.includes(l[k]))(set());
    if (op === 'not' && next() === 'in') return ((vs) => (l) => !(k in l) || !vs.includes(l[k]))(set());
    throw new Error(`Calico selector "${text}": unknown operator after ${k}`);
  }
  function and(depth) {
    let e = primary(depth);
    while (peek() === '&&') next(), e = ((a, b) => (l) => a(l) && b(l))(e, primary(depth));
    return e;
  }
  function or(depth) {
    let e = and(depth);
    while (peek() === '||') next(), e = ((a, b) => (l) => a(l) || b(l))(e, and(depth));
    return e;
  }
  if (text.trim() === '') return () => true;
  const e = or(0);
  if (i !== toks.length) throw new Error(`Calico selector "${text}": unexpected ${peek()}`);
  return e;
}

function calicoEntityMatches(ent, peer) {
  for (const k of Object.keys(ent || {})) {
    if (!['nets', 'selector', 'namespaceSelector'].includes(k)) throw new Error(`Calico rule field ${k} is not modelled`);
  }
  if (!ent) return true;
  if (ent.nets && !ent.nets.some((c) => inCidr(peer.ip, c))) return false;
  if (ent.selector !== undefined || ent.namespaceSelector !== undefined) {
    if (peer.kind !== 'pod') return false;
    if (ent.selector !== undefined && !calicoSelector(ent.selector)(peer.labels)) return false;
    if (ent.namespaceSelector !== undefined && !calicoSelector(ent.namespaceSelector)(NAMESPACES[peer.ns])) return false;
  }
  return true;
}

// A GlobalNetworkPolicy, or a NetworkPolicy as Calico programs it.
function calicoPolicies(objs) {
  const gnps = objs.filter((o) => o.kind === 'GlobalNetworkPolicy').map((g) => {
    const sel = calicoSelector(g.spec.selector || ''), nsSel = calicoSelector(g.spec.namespaceSelector || '');
    const types = g.spec.types || (g.spec.egress ? (g.spec.ingress ? ['Ingress', 'Egress'] : ['Egress']) : ['Ingress']);
    for (const r of [...(g.spec.ingress || []), ...(g.spec.egress || [])]) {
      for (const k of Object.keys(r)) {
        if (!['action', 'source', 'destination'].includes(k)) throw new Error(`Calico rule field ${k} is not modelled`);
      }
    }
    return {
      tier: g.spec.tier || 'default', order: g.spec.order ?? Infinity, name: g.metadata.name,
      selects: (p, dir) => p.kind === 'pod' && sel(p.labels) && nsSel(NAMESPACES[p.ns]) &&
          types.includes(dir === 'ingress' ? 'Ingress' : 'Egress'),
      action: (dir, p, peer) => {
        for (const r of g.spec[dir] || []) {
          const ok = dir === 'ingress' ? calicoEntityMatches(r.source, peer) && calicoEntityMatches(r.destination, p) :
                                         calicoEntityMatches(r.source, p) && calicoEntityMatches(r.destination, peer);
          if (ok && r.action !== 'Log') return r.action;
        }
        return null;
      },
    };
  });
  const knps = objs.filter((o) => o.kind === 'NetworkPolicy').map((np) => ({
    tier: 'default', order: 1000, name: `knp.default.${np.metadata.name}`,
    selects: (p, dir) => npSelects(np, p, dir),
    action: (dir, p, peer) => ((np.spec[dir] || []).some((r) => npRuleMatches(np, r, dir, peer)) ? 'Allow' : null),
  }));
  return [...gnps, ...knps];
}

function calicoEngine(objs) {
  const tiers = objs.filter((o) => o.kind === 'Tier').map((t) => ({
    name: t.metadata.name, order: t.spec.order ?? Infinity, defaultAction: t.spec.defaultAction || 'Deny'}));
  if (!tiers.some((t) => t.name === 'default')) tiers.push({name: 'default', order: 1e6, defaultAction: 'Deny'});
  const byOrder = (a, b) => (a.order - b.order) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  tiers.sort(byOrder);
  const policies = calicoPolicies(objs).sort(byOrder);
  for (const p of policies) {
    if (!tiers.some((t) => t.name === p.tier)) throw new Error(`policy ${p.name}: tier ${p.tier} does not exist`);
  }
  return (dir, p, peer) => {
    if (dir === 'ingress' && peer.kind === 'node' && peer.name === p.node) return true;
    let selected = false;
    for (const tier of tiers) {
      const mine = policies.filter((q) => q.tier === tier.name && q.selects(p, dir));
      if (mine.length === 0) continue;
      selected = true;
      let action = null;
      for (const q of mine) {
        action = q.action(dir, p, peer);
        if (action) break;
      }
      if (action === 'Allow' || action === 'Deny') return action === 'Allow';
      if (action === 'Pass') continue;
      if (tier.defaultAction === 'Deny') return false;
    }
    return !selected;
  };
}

/* ---- the cases ---- */
// A connection from src to dst: src's egress and dst's ingress must allow it.
function connects(engine, src, dst) {
  return (src.kind !== 'pod' || engine('egress', src, dst)) && (dst.kind !== 'pod' || engine('ingress', dst, src));
}

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

// The expectation for a peer and direction: 'open' or 'closed'.
function expectCases(stack, engine, subject, what, want) {
  for (const [name, peer] of Object.entries(PEERS)) {
    const dirs = peer.kind === 'node' && peer.name === subject.node ? ['in'] : ['in', 'out'];
    for (const d of dirs) {
      const got = d === 'in' ? connects(engine, peer, subject) : connects(engine, subject, peer);
      const w = want(d, peer);
      check(`${stack}: ${what}: ${d === 'in' ? 'from' : 'to'} ${name} ${w}`, (got ? 'open' : 'closed') === w,
            `is ${got ? 'open' : 'closed'}`);
    }
  }
}

const upf = (labels) => pod('open5gs', {'app': 'upf', ...labels}, '10.0.2.7', LOCAL_NODE);
const QUARANTINED = [
  ['an untrusted UPF', upf({'kima.dev/trust': 'untrusted'})],
  ['an unknown UPF', upf({'kima.dev/trust': 'unknown'})],
  ['an unlabelled UPF (new, or its label removed)', upf({})],
  ['a UPF labelled Trusted (another case)', upf({'kima.dev/trust': 'Trusted'})],
];
const TRUSTED = upf({'kima.dev/trust': 'trusted'});
const UNPROTECTED = pod('edge', {'app': 'upf', 'kima.dev/trust': 'untrusted'}, '10.0.3.7', LOCAL_NODE);
const ownNode = (peer) => peer.kind === 'node' && peer.name === LOCAL_NODE;
const open = () => 'open';

function main() {
  const pair = readDocs(join(k8s, 'overlays', '5g-core', 'quarantine.yaml'));
  const operator = readDocs(operatorFile);
  const quarantines = {
    'AdminNetworkPolicy': [anpEngine, readKustomization(join(k8s, 'quarantine', 'admin-network-policy'))],
    'ClusterNetworkPolicy': [anpEngine, readKustomization(join(k8s, 'quarantine', 'cluster-network-policy'))],
    'Cilium': [ciliumEngine, readKustomization(join(k8s, 'quarantine', 'cilium'))],
    'Calico': [calicoEngine, readKustomization(join(k8s, 'quarantine', 'calico'))],
  };
  for (const [name, [makeEngine, objs]] of Object.entries(quarantines)) {
    check(`${name}: the quarantine has objects`, objs.length > 0);
    for (const [how, extra] of [['with the NetworkPolicy pair', pair], ['alone', []]]) {
      const stack = `${name} ${how} + the operator's allow-all`;
      const engine = makeEngine([...objs, ...extra, ...operator]);
      for (const [what, subject] of QUARANTINED) {
        // ANP and CNP ingress peers are pods: what nodes and the world open
        // to a pod is the NetworkPolicies' to decide (documented limit).
        const podsOnly = name === 'AdminNetworkPolicy' || name === 'ClusterNetworkPolicy';
        const want = (d, peer) => (d === 'in' && (ownNode(peer) || (podsOnly && peer.kind !== 'pod')) ? 'open' : 'closed');
        expectCases(stack, engine, subject, what, want);
      }
      expectCases(stack, engine, TRUSTED, 'a trusted UPF', open);
      expectCases(stack, engine, UNPROTECTED, 'an untrusted pod of an unprotected namespace', open);
    }
  }
  // The portable pair alone holds; beside an allow-all policy it does not.
  const alone = anpEngine(pair);
  for (const [what, subject] of QUARANTINED) {
    expectCases('the NetworkPolicy pair alone', alone, subject, what, (d, peer) => (ownNode(peer) ? 'open' : 'closed'));
  }
  expectCases('the NetworkPolicy pair alone', alone, TRUSTED, 'a trusted UPF', open);
  const reopened = anpEngine([...pair, ...operator]);
  expectCases('the NetworkPolicy pair + the operator\'s allow-all (the documented limit)', reopened,
              QUARANTINED[0][1], 'an untrusted UPF', open);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

try {
  main();
} catch (e) {
  console.log(`FAILED: ${e.message}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(2);
}
