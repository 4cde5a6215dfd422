// Draws a model as SVG: a deterministic layout (groups as boxes side by
// side in name order, entities first and addresses last, workloads by name
// within a group, a circle and its label beside it), one path per edge,
// coloured by a class, in a viewport that fits the map to the view and
// pans and zooms.

// ROWH is a workload's row, ROWS the rows of a column before a group takes
// another. GUTTER is the room left of a column's circles where the edges
// within that column run, away from the labels; LABEL is the gap between a
// circle's centre and its label. HEAD is a group's title bar, GAP the room
// between groups where edges between them turn.
const ROWH = 26, ROWS = 36, GUTTER = 52, LABEL = 10, HEAD = 34, GAP = 70, PAD = 24;
// R is a node's radius; edges end at its rim.
const R = 5;
// DENSE is the number of edges past which they are drawn without arrowheads.
const DENSE = 2000;
// The scales the viewport allows: the fitted map is never drawn smaller
// than MIN_SCALE (larger maps are panned) nor larger than FIT_MAX; the
// wheel zooms between MIN_ZOOM and MAX_ZOOM.
const MIN_SCALE = 0.75, FIT_MAX = 2.4, MIN_ZOOM = 0.1, MAX_ZOOM = 6;

const NODE_FONT = '12px system-ui, sans-serif', GROUP_FONT = '600 13px system-ui, sans-serif';

const esc = s => String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function groupLabel(g) {
  if (g === ' entities') return 'entities';
  if (g === '~addresses') return 'addresses';
  return g;
}

// textWidth measures text as the SVG draws it (the page's fonts), so that
// boxes are sized for their labels; without a canvas it estimates.
const measure = (() => {
  let ctx = null;
  try { ctx = document.createElement('canvas').getContext('2d'); } catch { /* no DOM: estimate */ }
  const cache = new Map();
  return (text, font) => {
    const k = font + '\u0000' + text;
    let w = cache.get(k);
    if (w === undefined) {
      if (ctx) { ctx.font = font; w = ctx.measureText(text).width; } else w = text.length * 7.2;
      if (cache.size > 20000) cache.clear();
      cache.set(k, w);
    }
    return w;
  };
})();

// layout places the nodes: each group a box of columns (ROWS nodes each),
// the groups side by side in name order. A node's position is its circle's
// centre (x, y), its column (col, counted over the whole map) and the end
// of its label (right).
export function layout(nodes) {
  const groups = new Map();
  for (const n of nodes) {
    if (!groups.has(n.group)) groups.set(n.group, []);
    groups.get(n.group).push(n);
  }
  const pos = new Map(), boxes = [];
  let x = PAD, height = 0, col = 0;
  for (const g of [...groups.keys()].sort()) {
    const list = groups.get(g).sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    const x0 = x;
    for (let c = 0; c * ROWS < list.length; c++, col++) {
      const part = list.slice(c * ROWS, (c + 1) * ROWS);
      let lw = 0;
      for (const n of part) lw = Math.max(lw, measure(n.label, NODE_FONT));
      const cx = x + GUTTER;
      part.forEach((n, i) => pos.set(n.id, { x: cx, y: PAD + HEAD + ROWH / 2 + i * ROWH, col, right: cx + LABEL + lw + 4 }));
      // Room after the label for an arrowhead that comes from the right.
      x = cx + LABEL + lw + 22;
    }
    const title = measure(groupLabel(g), GROUP_FONT) + 24;
    const w = Math.max(x - x0, title);
    x = x0 + w;
    const h = HEAD + Math.min(list.length, ROWS) * ROWH + 10;
    boxes.push({ g, x: x0, y: PAD, w, h });
    height = Math.max(height, PAD + h);
    x += GAP;
  }
  return { pos, boxes, width: x - GAP + PAD, height: height + PAD };
}

// pathOf routes an edge from a to b; idx separates the edges of one pair
// of nodes (ports, and both directions). Within a column an edge is an arc
// in the gutter left of the circles, opposite the labels, wider for rows
// further apart and for each further edge of the pair. Between columns it
// leaves the side of its source that faces the destination (the end of
// its column's labels to go right, the circle to go left) and arrives at
// the facing side of the destination: so arrowheads never sit on a label.
export function pathOf(a, b, idx) {
  if (!a || !b) return '';
  const i = Math.min(idx, 8);
  if (a === b) {
    const w = 30 + i * 8;
    return `M${a.x - R} ${a.y - 2}C${a.x - w} ${a.y - 20} ${a.x - w} ${a.y + 20} ${a.x - R - 1} ${a.y + 2}`;
  }
  if (a.col === b.col) {
    // It leaves and enters the circles slanted, towards each other, so
    // that its arrowhead does not read as the end of a straight edge from
    // another column.
    const rows = Math.abs(b.y - a.y) / ROWH, dir = b.y > a.y ? 1 : -1;
    const w = 16 + Math.min(rows, 12) * 3 + i * 7, s = 0.7 * R, t = 0.7 * (R + 1.5);
    return `M${(a.x - s).toFixed(1)} ${(a.y + dir * s).toFixed(1)}C${a.x - w} ${a.y + dir * ROWH * 0.3} ${b.x - w} ${b.y - dir * ROWH * 0.3} ${(b.x - t).toFixed(1)} ${(b.y - dir * t).toFixed(1)}`;
  }
  // Parallel edges alternate above and below the first.
  const off = ((i + 1) >> 1) * (i % 2 ? 9 : -9);
  if (b.col > a.col) {
    const sx = a.right, ex = b.x - R - 1, c = Math.max((ex - sx) * 0.4, 30);
    return `M${sx.toFixed(1)} ${a.y}C${(sx + c).toFixed(1)} ${a.y + off} ${(ex - c).toFixed(1)} ${b.y + off} ${ex} ${b.y}`;
  }
  const sx = a.x - R, ex = b.right + 1, c = Math.max((sx - ex) * 0.4, 30);
  return `M${sx} ${a.y}C${(sx - c).toFixed(1)} ${a.y + off} ${(ex + c).toFixed(1)} ${b.y + off} ${ex.toFixed(1)} ${b.y}`;
}

const pairOf = (src, dst) => (src < dst ? src + '\u0000' + dst : dst + '\u0000' + src);

export class MapView {
  // svg is the <svg> to draw into; onEdge(key) is called on a click. The
  // svg's parent holds the zoom buttons (button[data-zoom]).
  constructor(svg, onEdge) {
    this.svg = svg;
    this.index = new Map(); // edge key → path element
    this.nodeEls = new Map(); // node id → g.node
    this.pairs = new Map(); // pair of node ids → edges drawn between them
    this.edgeEnds = new Map(); // edge key → [src, dst]
    this.lay = null;
    // The viewport: the map point at the top left (x, y) and the scale;
    // auto while the user has not panned or zoomed, so a new layout fits.
    this.vp = { x: 0, y: 0, k: 1, auto: true };
    svg.setAttribute('preserveAspectRatio', 'xMinYMin meet');
    const box = svg.parentElement;
    this.tip = document.createElement('div');
    this.tip.className = 'tip';
    this.tip.hidden = true;
    box.appendChild(this.tip);

    let drag = null, dragged = false;
    svg.addEventListener('click', ev => {
      if (dragged) { dragged = false; return; }
      const p = ev.target.closest('path.e');
      if (p) onEdge(p.dataset.k);
    });
    svg.addEventListener('pointerdown', ev => {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, vx: this.vp.x, vy: this.vp.y, id: ev.pointerId, moving: false };
      dragged = false;
    });
    svg.addEventListener('pointermove', ev => {
      if (drag && ev.pointerId === drag.id) {
        const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (!drag.moving && Math.hypot(dx, dy) < 4) return;
        if (!drag.moving) { drag.moving = true; svg.setPointerCapture(ev.pointerId); svg.classList.add('panning'); this.hover(null); }
        this.vp.x = drag.vx - dx / this.vp.k;
        this.vp.y = drag.vy - dy / this.vp.k;
        this.vp.auto = false;
        this.applyViewport();
        return;
      }
      this.moveTip(ev);
    });
    const end = ev => {
      if (!drag || ev.pointerId !== drag.id) return;
      dragged = drag.moving;
      if (drag.moving) svg.releasePointerCapture(ev.pointerId);
      svg.classList.remove('panning');
      drag = null;
    };
    svg.addEventListener('pointerup', end);
    svg.addEventListener('pointercancel', end);
    svg.addEventListener('wheel', ev => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoomAt(Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.0015)), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    svg.addEventListener('mouseover', ev => {
      const p = ev.target.closest('path.e');
      if (p && !drag) this.hover(p.dataset.k, ev);
    });
    svg.addEventListener('mouseout', ev => {
      const p = ev.target.closest('path.e');
      if (p && ev.relatedTarget !== p) this.hover(null);
    });
    for (const b of box.querySelectorAll('button[data-zoom]')) {
      b.addEventListener('click', () => {
        const z = b.dataset.zoom;
        if (z === 'fit') this.fit();
        else this.zoomAt(z === 'in' ? 1.25 : 0.8, this.size.w / 2, this.size.h / 2);
      });
    }
    // The view's size, kept from the observer: reading it from the
    // element after a render would force a layout of every path at once.
    this.size = { w: 0, h: 0 };
    new ResizeObserver(entries => {
      const r = entries[entries.length - 1].contentRect;
      this.size = { w: r.width, h: r.height };
      if (this.vp.auto) this.fit(); else this.applyViewport();
    }).observe(svg);
  }

  // fit scales the map to the view: as large as fits (at most FIT_MAX),
  // never below MIN_SCALE, centred where it fits and from the top left
  // where it does not.
  fit() {
    this.vp.auto = true;
    if (!this.lay) return;
    const cw = this.size.w, ch = this.size.h;
    if (!cw || !ch) return;
    const { width, height } = this.lay;
    const k = Math.max(MIN_SCALE, Math.min(FIT_MAX, cw / width, ch / height));
    this.vp.k = k;
    this.vp.x = width * k < cw ? -(cw / k - width) / 2 : 0;
    this.vp.y = height * k < ch ? -(ch / k - height) / 2 : 0;
    this.applyViewport();
  }

  // zoomAt scales by f around the view point (px, py).
  zoomAt(f, px, py) {
    const v = this.vp, k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, v.k * f));
    v.x += px / v.k - px / k;
    v.y += py / v.k - py / k;
    v.k = k;
    v.auto = false;
    this.applyViewport();
  }

  applyViewport() {
    const cw = this.size.w, ch = this.size.h;
    if (!cw || !ch) return;
    const v = this.vp;
    const vb = `${v.x.toFixed(1)} ${v.y.toFixed(1)} ${(cw / v.k).toFixed(1)} ${(ch / v.k).toFixed(1)}`;
    if (this.svg.getAttribute('viewBox') !== vb) this.svg.setAttribute('viewBox', vb);
    this.svg.dataset.scale = v.k.toFixed(3);
  }

  // render draws every node and edge anew; edges are {key, src, dst, cls}.
  render(nodes, edges) {
    const lay = layout(nodes);
    this.lay = lay;
    // Number the edges of each pair of nodes in key order, so that their
    // curves separate the same way at every render.
    this.pairs.clear();
    this.edgeEnds.clear();
    const byPair = new Map();
    for (const e of edges) {
      const p = pairOf(e.src, e.dst);
      let l = byPair.get(p);
      if (!l) byPair.set(p, (l = []));
      l.push(e.key);
    }
    const idx = new Map();
    for (const [p, l] of byPair) {
      if (l.length > 1) l.sort();
      l.forEach((k, i) => idx.set(k, i));
      this.pairs.set(p, l.length);
    }
    const parts = [];
    // Arrowheads in the edge's colour (context-stroke), their tip at the
    // path's end: the rim of the destination's circle or the end of its
    // label.
    parts.push(`<defs><marker id="${this.svg.id}-arrow" viewBox="0 0 8 8" refX="7.5" refY="4" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M0 0L8 4L0 8z" fill="context-stroke"/></marker></defs>`);
    parts.push('<g class="groups">');
    for (const b of lay.boxes) {
      parts.push(`<rect class="group" x="${b.x}" y="${b.y}" width="${b.w.toFixed(1)}" height="${b.h}" rx="8"/><text class="group" x="${b.x + 12}" y="${b.y + 21}">${esc(groupLabel(b.g))}</text>`);
    }
    parts.push('</g><g class="edges">');
    for (const e of edges) {
      this.edgeEnds.set(e.key, [e.src, e.dst]);
      parts.push(`<path class="e ${e.cls}" data-k="${esc(e.key)}" d="${pathOf(lay.pos.get(e.src), lay.pos.get(e.dst), idx.get(e.key))}"/>`);
    }
    parts.push('</g><g class="overlay"></g><g class="nodes">');
    for (const n of nodes) {
      const p = lay.pos.get(n.id);
      parts.push(`<g class="node" data-id="${esc(n.id)}" data-group="${esc(n.group)}"><circle class="n ${n.kind}" cx="${p.x}" cy="${p.y}" r="${R}"/><text x="${p.x + LABEL}" y="${p.y + 4}">${esc(n.label)}</text></g>`);
    }
    parts.push('</g>');
    // Arrowheads cost paint and say little on a dense map.
    this.svg.classList.toggle('dense', edges.length > DENSE);
    this.svg.innerHTML = parts.join('');
    this.overlay = this.svg.querySelector('g.overlay');
    this.index.clear();
    for (const el of this.svg.querySelector('g.edges').children) this.index.set(el.dataset.k, el);
    this.nodeEls.clear();
    for (const el of this.svg.querySelector('g.nodes').children) this.nodeEls.set(el.dataset.id, el);
    this.hovered = null;
    if (this.vp.auto) this.fit(); else this.applyViewport();
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
      const p = pairOf(e.src, e.dst), i = this.pairs.get(p) || 0;
      this.pairs.set(p, i + 1);
      this.edgeEnds.set(e.key, [e.src, e.dst]);
      el = document.createElementNS('http://www.w3.org/2000/svg', 'path');
      el.dataset.k = e.key;
      el.setAttribute('d', pathOf(this.lay.pos.get(e.src), this.lay.pos.get(e.dst), i));
      this.svg.querySelector('g.edges').appendChild(el);
      this.index.set(e.key, el);
    }
    const cls = 'e ' + e.cls;
    if (el.getAttribute('class') !== cls) {
      el.setAttribute('class', cls);
      if (this.selected === e.key || this.hovered === e.key) this.drawOverlay();
    }
  }

  // select keeps an edge and its ends highlighted (while its panel shows).
  select(key) {
    this.selected = key;
    this.drawOverlay();
  }

  // hover highlights the edge under the pointer and its ends, and names it
  // in a tip.
  hover(key, ev) {
    if (this.hovered === key) return;
    this.hovered = key;
    this.drawOverlay();
    if (!key) { this.tip.hidden = true; return; }
    const el = this.index.get(key);
    this.tip.textContent = key.replace('\u2192', ' \u2192 ') + ' \u00b7 ' + (el?.getAttribute('class') || '').replace(/^e /, '').replace(/ ?dim/, '');
    this.tip.hidden = false;
    if (ev) this.moveTip(ev);
  }

  moveTip(ev) {
    if (this.tip.hidden) return;
    // Beside the pointer, on its left near the view's right edge.
    const r = this.svg.parentElement.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    const w = this.tip.offsetWidth;
    this.tip.style.left = (x + 14 + w > r.width ? Math.max(0, x - 10 - w) : x + 14) + 'px';
    this.tip.style.top = (y + 14) + 'px';
  }

  // drawOverlay draws the selected and the hovered edge again above the
  // others, wide and on a halo, and marks their ends.
  drawOverlay() {
    if (!this.overlay) return;
    for (const el of this.svg.querySelectorAll('g.node.hl')) el.classList.remove('hl');
    const parts = [];
    for (const key of new Set([this.selected, this.hovered])) {
      const el = key && this.index.get(key);
      if (!el) continue;
      const d = el.getAttribute('d'), cls = (el.getAttribute('class') || '').replace(/^e /, '').replace(/ ?dim/, '');
      parts.push(`<path class="halo" d="${d}"/><path class="hl ${cls}${key === this.selected ? ' sel' : ''}" d="${d}"/>`);
      for (const id of this.edgeEnds.get(key) || []) this.nodeEls.get(id)?.classList.add('hl');
    }
    this.overlay.innerHTML = parts.join('');
    // While the pointer is on an edge the others fade, on maps small
    // enough to restyle every edge at once.
    this.svg.classList.toggle('focus', !!this.hovered && this.index.size <= DENSE);
  }

  // filter dims the nodes and edges whose ids do not contain text.
  filter(text) {
    const t = text.trim().toLowerCase();
    for (const g of this.nodeEls.values()) g.classList.toggle('dim', t !== '' && !g.dataset.id.toLowerCase().includes(t));
    for (const el of this.index.values()) el.classList.toggle('dim', t !== '' && !el.dataset.k.toLowerCase().includes(t));
  }
}
