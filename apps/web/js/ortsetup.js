// onnxruntime-web for the demo page and the benchmark page: the library with its WASM thread count,
// the execution providers to try, and the model URL, all from the page's URL parameters.
import { DemoError } from './model.js';

// threads: ?threads=N, else up to 4 when the page is cross-origin isolated (WASM threads need
// SharedArrayBuffer, which needs the COOP/COEP headers apps/web/serve.py sends), else 1.
export async function loadOrt(params) {
  try {
    const ort = await import('../ort/ort.min.mjs');
    ort.env.wasm.wasmPaths = new URL('../ort/', import.meta.url).href;
    const threads = Number(params.get('threads')) || (globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
    ort.env.wasm.numThreads = threads;
    return ort;
  } catch (e) {
    throw new DemoError(`onnxruntime-web did not load from ort/ (${e.message}); on the server: npm ci --prefix apps/web`);
  }
}

// ?ep=wasm | webgpu | auto: WebGPU first where the browser has an adapter, WebAssembly otherwise.
// `warn` receives a line when WebGPU was asked for by name but is not available.
export async function providers(params, warn = () => {}) {
  const ep = params.get('ep') || 'auto';
  if (ep === 'wasm') return ['wasm'];
  if (navigator.gpu) {
    try {
      if (await navigator.gpu.requestAdapter()) return ['webgpu', 'wasm'];
    } catch { /* no usable adapter: WASM only */ }
  }
  if (ep === 'webgpu') warn('WebGPU is not available in this browser; running on WebAssembly');
  return ['wasm'];
}

// ?model=URL, else the server's config.json (edgemtl demo web), else null.
export async function modelUrl(params) {
  if (params.get('model')) return params.get('model');
  const resp = await fetch('config.json', { cache: 'no-store' }).catch(() => null);
  if (resp && resp.ok) {
    const cfg = await resp.json();
    if (cfg.model) return cfg.model;
  }
  return null;
}
