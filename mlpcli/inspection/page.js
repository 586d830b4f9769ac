// The page of `mlpcli page`: preprocessing and forward pass in JavaScript, the same numbers as
// mlpcli's Python (predict.py: to_ink, preprocess_digits, preprocess_none; network.scale01;
// infer.probabilities). Everything the page needs is in the JSON block #mlpcli-data.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("mlpcli-data").textContent);
  var SIDE = 28, BOX = 20, THRESHOLD = 0.25, BRUSH = 22, TOP_UNITS = 8;

  // --- decoding the embedded arrays -------------------------------------------------------------
  function bytesOf(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function float32Of(b64) { // little-endian float32, on any machine
    var bytes = bytesOf(b64), view = new DataView(bytes.buffer), out = new Float32Array(bytes.length / 4);
    for (var i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  var NET = DATA.network, LAYERS = NET.layers, L = LAYERS.length - 1;
  var W = NET.W.map(float32Of), B = NET.b.map(float32Of);
  var NAMES = DATA.classNames;
  var IMG = DATA.imageShape || [SIDE, SIDE]; // (h, w) of the network's input image

  function imageCanvas(canvas, longest) { // an h×w canvas, shown with its longer side `longest` px
    var h = IMG[0], w = IMG[1], m = Math.max(h, w);
    canvas.width = w; canvas.height = h;
    canvas.style.width = (longest * w / m) + "px"; canvas.style.height = (longest * h / m) + "px";
    return canvas;
  }

  // --- the forward pass (network.forward + infer.as_probabilities) ---------------------------------
  var ONE_255 = Math.fround(1 / 255); // network.scale01: float32(x) * float32(1/255), in float32
  var HIDDEN = {
    relu: function (z) { return z > 0 ? z : 0; },
    sigmoid: function (z) { return 0.5 * (1 + Math.tanh(0.5 * z)); },
    tanh: Math.tanh,
    leaky_relu: function (z) { return Math.max(z, 0.01 * z); },
    identity: function (z) { return z; }
  };

  function affine(l, a) { // z = W[l] a + b[l], skipping the inputs that are 0
    var nIn = LAYERS[l - 1], nOut = LAYERS[l], w = W[l - 1], b = B[l - 1];
    var nz = [], k, j;
    for (k = 0; k < nIn; k++) if (a[k] !== 0) nz.push(k);
    var z = new Float64Array(nOut), m = nz.length;
    for (j = 0; j < nOut; j++) {
      var s = b[j], row = j * nIn;
      for (var t = 0; t < m; t++) { k = nz[t]; s += w[row + k] * a[k]; }
      z[j] = s;
    }
    return z;
  }

  function outputLayer(z) {
    var n = z.length, out = new Float64Array(n), i;
    if (NET.output === "softmax") {
      var max = -Infinity, sum = 0;
      for (i = 0; i < n; i++) max = Math.max(max, z[i]);
      for (i = 0; i < n; i++) { out[i] = Math.exp(z[i] - max); sum += out[i]; }
      for (i = 0; i < n; i++) out[i] /= sum;
      return out;
    }
    for (i = 0; i < n; i++) out[i] = NET.output === "sigmoid" ? HIDDEN.sigmoid(z[i]) : z[i];
    return out;
  }

  function asProbabilities(a) { // infer.as_probabilities: non-softmax outputs clipped and normalized
    if (NET.output === "softmax") return Array.from(a);
    var scores = Array.from(a, function (v) { return v > 0 ? v : 0; });
    var total = scores.reduce(function (s, v) { return s + v; }, 0);
    return scores.map(function (v) { return total > 0 ? v / total : 1 / scores.length; });
  }

  function forward(pixels) { // {activations: [A1 .. AL], probabilities}
    if (!pixels || pixels.length !== LAYERS[0]) throw new Error("expected " + LAYERS[0] + " pixels");
    var a = new Float64Array(LAYERS[0]), acts = [];
    for (var i = 0; i < a.length; i++) a[i] = Math.fround(Number(pixels[i]) * ONE_255);
    for (var l = 1; l <= L; l++) {
      var z = affine(l, a);
      if (l === L) { a = outputLayer(z); } else {
        var g = HIDDEN[NET.activations[l - 1]];
        for (var j = 0; j < z.length; j++) z[j] = g(z[j]);
        a = z;
      }
      acts.push(a);
    }
    return { activations: acts, probabilities: asProbabilities(a) };
  }

  // --- preprocessing (predict.to_ink, preprocess_digits, preprocess_none) ---------------------------
  function roundHalfEven(x) { // Python's round() and numpy's np.round on a double
    var f = Math.floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  }
  function roundHalfUp(x) { return Math.floor(x + 0.5 + 1e-6); } // predict._round_half_up

  function border(img, h, w) {
    var out = [], i;
    for (i = 0; i < w; i++) out.push(img[i]);
    for (i = 0; i < w; i++) out.push(img[(h - 1) * w + i]);
    for (i = 0; i < h; i++) out.push(img[i * w]);
    for (i = 0; i < h; i++) out.push(img[i * w + w - 1]);
    return out;
  }
  function median(values) {
    var s = Float64Array.from(values).sort(), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  function toInk(gray, h, w) { // light ink on a dark background: invert when the border is light
    var ink = Float64Array.from(gray);
    if (median(border(ink, h, w)) > 127.5) for (var i = 0; i < ink.length; i++) ink[i] = 255 - ink[i];
    return ink;
  }

  function resampleMatrix(nIn, nOut) { // predict._resample_matrix: (nOut, nIn) triangle weights
    var scale = nIn / nOut, support = Math.max(scale, 1), m = new Float64Array(nOut * nIn);
    for (var o = 0; o < nOut; o++) {
      var c = (o + 0.5) * scale, sum = 0, i;
      for (i = 0; i < nIn; i++) {
        var v = 1 - Math.abs(i + 0.5 - c) / support;
        m[o * nIn + i] = v > 0 ? v : 0;
        sum += m[o * nIn + i];
      }
      for (i = 0; i < nIn; i++) m[o * nIn + i] /= sum;
    }
    return m;
  }

  function resize(img, h, w, h2, w2) { // rows @ img @ cols.T, as predict.resize
    var rows = resampleMatrix(h, h2), cols = resampleMatrix(w, w2);
    var tmp = new Float64Array(h2 * w), out = new Float64Array(h2 * w2), r, i, c, k;
    for (r = 0; r < h2; r++) for (i = 0; i < h; i++) {
      var f = rows[r * h + i];
      if (f !== 0) for (c = 0; c < w; c++) tmp[r * w + c] += f * img[i * w + c];
    }
    for (r = 0; r < h2; r++) for (c = 0; c < w2; c++) {
      var s = 0;
      for (k = 0; k < w; k++) { var g = cols[c * w + k]; if (g !== 0) s += tmp[r * w + k] * g; }
      out[r * w2 + c] = s;
    }
    return out;
  }

  function toUint8(img) { return Array.from(img, function (v) { return roundHalfEven(Math.min(255, Math.max(0, v))); }); }

  function preprocessNone(ink, h, w) { return toUint8(resize(ink, h, w, SIDE, SIDE)); }

  function inkBox(ink, h, w) { // rows and columns holding ≥ THRESHOLD of the strongest ink
    var r0 = h, r1 = -1, c0 = w, c1 = -1, limit = THRESHOLD * 255;
    for (var r = 0; r < h; r++) for (var c = 0; c < w; c++) if (ink[r * w + c] >= limit) {
      r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c);
    }
    return { r0: r0, c0: c0, h: r1 - r0 + 1, w: c1 - c0 + 1 };
  }

  function preprocessDigits(inkIn, h, w) { // null when blank (Python: "the image is blank")
    var med = median(border(inkIn, h, w)), ink = new Float64Array(inkIn.length), peak = 0, i, r, c;
    for (i = 0; i < ink.length; i++) { ink[i] = Math.max(inkIn[i] - med, 0); peak = Math.max(peak, ink[i]); }
    if (peak < 16) return null;
    var gain = 255 / peak;
    for (i = 0; i < ink.length; i++) ink[i] *= gain;
    var box = inkBox(ink, h, w), crop = new Float64Array(box.h * box.w);
    for (r = 0; r < box.h; r++) for (c = 0; c < box.w; c++) crop[r * box.w + c] = ink[(box.r0 + r) * w + box.c0 + c];
    var scale = BOX / Math.max(box.h, box.w);
    var h2 = Math.max(1, roundHalfEven(box.h * scale)), w2 = Math.max(1, roundHalfEven(box.w * scale));
    var small = resize(crop, box.h, box.w, h2, w2), mass = 0, my = 0, mx = 0;
    for (i = 0; i < small.length; i++) small[i] = Math.min(255, Math.max(0, small[i]));
    for (r = 0; r < h2; r++) for (c = 0; c < w2; c++) {
      var v = small[r * w2 + c];
      mass += v; my += v * (r + 0.5); mx += v * (c + 0.5);
    }
    var top = Math.min(Math.max(roundHalfUp(SIDE / 2 - my / mass), 0), SIDE - h2);
    var left = Math.min(Math.max(roundHalfUp(SIDE / 2 - mx / mass), 0), SIDE - w2);
    var frame = new Float64Array(SIDE * SIDE);
    for (r = 0; r < h2; r++) for (c = 0; c < w2; c++) frame[(top + r) * SIDE + left + c] = small[r * w2 + c];
    return toUint8(frame);
  }

  function preprocess(gray, w, h, mode) { // predict.preprocess: 784 uint8 pixels, or null if blank
    var ink = toInk(gray, h, w);
    return (mode || DATA.preprocess) === "digits" ? preprocessDigits(ink, h, w) : preprocessNone(ink, h, w);
  }

  // --- colors ---------------------------------------------------------------------------------------
  var HEAT = [[12, 7, 40], [95, 24, 122], [200, 55, 90], [250, 140, 40], [252, 236, 150]];
  function heat(t) { // 0..1 → dark purple .. yellow
    t = Math.min(1, Math.max(0, t)) * (HEAT.length - 1);
    var i = Math.min(Math.floor(t), HEAT.length - 2), f = t - i, a = HEAT[i], b = HEAT[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  function diverging(t) { // -1..1 → blue .. white .. red
    t = Math.min(1, Math.max(-1, t));
    return t >= 0 ? [255, 255 * (1 - t * 0.85), 255 * (1 - t * 0.9)] : [255 * (1 + t * 0.9), 255 * (1 + t * 0.75), 255];
  }
  function paint(canvas, n, color) { // n cells of color(i) into canvas's pixels
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(canvas.width, canvas.height);
    for (var i = 0; i < canvas.width * canvas.height; i++) {
      var rgb = i < n ? color(i) : [246, 247, 249];
      img.data[4 * i] = rgb[0]; img.data[4 * i + 1] = rgb[1]; img.data[4 * i + 2] = rgb[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  function grayCanvas(canvas, pixels) {
    paint(canvas, pixels.length, function (i) { var v = pixels[i]; return [v, v, v]; });
  }

  // --- the page -------------------------------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(p) { return (100 * p).toFixed(p >= 0.9995 || p < 0.0005 ? 1 : 2) + " %"; }

  var state = { source: null, index: null, pixels: null, probabilities: null, drawn: null };
  var ui = {};

  function summary() { // data set · layers · test accuracy · checkpoint · preprocessing
    var s = document.getElementById("summary");
    function add(text, bold, id) {
      if (s.childNodes.length) s.appendChild(document.createTextNode(" · "));
      var span = el("span", "", text);
      if (id) span.id = id;
      if (bold) span.appendChild(el("b", "", bold));
      s.appendChild(span);
    }
    add("data set ", DATA.dataset);
    add("layers ", LAYERS.join("-") + " (" + NET.activations.concat([NET.output]).join(", ") + ")");
    add(DATA.accuracy === null ? "test accuracy not computed: the test set is not on disk"
      : "test accuracy ", DATA.accuracy === null ? "" : (100 * DATA.accuracy).toFixed(2) + " %", "accuracy");
    if (DATA.accuracy !== null) s.lastChild.appendChild(document.createTextNode(
      " on " + DATA.examples.nTest.toLocaleString("en") + " images (computed when the page was written)"));
    add("checkpoint ", DATA.checkpoint + (DATA.epoch ? " (epoch " + DATA.epoch + ")" : ""));
    if (DATA.drawing) add("drawings preprocessed as ", DATA.preprocess);
  }

  function makeBars() {
    var bars = document.getElementById("bars");
    ui.bars = NAMES.map(function (name, k) {
      var row = el("div", "bar"), track = el("span", "track"), fill = el("span", "fill"), p = el("span", "pct", "–");
      row.dataset.label = k;
      row.appendChild(el("span", "name", name)); track.appendChild(fill); row.appendChild(track); row.appendChild(p);
      bars.appendChild(row);
      return { row: row, fill: fill, pct: p };
    });
  }

  function makeLayers() {
    var box = document.getElementById("hidden");
    ui.layers = [];
    for (var l = 1; l < L; l++) {
      var n = LAYERS[l], cols = Math.min(n, 50), rows = Math.ceil(n / cols), cell = n > 200 ? 6 : 12;
      var div = el("div", "layer"), label = el("div", "label"), canvas = el("canvas");
      canvas.width = cols; canvas.height = rows;
      canvas.style.width = cols * cell + "px"; canvas.style.height = rows * cell + "px";
      canvas.dataset.layer = l;
      div.appendChild(label); div.appendChild(canvas); box.appendChild(div);
      ui.layers.push({ label: label, canvas: canvas, n: n });
    }
    if (L === 1) box.appendChild(el("p", "note", "This network has no hidden layer."));
  }

  function makeUnits() {
    var box = document.getElementById("units");
    ui.units = [];
    if (L === 1) { document.getElementById("units-panel").style.display = "none"; return; }
    for (var i = 0; i < Math.min(TOP_UNITS, LAYERS[1]); i++) {
      var div = el("div", "unit"), canvas = imageCanvas(el("canvas"), 84), cap = el("div", "caption", "");
      div.appendChild(canvas); div.appendChild(cap); box.appendChild(div);
      ui.units.push({ div: div, canvas: canvas, caption: cap });
    }
  }

  function showLayers(acts) {
    ui.layers.forEach(function (layer, i) {
      var a = acts ? acts[i] : null, n = layer.n, max = 0, active = 0, signed = false;
      if (a) for (var j = 0; j < n; j++) { max = Math.max(max, Math.abs(a[j])); if (a[j] > 0) active++; if (a[j] < 0) signed = true; }
      paint(layer.canvas, n, function (j) {
        if (!a) return [225, 229, 235];
        return signed ? diverging(a[j] / (max || 1)) : heat(a[j] / (max || 1));
      });
      layer.label.textContent = "layer " + (i + 1) + " · " + NET.activations[i] + " · " + n + " units" +
        (a ? " · " + active + " active (> 0) · largest " + max.toFixed(3) : "");
      layer.canvas.title = layer.label.textContent;
    });
  }

  function showUnits(a1) {
    if (!ui.units.length) return;
    var order = [];
    if (a1) { for (var j = 0; j < a1.length; j++) order.push(j); order.sort(function (p, q) { return a1[q] - a1[p] || p - q; }); }
    var w = W[0], n0 = LAYERS[0];
    ui.units.forEach(function (u, i) {
      var j = order[i];
      u.div.style.visibility = j === undefined ? "hidden" : "visible";
      if (j === undefined) return;
      var max = 0;
      for (var k = 0; k < n0; k++) max = Math.max(max, Math.abs(w[j * n0 + k]));
      paint(u.canvas, n0, function (k) { return diverging(w[j * n0 + k] / (max || 1)); });
      u.caption.textContent = "unit " + j + " · " + a1[j].toFixed(2);
      u.div.dataset.unit = j;
    });
  }

  function showProbabilities(probs, trueLabel) {
    var best = -1;
    if (probs) probs.forEach(function (p, k) { if (best < 0 || p > probs[best]) best = k; });
    ui.bars.forEach(function (bar, k) {
      var p = probs ? probs[k] : 0;
      bar.fill.style.width = (100 * p).toFixed(2) + "%";
      bar.pct.textContent = probs ? pct(p) : "–";
      bar.row.dataset.probability = probs ? String(p) : "";
      bar.row.classList.toggle("top", k === best);
      bar.row.classList.toggle("true", trueLabel !== undefined && trueLabel !== null && k === trueLabel);
    });
  }

  function show(pixels, source, index, note) { // show pixels as the network's input, with everything it does
    var result = pixels ? forward(pixels) : null;
    state.source = source; state.index = index === undefined ? null : index;
    state.pixels = pixels ? Array.from(pixels) : null;
    state.probabilities = result ? result.probabilities : null;
    grayCanvas(ui.input, pixels || new Array(LAYERS[0]).fill(0));
    var label = source === "example" ? DATA.examples.labels[index] : null;
    showProbabilities(state.probabilities, label);
    showLayers(result ? result.activations : null);
    showUnits(result && L > 1 ? result.activations[0] : null);
    document.getElementById("input-note").textContent = note;
    Array.prototype.forEach.call(document.querySelectorAll(".example"), function (e, i) {
      e.classList.toggle("selected", source === "example" && i === index);
    });
    return result;
  }

  // --- drawing --------------------------------------------------------------------------------------
  var pad = document.getElementById("pad"), ctx = pad.getContext("2d", { willReadFrequently: true });
  var stroke = null, pending = false;

  function clearPad() {
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height);
    state.drawn = null;
    show(null, "drawing", null, DATA.drawing ? "Draw a digit in the black box (mouse, finger or pen)." : "");
  }
  function drawingPixels() { // the pad's gray levels, row by row (what preprocessing reads)
    var rgba = ctx.getImageData(0, 0, pad.width, pad.height).data, gray = new Array(pad.width * pad.height);
    for (var i = 0; i < gray.length; i++) gray[i] = rgba[4 * i];
    return gray;
  }
  function fromDrawing() {
    pending = false;
    var px = preprocess(drawingPixels(), pad.width, pad.height);
    state.drawn = px;
    var how = DATA.preprocess === "digits" ? "cropped, fitted into 20×20, centered by mass" : "resized to 28×28";
    show(px, "drawing", null, px ? "Your drawing, " + how + " (preprocess: " + DATA.preprocess + ")." : "Nothing drawn yet: the drawing is blank.");
  }
  function point(e) {
    var r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  }
  function brush() {
    ctx.strokeStyle = "#fff"; ctx.fillStyle = "#fff"; ctx.lineWidth = BRUSH; ctx.lineCap = "round"; ctx.lineJoin = "round";
  }
  function down(e) {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    stroke = point(e);
    brush();
    ctx.beginPath(); ctx.arc(stroke[0], stroke[1], BRUSH / 2, 0, 2 * Math.PI); ctx.fill();
    schedule();
  }
  function move(e) {
    if (!stroke) return;
    e.preventDefault();
    var events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    if (!events.length) events = [e];
    brush();
    ctx.beginPath(); ctx.moveTo(stroke[0], stroke[1]);
    events.forEach(function (ev) { stroke = point(ev); ctx.lineTo(stroke[0], stroke[1]); });
    ctx.stroke();
    schedule();
  }
  function up(e) {
    if (!stroke) return;
    stroke = null;
    fromDrawing(); // at the end of a stroke, always up to date
  }
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { if (pending) fromDrawing(); }); } }

  // --- examples -------------------------------------------------------------------------------------
  function makeExamples() {
    var ex = DATA.examples, box = document.getElementById("examples"), note = document.getElementById("examples-note");
    var pixels = ex.pixels ? bytesOf(ex.pixels) : new Uint8Array(0), n0 = LAYERS[0];
    ui.examples = ex.indices.map(function (index, i) {
      var px = Array.from(pixels.subarray(i * n0, (i + 1) * n0)), probs = forward(px).probabilities;
      var pred = probs.indexOf(Math.max.apply(null, probs)), label = ex.labels[i], wrong = pred !== label;
      var div = el("div", "example" + (wrong ? " mistake" : "")), canvas = imageCanvas(el("canvas"), 56);
      grayCanvas(canvas, px);
      div.appendChild(canvas);
      div.appendChild(el("div", "caption", wrong ? NAMES[label] + "→" + NAMES[pred] : NAMES[label]));
      div.title = "test[" + index + "]: true class " + NAMES[label] + ", predicted " + NAMES[pred] + " (" + pct(probs[pred]) + ")";
      div.dataset.index = index;
      div.addEventListener("click", function () { pick(i); });
      box.appendChild(div);
      return { pixels: px, index: index, label: label, predicted: pred, mistake: wrong };
    });
    if (ex.note) note.textContent = "No test images on this page: " + ex.note + ". Fetch the data (mlpcli fetch) and write the page again to get them.";
    else if (!ex.indices.length) note.textContent = "No test images on this page (written with --examples 0).";
    else note.textContent = ex.indices.length + " of the " + ex.nTest.toLocaleString("en") + " test images: first the " + ex.mistakes +
      " most confident mistakes (red: true→predicted), then the first test images. Hover for details.";
  }
  function pick(i) {
    var e = ui.examples[i];
    return show(e.pixels, "example", i, "test[" + e.index + "], true class " + NAMES[e.label] + ": already " + IMG[0] + "×" + IMG[1] + ", shown as it is (no preprocessing).");
  }

  // --- start ----------------------------------------------------------------------------------------
  ui.input = imageCanvas(document.getElementById("input"), 168);
  summary(); makeBars(); makeLayers(); makeUnits(); makeExamples();
  document.getElementById("clear").addEventListener("click", clearPad);
  pad.addEventListener("pointerdown", down);
  pad.addEventListener("pointermove", move);
  pad.addEventListener("pointerup", up);
  pad.addEventListener("pointercancel", up);
  if (DATA.drawing) {
    clearPad();
    document.getElementById("draw-status").textContent = "Strokes like MNIST's: " + BRUSH + " px wide on 280 × 280.";
  } else {
    document.getElementById("draw-panel").style.display = "none";
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height);
    if (ui.examples.length) pick(0); else show(null, "none", null, "No drawing for " + DATA.dataset + " and no test images: use window.mlpcli.classify(pixels).");
  }

  function plain(a) { return a ? Array.from(a) : null; }
  window.mlpcli = {
    version: DATA.mlpcliVersion,
    classNames: NAMES.slice(),
    layers: LAYERS.slice(),
    preprocessing: DATA.preprocess,
    classify: function (pixels) { return forward(pixels).probabilities; },
    input: function () { return plain(state.drawn); },
    forward: function (pixels) { var r = forward(pixels); return { activations: r.activations.map(plain), probabilities: r.probabilities }; },
    preprocess: function (gray, width, height, mode) { return plain(preprocess(gray, width, height, mode)); },
    drawing: function () { return { width: pad.width, height: pad.height, pixels: drawingPixels() }; },
    shown: function () { return { source: state.source, example: state.index, pixels: plain(state.pixels), probabilities: plain(state.probabilities) }; },
    show: function (pixels) { return show(Array.from(pixels), "api", null, "Pixels given to window.mlpcli.show().").probabilities; },
    pick: function (i) { return pick(i).probabilities; },
    examples: function () { return ui.examples.map(function (e) { return { index: e.index, label: e.label, predicted: e.predicted, mistake: e.mistake }; }); },
    clear: clearPad
  };
})();
