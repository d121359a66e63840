// An exported edgemtl ONNX artifact in onnxruntime-web: metadata, the task input and one run per task.
// docs/export.md describes the graph signature and the manifest this code reads.
import { readOnnxMetadata } from './onnxmeta.js';

export class DemoError extends Error {}

const SCHEMES = ['onehot', 'index', 'all'];

// Fetch an artifact and its manifest (<url>.json, optional: the ONNX file embeds a copy).
export async function fetchArtifact(url) {
  const name = decodeURIComponent(url.split('/').pop().split('?')[0]) || url;
  let resp;
  try {
    resp = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new DemoError(`cannot fetch the model ${url}: ${e.message}`);
  }
  if (resp.status === 404) throw new DemoError(`model file not found: ${url} (HTTP 404)`);
  if (!resp.ok) throw new DemoError(`cannot fetch the model ${url}: HTTP ${resp.status}`);
  const bytes = new Uint8Array(await resp.arrayBuffer());
  let manifest = null;
  const m = await fetch(`${url}.json`, { cache: 'no-store' }).catch(() => null);
  if (m && m.ok) {
    try {
      manifest = await m.json();
    } catch (e) {
      throw new DemoError(`the manifest ${url}.json is not valid JSON: ${e.message}`);
    }
  }
  return { name, bytes, manifest };
}

// Files picked on the device: one .onnx and, optionally, its .json manifest.
export async function readArtifactFiles(files) {
  const list = [...files];
  const model = list.find((f) => !f.name.toLowerCase().endsWith('.json'));
  if (!model) throw new DemoError('choose the .onnx file (its .json manifest is optional)');
  const json = list.find((f) => f.name.toLowerCase().endsWith('.json'));
  let manifest = null;
  if (json) {
    try {
      manifest = JSON.parse(await json.text());
    } catch (e) {
      throw new DemoError(`${json.name} is not valid JSON: ${e.message}`);
    }
  }
  return { name: model.name, bytes: new Uint8Array(await model.arrayBuffer()), manifest };
}

function checkMetadata(name, meta) {
  const fail = (why) => { throw new DemoError(`${name}: ${why}`); };
  if (!meta || meta.format !== 'edgemtl-artifact') fail('its metadata is not an edgemtl manifest (format != edgemtl-artifact)');
  if (meta.target && meta.target !== 'onnx') {
    fail(`it was exported for '${meta.target}'; the web app runs ONNX (edgemtl export --target onnx)`);
  }
  if (!Array.isArray(meta.tasks) || meta.tasks.length === 0) fail('its metadata lists no tasks');
  const io = meta.task_input || {};
  if (!SCHEMES.includes(io.scheme)) fail(`task input scheme '${io.scheme}' is not one of ${SCHEMES.join(', ')}`);
  const size = meta.preprocessing && meta.preprocessing.size_hw;
  if (!Array.isArray(size) || size.length !== 2) fail('its metadata has no preprocessing.size_hw');
  for (const t of meta.tasks) {
    if (!meta.task_info || !meta.task_info[t] || !io.task_outputs || !io.task_outputs[t]) fail(`no task_info/task_outputs for task '${t}'`);
  }
  const ver = meta.verification;
  if (ver && ver.passed === false) {
    const problems = [...((ver.structure || {}).problems || []), ...((ver.numeric || {}).failures || [])];
    fail(`it failed its export verification (${problems.join('; ').slice(0, 300)}): re-export it`);
  }
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function createSession(ort, bytes, providers) {
  let lastError;
  for (const ep of providers) {
    try {
      const session = await ort.InferenceSession.create(bytes, { executionProviders: [ep], graphOptimizationLevel: 'all' });
      return { session, backend: ep };
    } catch (e) {
      lastError = e;  // WebGPU may be listed but unusable (no adapter, missing kernels): try the next
    }
  }
  throw lastError;
}

export class EdgeModel {
  constructor(name, meta, session, backend) {
    this.name = name;
    this.meta = meta;
    this.session = session;
    this.backend = backend;
    this.io = meta.task_input;
    this.tasks = [...meta.tasks];
    const [h, w] = meta.preprocessing.size_hw;
    this.inputSize = { w: Number(w), h: Number(h) };
    this.method = Object.keys(this.io.methods || { forward: 0 })[0] || 'forward';
  }

  // The artifact in memory -> a ready model. Every failure is a DemoError with the file's name.
  static async open(ort, { name, bytes, manifest }, providers) {
    if (/\.(pte|mlpackage|mlmodel)$/i.test(name)) {
      throw new DemoError(`${name}: the web app runs .onnx artifacts (export with --target onnx); use 'edgemtl demo camera' for .pte`);
    }
    if (bytes.length === 0) throw new DemoError(`${name} is empty (0 bytes)`);
    // With a manifest, its digest is the most precise check (crypto.subtle exists on https and localhost).
    if (manifest && manifest.artifact_sha256 && globalThis.crypto && crypto.subtle) {
      if ((await sha256Hex(bytes)) !== manifest.artifact_sha256) {
        throw new DemoError(`${name} does not match its manifest (sha256 differs): the file is truncated, corrupt or was replaced; copy the .onnx and its .json together, or re-export`);
      }
    }
    let embedded;
    try {
      embedded = readOnnxMetadata(bytes);
    } catch (e) {
      throw new DemoError(`${name} is not a readable ONNX file (corrupt or truncated?): ${e.message}`);
    }
    let meta = manifest;
    if (!meta) {
      if (!embedded.edgemtl) {
        throw new DemoError(`${name} has no edgemtl metadata: export it with 'edgemtl export', or pick its .json manifest with it`);
      }
      try {
        meta = JSON.parse(embedded.edgemtl);
      } catch (e) {
        throw new DemoError(`${name}: its embedded edgemtl metadata is not valid JSON (${e.message})`);
      }
    }
    checkMetadata(name, meta);
    let opened;
    try {
      opened = await createSession(ort, bytes, providers);
    } catch (e) {
      throw new DemoError(`ONNX Runtime Web cannot load ${name} (corrupt?): ${String(e.message || e).slice(0, 300)}`);
    }
    const model = new EdgeModel(name, meta, opened.session, opened.backend);
    const want = (model.io.methods?.[model.method]?.inputs || []).map((i) => i.name);
    const missing = want.filter((n) => !opened.session.inputNames.includes(n));
    if (missing.length) throw new DemoError(`${name}: the graph lacks input(s) ${missing.join(', ')} that its metadata lists`);
    return model;
  }

  info(task) { return this.meta.task_info[task]; }

  // Graph inputs for a task: the image plus the task encoding of docs/export.md.
  feeds(ort, task, x) {
    const { w, h } = this.inputSize;
    const feeds = { image: new ort.Tensor('float32', x, [1, 3, h, w]) };
    const inputs = (this.io.methods?.[this.method]?.inputs || []).map((i) => i.name);
    if (inputs.length && inputs[0] !== 'image') feeds[inputs[0]] = feeds.image;
    const order = this.io.tasks || this.tasks;
    const id = order.indexOf(task);
    if (this.io.scheme === 'onehot') {
      const onehot = new Float32Array(order.length);
      onehot[id] = 1;
      feeds.task = new ort.Tensor('float32', onehot, [1, order.length]);
    } else if (this.io.scheme === 'index') {
      feeds.task = new ort.Tensor('int64', BigInt64Array.from([BigInt(id)]), [1]);
    }
    return feeds;
  }

  // float32 [1,3,H,W] data -> {raw: Float32Array [C,h,w], C, h, w, ms} for one task.
  async run(ort, task, x) {
    if (!this.tasks.includes(task)) throw new DemoError(`this model has no task '${task}' (it has: ${this.tasks.join(', ')})`);
    const sel = this.io.task_outputs[task];
    const t0 = performance.now();
    const outputs = await this.session.run(this.feeds(ort, task, x));
    const ms = performance.now() - t0;
    const out = outputs[sel.output] || Object.values(outputs)[sel.index || 0];
    const [, cmax, h, w] = out.dims;
    const [lo, hi] = sel.channels || [0, cmax];
    const raw = new Float32Array(out.data.subarray(lo * h * w, hi * h * w));
    if (raw.length && raw.every(Number.isNaN)) {
      throw new DemoError(`the graph returned NaN for '${task}': its task input did not select exactly one task`);
    }
    return { raw, C: hi - lo, h, w, ms };
  }
}
