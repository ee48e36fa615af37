"""The one small script and style sheet every view uses (our own; no library, no network).

:data:`SCRIPT` defines ``window.CircuitsViews`` once (a second copy on the same page is a no-op)
and, when the page has loaded, draws every ``<div class="cv-view">`` from the JSON in the
``<script type="application/json">`` that follows it. Views: ``attention`` (a grid of heads, one
head large, hover shows query token, key token and weight; a token-level table), ``tokens``
(coloured text, one or more series), ``attribution`` (ranked bars with the sum checked against the
logit), ``matrix`` (a heatmap with hover), ``composition`` (writer x reader matrices with a
click-through to the pair) and ``lens`` (top tokens per layer). Plain DOM and ``<canvas>``.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
.cv-view { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 13px; margin: .4em 0; }
.cv-tok { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; padding: 1px 0; border-radius: 2px; cursor: default; }
.cv-tok.cv-picked { outline: 2px solid #222; }
.cv-grid { display: flex; flex-wrap: wrap; gap: 6px; margin: .3em 0; }
.cv-thumb { text-align: center; cursor: pointer; border: 2px solid transparent; padding: 2px; }
.cv-thumb.cv-on { border-color: #1f77b4; }
.cv-thumb canvas { display: block; }
.cv-tip { position: fixed; z-index: 1000; background: #222; color: #fff; padding: 3px 6px; border-radius: 3px; font-size: 12px;
  pointer-events: none; display: none; white-space: pre; }
.cv-row { display: flex; align-items: flex-start; gap: 1em; flex-wrap: wrap; }
.cv-btn { margin: 0 .3em .3em 0; padding: 2px 8px; cursor: pointer; border: 1px solid #999; background: #f6f6f6; border-radius: 3px; }
.cv-btn.cv-on { background: #1f77b4; color: #fff; border-color: #1f77b4; }
.cv-bar { height: 14px; display: inline-block; vertical-align: middle; }
.cv-table td, .cv-table th { border: 1px solid #ddd; padding: 1px 5px; font-size: 12px; }
.cv-table { border-collapse: collapse; }
.cv-note { color: #555; font-size: 12px; }
.cv-bad { color: #b00; font-weight: bold; }
"""

SCRIPT = r"""
(function () {
if (window.CircuitsViews) { return; }
var CV = window.CircuitsViews = {renderers: {}};
function el(tag, attrs, parent, text) {
  var e = document.createElement(tag);
  for (var k in (attrs || {})) { e.setAttribute(k, attrs[k]); }
  if (text !== undefined) { e.textContent = text; }
  if (parent) { parent.appendChild(e); }
  return e;
}
CV.el = el;
function fmt(v) { return v === null || v === undefined ? 'n/a' : (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3)); }
CV.fmt = fmt;
function show(t) { return JSON.stringify(t).slice(1, -1); }
CV.show = show;
// white -> blue (sequential, t in [0, 1]) or blue <- white -> red (diverging, t in [-1, 1]), as [r, g, b]
function rgb(t, diverging) {
  if (t === null || t === undefined || isNaN(t)) { return [235, 235, 235]; }
  t = Math.max(diverging ? -1 : 0, Math.min(1, t));
  var a = Math.abs(t);
  if (!diverging || t < 0) { return [Math.round(255 - a * 225), Math.round(255 - a * 160), Math.round(255 - a * 75)]; }
  return [Math.round(255 - a * 40), Math.round(255 - a * 200), Math.round(255 - a * 200)];
}
function colour(t, diverging) { return 'rgb(' + rgb(t, diverging).join(',') + ')'; }
CV.colour = colour;
// the colour scale's end: the 95th percentile of |values| (a few outliers, e.g. the loss on BOS, would wash out the rest)
function robustTop(values) {
  var a = values.filter(function (v) { return v !== null && !isNaN(v); }).map(Math.abs).sort(function (x, y) { return x - y; });
  return a.length ? Math.max(a[Math.floor(0.95 * (a.length - 1))], 1e-9) : 1;
}
CV.robustTop = robustTop;
var tip = null;
function tooltip(text, ev) {
  if (!tip) { tip = el('div', {'class': 'cv-tip'}, document.body); }
  if (text === null) { tip.style.display = 'none'; return; }
  tip.textContent = text; tip.style.display = 'block';
  tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
}
CV.tooltip = tooltip;
// A heatmap on a canvas of one pixel per cell, scaled up by CSS: opts.value(r, c) (null: masked), opts.hover(r, c) -> text, opts.click(r, c)
CV.heatmap = function (parent, nRows, nCols, opts) {
  var cell = opts.cell || Math.min(24, (opts.size || 420) / Math.max(nRows, nCols));
  var canvas = el('canvas', {width: nCols, height: nRows, 'class': 'cv-heat'}, parent);
  canvas.style.width = Math.round(nCols * cell) + 'px'; canvas.style.height = Math.round(nRows * cell) + 'px';
  canvas.style.imageRendering = 'pixelated';
  function draw() {
    var ctx = canvas.getContext('2d'), img = ctx.createImageData(nCols, nRows);
    for (var r = 0; r < nRows; r++) { for (var c = 0; c < nCols; c++) {
      var v = opts.value(r, c), px = v === null ? [250, 250, 250] : rgb(opts.scale ? opts.scale(v) : v, opts.diverging), i = 4 * (r * nCols + c);
      img.data[i] = px[0]; img.data[i + 1] = px[1]; img.data[i + 2] = px[2]; img.data[i + 3] = 255;
    } }
    ctx.putImageData(img, 0, 0);
  }
  function at(ev) {
    var box = canvas.getBoundingClientRect();
    var c = Math.floor((ev.clientX - box.left) / box.width * nCols), r = Math.floor((ev.clientY - box.top) / box.height * nRows);
    return (r >= 0 && r < nRows && c >= 0 && c < nCols) ? [r, c] : null;
  }
  if (opts.hover) {
    canvas.addEventListener('mousemove', function (ev) { var p = at(ev); tooltip(p && opts.value(p[0], p[1]) !== null ? opts.hover(p[0], p[1]) : null, ev); });
    canvas.addEventListener('mouseleave', function (ev) { tooltip(null, ev); });
  }
  if (opts.click) { canvas.style.cursor = 'pointer'; canvas.addEventListener('click', function (ev) { var p = at(ev); if (p) { opts.click(p[0], p[1]); } }); }
  draw();
  return {canvas: canvas, draw: draw};
};
// Coloured tokens: value(i) in [0, 1] (or [-1, 1] diverging), hover(i) -> text, click(i)
CV.tokens = function (parent, tokens, value, opts) {
  var box = el('div', {'class': 'cv-text'}, parent), spans = [];
  tokens.forEach(function (t, i) {
    var s = el('span', {'class': 'cv-tok', 'data-i': i}, box, t);
    s.style.background = colour(value(i), opts.diverging);
    if (opts.hover) {
      s.addEventListener('mousemove', function (ev) { tooltip(opts.hover(i), ev); });
      s.addEventListener('mouseleave', function (ev) { tooltip(null, ev); });
    }
    if (opts.click) { s.style.cursor = 'pointer'; s.addEventListener('click', function () { opts.click(i); }); }
    spans.push(s);
  });
  return spans;
};
function buttons(parent, names, on, pick) {
  var bar = el('div', {'class': 'cv-buttons'}, parent), all = [];
  names.forEach(function (n, i) {
    var b = el('button', {'class': 'cv-btn' + (i === on ? ' cv-on' : ''), 'data-i': i, type: 'button'}, bar, n);
    b.addEventListener('click', function () { all.forEach(function (x) { x.className = 'cv-btn'; }); b.className = 'cv-btn cv-on'; pick(i); });
    all.push(b);
  });
  return all;
}
CV.buttons = buttons;
CV.renderers.attention = function (root, d) {
  var n = d.tokens.length, head = d.selected || 0, query = n - 1;
  var w = function (h, q, k) { return k <= q && d.patterns[h][q] ? d.patterns[h][q][k] : null; };
  el('div', {'class': 'cv-note'}, root, 'Click a head to show it; hover a cell for the query token, key token and weight.');
  var grid = el('div', {'class': 'cv-grid'}, root), thumbs = [];
  var row = el('div', {'class': 'cv-row'}, root), big = el('div', {'class': 'cv-big'}, row), side = el('div', {}, row);
  var title = el('div', {'class': 'cv-head-title'}, big);
  function drawBig() {
    big.querySelectorAll('canvas').forEach(function (c) { c.remove(); });
    title.textContent = d.labels[head] + ' (rows: query, columns: key)';
    root.setAttribute('data-head', d.labels[head]);
    CV.heatmap(big, n, n, {size: Math.min(900, Math.max(420, 2 * n)), value: function (q, k) { return w(head, q, k); },
      hover: function (q, k) { return d.labels[head] + '  query ' + q + ' "' + show(d.tokens[q]) + '" -> key ' + k + ' "' + show(d.tokens[k]) + '": ' + fmt(w(head, q, k)); },
      click: function (q) { query = q; drawTokens(); }});
  }
  d.labels.forEach(function (label, h) {
    var t = el('div', {'class': 'cv-thumb' + (h === head ? ' cv-on' : ''), 'data-head': label}, grid);
    CV.heatmap(t, n, n, {size: 64, value: function (q, k) { return w(h, q, k); }});
    el('div', {}, t, label);
    t.addEventListener('click', function () { thumbs.forEach(function (x) { x.className = 'cv-thumb'; }); t.className = 'cv-thumb cv-on'; head = h; drawBig(); drawTokens(); });
    thumbs.push(t);
  });
  var tokenBox = el('div', {'class': 'cv-token-view'}, side);
  function drawTokens() {
    tokenBox.innerHTML = '';
    el('div', {'class': 'cv-note'}, tokenBox, 'Where each head looks from query ' + query + ' "' + show(d.tokens[query]) + '" (click a token to pick the query):');
    CV.tokens(tokenBox, d.tokens, function (i) { return i === query ? 0.35 : 0; }, {click: function (i) { query = i; drawTokens(); }})[query].className += ' cv-picked';
    var table = el('table', {'class': 'cv-table'}, tokenBox);
    d.labels.forEach(function (label, h) {
      var tr = el('tr', {}, table); el('th', {}, tr, label);
      var td = el('td', {}, tr);
      CV.tokens(td, d.tokens.slice(0, query + 1), function (k) { return w(h, query, k); },
        {hover: function (k) { return label + ' from "' + show(d.tokens[query]) + '" to ' + k + ' "' + show(d.tokens[k]) + '": ' + fmt(w(h, query, k)); }});
    });
  }
  drawBig(); drawTokens();
};
CV.renderers.tokens = function (root, d) {
  var box = el('div', {}, root), on = d.selected || 0;
  function draw() {
    box.innerHTML = '';
    var s = d.series[on], vals = s.values.filter(function (v) { return v !== null; });
    var top = robustTop(vals), lo = s.diverging ? -top : Math.min.apply(null, vals.concat([0])), hi = s.diverging ? top : top;
    el('div', {'class': 'cv-note'}, box, s.name + ': ' + (s.diverging ? 'red positive, blue negative, full colour at ' + fmt(top) : 'white ' + fmt(lo) + ' to blue ' + fmt(hi)) +
       ' or beyond (95th percentile of |value|; hover for values)' + (s.note ? '. ' + s.note : ''));
    root.setAttribute('data-series', s.name);
    CV.tokens(box, d.tokens, function (i) { var v = s.values[i]; return v === null ? null : (s.diverging ? v / top : (v - lo) / (hi - lo || 1)); },
      {diverging: s.diverging, hover: function (i) {
        return i + ' "' + show(d.tokens[i]) + '"\n' + d.series.map(function (x) { return x.name + ': ' + fmt(x.values[i]); }).join('\n'); }});
  }
  if (d.series.length > 1) { buttons(root, d.series.map(function (s) { return s.name; }), on, function (i) { on = i; draw(); }); }
  root.appendChild(box); draw();
};
CV.renderers.attribution = function (root, d) {
  var sum = d.components.reduce(function (a, c) { return a + c[1]; }, 0), err = Math.abs(sum - d.logit);
  el('div', {}, root, 'Logit of ' + show(d.target) + ' at position ' + d.position + ' ("' + show(d.token) + '"): ' + fmt(d.logit));
  el('div', {'class': err > d.tolerance ? 'cv-bad' : 'cv-note', 'data-sum': sum}, root,
     'Sum of the ' + d.components.length + ' components: ' + sum.toFixed(4) + ' (error ' + err.toExponential(1) + (err > d.tolerance ? ', MISMATCH' : ', checked') + ')');
  var top = Math.max.apply(null, d.components.map(function (c) { return Math.abs(c[1]); }).concat([1e-9]));
  var table = el('table', {'class': 'cv-table'}, root);
  d.components.slice().sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); }).forEach(function (c) {
    var tr = el('tr', {'data-component': c[0]}, table); el('td', {}, tr, c[0]); el('td', {style: 'text-align:right'}, tr, c[1].toFixed(3));
    var bar = el('span', {'class': 'cv-bar'}, el('td', {}, tr));
    bar.style.width = Math.round(200 * Math.abs(c[1]) / top) + 'px'; bar.style.background = c[1] >= 0 ? '#2a9d4b' : '#d0453a';
  });
};
CV.renderers.matrix = function (root, d) {
  var top = Math.max.apply(null, [].concat.apply([], d.values).map(Math.abs).concat([1e-9]));
  el('div', {'class': 'cv-note'}, root, d.title + ' (rows: ' + d.row_title + ', columns: ' + d.col_title + '; red positive, blue negative, up to ' + fmt(top) + ')');
  CV.heatmap(root, d.rows.length, d.cols.length, {size: 360, diverging: true, value: function (r, c) { return d.values[r][c]; },
    scale: function (v) { return v / top; },
    hover: function (r, c) { return d.row_title + ' "' + show(d.rows[r]) + '", ' + d.col_title + ' "' + show(d.cols[c]) + '": ' + fmt(d.values[r][c]); }});
};
CV.renderers.composition = function (root, d) {
  var kinds = Object.keys(d.scores), on = 0, box = el('div', {}, root), detail = el('div', {'class': 'cv-detail'}, root);
  function pick(r, c) {
    detail.innerHTML = '';
    root.setAttribute('data-pair', d.writers[r] + '>' + d.readers[c]);
    el('b', {}, detail, d.writers[r] + ' -> ' + d.readers[c] + ': ');
    el('span', {}, detail, kinds.map(function (k) { return k + '-composition ' + fmt(d.scores[k][r][c]) + (d.baseline && d.baseline[k] ? ' (baseline ' + fmt(d.baseline[k]) + ')' : ''); }).join(', '));
  }
  function draw() {
    box.innerHTML = '';
    var k = kinds[on], top = Math.max.apply(null, [].concat.apply([], d.scores[k]).concat([1e-9]));
    el('div', {'class': 'cv-note'}, box, k + '-composition, rows: writer head, columns: reader head; click a cell for the pair (white 0 to blue ' + fmt(top) + ')');
    CV.heatmap(box, d.writers.length, d.readers.length, {cell: 22, value: function (r, c) { return d.scores[k][r][c]; }, scale: function (v) { return v / top; },
      hover: function (r, c) { return d.writers[r] + ' -> ' + d.readers[c] + ': ' + fmt(d.scores[k][r][c]); }, click: pick});
  }
  buttons(root, kinds, on, function (i) { on = i; draw(); }); root.appendChild(box); root.appendChild(detail); draw();
};
CV.renderers.lens = function (root, d) {
  el('div', {'class': 'cv-note'}, root, 'Logit lens at position ' + d.position + ' ("' + show(d.token) + '"): top tokens (probability) read from each residual stream');
  var table = el('table', {'class': 'cv-table'}, root);
  d.layers.forEach(function (layer, i) {
    var tr = el('tr', {}, table); el('th', {}, tr, layer);
    d.top[i].forEach(function (t) { var td = el('td', {}, tr); td.textContent = '"' + show(t[0]) + '" ' + t[1].toFixed(2); td.style.background = colour(t[1], false); });
  });
};
CV.render = function (root, d) {
  root.innerHTML = '';
  var draw = CV.renderers[d.kind];
  if (!draw) { throw new Error('unknown view kind ' + d.kind); }
  draw(root, d);
  root.setAttribute('data-rendered', '1');
};
CV.renderAll = function () {
  document.querySelectorAll('div.cv-view:not([data-rendered])').forEach(function (root) {
    var data = document.getElementById(root.id + '-data');
    if (data) { CV.render(root, JSON.parse(data.textContent)); }
  });
};
if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', CV.renderAll); } else { CV.renderAll(); }
})();
"""
