// The page: load the model named by ?model= (or the server's config.json), then run the chosen
// task on a photo or on camera frames, entirely in the browser.
//
// URL parameters: model (artifact URL), task (initial task), ep (wasm | webgpu | auto),
// threads (WASM threads), image (URL of an image to start with).
import { DemoError, EdgeModel, fetchArtifact, readArtifactFiles } from './model.js';
import { loadOrt, modelUrl, providers } from './ortsetup.js';
import { median } from './stats.js';
import { resizeRGB, resizePlanes, rgbaToRgb, toTensorData } from './imaging.js';
import { boxColour, colourise, decode, decodeBoxes, legend } from './tasks.js';
import { TURBO } from './turbo.js';

// Phone photos are 12+ MP; decoding every task at that size would take seconds. Larger images are
// shrunk (area filter) to this longest side first; the Python runtime decodes at the full size.
const MAX_SIDE = 1280;
const LATENCY_WINDOW = 20;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  ort: null,
  model: null,
  task: null,
  image: null,        // {rgb, w, h, canvas}: the working image
  result: null,
  camera: null,       // {stream, running}
  latency: new Map(), // task -> {model: [], total: []}
  busy: Promise.resolve(),
};

// Counters and read-outs for automated checks (tests/test_apps_web.py drives the page with them).
const demo = {
  events: 0,
  runs: 0,
  get state() { return $('status').dataset.state; },
  get message() { return $('message').hidden ? '' : $('message').textContent; },
  get task() { return state.task; },
  get tasks() { return state.model ? state.model.tasks : []; },
  get backend() { return state.model ? state.model.backend : null; },
  get result() {
    const r = state.result;
    return r && { task: r.task, C: r.C, h: r.h, w: r.w, width: r.width, height: r.height, ms: r.ms, total: r.total, raw: Array.from(r.raw), detections: r.detections };
  },
  predictionPNG: () => predCanvas.toDataURL('image/png'),
  compositePNG: () => $('composite').toDataURL('image/png'),
};
window.edgemtlDemo = demo;

const predCanvas = document.createElement('canvas');

function setStatus(s, text) {
  $('status').dataset.state = s;
  $('status').textContent = text;
}

function showMessage(text) {
  $('message').textContent = text;
  $('message').hidden = false;
}

function clearMessage() {
  $('message').hidden = true;
  $('message').textContent = '';
}

// Every failure ends here: a message on the page, never an uncaught exception.
function report(e) {
  const text = e instanceof DemoError ? e.message : `unexpected error: ${e && e.message ? e.message : e}`;
  showMessage(text);
  if (!(e instanceof DemoError)) console.error(e);
}

function schedule(fn) {
  state.busy = state.busy.then(fn).catch(report).finally(() => { demo.events += 1; });
  return state.busy;
}

async function openModel(artifact) {
  setStatus('loading', `Loading ${artifact.name}…`);
  state.model = null;
  state.result = null;
  state.latency.clear();
  renderTasks();
  const model = await EdgeModel.open(state.ort, artifact, await providers(params, showMessage));
  state.model = model;
  $('model-name').textContent = `${model.name} · ${model.meta.arch || ''} · ${model.inputSize.w}×${model.inputSize.h}`;
  $('backend').textContent = model.backend === 'webgpu' ? 'WebGPU' : `WebAssembly ×${state.ort.env.wasm.numThreads}`;
  const wanted = params.get('task');
  state.task = model.tasks[0];
  if (wanted && !model.tasks.includes(wanted)) {
    showMessage(`this model has no task '${wanted}' (it has: ${model.tasks.join(', ')}); showing ${state.task}`);
  } else if (wanted) {
    state.task = wanted;
  }
  renderTasks();
  setStatus('ready', `Ready: ${model.tasks.length} tasks on ${$('backend').textContent}`);
  if (state.image) await infer();
}

// A decoded picture or video frame -> the working image (RGB bytes and a canvas to draw from).
function workingImage(source, w, h) {
  const full = document.createElement('canvas');
  full.width = w;
  full.height = h;
  const ctx = full.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  let rgb = rgbaToRgb(ctx.getImageData(0, 0, w, h).data, w * h);
  const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
  if (scale >= 1) return { rgb, w, h, canvas: full };
  const sw = Math.max(1, Math.round(w * scale));
  const sh = Math.max(1, Math.round(h * scale));
  rgb = resizeRGB(rgb, w, h, sw, sh);
  const small = document.createElement('canvas');
  small.width = sw;
  small.height = sh;
  const rgba = new Uint8ClampedArray(sw * sh * 4);
  for (let i = 0; i < sw * sh; i++) rgba.set([rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], 255], i * 4);
  small.getContext('2d').putImageData(new ImageData(rgba, sw, sh), 0, 0);
  return { rgb, w: sw, h: sh, canvas: small };
}

async function loadImage(blob, label) {
  let bitmap;
  try {
    // No colour management: cv2.imread ignores ICC profiles too, so both see the same bytes.
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch (e) {
    throw new DemoError(`cannot read ${label} as an image (${e.name || e.message}): choose a PNG, JPEG, WebP or BMP`);
  }
  state.image = workingImage(bitmap, bitmap.width, bitmap.height);
  bitmap.close();
  $('placeholder').hidden = true;
  clearMessage();
  if (state.model) await infer();
  else drawComposite();
}

// Run the current task on the working image and show it.
async function infer() {
  const { model, image, task, ort } = state;
  if (!model || !image) return;
  setStatus('running', `Running ${task}…`);
  const t0 = performance.now();
  const { w, h } = model.inputSize;
  const x = toTensorData(resizeRGB(image.rgb, image.w, image.h, w, h), w, h);
  let r;
  try {
    r = await model.run(ort, task, x);
  } finally {
    setStatus('ready', 'Ready');
  }
  const info = model.info(task);
  const n = image.w * image.h;
  predCanvas.width = image.w;
  predCanvas.height = image.h;
  let decoded;
  if (info.decoding === 'boxes') {  // decoded at the model's resolution, boxes drawn over the image
    decoded = decodeBoxes(info, r.raw, r.h, r.w);
    drawBoxes(predCanvas, decoded, info.class_names || [], image.w, image.h);
  } else {
    decoded = decode(info, resizePlanes(r.raw, r.C, r.h, r.w, image.h, image.w), r.C, image.h, image.w);
    predCanvas.getContext('2d').putImageData(new ImageData(colourise(task, info, decoded, n), image.w, image.h), 0, 0);
  }
  const total = performance.now() - t0;
  const lat = state.latency.get(task) || { model: [], total: [] };
  lat.model = [...lat.model, r.ms].slice(-LATENCY_WINDOW);
  lat.total = [...lat.total, total].slice(-LATENCY_WINDOW);
  state.latency.set(task, lat);
  const detections = info.decoding === 'boxes' ? decoded : null;
  state.result = { ...r, task, total, width: image.w, height: image.h, legend: legend(task, info, decoded, n), detections };
  demo.runs += 1;
  drawComposite();
  renderLegend();
  renderLatency();
  setStatus('ready', `${task}: ${r.ms.toFixed(1)} ms model, ${total.toFixed(1)} ms total (${model.backend})`);
}

// Detections (boxes as fractions) on a transparent canvas of the image's size, as
// edgemtl.artifact.boxes.draw does: the class colour, a "name score" label, scores below 0.3 left out.
function drawBoxes(canvas, detections, names, w, h) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  ctx.lineWidth = Math.max(2, Math.round(Math.min(w, h) / 200));
  ctx.font = `${Math.max(10, Math.round(Math.min(w, h) / 40))}px sans-serif`;
  ctx.textBaseline = 'top';
  for (const d of detections) {
    if (d.score < 0.3) continue;
    const [x1, y1, x2, y2] = [d.box[0] * w, d.box[1] * h, d.box[2] * w, d.box[3] * h];
    const colour = `rgb(${boxColour(d.label).join(',')})`;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, Math.max(x2 - x1, 1), Math.max(y2 - y1, 1));
    const text = `${names[d.label] ?? `class ${d.label}`} ${d.score.toFixed(2)}`;
    const tw = ctx.measureText(text).width + 4;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, y1, tw, parseInt(ctx.font, 10) + 2);
    ctx.fillStyle = 'black';
    ctx.fillText(text, x1 + 2, y1 + 1);
  }
}

function drawComposite() {
  const c = $('composite');
  const { image, result } = state;
  if (!image) return;
  c.width = image.w;
  c.height = image.h;
  c.classList.toggle('pixelated', image.w < 256);  // tiny model-size inputs: show pixels, not blur
  const ctx = c.getContext('2d');
  ctx.globalAlpha = 1;
  ctx.drawImage(image.canvas, 0, 0);
  if (result && predCanvas.width === image.w && predCanvas.height === image.h) {
    ctx.globalAlpha = Number($('overlay').value) / 100;
    ctx.drawImage(predCanvas, 0, 0);
    ctx.globalAlpha = 1;
  }
}

function renderTasks() {
  const nav = $('tasks');
  nav.replaceChildren();
  if (!state.model) return;
  state.model.tasks.forEach((t, i) => {
    const info = state.model.info(t);
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.task = t;
    b.setAttribute('aria-pressed', String(t === state.task));
    b.append(t);
    const small = document.createElement('small');
    small.textContent = `${i + 1} · ${info.unit || info.kind || ''}`;
    b.append(small);
    b.addEventListener('click', () => selectTask(t));
    nav.append(b);
  });
  renderLatency();
}

function selectTask(task) {
  state.task = task;
  for (const b of $('tasks').querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.task === task));
  clearMessage();
  if (state.camera) { demo.events += 1; return; }  // the camera loop picks the task up on its next frame
  if (!state.image) { demo.events += 1; return; }
  schedule(infer);
}

function renderLegend() {
  const el = $('legend');
  el.replaceChildren();
  const lg = state.result && state.result.legend;
  if (!lg) return;
  if (lg.type === 'boxes') {
    for (const it of lg.items.slice(0, 16)) {
      const s = document.createElement('span');
      s.className = 'swatch';
      const sw = document.createElement('i');
      sw.style.background = `rgb(${it.colour.join(',')})`;
      s.append(sw, it.label);
      el.append(s);
    }
    el.append(`${lg.items.length} shown of ${lg.total} boxes (score >= 0.3)`);
    return;
  }
  if (lg.type === 'classes') {
    const shown = lg.items.slice(0, 16);
    for (const it of shown) {
      const s = document.createElement('span');
      s.className = 'swatch';
      const sw = document.createElement('i');
      sw.style.background = `rgb(${it.colour.join(',')})`;
      s.append(sw, `${it.label} ${(100 * it.share).toFixed(0)}%`);
      el.append(s);
    }
    if (lg.items.length > shown.length) el.append(`+${lg.items.length - shown.length} more`);
    return;
  }
  if (lg.type === 'scale') {
    const box = document.createElement('div');
    box.className = 'scale';
    const title = document.createElement('div');
    const fmt = (v) => (lg.unit ? `${v.toFixed(v < 10 ? 2 : 1)} ${lg.unit}` : v.toFixed(2));
    title.textContent = `${lg.title}: this image ${fmt(lg.observed[0])} – ${fmt(lg.observed[1])}`;
    const bar = document.createElement('canvas');
    bar.width = 256;
    bar.height = 1;
    const px = new ImageData(256, 1);
    for (let i = 0; i < 256; i++) px.data.set([TURBO[i * 3], TURBO[i * 3 + 1], TURBO[i * 3 + 2], 255], i * 4);
    bar.getContext('2d').putImageData(px, 0, 0);
    const ticks = document.createElement('div');
    ticks.className = 'ticks';
    for (const v of [lg.vmin, (lg.vmin + lg.vmax) / 2, lg.vmax]) {
      const t = document.createElement('span');
      t.textContent = fmt(v);
      ticks.append(t);
    }
    box.append(title, bar, ticks);
    el.append(box);
    return;
  }
  el.append(lg.text);
}

function renderLatency() {
  const body = $('latency').querySelector('tbody');
  body.replaceChildren();
  if (!state.model) return;
  for (const t of state.model.tasks) {
    const lat = state.latency.get(t) || { model: [], total: [] };
    const tr = document.createElement('tr');
    tr.dataset.task = t;
    if (t === state.task) tr.className = 'current';
    const cells = [t, median(lat.model), median(lat.total), lat.model.length];
    for (const v of cells) {
      const td = document.createElement('td');
      td.textContent = Number.isNaN(v) ? '–' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v);
      tr.append(td);
    }
    body.append(tr);
  }
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new DemoError('camera unavailable: browsers allow the camera only on https:// pages and on localhost');
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment', width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    throw new DemoError(`camera unavailable (${e.name}): ${e.message || 'permission denied or no camera'}`);
  }
  const video = $('video');
  video.srcObject = stream;
  await video.play();
  state.camera = { stream };
  $('camera-button').classList.add('on');
  $('camera-button').textContent = 'Stop camera';
  $('placeholder').hidden = true;
  clearMessage();
  cameraLoop();
}

function stopCamera() {
  if (!state.camera) return;
  for (const track of state.camera.stream.getTracks()) track.stop();
  state.camera = null;
  $('camera-button').classList.remove('on');
  $('camera-button').textContent = 'Camera';
}

// One frame at a time: grab, run, draw, then the next; frames that arrive meanwhile are skipped.
async function cameraLoop() {
  const video = $('video');
  while (state.camera) {
    if (video.videoWidth > 0 && state.model) {
      state.image = workingImage(video, video.videoWidth, video.videoHeight);
      try {
        await infer();
      } catch (e) {
        report(e);
        stopCamera();
      }
      demo.events += 1;
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
}

function wireControls() {
  $('image-input').addEventListener('change', (ev) => {
    const file = ev.target.files[0];
    ev.target.value = '';
    if (!file) return;
    stopCamera();
    schedule(() => loadImage(file, file.name));
  });
  $('model-input').addEventListener('change', (ev) => {
    const files = [...ev.target.files];
    ev.target.value = '';
    if (!files.length) return;
    schedule(async () => {
      clearMessage();
      try {
        await openModel(await readArtifactFiles(files));
      } catch (e) {
        setStatus('error', 'No model loaded');
        throw e;
      }
    });
  });
  $('camera-button').addEventListener('click', () => {
    if (state.camera) { stopCamera(); demo.events += 1; return; }
    schedule(startCamera);
  });
  $('overlay').addEventListener('input', () => {
    $('overlay-value').textContent = `${$('overlay').value}%`;
    drawComposite();
  });
  document.addEventListener('keydown', (ev) => {
    if (!state.model || ev.target.tagName === 'INPUT') return;
    const i = Number(ev.key) - 1;
    if (i >= 0 && i < state.model.tasks.length) selectTask(state.model.tasks[i]);
  });
}

async function main() {
  wireControls();
  try {
    state.ort = await loadOrt(params);
    const url = await modelUrl(params);
    if (!url) {
      setStatus('error', 'No model loaded');
      showMessage('no model given: open the page with ?model=URL of an exported .onnx, or pick one with "Model…"');
      return;
    }
    await openModel(await fetchArtifact(url));
    const image = params.get('image');
    if (image) {
      const resp = await fetch(image).catch(() => null);
      if (!resp || !resp.ok) throw new DemoError(`cannot fetch the image ${image}`);
      await loadImage(await resp.blob(), image);
    }
  } catch (e) {
    if (!state.model) setStatus('error', 'No model loaded');
    report(e);
  } finally {
    demo.events += 1;
  }
}

main();
