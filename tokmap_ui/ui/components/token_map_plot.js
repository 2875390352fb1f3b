// Token map plot: body of gr.HTML's js_on_load (Gradio 6.31 calls it with element, trigger,
// props, server, upload, watch). Draws the map with plotly Scattergl from the plotly.min.js of
// the plotly wheel (loaded by the component's `head`) and sends Python two events:
//   trigger('click', {point, side, id})            one point
//   trigger('lasso', {points, sides, ids})         a lasso/box selection
//   trigger('search', {query})                     the search field (Enter)
// The value protocol ("tokmap.map-plot/1") is documented in token_map_plot.py: arrays come as
// base64 little-endian typed arrays; a value without "xy" is an update of the map already shown
// (same "key"), so re-colouring, highlighting or flying to a point does not resend coordinates.
const root = element.querySelector('.tmp-root');
const gd = root.querySelector('.tmp-plot');
const status = root.querySelector('.tmp-status');
const search = root.querySelector('.tmp-search');
const SIDES = ['source', 'target'];
const S = {key: null, n: 0, x: null, y: null, ids: null, sides: null, codes: null, names: [],
           colours: [], title: '', labels: null, highlight: [], focus: null, traces: [], idx: [],
           overlays: []};

function decode(b64, Type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Type(bytes.buffer);
}

const ENTITIES = {'&': '&amp;', '<': '&lt;', '>': '&gt;'};
function labelOf(i, html = true) {
  // Plotly reads hover text as pseudo-HTML: tokens such as "<s>" or "</b>" must be escaped.
  const base = SIDES[S.sides[i]] + ' #' + S.ids[i];
  if (!S.labels) return base;
  const label = String(S.labels[i]);
  return base + ' ' + (html ? label.replace(/[&<>]/g, c => ENTITIES[c]) : label);
}

function buildBaseTraces() {
  // One Scattergl trace per colour category: plotly's legend then lists and toggles them.
  const ncat = Math.max(1, S.names.length);
  const counts = new Int32Array(ncat);
  for (let i = 0; i < S.n; i++) counts[S.codes[i]]++;
  const xs = [], ys = [], idx = [], fill = new Int32Array(ncat);
  for (let c = 0; c < ncat; c++) {
    xs.push(new Float32Array(counts[c])); ys.push(new Float32Array(counts[c]));
    idx.push(new Int32Array(counts[c]));
  }
  for (let i = 0; i < S.n; i++) {
    const c = S.codes[i], j = fill[c]++;
    xs[c][j] = S.x[i]; ys[c][j] = S.y[i]; idx[c][j] = i;
  }
  const size = S.n > 50000 ? 3 : S.n > 5000 ? 4 : 6;
  S.idx = []; S.traces = [];
  for (let c = 0; c < ncat; c++) {
    if (!counts[c]) continue;
    const text = new Array(counts[c]);
    for (let j = 0; j < counts[c]; j++) text[j] = labelOf(idx[c][j]);
    S.idx.push(idx[c]);
    S.traces.push({type: 'scattergl', mode: 'markers', x: xs[c], y: ys[c], text: text,
                   name: (S.names[c] || 'points') + ' (' + counts[c].toLocaleString() + ')',
                   hovertemplate: '%{text}<extra></extra>',
                   marker: {color: S.colours[c] || '#1f77b4', size: size, opacity: 0.75}});
  }
}

function overlay(points, name, marker) {
  const x = new Float32Array(points.length), y = new Float32Array(points.length);
  const text = points.map((p, j) => { x[j] = S.x[p]; y[j] = S.y[p]; return labelOf(p); });
  return {trace: {type: 'scattergl', mode: 'markers', x: x, y: y, text: text, name: name,
                  hovertemplate: '%{text}<extra></extra>', marker: marker, showlegend: points.length > 0},
          idx: Int32Array.from(points)};
}

function buildOverlays() {
  const hl = S.highlight.filter(p => p >= 0 && p < S.n);
  const fo = (S.focus !== null && S.focus >= 0 && S.focus < S.n) ? [S.focus] : [];
  S.overlays = [
    overlay(hl, 'highlighted (' + hl.length + ')',
            {color: '#ffd400', size: 9, line: {color: '#222', width: 1.5}}),
    // Scattergl strokes open symbols with marker.color.
    overlay(fo, 'search result', {color: '#e4003a', size: 24, symbol: 'circle-open',
                                  line: {color: '#e4003a', width: 3}}),
  ];
}

function layout() {
  return {uirevision: S.key, dragmode: props.dragmode || 'lasso', hovermode: 'closest',
          margin: {l: 40, r: 10, t: 30, b: 30}, showlegend: true,
          legend: {title: {text: S.title}, itemsizing: 'constant'},
          title: {text: props.title || '', font: {size: 14}},
          xaxis: {zeroline: false, showgrid: false}, yaxis: {zeroline: false, showgrid: false},
          // transparent, with the page's text colour: right in Gradio's light and dark themes
          font: {color: getComputedStyle(root).color}, plot_bgcolor: 'rgba(0,0,0,0)',
          paper_bgcolor: 'rgba(0,0,0,0)'};
}

function flyTo(point) {
  // Centre on the point with a window of ~6% of the map's extent on each axis.
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (let i = 0; i < S.n; i++) {
    const x = S.x[i], y = S.y[i];
    if (x < xmin) xmin = x; if (x > xmax) xmax = x; if (y < ymin) ymin = y; if (y > ymax) ymax = y;
  }
  const hx = Math.max((xmax - xmin) * 0.06, 1e-3), hy = Math.max((ymax - ymin) * 0.06, 1e-3);
  const cx = S.x[point], cy = S.y[point];
  return Plotly.relayout(gd, {'xaxis.range': [cx - hx, cx + hx], 'yaxis.range': [cy - hy, cy + hy]});
}

function pointOf(p) {
  const all = S.idx.concat(S.overlays.map(o => o.idx));
  const idx = all[p.curveNumber];
  return idx ? idx[p.pointNumber !== undefined ? p.pointNumber : p.pointIndex] : undefined;
}

let wired = false;
function wire() {
  if (wired) return;
  wired = true;
  gd.on('plotly_click', ev => {
    const point = ev && ev.points && ev.points.length ? pointOf(ev.points[0]) : undefined;
    if (point === undefined) return;
    root.dataset.clicked = String(point);
    trigger('click', {point: point, side: SIDES[S.sides[point]], id: S.ids[point]});
  });
  gd.on('plotly_selected', ev => {
    // A plain click in lasso mode also fires an empty plotly_selected (plotly.js#1471): it is
    // not a selection, and treating it as one would wipe the click's result.
    if (!ev || !ev.points || ev.points.length === 0) return;
    const seen = new Set();
    for (const p of ev.points) { const q = pointOf(p); if (q !== undefined) seen.add(q); }
    const points = Array.from(seen).sort((a, b) => a - b);
    root.dataset.selected = String(points.length);
    trigger('lasso', {points: points, sides: points.map(q => S.sides[q]),
                      ids: points.map(q => S.ids[q])});
  });
}

let drawing = Promise.resolve();
async function render(v) {
  if (!v || !v.key) {
    Plotly.purge(gd); wired = false; S.key = null; S.n = 0;
    status.textContent = (v && v.message) || 'No map yet.';
    root.dataset.ready = '';
    return;
  }
  const t0 = performance.now();
  let rebuild = false;
  if (v.xy) {
    const xy = decode(v.xy, Float32Array);
    S.n = v.n; S.key = v.key; S.x = new Float32Array(S.n); S.y = new Float32Array(S.n);
    for (let i = 0; i < S.n; i++) { S.x[i] = xy[2 * i]; S.y[i] = xy[2 * i + 1]; }
    S.sides = decode(v.sides, Uint8Array);
    if (v.ids) {
      S.ids = decode(v.ids, Int32Array);
    } else {  // implicit ids: the k-th point of a side is token k
      S.ids = new Int32Array(S.n);
      const next = [0, 0];
      for (let i = 0; i < S.n; i++) S.ids[i] = next[S.sides[i]]++;
    }
    S.labels = null; S.highlight = []; S.focus = null; S.labelsDropped = !!v.labels_dropped;
    rebuild = true;
  } else if (v.key !== S.key) {
    status.textContent = 'This update is for a map that is not shown; rebuild the map.';
    return;
  }
  if (v.colour) {
    S.codes = decode(v.colour.codes, Uint8Array); S.names = v.colour.names;
    S.colours = v.colour.colours; S.title = v.colour.title || ''; rebuild = true;
  }
  if ('labels' in v) { S.labels = v.labels; rebuild = true; }
  if ('highlight' in v) S.highlight = v.highlight || [];
  if ('focus' in v) S.focus = (v.focus === null || v.focus === undefined) ? null : v.focus;
  if (rebuild) buildBaseTraces();
  buildOverlays();
  await Plotly.react(gd, S.traces.concat(S.overlays.map(o => o.trace)), layout(),
                     {responsive: true, scrollZoom: true, displaylogo: false});
  wire();
  if ('focus' in v && S.focus !== null) {
    await flyTo(S.focus);
    root.dataset.focus = String(S.focus);
  }
  const ms = performance.now() - t0;
  let text = S.n.toLocaleString() + ' points';
  if (S.labelsDropped) text += ' (hover shows ids; click a point for its token)';
  if (S.focus !== null) text += ' · found: ' + labelOf(S.focus, false);
  if (S.highlight.length) text += ' · ' + S.highlight.length + ' highlighted';
  status.textContent = text;
  root.dataset.ready = S.key;
  root.dataset.renderMs = ms.toFixed(0);
  if (!root.dataset.firstPaintMs) root.dataset.firstPaintMs = performance.now().toFixed(0);
  // For tests and benchmarks: page coordinates of a data point / of a point row.
  const toPixel = (x, y) => {
    const fl = gd._fullLayout, r = gd.getBoundingClientRect();
    return [r.left + fl.xaxis._offset + fl.xaxis.l2p(x), r.top + fl.yaxis._offset + fl.yaxis.l2p(y)];
  };
  gd.tokmap = {state: S, toPixel: toPixel, pixelOf: i => toPixel(S.x[i], S.y[i])};
}

function update() {
  // Serialise renders: a fast second update must not interleave with a slow first draw.
  drawing = drawing.then(() => render(props.value)).catch(err => {
    console.error('token map plot:', err); status.textContent = 'Plot error: ' + err;
  });
}

if (search) {
  search.addEventListener('keydown', ev => {
    if (ev.key === 'Enter' && search.value.trim()) trigger('search', {query: search.value.trim()});
  });
}
// Plotly normally exists here (the component's `head` loads it first), but when the app's page
// head also has this <script>, Gradio skips the duplicate and does not wait for it to run.
function whenPlotly(waited) {
  if (typeof Plotly !== 'undefined') {
    watch('value', update);
    update();
  } else if (waited > 30000) {
    status.textContent = 'plotly.js did not load (see the browser console).';
  } else {
    setTimeout(() => whenPlotly(waited + 50), 50);
  }
}
whenPlotly(0);
