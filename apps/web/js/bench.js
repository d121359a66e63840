// Benchmark page: the model's load time, per-task latency and all-task latency in onnxruntime-web,
// with the same artifact loading and task input as the demo (model.js). Results go on the page and
// to window.edgemtlBench, which apps/web/tests/drive.mjs reads (tests/test_apps_web.py and
// benchmarks/export_latency.py web).
//
// URL parameters: model (artifact URL; default: the server's), ep (wasm | webgpu | auto),
// threads (WASM threads), warmup (rounds over every task, default 3), warmup_ms (and go on warming
// up round-robin until this much time has passed, default 3000), runs (timed rounds: each task once
// per round, default 20), memory=1
// (also ask the browser for the page's memory, performance.measureUserAgentSpecificMemory).
import { DemoError, EdgeModel, fetchArtifact } from './model.js';
import { loadOrt, modelUrl, providers } from './ortsetup.js';
import { median, quantile } from './stats.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const bench = { done: false, error: null, result: null };
window.edgemtlBench = bench;

// A fixed pseudo-random image in [0, 1] (latency does not depend on the values; NaN-free).
function input(w, h) {
  const x = new Float32Array(3 * w * h);
  let s = 12345;
  for (let i = 0; i < x.length; i += 1) {
    s = (s * 1103515245 + 12345) >>> 0;
    x[i] = (s >>> 8) / 16777216;
  }
  return x;
}

// times_ms: every timed call, so a driver can pool rounds and bootstrap ratios between artifacts
// (benchmarks/export_latency.py web).
const stats = (ms) => ({
  median_ms: median(ms), p90_ms: quantile(ms, 0.9), runs: ms.length, times_ms: ms.map((v) => Math.round(v * 1e4) / 1e4),
});

// The page's memory as the browser counts it (JS heap and WebAssembly memory; needs cross-origin
// isolation). Chromium answers at its next garbage collection: bounded by a timeout.
async function pageMemoryMB() {
  if (!performance.measureUserAgentSpecificMemory) return null;
  const timeout = new Promise((resolve) => { setTimeout(() => resolve(null), 30000); });
  const m = await Promise.race([performance.measureUserAgentSpecificMemory().catch(() => null), timeout]);
  return m ? m.bytes / 1e6 : null;
}

async function run() {
  const warmup = Number(params.get('warmup') || 3);
  const warmupMs = Number(params.get('warmup_ms') ?? 3000);
  const runs = Number(params.get('runs') || 20);
  if (!(runs >= 1 && warmup >= 0 && warmupMs >= 0)) {
    throw new DemoError(`runs=${params.get('runs')} warmup=${params.get('warmup')} warmup_ms=${params.get('warmup_ms')}: give runs >= 1, warmup >= 0 and warmup_ms >= 0`);
  }
  const ort = await loadOrt(params);
  const url = await modelUrl(params);
  if (!url) throw new DemoError('no model given: open bench.html?model=URL of an exported .onnx');
  const t0 = performance.now();
  const artifact = await fetchArtifact(url);
  const t1 = performance.now();
  const model = await EdgeModel.open(ort, artifact, await providers(params, (m) => { bench.warning = m; }));
  const t2 = performance.now();
  $('model-name').textContent = `${model.name} · ${model.inputSize.w}×${model.inputSize.h}`;
  const threads = model.backend === 'wasm' ? ort.env.wasm.numThreads : null;
  $('backend').textContent = model.backend === 'webgpu' ? 'WebGPU' : `WebAssembly ×${threads}`;
  const { w, h } = model.inputSize;
  const x = input(w, h);
  // Every task's first call (kernel set-up, allocations), then the warm-up of every task, then the
  // timed runs round-robin over the tasks: no task absorbs the session's warm-up, and slow drift
  // (thermal, other load) spreads over all of them. Times are ONNX Runtime's session.run only
  // (EdgeModel.run's ms), as the demo page reports them.
  // The warm-up also lasts warmup_ms: V8 runs WebAssembly in its baseline compiler first and swaps
  // in optimised code for hot functions in the background, so a page with one task and a few
  // warm-up calls was timed before that (single-task pages 1.5x slower than the same graph behind
  // a five-task page, their times falling within each round).
  const first = {};
  const w0 = performance.now();
  for (const task of model.tasks) first[task] = (await model.run(ort, task, x)).ms;
  let warmupCalls = 0;
  for (let i = 0; i < warmup || performance.now() - w0 < warmupMs; i += 1) {
    for (const task of model.tasks) {
      await model.run(ort, task, x);
      warmupCalls += 1;
    }
  }
  const warmupSpentMs = performance.now() - w0;
  const ms = Object.fromEntries(model.tasks.map((t) => [t, []]));
  const allMs = [];
  for (let i = 0; i < runs; i += 1) {
    let sum = 0;
    for (const task of model.tasks) {
      const r = await model.run(ort, task, x);
      ms[task].push(r.ms);
      sum += r.ms;
    }
    // All tasks: one call where the graph returns every task (task input 'all'), else T calls.
    allMs.push(model.io.scheme === 'all' ? ms[model.tasks[0]][i] : sum);
    $('status').textContent = `run ${i + 1} of ${runs}`;
  }
  const tasks = Object.fromEntries(model.tasks.map((t) => [t, stats(ms[t])]));
  const all = stats(allMs);
  bench.result = {
    model: model.name,
    bytes: artifact.bytes.length,
    task_input: model.io.scheme,
    graphs: (model.meta.target_options || {}).graphs || 'conditional',
    backend: model.backend,
    threads,
    cross_origin_isolated: Boolean(globalThis.crossOriginIsolated),
    hardware_concurrency: navigator.hardwareConcurrency || null,
    user_agent: navigator.userAgent,
    fetch_ms: t1 - t0,
    session_ms: t2 - t1,
    first_call_ms: first,
    tasks,
    all_tasks: all,
    page_memory_mb: params.get('memory') === '1' ? await pageMemoryMB() : null,
    warmup,
    warmup_calls: warmupCalls,
    warmup_ms: warmupSpentMs,
  };
  const body = $('latency').querySelector('tbody');
  for (const [task, r] of Object.entries(tasks)) {
    const tr = document.createElement('tr');
    for (const v of [task, r.median_ms.toFixed(2), r.p90_ms.toFixed(2), String(r.runs)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $('summary').textContent = JSON.stringify({ ...bench.result, tasks: undefined }, null, 2);
  $('status').dataset.state = 'ready';
  $('status').textContent = `done: ${model.tasks.length} tasks, all tasks ${all.median_ms.toFixed(1)} ms`;
}

run().catch((e) => {
  bench.error = e instanceof DemoError ? e.message : `unexpected error: ${e && e.message ? e.message : e}`;
  $('message').textContent = bench.error;
  $('message').hidden = false;
  $('status').dataset.state = 'error';
  $('status').textContent = 'failed';
}).finally(() => { bench.done = true; });
