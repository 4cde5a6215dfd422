// Draws a model as SVG: a deterministic layout (groups as columns in name
// order, entities first and addresses last, workloads by name within a
// group), one path per edge, coloured by a class.

const COLW = 190, ROWH = 22, ROWS = 36, TOP = 40, PAD = 16, GAP = 24;
// DENSE is the number of edges past which they are drawn without arrowheads.
const DENSE = 2000;

const esc = s => String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function groupLabel(g) {
  if (g === ' entities') return 'entities';
  if (g === '~addresses') return 'addresses';
  return g;
}

// layout places the nodes: each group a column (or several, ROWS nodes
// each) in name order.
export function layout(nodes) {
  const groups = new Map();
  for (const n of nodes) {
    if (!groups.has(n.group)) groups.set(n.group, []);
    groups.get(n.group).push(n);
  }
  const pos = new Map(), boxes = [];
  let x = PAD, height = 0;
  for (const g of [...groups.keys()].sort()) {
    const list = groups.get(g).sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    const cols = Math.ceil(list.length / ROWS);
    list.forEach((n, i) => pos.set(n.id, { x: x + Math.floor(i / ROWS) * COLW + 12, y: TOP + (i % ROWS) * ROWH }));
    const h = Math.min(list.length, ROWS) * ROWH + 12;
    boxes.push({ g, x, w: cols * COLW - 10, h });
    height = Math.max(height, TOP + h);
    x += cols * COLW + GAP;
  }
  return { pos, boxes, width: x + PAD, height: height + PAD };
}

// hash spreads the edges of one pair over a few curvatures.
function hash(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return Math.abs(h);
}

function pathOf(a, b, salt) {
  if (!a || !b) return '';
  if (a === b) {
    return `M${a.x} ${a.y}c28 -22 28 22 0 0`;
  }
  const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
  const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
  if (Math.abs(dx) < 1) {
    // Within a column: bow to the right, into the column, never off the
    // left edge of the map.
    const bend = 50 + (salt % 4) * 12 + Math.abs(dy) / 4;
    return `M${a.x} ${a.y}Q${(mx + bend).toFixed(1)} ${my.toFixed(1)} ${b.x} ${b.y}`;
  }
  const bend = 14 + (salt % 4) * 9;
  const cx = mx - (dy / len) * bend, cy = my + (dx / len) * bend;
  return `M${a.x} ${a.y}Q${cx.toFixed(1)} ${cy.toFixed(1)} ${b.x} ${b.y}`;
}

export class MapView {
  // svg is the <svg> to draw into; onEdge(key) is called on a click.
  constructor(svg, onEdge) {
    this.svg = svg;
    this.index = new Map(); // edge key → path element
    this.lay = null;
    svg.addEventListener('click', ev => {
      const p = ev.target.closest('path.e');
      if (p) onEdge(p.dataset.k);
    });
  }

  // render draws every node and edge anew; edges are {key, src, dst, cls}.
  render(nodes, edges) {
    const lay = layout(nodes);
    this.lay = lay;
    const parts = [];
    // Arrowheads in the edge's colour (context-stroke), their tip at the
    // rim of the destination's circle.
    parts.push(`<defs><marker id="${this.svg.id}-arrow" viewBox="0 0 8 8" refX="13" refY="4" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M0 0L8 4L0 8z" fill="context-stroke"/></marker></defs>`);
    parts.push('<g class="groups">');
    for (const b of lay.boxes) {
      parts.push(`<rect class="group" x="${b.x}" y="${TOP - 26}" width="${b.w}" height="${b.h + 20}" rx="6"/><text class="group" x="${b.x + 8}" y="${TOP - 10}">${esc(groupLabel(b.g))}</text>`);
    }
    parts.push('</g><g class="edges">');
    for (const e of edges) {
      parts.push(`<path class="e ${e.cls}" data-k="${esc(e.key)}" d="${pathOf(lay.pos.get(e.src), lay.pos.get(e.dst), hash(e.key))}"/>`);
    }
    parts.push('</g><g class="nodes">');
    for (const n of nodes) {
      const p = lay.pos.get(n.id);
      parts.push(`<g class="node" data-id="${esc(n.id)}" data-group="${esc(n.group)}"><circle class="n ${n.kind}" cx="${p.x}" cy="${p.y}" r="5"/><text x="${p.x + 9}" y="${p.y + 4}">${esc(n.label)}</text></g>`);
    }
    parts.push('</g>');
    // Arrowheads cost paint and say little on a dense map.
    this.svg.classList.toggle('dense', edges.length > DENSE);
    this.svg.setAttribute('width', lay.width);
    this.svg.setAttribute('height', lay.height);
    this.svg.innerHTML = parts.join('');
    this.index.clear();
    for (const el of this.svg.querySelector('g.edges').children) this.index.set(el.dataset.k, el);
    if (this.selected) this.select(this.selected);
  }

  // canPlace reports whether both ends of an edge have a position, so it
  // can be added without a new layout.
  canPlace(src, dst) {
    return this.lay && this.lay.pos.has(src) && this.lay.pos.has(dst);
  }

  // setEdge adds an edge or changes its class, without a new layout.
  setEdge(e) {
    let el = this.index.get(e.key);
    if (!el) {
      el = document.createElementNS('http://www.w3.org/2000/svg', 'path');
      el.dataset.k = e.key;
      el.setAttribute('d', pathOf(this.lay.pos.get(e.src), this.lay.pos.get(e.dst), hash(e.key)));
      this.svg.querySelector('g.edges').appendChild(el);
      this.index.set(e.key, el);
    }
    const cls = 'e ' + e.cls + (this.selected === e.key ? ' sel' : '');
    if (el.getAttribute('class') !== cls) el.setAttribute('class', cls);
  }

  select(key) {
    if (this.selected) this.index.get(this.selected)?.classList.remove('sel');
    this.selected = key;
    this.index.get(key)?.classList.add('sel');
  }

  // filter dims the nodes and edges whose ids do not contain text.
  filter(text) {
    const t = text.trim().toLowerCase();
    for (const g of this.svg.querySelectorAll('g.node')) g.classList.toggle('dim', t !== '' && !g.dataset.id.toLowerCase().includes(t));
    for (const el of this.index.values()) el.classList.toggle('dim', t !== '' && !el.dataset.k.toLowerCase().includes(t));
  }
}
