// The map's model: workloads (nodes) and what flows between them (edges),
// built from the relay's flow records. No DOM here.

// Groups that are not namespaces sort first (entities) and last (addresses).
export const ENTITIES = ' entities';
export const ADDRESSES = '~addresses';
export const HIDDEN = '<hidden>';

// podWorkload strips what a controller appends to a pod's name, as
// palisadectl plan and the Go package ui do (Workload): a ReplicaSet's
// pod-template-hash and random suffix, a StatefulSet's ordinal, or up to
// two generated segments.
export function podWorkload(pod, labels) {
  const h = labels && labels['pod-template-hash'];
  if (h) {
    const i = pod.lastIndexOf('-' + h);
    if (i > 0) return pod.slice(0, i);
  }
  let name = pod;
  for (let k = 0; k < 2; k++) {
    const i = name.lastIndexOf('-');
    if (i <= 0 || !generated(name.slice(i + 1))) break;
    name = name.slice(0, i);
  }
  return name;
}

function generated(seg) {
  if (seg === '' || seg.length > 10) return false;
  let digits = 0, random = true;
  for (const c of seg) {
    if (c >= '0' && c <= '9') digits++;
    else if (!(c >= 'a' && c <= 'z')) return false;
    random = random && 'bcdfghjklmnpqrstvwxz2456789'.includes(c);
  }
  return digits === seg.length || (digits > 0 && seg.length >= 4) || (random && seg.length === 5);
}

// endpointNode is the node of a flow's end: a pod's workload, an entity
// (world, host, kube-apiserver, …, or <hidden> for a namespace the user
// may not see), or a bare address.
export function endpointNode(ep) {
  if (ep.pod) {
    const w = podWorkload(ep.pod, ep.labels);
    return { id: ep.namespace + '/' + w, group: ep.namespace, label: w, kind: 'pod' };
  }
  if (ep.entity) return { id: ep.entity, group: ENTITIES, label: ep.entity, kind: ep.entity === HIDDEN ? 'hidden' : 'entity' };
  return { id: ep.ip || '?', group: ADDRESSES, label: ep.ip || '?', kind: 'addr' };
}

// planNode is the node of a plan's pair end (palisadectl plan names
// workloads namespace/name, entities by name, anything else by address).
export function planNode(name) {
  const i = name.indexOf('/');
  if (i > 0) return { id: name, group: name.slice(0, i), label: name.slice(i + 1), kind: 'pod' };
  if (/^[0-9a-f.:]+$/i.test(name) && /[.:]/.test(name)) return { id: name, group: ADDRESSES, label: name, kind: 'addr' };
  return { id: name, group: ENTITIES, label: name, kind: 'entity' };
}

// portOf is a flow's port as edges and plans key it: the destination
// port, or the ICMP type.
export function portOf(f) {
  const proto = (f.protocol || '').toUpperCase();
  if (proto.startsWith('ICMP')) return f.icmpType ?? 0;
  return f.destination.port || 0;
}

export function edgeKey(src, dst, port, proto) {
  return src + '\u2192' + dst + ' ' + port + '/' + String(proto).toUpperCase();
}

// severity orders verdicts: an edge shows the worst it has seen.
const severity = { forwarded: 1, audit: 2, error: 3, dropped: 4 };

// FLOWS_PER_EDGE bounds the flows an edge keeps for its panel.
export const FLOWS_PER_EDGE = 20;

export class FlowMap {
  constructor() {
    this.nodes = new Map(); // id → node
    this.edges = new Map(); // key → edge
    this.flows = 0;
  }

  addNode(n) {
    let node = this.nodes.get(n.id);
    if (!node) {
      node = { ...n };
      this.nodes.set(n.id, node);
      return [node, true];
    }
    return [node, false];
  }

  // add records one flow; it returns {edge, layout}, where layout says
  // that a node is new, so positions change.
  add(f) {
    this.flows++;
    const [src, ns] = this.addNode(endpointNode(f.source));
    const [dst, nd] = this.addNode(endpointNode(f.destination));
    const port = portOf(f), proto = (f.protocol || '').toUpperCase();
    const key = edgeKey(src.id, dst.id, port, proto);
    let e = this.edges.get(key), fresh = false;
    if (!e) {
      e = { key, src: src.id, dst: dst.id, port, proto, counts: {}, verdict: f.verdict, recent: [] };
      this.edges.set(key, e);
      fresh = true;
    }
    e.counts[f.verdict] = (e.counts[f.verdict] || 0) + 1;
    if ((severity[f.verdict] || 0) > (severity[e.verdict] || 0)) e.verdict = f.verdict;
    e.recent.push(f);
    if (e.recent.length > FLOWS_PER_EDGE) e.recent.shift();
    return { edge: e, fresh, layout: ns || nd };
  }
}

// policyKey names a policy the way flows and the policy view do.
export function policyKey(p) {
  return p.kind + '/' + (p.namespace ? p.namespace + '/' : '') + p.name;
}

// policyEdges lists, for one policy, the map's edges whose flows it
// decided: allowed (forwarded), denied by a rule (dropped or audit), or
// denied by default (it isolates the workload).
export function policyEdges(map, key) {
  const out = [];
  for (const e of map.edges.values()) {
    const how = new Set();
    for (const f of e.recent) {
      if (f.policy && policyKey(f.policy) === key) how.add(f.verdict === 'forwarded' ? 'allows' : 'denies');
      if ((f.isolating || []).some(p => policyKey(p) === key)) how.add('denies by default');
    }
    if (how.size) out.push({ edge: e, how: [...how].join(', ') });
  }
  return out;
}

// planChanges turns palisadectl plan -o json into changed edges: broken
// (an allowed flow becomes dropped), opened (a dropped flow becomes
// allowed) or changed.
export function planChanges(plan) {
  if (!plan || typeof plan !== 'object' || !Array.isArray(plan.pairs)) {
    throw new Error('not the output of palisadectl plan -o json: no "pairs" list');
  }
  const allowed = v => v === 'forwarded' || v === 'audit';
  const out = [];
  plan.pairs.forEach((p, i) => {
    if (typeof p.source !== 'string' || typeof p.destination !== 'string' || !Array.isArray(p.changes)) {
      throw new Error(`pairs[${i}]: want "source", "destination" and "changes"`);
    }
    for (const c of p.changes) {
      const status = allowed(c.before) && c.after === 'dropped' ? 'broken'
        : c.before === 'dropped' && allowed(c.after) ? 'opened' : 'changed';
      out.push({ src: planNode(p.source), dst: planNode(p.destination), port: c.port || 0, proto: (c.protocol || '').toUpperCase(), status, change: c });
    }
  });
  return out;
}
