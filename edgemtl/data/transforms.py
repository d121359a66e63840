"""Task-consistent augmentation on item dicts (see :mod:`edgemtl.data.dataset`).

Every transform is called as ``t(sample, rng)`` with a ``numpy.random.Generator`` and returns a
new dict; the dataset seeds ``rng`` from (seed, epoch, index), so augmentation is reproducible
and independent of DataLoader workers. Deterministic transforms ignore ``rng``.

Per-key handling (fill = value used for pixels that come from outside the source image). The
image is resampled bilinearly (area when shrinking) and filled with 0; it is the only key
photometric transforms touch. Every other key is a task, which declares its own handling
(``Task.interp``, ``Task.fill``, ``Task.flip_label``, ``Task.rotate_label``); edgemtl's tasks:

=========  ==============  =======  ==================================================
key        interpolation   fill     notes
=========  ==============  =======  ==================================================
semseg     nearest         255      no new class ids can appear
parts      nearest         255
edges      nearest         255      binary maps keep {0, 1, 255}
saliency   nearest         255
depth      nearest         0        values stay metric (resize = focal-length change)
normals    nearest         0        flip negates x; rotation rotates (x, y) in-plane
detection  (boxes)         --       corners moved by the same geometry; the box around them,
                                    clipped to the output; boxes under 2 px wide/high dropped
=========  ==============  =======  ==================================================

Normals use the camera frame x right, y up, z towards the camera; nearest sampling keeps them
unit length and never blends a valid normal with an invalid (zero) one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgemtl.tasks import TASKS

Sample = dict[str, Any]

IMAGE_SPEC = ("linear", 0.0)


def _task(key: str):
    """The task class that owns sample key ``key``."""
    if key not in TASKS:
        raise ValueError(
            f"don't know how to transform sample key '{key}'; known: image, {', '.join(TASKS.names())}"
        )
    return TASKS.get(key)


def _spec(key: str) -> tuple[str, float]:
    if key == "image":
        return IMAGE_SPEC
    task = _task(key)
    return task.interp, float(task.fill)


def _to_hwc(t: torch.Tensor) -> np.ndarray:
    a = t.detach().cpu().numpy()
    if a.ndim == 3:
        a = a.transpose(1, 2, 0)
    return np.ascontiguousarray(a, dtype=np.float32)  # float32 holds class ids 0..255 exactly


def _from_hwc(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    if like.ndim == 3:
        a = (a[..., None] if a.ndim == 2 else a).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a)).to(like.dtype)


def _is_map(key: str) -> bool:
    """Whether sample key ``key`` is a pixel map (the image, a dense task) rather than a list of boxes."""
    return key == "image" or getattr(_task(key), "dense", True)


def _apply(sample: Sample, fn, matrix: np.ndarray, out_hw: tuple[int, int]) -> Sample:
    """Run ``fn(hwc_array, key, interp, fill) -> hwc_array`` on every spatial tensor; box labels move
    with ``matrix`` (2x3, pixel-corner coordinates of the input -> of the ``out_hw`` output, the same
    geometry as ``fn``) through their task's ``warp_label``."""
    out = dict(sample)
    in_hw = _hw(sample)
    for key, val in sample.items():
        if not isinstance(val, torch.Tensor):
            continue
        if not _is_map(key):
            out[key] = _task(key).warp_label(val, matrix, in_hw, out_hw)
            continue
        interp, fill = _spec(key)
        out[key] = _from_hwc(fn(_to_hwc(val), key, interp, fill), val)
    return out


def _affine(sx: float = 1.0, sy: float = 1.0, tx: float = 0.0, ty: float = 0.0) -> np.ndarray:
    return np.array([[sx, 0.0, tx], [0.0, sy, ty]])


def _hw(sample: Sample) -> tuple[int, int]:
    h, w = sample["image"].shape[-2:]
    return int(h), int(w)


def _resize(a: np.ndarray, key: str, interp: str, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    h, w = hw
    if interp == "nearest":
        flag = cv2.INTER_NEAREST_EXACT  # pixel-centre aligned, like the bilinear image resize
    else:
        flag = cv2.INTER_AREA if (h < a.shape[0] and w < a.shape[1]) else cv2.INTER_LINEAR
    out = cv2.resize(a, (w, h), interpolation=flag)
    return out[..., None] if a.ndim == 3 and out.ndim == 2 else out


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = rng if rng is not None else np.random.default_rng(0)
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomHorizontalFlip:
    """Mirror every map left-right with probability ``p``; each task then fixes values with a
    direction (``Task.flip_label``: normals' x component is negated)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return dict(sample)
        H, W = _hw(sample)
        out = dict(sample)
        for k, v in sample.items():
            if not isinstance(v, torch.Tensor):
                continue
            if not _is_map(k):
                out[k] = _task(k).warp_label(v, _affine(-1.0, 1.0, W, 0.0), (H, W), (H, W))
            else:
                out[k] = v.flip(-1) if k == "image" else _task(k).flip_label(v.flip(-1))
        return out


class RandomScaleCrop:
    """Resize the whole image to ``base`` (H, W) times a random factor in ``scales``, then crop ``size``.

    ``base`` is the size the deployed artifact resizes every image to (the model's input size;
    default ``size``), so at factor 1 the training view is exactly the deployed view, whatever the
    stored image size or aspect ratio (docs/metrics.md, "Input scale"). ``base=None`` keeps the
    aspect ratio instead and scales the image to cover ``size``. Where the scaled image is smaller
    than ``size`` it is placed at a random offset and the rest is filled (image 0, labels 255,
    depth/normals 0). Depth values are not changed.
    """

    def __init__(
        self,
        scales: tuple[float, float] = (0.75, 1.25),
        size: tuple[int, int] = (512, 512),
        base: tuple[int, int] | None | str = "size",
    ) -> None:
        self.scales, self.size = tuple(scales), (int(size[0]), int(size[1]))
        self.base = self.size if base == "size" else (None if base is None else (int(base[0]), int(base[1])))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        H, W = _hw(sample)
        h, w = self.size
        s = rng.uniform(*self.scales)
        fy, fx = (self.base[0] / H * s, self.base[1] / W * s) if self.base else (max(h / H, w / W) * s,) * 2
        nh, nw = max(1, round(H * fy)), max(1, round(W * fx))
        y0 = int(rng.integers(min(0, nh - h), max(0, nh - h) + 1))  # < 0 means padding
        x0 = int(rng.integers(min(0, nw - w), max(0, nw - w) + 1))
        sy, sx, oy, ox = max(y0, 0), max(x0, 0), max(-y0, 0), max(-x0, 0)
        ch, cw = min(h - oy, nh - sy), min(w - ox, nw - sx)

        def fn(a: np.ndarray, key: str, interp: str, fill: float) -> np.ndarray:
            r = _resize(a, key, interp, (nh, nw))
            out = np.full((h, w) + r.shape[2:], fill, dtype=np.float32)
            out[oy : oy + ch, ox : ox + cw] = r[sy : sy + ch, sx : sx + cw]
            return out

        return _apply(sample, fn, _affine(nw / W, nh / H, ox - sx, oy - sy), (h, w))


class RandomRotate:
    """Rotate about the image centre by an angle (degrees, positive = counter-clockwise on screen).

    ``degrees`` is d (uniform in [-d, d]) or a (lo, hi) range. Normals' (x, y) are rotated by the
    same angle: with y up, a counter-clockwise turn maps (1, 0) to (cos a, sin a).
    """

    def __init__(self, degrees: float | tuple[float, float] = 20.0) -> None:
        self.range = (-abs(degrees), abs(degrees)) if isinstance(degrees, (int, float)) else tuple(degrees)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        import cv2

        angle = float(rng.uniform(*self.range))
        H, W = _hw(sample)
        M = cv2.getRotationMatrix2D(((W - 1) / 2.0, (H - 1) / 2.0), angle, 1.0)
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))

        def fn(a: np.ndarray, key: str, interp: str, fill: float) -> np.ndarray:
            if key != "image":
                a = _task(key).rotate_label(a, c, s)
            flag = cv2.INTER_NEAREST if interp == "nearest" else cv2.INTER_LINEAR
            n = a.shape[2] if a.ndim == 3 else 1
            r = cv2.warpAffine(
                a, M, (W, H), flags=flag, borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * min(n, 4)
            )
            return r[..., None] if a.ndim == 3 and r.ndim == 2 else r

        # cv2's M acts on pixel centres; boxes use pixel corners (x_corner = x_centre + 0.5). Boxes
        # become the box around their rotated corners (looser than the object, as usual).
        Mc = M.copy()
        Mc[:, 2] += 0.5 - M[:, :2] @ np.array([0.5, 0.5])
        return _apply(sample, fn, Mc, (H, W))


class ColorJitter:
    """Photometric jitter of ``image`` only (labels are untouched), applied in random order.

    brightness/contrast/saturation b draw a factor in [max(0, 1-b), 1+b]; hue h draws a shift in
    [-h, h] turns (h <= 0.5), applied as a rotation of the YIQ chroma plane.
    """

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
    ) -> None:
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        img = sample["image"]
        gray_w = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype).view(3, 1, 1)
        for op in rng.permutation(4):
            if op == 0 and self.brightness:
                img = img * rng.uniform(max(0.0, 1 - self.brightness), 1 + self.brightness)
            elif op == 1 and self.contrast:
                m = (img * gray_w).sum(0).mean()
                img = (img - m) * rng.uniform(max(0.0, 1 - self.contrast), 1 + self.contrast) + m
            elif op == 2 and self.saturation:
                g = (img * gray_w).sum(0, keepdim=True)
                img = (img - g) * rng.uniform(max(0.0, 1 - self.saturation), 1 + self.saturation) + g
            elif op == 3 and self.hue:
                img = _hue_shift(img, float(rng.uniform(-self.hue, self.hue)))
            img = img.clamp(0.0, 1.0)
        return {**sample, "image": img.to(sample["image"].dtype)}


def _hue_shift(img: torch.Tensor, turns: float) -> torch.Tensor:
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
    )
    c, s = math.cos(2 * math.pi * turns), math.sin(2 * math.pi * turns)
    rot = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)
    m = (torch.linalg.inv(to_yiq) @ rot @ to_yiq).to(img.dtype)
    return torch.einsum("ij,jhw->ihw", m, img)


class Resize:
    """Deterministic resize of every map to ``size`` = (H, W) (for evaluation)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        if _hw(sample) == self.size:
            return dict(sample)
        (H, W), (h, w) = _hw(sample), self.size
        return _apply(
            sample,
            lambda a, key, interp, fill: _resize(a, key, interp, self.size),
            _affine(w / W, h / H),
            (h, w),
        )


class PadToMultiple:
    """Pad bottom/right so H and W are multiples of ``k`` (fill values as for out-of-image pixels)."""

    def __init__(self, k: int = 32) -> None:
        self.k = int(k)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        H, W = _hw(sample)
        h, w = -(-H // self.k) * self.k, -(-W // self.k) * self.k
        if (h, w) == (H, W):
            return dict(sample)

        def fn(a: np.ndarray, key: str, interp: str, fill: float) -> np.ndarray:
            out = np.full((h, w) + a.shape[2:], fill, dtype=np.float32)
            out[:H, :W] = a
            return out

        return _apply(sample, fn, _affine(), (h, w))


def default_train_transform(
    size: tuple[int, int],
    *,
    scales: tuple[float, float] = (0.75, 1.25),
    degrees: float = 0.0,
    color_jitter: tuple[float, float, float, float] | None = None,
    base: tuple[int, int] | None = None,
) -> Compose:
    """Flip, optional rotation, resize to ``base`` (the model's input size, default ``size``) times a
    random scale, crop ``size``, optional colour jitter (ASTMT-style)."""
    ts: list[Any] = [RandomHorizontalFlip(0.5)]
    if degrees:
        ts.append(RandomRotate(degrees))
    ts.append(RandomScaleCrop(scales, size, base=base or size))
    if color_jitter:
        ts.append(ColorJitter(*color_jitter))
    return Compose(ts)


def default_eval_transform(size: tuple[int, int] | None = None) -> Compose:
    """Resize to ``size`` (H, W), or identity when ``size`` is None (full-resolution evaluation)."""
    return Compose([Resize(size)] if size is not None else [])
