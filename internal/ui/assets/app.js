// The page: wires the relay's flow stream into the map, the policy view
// and the impact preview.

import { AuthError, getJSON, setToken, stream } from './api.js';
import { h, table } from './dom.js';
import { FlowMap, edgeKey, planChanges, policyEdges, policyKey, podWorkload } from './model.js';
import { MapView } from './render.js';

const params = new URLSearchParams(location.search);
// LAST is how many held flows the map starts from (?last=N).
const LAST = Number(params.get('last')) || 2000;
// RELAYOUT_MS spaces full layouts while new workloads keep coming.
const RELAYOUT_MS = 250;

const $ = id => document.getElementById(id);
const model = new FlowMap();
const sets = new Map(); // "namespace/name" → PolicySetSummary
const nodeStates = new Map();
let lost = 0;

// stats are the map's renders, for tests and make bench-ui: when each
// batch of flows arrived, how long applying it took, and when it was
// painted.
const stats = { renders: [], streamed: 0 };
window.palisade = { model, stats, podWorkload };

// ---- authentication

function needToken(err) {
  $('auth').hidden = false;
  $('auth-message').textContent = err.message;
}
$('auth-form').addEventListener('submit', ev => {
  ev.preventDefault();
  setToken($('auth-token').value.trim());
  location.reload();
});

function failed(where, err) {
  if (err instanceof AuthError) return needToken(err);
  setStatus(`${where}: ${err.message}`);
}

function setStatus(text) { $('status').textContent = text; }

// ---- tabs

for (const b of document.querySelectorAll('#tabs button')) {
  b.addEventListener('click', () => showTab(b.dataset.tab));
}
function showTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + name;
  if (name === 'impact') drawImpact();
}

// ---- policies and links

// commitOf is the commit of a revision such as "main@sha1:0a1b…".
function commitOf(rev) {
  const i = rev.lastIndexOf(':');
  return i >= 0 ? rev.slice(i + 1) : rev.slice(rev.lastIndexOf('@') + 1);
}
const shortRev = rev => { const c = commitOf(rev); return rev.slice(0, rev.length - c.length) + c.slice(0, 12); };

// sourceLink is file:line, a link to the file at the revision when the
// PolicySet's repository is on a known forge.
function sourceLink(setName, file, line, revision) {
  if (!file) return '';
  const text = line ? `${file}:${line}` : file;
  const set = sets.get(setName);
  if (set && set.browse && revision) {
    const href = set.browse.replace('{rev}', encodeURIComponent(commitOf(revision))).replace('{file}', file.split('/').map(encodeURIComponent).join('/')).replace('{line}', line || 1);
    return h('a', { href, target: '_blank', rel: 'noopener', class: 'src' }, text);
  }
  return h('code', { class: 'src' }, text);
}

function describePolicy(p) {
  const name = (p.namespace ? p.namespace + '/' : '') + p.name;
  return h('span', { class: 'policy' }, `${p.kind} ${name}`, p.path ? ` ${p.path} ` : ' ',
    sourceLink(p.policySet, p.file, p.line, p.revision), p.revision ? ` @ ${shortRev(p.revision)}` : '');
}

async function loadSets() {
  try {
    const list = await getJSON('v1/policysets');
    sets.clear();
    for (const s of list) sets.set(s.namespace + '/' + s.name, s);
    renderSetList();
  } catch (err) { failed('policy sets', err); }
}

// ---- the map

const view = new MapView($('map'), key => showEdge(key));
let queue = [], firstQueued = 0, scheduled = false, needLayout = false, lastFull = -Infinity, selected = null;
const dirty = new Set();

function onMessage(m) {
  if (m.flow) {
    if (queue.length === 0) firstQueued = performance.now();
    queue.push(m.flow);
    stats.streamed++;
    schedule(0);
  } else if (m.lost) {
    lost += m.lost.count;
  } else if (m.node) {
    nodeStates.set(m.node.name, m.node);
  }
  if (!m.flow) showStreamStatus();
}

function showStreamStatus() {
  const bad = [...nodeStates.values()].filter(n => n.state === 'unreachable' || n.state === 'no-observer' || n.state === 'gone');
  let s = 'live';
  if (bad.length) s += ' · ' + bad.map(n => `${n.name} ${n.state}`).join(', ');
  if (lost) s += ` · ${lost} flows lost`;
  setStatus(s);
}

function schedule(delay) {
  if (scheduled) return;
  scheduled = true;
  const run = () => requestAnimationFrame(flush);
  if (delay > 0) setTimeout(run, delay); else run();
}

const edgeView = e => ({ key: e.key, src: e.src, dst: e.dst, cls: e.verdict });

function flush() {
  scheduled = false;
  const t0 = performance.now();
  const received = firstQueued;
  const batch = queue;
  queue = [];
  for (const f of batch) {
    const r = model.add(f);
    if (r.layout) needLayout = true;
    dirty.add(r.edge);
  }
  let full = false;
  if (needLayout && t0 - lastFull >= RELAYOUT_MS) {
    view.render([...model.nodes.values()], [...model.edges.values()].map(edgeView));
    view.filter($('map-filter').value);
    needLayout = false;
    dirty.clear();
    lastFull = performance.now();
    full = true;
  } else {
    for (const e of dirty) {
      if (view.canPlace(e.src, e.dst)) { view.setEdge(edgeView(e)); dirty.delete(e); }
    }
    if (needLayout) schedule(RELAYOUT_MS - (t0 - lastFull));
  }
  $('map-counts').textContent = `${model.nodes.size} workloads · ${model.edges.size} edges · ${model.flows} flows`;
  if (selected && batch.some(f => selectedTouched(f))) showEdge(selected);
  const rec = { received, applied: t0, ms: performance.now() - t0, flows: batch.length, full, nodes: model.nodes.size, edges: model.edges.size, painted: 0 };
  stats.renders.push(rec);
  if (stats.renders.length > 1000) stats.renders.shift();
  requestAnimationFrame(() => requestAnimationFrame(() => { rec.painted = performance.now(); }));
  document.body.dataset.edges = model.edges.size;
}

function selectedTouched(f) {
  const e = model.edges.get(selected);
  return e && e.recent.includes(f);
}

$('map-filter').addEventListener('input', ev => view.filter(ev.target.value));

function showEdge(key) {
  const e = model.edges.get(key);
  if (!e) return;
  selected = key;
  view.select(key);
  const counts = Object.entries(e.counts).map(([v, n]) => h('span', { class: 'v-' + v }, `${n} ${v} `));
  const flows = [...e.recent].reverse().map(f => h('div', { class: 'flow', 'data-verdict': f.verdict },
    h('div', {}, h('b', { class: 'v-' + f.verdict }, f.verdict), f.dropReason ? ` (${f.dropReason})` : '', ` at ${f.direction} · ${new Date(f.time).toLocaleTimeString()} · node ${f.node}`),
    h('div', {}, h('code', {}, `${f.source.ip || f.source.entity}:${f.source.port || ''} → ${f.destination.ip || f.destination.entity}:${f.destination.port || ''}`)),
    f.policy ? h('div', { class: 'why' }, f.verdict === 'forwarded' ? 'allowed by ' : 'decided by ', describePolicy(f.policy)) : '',
    (f.isolating || []).length ? h('div', { class: 'why' }, 'default deny: isolated by ', f.isolating.map((p, i) => [i ? '; ' : '', describePolicy(p)])) : ''));
  $('edge-panel').replaceChildren(h('h3', { id: 'edge-title' }, `${e.src} → ${e.dst} ${e.port}/${e.proto}`), h('p', {}, counts), ...flows);
}

async function follow() {
  let last = LAST;
  for (;;) {
    try {
      setStatus('live');
      await stream(`v1/flows?follow=1${last ? '&last=' + last : ''}`, onMessage);
      setStatus('the relay ended the stream; reconnecting…');
    } catch (err) {
      if (err instanceof AuthError) return needToken(err);
      setStatus(`flows: ${err.message}; reconnecting…`);
    }
    last = 0; // what was held has been shown
    await new Promise(r => setTimeout(r, 2000));
  }
}

// ---- policy view

function renderSetList() {
  const items = [...sets.values()].map(s => h('li', {}, h('a', { 'data-set': s.namespace + '/' + s.name, onclick: () => showSet(s.namespace, s.name) }, `${s.namespace}/${s.name}`)));
  $('set-list').replaceChildren(h('h3', {}, 'PolicySets'), items.length ? h('ul', { class: 'sets' }, items) : h('p', { class: 'hint' }, 'No PolicySet in the namespaces you may see.'));
}

const condCell = c => h('span', { class: 'cond-' + c.status }, c.status);
const when = t => (t ? new Date(t).toLocaleString() : '');

async function showSet(ns, name) {
  for (const a of document.querySelectorAll('#set-list a')) a.classList.toggle('sel', a.dataset.set === `${ns}/${name}`);
  let v;
  try { v = await getJSON(`v1/policysets/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`); } catch (err) {
    if (err instanceof AuthError) return needToken(err);
    $('set-view').replaceChildren(h('p', { class: 'error' }, err.message));
    return;
  }
  const setName = `${ns}/${name}`;
  sets.set(setName, { ...sets.get(setName), ...v });
  const pick = types => v.conditions?.filter(c => types.includes(c.type)) || [];
  const main = pick(['Ready', 'Enforced', 'Drifted']);
  const rest = (v.conditions || []).filter(c => !main.includes(c));
  const nodes = v.nodes.map(n => {
    const cond = t => { const c = (n.conditions || []).find(c => c.type === t); return c ? condCell(c) : ''; };
    return [n.name, n.enforces ? shortRev(n.revision) : 'nothing of this set', n.pendingRevision ? shortRev(n.pendingRevision) : '',
      n.enforces ? String(n.generation ?? '') : '', n.enforces ? `${n.enforced ?? 0}/${n.policies ?? 0}` + (n.partial ? `, ${n.partial} partly` : '') + (n.notEnforced ? `, ${n.notEnforced} not` : '') : '',
      cond('Ready'), cond('Enforced'), cond('Drifted'), when(n.lastVerified), String(n.driftRepairs || 0)];
  });
  const drifts = v.nodes.flatMap(n => (n.drifts || []).slice(0, 5).map(d => [n.name, when(d.time), d.kind, d.what, d.repaired ? 'repaired' : 'not repaired: ' + (d.message || '')]));
  const objects = v.nodes.flatMap(n => (n.objects || []).map(o => [n.name, `${o.kind} ${o.namespace ? o.namespace + '/' : ''}${o.name}`, o.state, o.reason, o.message]));
  const policies = v.policies.map(p => {
    const key = policyKey(p);
    const edges = policyEdges(model, key);
    return [h('span', { class: 'pname', 'data-policy': key }, key), sourceLink(setName, p.file, p.line, v.revision),
      p.error ? h('span', { class: 'error' }, p.error) : h('span', { class: 'selects' }, p.host ? 'host firewall; ' : '', p.selects.join(', ') || 'no running pod', p.hiddenSelects ? ` (+${p.hiddenSelects} hidden)` : ''),
      edges.length ? h('ul', { class: 'pedges' }, edges.map(x => h('li', {}, h('a', { href: '#', onclick: ev => { ev.preventDefault(); showTab('map'); showEdge(x.edge.key); } }, `${x.edge.src} → ${x.edge.dst} ${x.edge.port}/${x.edge.proto}`), ` ${x.how} (`, h('span', { class: 'v-' + x.edge.verdict }, x.edge.verdict), ')'))) : h('span', { class: 'hint' }, 'none observed')];
  });
  $('set-view').replaceChildren(
    h('h2', {}, `PolicySet ${ns}/${name}`),
    h('p', {}, 'Revision ', h('code', { id: 'set-revision' }, v.revision || 'none applied'), v.attemptedRevision && v.attemptedRevision !== v.revision ? ` (last attempted ${v.attemptedRevision})` : '',
      v.source ? [' from ', h('code', {}, v.source)] : '', v.path ? ` path ${v.path}` : '', v.mode ? ` · mode ${v.mode}` : '',
      v.enforcement?.summary ? ` · enforced on ${v.enforcement.summary} nodes` : ''),
    table(['condition', 'status', 'reason', 'message', 'since'], [...main, ...rest].map(c => [c.type, condCell(c), c.reason, c.message, when(c.lastTransitionTime)])),
    h('h3', {}, 'Nodes'),
    table(['node', 'enforces', 'pending', 'generation', 'policies enforced', 'Ready', 'Enforced', 'Drifted', 'last verified', 'drift repairs'], nodes),
    objects.length ? [h('h4', {}, 'Objects not fully enforced'), table(['node', 'object', 'state', 'reason', 'message'], objects)] : '',
    h('h3', {}, 'Recent drift'),
    drifts.length ? table(['node', 'time', 'kind', 'what', ''], drifts) : h('p', { class: 'hint' }, 'No kernel drift reported.'),
    h('h3', {}, 'Policies'),
    table(['policy', 'source', 'selects', 'observed edges it decides'], policies),
    v.hiddenPolicies ? h('p', { class: 'hint' }, `${v.hiddenPolicies} more in namespaces you may not see.`) : '');
  document.body.dataset.set = setName;
}

// ---- impact preview

let plan = null, planEdges = [];
const impact = new MapView($('impact'), key => showChange(key));

function setPlan(text, from) {
  $('plan-error').hidden = true;
  try {
    const p = JSON.parse(text);
    planEdges = planChanges(p);
    plan = p;
  } catch (err) {
    $('plan-error').hidden = false;
    $('plan-error').textContent = `${from}: ${err.message}`;
    return;
  }
  $('plan-summary').textContent = `${plan.base ? 'against ' + plan.base + ': ' : ''}${plan.changed ?? planEdges.length} of ${plan.replayed ?? '?'} replayed flows change; ${plan.broken ?? 0} allowed flows break`;
  drawImpact();
}

function drawImpact() {
  if (!plan) return;
  const nodes = new Map(model.nodes);
  for (const c of planEdges) for (const n of [c.src, c.dst]) if (!nodes.has(n.id)) nodes.set(n.id, n);
  const edges = [...model.edges.values()].map(e => ({ key: e.key, src: e.src, dst: e.dst, cls: 'base' }));
  for (const c of planEdges) edges.push({ key: 'plan:' + edgeKey(c.src.id, c.dst.id, c.port, c.proto), src: c.src.id, dst: c.dst.id, cls: c.status });
  impact.render([...nodes.values()], edges);
  document.body.dataset.plan = planEdges.length;
}

function describeDecision(d) {
  if (!d) return '';
  const origin = o => [`${o.kind} ${o.namespace ? o.namespace + '/' : ''}${o.name}${o.path ? ' ' + o.path : ''} `, h('code', {}, o.file ? `${o.file}:${o.line}:${o.column}` : '')];
  return h('span', {}, `${d.reason} at ${d.direction}${d.endpoint ? ' of ' + d.endpoint : ''}: `,
    d.rule ? origin(d.rule) : '', (d.policies || []).map((o, i) => [i ? '; ' : '', origin(o)]));
}

function showChange(key) {
  impact.select(key);
  const c = planEdges.find(c => 'plan:' + edgeKey(c.src.id, c.dst.id, c.port, c.proto) === key);
  if (!c) return;
  const ch = c.change;
  $('impact-panel').replaceChildren(h('h3', {}, `${c.src.id} → ${c.dst.id} ${c.port}/${c.proto}`),
    h('p', {}, h('b', { class: c.status }, c.status), ': ', h('span', { class: 'v-' + ch.before }, ch.before), ' → ', h('span', { class: 'v-' + ch.after }, ch.after), `, ${ch.flows} flow(s)`, ch.lines?.length ? ` (lines ${ch.lines.join(', ')})` : ''),
    h('p', {}, 'now: ', describeDecision(ch.decidedBy)),
    ch.wasDecidedBy ? h('p', {}, 'was: ', describeDecision(ch.wasDecidedBy)) : '');
}

$('plan-file').addEventListener('change', async ev => {
  const f = ev.target.files[0];
  if (f) setPlan(await f.text(), f.name);
});
$('plan-paste-toggle').addEventListener('click', () => { $('plan-paste').hidden = !$('plan-paste').hidden; });
$('plan-paste').addEventListener('submit', ev => { ev.preventDefault(); setPlan($('plan-text').value, 'pasted plan'); });

async function loadServedPlan() {
  try {
    const p = await getJSON('v1/plan');
    setPlan(JSON.stringify(p), 'palisadectl ui --plan');
    showTab('impact');
  } catch (err) {
    if (err instanceof AuthError) needToken(err);
    // 404: no plan served, the usual case.
  }
}

// ---- start

(async () => {
  try {
    const me = await getJSON('v1/whoami');
    $('user').textContent = me.user ? `as ${me.user}` : '';
  } catch (err) {
    return failed('whoami', err);
  }
  await loadSets();
  renderSetList();
  loadServedPlan();
  follow();
})();
