// Decoding and colouring of each task, the same as edgemtl/tasks/*.py (decode + visualize), so
// the canvas can be compared pixel for pixel with edgemtl.runtime's visualize().
// float32 steps go through Math.fround where numpy computes in float32: colour bins are
// truncations, and a float64 value can land on the other side of a bin edge.
import { TURBO } from './turbo.js';

const f32 = Math.fround;

// edgemtl.tasks.base.palette: the PASCAL VOC bit-interleaved colour map; 255 is white (ignore).
export function palette(n = 256) {
  const cmap = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    let c = i; let r = 0; let g = 0; let b = 0;
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    cmap.set([r, g, b], i * 3);
  }
  if (n > 255) cmap.set([255, 255, 255], 255 * 3);
  return cmap;
}

const PALETTE = palette(256);

// Depth.depth_range defaults to (0, 10) m when the checkpoint's dataset did not give one.
export const depthRange = (info) => (Array.isArray(info.depth_range) ? info.depth_range.map(Number) : [0, 10]);

// How a task is coloured: by name for edgemtl's own tasks, by kind for anything newer.
export function colouring(name, info) {
  if (name === 'edges') return 'edges';
  if (name === 'saliency') return 'probability';
  const kind = info.kind;
  if (kind === 'classes' || info.decoding === 'argmax') return 'classes';
  if (kind === 'depth') return 'depth';
  if (kind === 'normals' || info.decoding === 'l2_normalize') return 'normals';
  return 'probability';
}

// raw float32 [C, H, W] (image resolution) -> decoded values, the Task.decode of each kind.
export function decode(info, raw, C, H, W) {
  const n = H * W;
  switch (info.decoding) {
    case 'argmax': {
      const labels = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        let best = 0; let bv = raw[i];
        for (let c = 1; c < C; c++) { const v = raw[c * n + i]; if (v > bv) { bv = v; best = c; } }
        labels[i] = best;
      }
      return labels;
    }
    case 'l2_normalize': {
      const out = new Float32Array(n * 3);
      for (let i = 0; i < n; i++) {
        const x = raw[i]; const y = raw[n + i]; const z = raw[2 * n + i];
        const norm = Math.max(f32(Math.sqrt(f32(f32(f32(x * x) + f32(y * y)) + f32(z * z)))), 1e-6);
        out[i * 3] = x / norm; out[i * 3 + 1] = y / norm; out[i * 3 + 2] = z / norm;
      }
      return out;
    }
    case 'sigmoid': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-raw[i]));
      return out;
    }
    case 'identity': {
      const out = new Float32Array(n);
      if (info.kind === 'depth') for (let i = 0; i < n; i++) out[i] = Math.max(raw[i], 0);  // clamp_min(0)
      else out.set(raw.subarray(0, n));
      return out;
    }
    default:
      throw new Error(`unknown decoding '${info.decoding}' in the model's metadata`);
  }
}

// edgemtl.tasks.base.colormap: turbo over [vmin, vmax]; the bin is floor(v * 256) as matplotlib does.
function turboIndex(value, vmin, range) {
  let v = f32(f32(value - vmin) / range);
  if (!(v >= 0)) v = 0;  // also NaN, which matplotlib maps to black via 'bad'; callers mask those
  if (v > 1) v = 1;
  return Math.min(Math.floor(v * 256), 255);
}

// decoded values -> RGBA bytes for an ImageData.
export function colourise(name, info, decoded, n) {
  const rgba = new Uint8ClampedArray(n * 4);
  const mode = colouring(name, info);
  for (let i = 0; i < n; i++) rgba[i * 4 + 3] = 255;
  if (mode === 'classes') {
    for (let i = 0; i < n; i++) {
      const k = (decoded[i] % 256) * 3;
      rgba[i * 4] = PALETTE[k]; rgba[i * 4 + 1] = PALETTE[k + 1]; rgba[i * 4 + 2] = PALETTE[k + 2];
    }
  } else if (mode === 'normals') {
    for (let i = 0; i < n * 3; i++) {
      const v = f32(f32(decoded[i] + 1) * 127.5);
      rgba[Math.floor(i / 3) * 4 + (i % 3)] = Math.floor(Math.min(Math.max(v, 0), 255));
    }
  } else if (mode === 'edges') {
    // Edges.visualize: dark = edge, 255 - p * 255 truncated to uint8.
    for (let i = 0; i < n; i++) {
      const p = Math.min(Math.max(decoded[i], 0), 1);
      const v = Math.floor(f32(255 - f32(p * 255)));
      rgba[i * 4] = v; rgba[i * 4 + 1] = v; rgba[i * 4 + 2] = v;
    }
  } else {
    const [vmin, vmax] = mode === 'depth' ? depthRange(info) : [0, 1];
    const range = f32(Math.max(vmax - vmin, 1e-6));
    const lo = f32(vmin);
    for (let i = 0; i < n; i++) {
      const d = decoded[i];
      if (mode === 'depth' && !(d > 0)) continue;  // invalid depth is black
      const k = turboIndex(Number.isNaN(d) ? 0 : d, lo, range) * 3;
      rgba[i * 4] = TURBO[k]; rgba[i * 4 + 1] = TURBO[k + 1]; rgba[i * 4 + 2] = TURBO[k + 2];
    }
  }
  return rgba;
}

// What the legend shows for a result.
export function legend(name, info, decoded, n) {
  const mode = colouring(name, info);
  if (mode === 'classes') {
    const names = info.class_names || [];
    const counts = new Map();
    for (let i = 0; i < n; i++) counts.set(decoded[i], (counts.get(decoded[i]) || 0) + 1);
    const items = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, c]) => ({
      label: names[k] ?? `class ${k}`, colour: [...PALETTE.subarray((k % 256) * 3, (k % 256) * 3 + 3)], share: c / n,
    }));
    return { type: 'classes', items, total: names.length || info.out_channels };
  }
  if (mode === 'depth' || mode === 'probability') {
    const [vmin, vmax] = mode === 'depth' ? depthRange(info) : [0, 1];
    let lo = Infinity; let hi = -Infinity;
    for (let i = 0; i < n; i++) { const d = decoded[i]; if (d < lo) lo = d; if (d > hi) hi = d; }
    return { type: 'scale', vmin, vmax, unit: mode === 'depth' ? 'm' : '', observed: [lo, hi],
      title: mode === 'depth' ? 'depth (metres)' : `${name} probability`, stops: TURBO };
  }
  if (mode === 'normals') {
    return { type: 'text', text: 'normals as RGB: red = x (right), green = y (up), blue = z (towards the camera)' };
  }
  return { type: 'text', text: 'edges: dark = boundary probability (white = none)' };
}
