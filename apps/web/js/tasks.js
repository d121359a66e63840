// Decoding and colouring of each task from its manifest entry, the same as edgemtl.artifact.decoding, so
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

// How a task is drawn: its manifest entry's `visual` (edgemtl.artifact.decoding.visual_spec), or,
// for manifests written before that field, the rule those versions applied.
export function visualSpec(name, info) {
  if (info.visual && typeof info.visual === 'object') return info.visual;
  if (info.decoding === 'boxes') return { style: 'boxes' };
  if (name === 'edges') return { style: 'inverted_gray', ignore: 255, legend: 'dark = boundary' };
  if (info.kind === 'classes' || info.decoding === 'argmax') return { style: 'palette' };
  if (info.kind === 'depth') {
    const range = Array.isArray(info.depth_range) ? info.depth_range.map(Number) : [0, 10];
    return { style: 'colormap', range, mask_nonpositive: true };
  }
  if (info.kind === 'normals' || info.decoding === 'l2_normalize') {
    return { style: 'signed_rgb', legend: 'as RGB: R = x (right), G = y (up), B = z (to the camera)' };
  }
  return { style: 'colormap', range: [0, 1], ignore: 255 };
}

// The lower clamp of an identity decoding (older manifests: 0 for depth).
const clampMin = (info) => ('clamp_min' in info ? info.clamp_min : (info.kind === 'depth' ? 0 : null));

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
    case 'boxes':
      throw new Error('boxes are decoded by decodeBoxes, at the model resolution');
    case 'identity': {
      const out = new Float32Array(n);
      const lo = clampMin(info);
      if (lo === null || lo === undefined) out.set(raw.subarray(0, n));
      else for (let i = 0; i < n; i++) out[i] = Math.max(raw[i], f32(lo));
      return out;
    }
    default:
      throw new Error(`unknown decoding '${info.decoding}' in the model's metadata`);
  }
}

// edgemtl.artifact.boxes.decode: a detection head's raw float32 [C+5, H, W] (model resolution) ->
// {boxes: [[x1, y1, x2, y2], ...] as fractions of the image, scores, labels}, best first. The same
// steps as numpy: scores in doubles rounded to float32, 3x3 peaks, threshold, stable top-k, boxes
// from the clamped distances, greedy NMS per class, the max_dets best.
const BOX_DEFAULTS = { score_threshold: 0.05, top_k: 1000, nms_iou: 0.6, max_dets: 100, class_logit_offset: -4.59511985013459 };

export function decodeBoxes(info, raw, H, W) {
  const p = { ...BOX_DEFAULTS, ...(info.boxes || {}) };
  const C = info.out_channels - 5;
  const n = H * W;
  const s = new Float32Array(C * n);
  for (let i = 0; i < n; i++) {
    const ctr = 1 / (1 + Math.exp(-raw[(C + 4) * n + i]));
    for (let c = 0; c < C; c++) {
      const cls = 1 / (1 + Math.exp(-(raw[c * n + i] + p.class_logit_offset)));
      s[c * n + i] = Math.sqrt(cls * ctr);
    }
  }
  const thr = f32(p.score_threshold);
  const cand = [];
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const v = s[c * n + y * W + x];
        if (!(v >= thr)) continue;
        let peak = true;
        for (let dy = -1; dy <= 1 && peak; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy; const xx = x + dx;
            if (yy >= 0 && yy < H && xx >= 0 && xx < W && s[c * n + yy * W + xx] > v) { peak = false; break; }
          }
        }
        if (peak) cand.push({ c, y, x, score: v });
      }
    }
  }
  cand.sort((a, b) => b.score - a.score);  // stable, as numpy's mergesort
  const top = cand.slice(0, p.top_k).map(({ c, y, x, score }) => {
    const d = [0, 1, 2, 3].map((k) => Math.max(raw[(C + k) * n + y * W + x], 0));
    const px = (x + 0.5) / W; const py = (y + 0.5) / H;
    const clip = (v) => Math.min(Math.max(v, 0), 1);
    return { box: [clip(px - d[0]), clip(py - d[1]), clip(px + d[2]), clip(py + d[3])], score, label: c };
  });
  const area = (b) => (b[2] - b[0]) * (b[3] - b[1]);
  const iou = (a, b) => {
    const w = Math.max(Math.min(a[2], b[2]) - Math.max(a[0], b[0]), 0);
    const h = Math.max(Math.min(a[3], b[3]) - Math.max(a[1], b[1]), 0);
    const union = area(a) + area(b) - w * h;
    return union > 0 ? (w * h) / union : 0;
  };
  const keep = [];
  const gone = new Uint8Array(top.length);
  for (let i = 0; i < top.length && keep.length < p.max_dets; i++) {
    if (gone[i]) continue;
    keep.push(top[i]);
    for (let j = i + 1; j < top.length; j++) {
      if (!gone[j] && top[j].label === top[i].label && iou(top[i].box, top[j].box) > p.nms_iou) gone[j] = 1;
    }
  }
  return keep;
}

// The colour a detection of class `label` is drawn in (edgemtl.artifact.boxes.draw): palette entry label + 1.
export function boxColour(label) {
  const k = ((label + 1) % 255) * 3;
  return [PALETTE[k], PALETTE[k + 1], PALETTE[k + 2]];
}

// edgemtl.tasks.base.colormap: turbo over [vmin, vmax]; the bin is floor(v * 256) as matplotlib does.
function turboIndex(value, vmin, range) {
  let v = f32(f32(value - vmin) / range);
  if (!(v >= 0)) v = 0;  // also NaN, which matplotlib maps to black via 'bad'; callers mask those
  if (v > 1) v = 1;
  return Math.min(Math.floor(v * 256), 255);
}

// decoded values -> RGBA bytes for an ImageData (edgemtl.artifact.decoding.visualize).
export function colourise(name, info, decoded, n) {
  const rgba = new Uint8ClampedArray(n * 4);
  const spec = visualSpec(name, info);
  const ignore = 'ignore' in spec ? spec.ignore : null;
  for (let i = 0; i < n; i++) rgba[i * 4 + 3] = 255;
  if (spec.style === 'palette') {
    for (let i = 0; i < n; i++) {
      const k = (decoded[i] % 256) * 3;
      rgba[i * 4] = PALETTE[k]; rgba[i * 4 + 1] = PALETTE[k + 1]; rgba[i * 4 + 2] = PALETTE[k + 2];
    }
  } else if (spec.style === 'signed_rgb') {
    for (let i = 0; i < n * 3; i++) {
      const v = f32(f32(decoded[i] + 1) * 127.5);
      rgba[Math.floor(i / 3) * 4 + (i % 3)] = Math.floor(Math.min(Math.max(v, 0), 255));
    }
  } else if (spec.style === 'inverted_gray') {
    // 255 - p * 255 truncated to uint8: dark = positive.
    for (let i = 0; i < n; i++) {
      const p = Math.min(Math.max(decoded[i] === ignore ? 0 : decoded[i], 0), 1);
      const v = Math.floor(f32(255 - f32(p * 255)));
      rgba[i * 4] = v; rgba[i * 4 + 1] = v; rgba[i * 4 + 2] = v;
    }
  } else if (spec.style === 'colormap') {
    const [vmin, vmax] = (spec.range || [0, 1]).map(Number);
    const range = f32(Math.max(vmax - vmin, 1e-6));
    const lo = f32(vmin);
    for (let i = 0; i < n; i++) {
      const d = decoded[i] === ignore ? 0 : decoded[i];
      if (spec.mask_nonpositive && !(d > 0)) continue;  // invalid (e.g. depth <= 0) is black
      if (Number.isNaN(d)) continue;  // matplotlib's 'bad' colour: black
      const k = turboIndex(d, lo, range) * 3;
      rgba[i * 4] = TURBO[k]; rgba[i * 4 + 1] = TURBO[k + 1]; rgba[i * 4 + 2] = TURBO[k + 2];
    }
  } else {
    throw new Error(`unknown visual style '${spec.style}' for task '${name}' in the model's metadata`);
  }
  return rgba;
}

// What the legend shows for a result, from the task's visual spec.
export function legend(name, info, decoded, n) {
  const spec = visualSpec(name, info);
  if (spec.style === 'boxes') {
    const names = info.class_names || [];
    const shown = decoded.filter((d) => d.score >= 0.3);
    const items = shown.map((d) => ({ label: `${names[d.label] ?? `class ${d.label}`} ${d.score.toFixed(2)}`, colour: boxColour(d.label) }));
    return { type: 'boxes', items, total: decoded.length };
  }
  if (spec.style === 'palette') {
    const names = info.class_names || [];
    const counts = new Map();
    for (let i = 0; i < n; i++) counts.set(decoded[i], (counts.get(decoded[i]) || 0) + 1);
    const items = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, c]) => ({
      label: names[k] ?? `class ${k}`, colour: [...PALETTE.subarray((k % 256) * 3, (k % 256) * 3 + 3)], share: c / n,
    }));
    return { type: 'classes', items, total: names.length || info.out_channels };
  }
  if (spec.style === 'colormap') {
    const [vmin, vmax] = (spec.range || [0, 1]).map(Number);
    let lo = Infinity; let hi = -Infinity;
    for (let i = 0; i < n; i++) { const d = decoded[i]; if (d < lo) lo = d; if (d > hi) hi = d; }
    const unit = info.unit === 'metres' ? 'm' : '';
    return { type: 'scale', vmin, vmax, unit, observed: [lo, hi],
      title: unit ? `${name} (${info.unit})` : `${name} ${info.unit || ''}`.trim(), stops: TURBO };
  }
  return { type: 'text', text: `${name}: ${spec.legend || spec.style}` };
}
