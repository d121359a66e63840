"""Decoding and colouring of a task's raw output, in numpy, from the task's entry in the manifest.

A task declares in ``Task.describe()`` (written to the manifest's ``task_info``) how its raw output
becomes a prediction (``decoding``, ``clamp_min``) and how a prediction is drawn (``visual``). This
module is the one implementation of both: the runtime, the camera app and the tasks' own
``visualize`` call it, and the web app (apps/web/js/tasks.js) mirrors it bit for bit. It needs
numpy only, so an app can deploy without PyTorch.

``decoding`` (raw ``[1, C, H, W]`` -> label layout):
  argmax        class ids ``[H, W]`` (int64)
  sigmoid       probability ``[H, W]`` (float32)
  l2_normalize  unit vectors ``[H, W, 3]``: x / max(|x|, 1e-6)
  identity      the single channel ``[H, W]``; then ``max(v, clamp_min)`` where ``clamp_min`` is set

``visual`` (a ``style`` and its fields, an optional ``legend`` text for the apps; prediction or label
-> uint8 RGB ``[H, W, 3]``):
  palette        class ids through the PASCAL VOC colour map, id % 256; 255 (ignore) is white
  colormap       matplotlib's 'turbo' (256 entries) over ``range``; ``mask_nonpositive``: values <= 0
                 (invalid depth) black; ``ignore``: that label value drawn as 0
  signed_rgb     unit vectors: clip((v + 1) * 127.5, 0, 255), truncated
  inverted_gray  probabilities: 255 - clip(p, 0, 1) * 255, truncated (dark = positive); ``ignore`` as 0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemtl.errors import EdgeMTLError

IGNORE = 255
DECODINGS = ("argmax", "sigmoid", "l2_normalize", "identity")
STYLES = ("palette", "colormap", "signed_rgb", "inverted_gray")


def decode(raw: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """A task's raw output ``[1, C, H, W]`` (or ``[C, H, W]``) -> its prediction in label layout."""
    x = np.asarray(raw, dtype=np.float32)
    x = x[0] if x.ndim == 4 else x
    kind = info.get("decoding")
    if kind == "argmax":
        return x.argmax(0)
    if kind == "sigmoid":
        # float64 then float32: the web app computes 1 / (1 + Math.exp(-v)) in doubles into a Float32Array
        return (1.0 / (1.0 + np.exp(-x[0].astype(np.float64)))).astype(np.float32)
    if kind == "l2_normalize":
        v = x[:3].transpose(1, 2, 0)
        norm = np.sqrt((v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]) + v[..., 2] * v[..., 2])
        return v / np.maximum(norm, np.float32(1e-6))[..., None]
    if kind == "identity":
        lo = clamp_min(info)
        return x[0].copy() if lo is None else np.maximum(x[0], np.float32(lo))
    raise EdgeMTLError(f"unknown decoding {kind!r} for task '{info.get('name')}' in the manifest "
                       f"(known: {', '.join(DECODINGS)}): upgrade edgemtl")


def clamp_min(info: dict[str, Any]) -> float | None:
    """The lower clamp of an identity decoding; manifests older than the field imply 0 for depth."""
    if "clamp_min" in info:
        return None if info["clamp_min"] is None else float(info["clamp_min"])
    return 0.0 if info.get("kind") == "depth" else None


def visual_spec(info: dict[str, Any]) -> dict[str, Any]:
    """The task's ``visual`` entry; for manifests written before it existed, the rule those
    versions applied (by task name for edges/saliency, else by kind)."""
    if isinstance(info.get("visual"), dict):
        return info["visual"]
    name, kind = info.get("name"), info.get("kind")
    if name == "edges":
        return {"style": "inverted_gray", "ignore": IGNORE, "legend": "dark = boundary"}
    if kind == "classes" or info.get("decoding") == "argmax":
        return {"style": "palette"}
    if kind == "depth":
        return {"style": "colormap", "range": list(info.get("depth_range") or (0.0, 10.0)), "mask_nonpositive": True}
    if kind == "normals" or info.get("decoding") == "l2_normalize":
        return {"style": "signed_rgb", "legend": "as RGB: R = x (right), G = y (up), B = z (to the camera)"}
    return {"style": "colormap", "range": [0.0, 1.0], "ignore": IGNORE}


def visualize(values: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """A prediction or label (label layout) -> uint8 RGB ``[H, W, 3]``, drawn as the task declares."""
    spec = visual_spec(info)
    style = spec.get("style")
    if style == "palette":
        return palette(256)[np.asarray(values, dtype=np.int64) % 256]
    if style == "signed_rgb":
        return np.clip((np.asarray(values, dtype=np.float32) + 1) * 127.5, 0, 255).astype(np.uint8)
    v = np.asarray(values, dtype=np.float32)
    if "ignore" in spec:
        v = np.where(v == spec["ignore"], np.float32(0), v)
    if style == "inverted_gray":
        return np.repeat((255 - np.clip(v, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    if style == "colormap":
        lo, hi = (float(r) for r in spec.get("range", (0.0, 1.0)))
        return colormap(v, lo, hi, invalid=~(v > 0) if spec.get("mask_nonpositive") else None)
    raise EdgeMTLError(f"unknown visual style {style!r} for task '{info.get('name')}' in the manifest "
                       f"(known: {', '.join(STYLES)}): upgrade edgemtl")


def palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), so class colours match common tools; 255 -> white."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    if n > IGNORE:
        cmap[IGNORE] = (255, 255, 255)
    return cmap


def colormap(values: np.ndarray, vmin: float, vmax: float, invalid: np.ndarray | None = None) -> np.ndarray:
    """Scalar map -> RGB through 'turbo', binned as matplotlib bins a float32 array
    (``floor(v * 256)``, 1.0 in the last bin, NaN black); ``invalid`` pixels black."""
    v = np.asarray(values, dtype=np.float32)
    nan = np.isnan(v)
    v = np.clip((np.where(nan, np.float32(0), v) - np.float32(vmin)) / np.float32(max(vmax - vmin, 1e-6)), 0, 1)
    rgb = TURBO[np.minimum((v * np.float32(256)).astype(np.int64), 255)]
    if nan.any():
        rgb[nan] = 0
    if invalid is not None:
        rgb[invalid] = 0
    return rgb


# matplotlib's 'turbo' (a 256-entry ListedColormap), (colors * 255).astype(uint8); inlined so that the
# runtime needs no matplotlib. tests/test_artifact.py checks it against matplotlib.
TURBO = np.array([
    48, 18, 59, 49, 21, 66, 50, 24, 74, 52, 27, 81, 53, 30, 88, 54, 33, 95, 55, 35, 101, 56, 38, 108,
    57, 41, 114, 58, 44, 121, 59, 47, 127, 60, 50, 133, 60, 53, 139, 61, 55, 145, 62, 58, 150, 63, 61, 156,
    64, 64, 161, 64, 67, 166, 65, 69, 171, 65, 72, 176, 66, 75, 181, 67, 78, 186, 67, 80, 190, 67, 83, 194,
    68, 86, 199, 68, 88, 203, 69, 91, 206, 69, 94, 210, 69, 96, 214, 69, 99, 217, 70, 102, 221, 70, 104, 224,
    70, 107, 227, 70, 109, 230, 70, 112, 232, 70, 115, 235, 70, 117, 237, 70, 120, 240, 70, 122, 242, 70, 125, 244,
    70, 127, 246, 70, 130, 248, 69, 132, 249, 69, 135, 251, 69, 137, 252, 68, 140, 253, 67, 142, 253, 66, 145, 254,
    65, 147, 254, 64, 150, 254, 63, 152, 254, 62, 155, 254, 60, 157, 253, 59, 160, 252, 57, 162, 252, 56, 165, 251,
    54, 168, 249, 52, 170, 248, 51, 172, 246, 49, 175, 245, 47, 177, 243, 45, 180, 241, 43, 182, 239, 42, 185, 237,
    40, 187, 235, 38, 189, 233, 37, 192, 230, 35, 194, 228, 33, 196, 225, 32, 198, 223, 30, 201, 220, 29, 203, 218,
    28, 205, 215, 27, 207, 212, 26, 209, 210, 25, 211, 207, 24, 213, 204, 24, 215, 202, 23, 217, 199, 23, 218, 196,
    23, 220, 194, 23, 222, 191, 24, 224, 189, 24, 225, 186, 25, 227, 184, 26, 228, 182, 27, 229, 180, 29, 231, 177,
    30, 232, 175, 32, 233, 172, 34, 235, 169, 36, 236, 166, 39, 237, 163, 41, 238, 160, 44, 239, 157, 47, 240, 154,
    50, 241, 151, 53, 243, 148, 56, 244, 145, 59, 244, 141, 63, 245, 138, 66, 246, 135, 70, 247, 131, 74, 248, 128,
    77, 249, 124, 81, 249, 121, 85, 250, 118, 89, 251, 114, 93, 251, 111, 97, 252, 108, 101, 252, 104, 105, 253, 101,
    109, 253, 98, 113, 253, 95, 116, 254, 92, 120, 254, 89, 124, 254, 86, 128, 254, 83, 132, 254, 80, 135, 254, 77,
    139, 254, 75, 142, 254, 72, 146, 254, 70, 149, 254, 68, 152, 254, 66, 155, 253, 64, 158, 253, 62, 161, 252, 61,
    164, 252, 59, 166, 251, 58, 169, 251, 57, 172, 250, 55, 174, 249, 55, 177, 248, 54, 179, 248, 53, 182, 247, 53,
    185, 245, 52, 187, 244, 52, 190, 243, 52, 192, 242, 51, 195, 241, 51, 197, 239, 51, 200, 238, 51, 202, 237, 51,
    205, 235, 52, 207, 234, 52, 209, 232, 52, 212, 231, 53, 214, 229, 53, 216, 227, 53, 218, 226, 54, 221, 224, 54,
    223, 222, 54, 225, 220, 55, 227, 218, 55, 229, 216, 56, 231, 215, 56, 232, 213, 56, 234, 211, 57, 236, 209, 57,
    237, 207, 57, 239, 205, 57, 240, 203, 58, 242, 200, 58, 243, 198, 58, 244, 196, 58, 246, 194, 58, 247, 192, 57,
    248, 190, 57, 249, 188, 57, 249, 186, 56, 250, 183, 55, 251, 181, 55, 251, 179, 54, 252, 176, 53, 252, 174, 52,
    253, 171, 51, 253, 169, 50, 253, 166, 49, 253, 163, 48, 254, 161, 47, 254, 158, 46, 254, 155, 45, 254, 152, 44,
    253, 149, 43, 253, 146, 41, 253, 143, 40, 253, 140, 39, 252, 137, 38, 252, 134, 36, 251, 131, 35, 251, 128, 34,
    250, 125, 32, 250, 122, 31, 249, 119, 30, 248, 116, 28, 247, 113, 27, 247, 110, 26, 246, 107, 24, 245, 104, 23,
    244, 101, 22, 243, 99, 21, 242, 96, 20, 241, 93, 19, 239, 90, 17, 238, 88, 16, 237, 85, 15, 236, 82, 14,
    234, 80, 13, 233, 77, 13, 232, 75, 12, 230, 73, 11, 229, 70, 10, 227, 68, 10, 226, 66, 9, 224, 64, 8,
    222, 62, 8, 221, 60, 7, 219, 58, 7, 217, 56, 6, 215, 54, 6, 214, 52, 5, 212, 50, 5, 210, 48, 5,
    208, 47, 4, 206, 45, 4, 203, 43, 3, 201, 41, 3, 199, 40, 3, 197, 38, 2, 195, 36, 2, 192, 35, 2,
    190, 33, 2, 187, 31, 1, 185, 30, 1, 182, 28, 1, 180, 27, 1, 177, 25, 1, 174, 24, 1, 172, 22, 1,
    169, 21, 1, 166, 20, 1, 163, 18, 1, 160, 17, 1, 157, 16, 1, 154, 14, 1, 151, 13, 1, 148, 12, 1,
    145, 11, 1, 142, 10, 1, 139, 9, 1, 135, 8, 1, 132, 7, 1, 129, 6, 2, 125, 5, 2, 122, 4, 2,], dtype=np.uint8).reshape(256, 3)
