// Resizing that reproduces edgemtl.artifact.processing (OpenCV's rules), so the browser feeds the
// model the same pixels as the Python runtime and its results can be compared number for number.
// The browser's own drawImage scaling is a different filter and would not match.

// Round half to even, as OpenCV's cvRound (lrint) does.
function rint(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

const clampU8 = (v) => (v < 0 ? 0 : v > 255 ? 255 : v);

// uint8 RGB (packed, 3 per pixel) -> uint8 RGB at dw x dh. Area when shrinking both sides, else
// bilinear: edgemtl.artifact.processing.resize.
export function resizeRGB(src, sw, sh, dw, dh) {
  if (sw === dw && sh === dh) return src;
  if (dw < sw && dh < sh) return resizeArea(src, sw, sh, dw, dh);
  return resizeLinearU8(src, sw, sh, dw, dh);
}

// OpenCV INTER_AREA: each output pixel is the mean of the source area it covers. OpenCV's
// vectorised 2x2 path rounds halves up; every other scale goes through float weights and cvRound.
function resizeArea(src, sw, sh, dw, dh) {
  const out = new Uint8Array(dw * dh * 3);
  if (sw === 2 * dw && sh === 2 * dh) {
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const a = ((2 * y) * sw + 2 * x) * 3;
        const b = a + sw * 3;
        for (let c = 0; c < 3; c++) {
          out[(y * dw + x) * 3 + c] = (src[a + c] + src[a + 3 + c] + src[b + c] + src[b + 3 + c] + 2) >> 2;
        }
      }
    }
    return out;
  }
  const wx = areaWeights(sw, dw);
  const wy = areaWeights(sh, dh);
  const row = new Float64Array(dw * 3);
  for (let y = 0; y < dh; y++) {
    row.fill(0);
    for (const [sy, fy] of wy[y]) {
      const base = sy * sw * 3;
      for (let x = 0; x < dw; x++) {
        for (const [sx, fx] of wx[x]) {
          const f = fy * fx;
          const s = base + sx * 3;
          row[x * 3] += f * src[s];
          row[x * 3 + 1] += f * src[s + 1];
          row[x * 3 + 2] += f * src[s + 2];
        }
      }
    }
    for (let i = 0; i < dw * 3; i++) out[y * dw * 3 + i] = clampU8(rint(row[i]));
  }
  return out;
}

// Per output index: [[source index, weight], ...], the overlap of [i*s, (i+1)*s) with each source cell.
function areaWeights(s, d) {
  const scale = s / d;
  const w = [];
  for (let i = 0; i < d; i++) {
    const f0 = i * scale;
    const f1 = f0 + scale;
    const cells = [];
    for (let j = Math.floor(f0); j < Math.min(s, Math.ceil(f1)); j++) {
      const overlap = Math.min(f1, j + 1) - Math.max(f0, j);
      if (overlap > 1e-12) cells.push([j, overlap / scale]);
    }
    w.push(cells);
  }
  return w;
}

// Half-pixel-centred bilinear taps: [left index, right index, left weight], edges clamped (OpenCV).
function linearTaps(s, d) {
  const scale = s / d;
  const taps = [];
  for (let i = 0; i < d; i++) {
    let f = (i + 0.5) * scale - 0.5;
    let x = Math.floor(f);
    f -= x;
    if (x < 0) { f = 0; x = 0; }
    if (x >= s - 1) { f = 0; x = s - 1; }
    taps.push([x, Math.min(x + 1, s - 1), f]);
  }
  return taps;
}

// OpenCV INTER_LINEAR on uint8: 11-bit fixed-point weights, and the rounding of its vectorised
// vertical pass (rows whose second weight is zero take the exact path).
function resizeLinearU8(src, sw, sh, dw, dh) {
  const tx = linearTaps(sw, dw).map(([a, b, f]) => { const c0 = rint((1 - f) * 2048); return [a, b, c0, 2048 - c0]; });
  const ty = linearTaps(sh, dh).map(([a, b, f]) => { const c0 = rint((1 - f) * 2048); return [a, b, c0, 2048 - c0]; });
  const hrow = (sy) => {
    const r = new Int32Array(dw * 3);
    for (let x = 0; x < dw; x++) {
      const [a, b, c0, c1] = tx[x];
      for (let c = 0; c < 3; c++) r[x * 3 + c] = src[(sy * sw + a) * 3 + c] * c0 + src[(sy * sw + b) * 3 + c] * c1;
    }
    return r;
  };
  const cache = new Map();
  const row = (sy) => { if (!cache.has(sy)) cache.set(sy, hrow(sy)); return cache.get(sy); };
  const out = new Uint8Array(dw * dh * 3);
  for (let y = 0; y < dh; y++) {
    const [a, b, c0, c1] = ty[y];
    const r0 = row(a);
    const r1 = row(b);
    const o = y * dw * 3;
    for (let i = 0; i < dw * 3; i++) {
      const v = c1 === 0
        ? (r0[i] * c0 + (1 << 21)) >> 22
        : (((c0 * (r0[i] >> 4)) >> 16) + ((c1 * (r1[i] >> 4)) >> 16) + 2) >> 2;
      out[o + i] = clampU8(v);
    }
  }
  return out;
}

// float32 [C, h, w] -> [C, H, W], bilinear with half-pixel centres (OpenCV INTER_LINEAR on float):
// raw outputs are resized back to the image size before decoding. Separable like OpenCV: every
// source row is interpolated across once, then output rows mix two of those.
export function resizePlanes(raw, C, h, w, H, W) {
  if (h === H && w === W) return raw;
  const xa = new Int32Array(W); const xb = new Int32Array(W); const fx = new Float64Array(W);
  linearTaps(w, W).forEach(([a, b, f], i) => { xa[i] = a; xb[i] = b; fx[i] = f; });
  const ty = linearTaps(h, H);
  const rows = new Float64Array(h * W);
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) {
    const plane = c * h * w;
    for (let y = 0; y < h; y++) {
      const src = plane + y * w;
      const dst = y * W;
      for (let x = 0; x < W; x++) rows[dst + x] = raw[src + xa[x]] * (1 - fx[x]) + raw[src + xb[x]] * fx[x];
    }
    for (let y = 0; y < H; y++) {
      const [ya, yb, fy] = ty[y];
      const ra = ya * W;
      const rb = yb * W;
      const o = c * H * W + y * W;
      for (let x = 0; x < W; x++) out[o + x] = rows[ra + x] * (1 - fy) + rows[rb + x] * fy;
    }
  }
  return out;
}

// uint8 RGB at the model size -> float32 NCHW in [0, 1] (mean/std are inside the graph).
export function toTensorData(rgb, w, h) {
  const n = w * h;
  const x = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    x[i] = rgb[i * 3] / 255;
    x[n + i] = rgb[i * 3 + 1] / 255;
    x[2 * n + i] = rgb[i * 3 + 2] / 255;
  }
  return x;
}

// RGBA ImageData bytes -> packed RGB (alpha dropped, as cv2.imread(IMREAD_COLOR) does).
export function rgbaToRgb(rgba, n) {
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = rgba[i * 4];
    rgb[i * 3 + 1] = rgba[i * 4 + 1];
    rgb[i * 3 + 2] = rgba[i * 4 + 2];
  }
  return rgb;
}
