"""Boxes from a detection task's raw output, in numpy (the runtime, the apps and evaluation share it).

The detection head is single-level FCOS (Tian et al., ICCV'19) read at the output's resolution:
the raw output ``[C + 5, H, W]`` holds, per pixel,

- ``[0, C)``  class logits (sigmoid, one per class: no background channel) before a fixed offset
  ``class_logit_offset`` = -log(99) (a prior of 1 %, FCOS's bias initialisation; as a constant the
  graph stays a plain conv and every target exports it),
- ``[C, C+4)`` distances from the pixel centre to the box's left, top, right and bottom sides, as
  fractions of the image width (left, right) and height (top, bottom),
- ``C+4``     a centre-ness logit.

Distances are linear in the pixel position inside a box, so a bilinear resize of the output is exact
there and the output can be read at any resolution. Decoding (``decode``): score = sqrt(sigmoid(cls)
x sigmoid(centre-ness)); candidates are pixels that are the maximum of their 3x3 neighbourhood in
their class's score map and score at least ``score_threshold``; the ``top_k`` best become boxes
(pixel centre minus / plus the distances, clipped to the image); greedy non-maximum suppression per
class drops a box whose IoU with a better one of its class exceeds ``nms_iou``; the ``max_dets`` best
remain. Boxes are ``[x1, y1, x2, y2]`` as fractions of the image (continuous corners: a pixel ``j``
spans ``[j, j+1] / W``); :func:`to_pixels` scales them to an image's size.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

# Decoding defaults (written into the manifest's task entry, which is what consumers read).
CLASS_LOGIT_OFFSET = -4.59511985013459  # -log((1 - 0.01) / 0.01)
DEFAULTS = {
    "score_threshold": 0.05,
    "top_k": 1000,
    "nms_iou": 0.6,
    "max_dets": 100,
    "class_logit_offset": CLASS_LOGIT_OFFSET,
}


def params(info: dict[str, Any]) -> dict[str, Any]:
    """The decoding parameters of a task entry, defaults where it has none."""
    given = info.get("boxes") or {}
    return {k: type(v)(given.get(k, v)) for k, v in DEFAULTS.items()}


def scores_map(raw: np.ndarray, num_classes: int, offset: float = CLASS_LOGIT_OFFSET) -> np.ndarray:
    """``[C+5, H, W]`` -> per-class scores ``[C, H, W]`` (float32)."""
    x = raw.astype(np.float64)
    cls = 1.0 / (1.0 + np.exp(-(x[:num_classes] + offset)))
    ctr = 1.0 / (1.0 + np.exp(-x[num_classes + 4]))
    return np.sqrt(cls * ctr[None]).astype(np.float32)


def _local_max(s: np.ndarray) -> np.ndarray:
    """Where ``s [C, H, W]`` equals the maximum of its 3x3 neighbourhood (edges padded with -inf)."""
    p = np.pad(s, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = s.shape[1:]
    m = s.copy()
    for dy in range(3):
        for dx in range(3):
            m = np.maximum(m, p[:, dy : dy + h, dx : dx + w])
    return s >= m


def box_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU (float64); where ``crowd[j]``, intersection / area of ``a``'s
    box (COCO's crowd regions). The one IoU of decoding, parity and the detection metrics."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    union = area_a + area_b - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool)[None, :], area_a, union)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy per-class NMS, best score first (ties: lower index first)."""
    order = np.argsort(-scores, kind="mergesort")
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), bool)
    ious = box_iou(boxes[order], boxes[order])
    same = labels[order][:, None] == labels[order][None, :]
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(int(order[i]))
        suppressed |= same[i] & (ious[i] > iou)
    return np.asarray(keep, dtype=np.int64)


def decode(raw: np.ndarray, num_classes: int, **options: Any) -> dict[str, np.ndarray]:
    """One image's raw output ``[C+5, H, W]`` (or ``[1, C+5, H, W]``) -> ``{"boxes": [K, 4]`` fractions
    of the image, ``"scores": [K]``, ``"labels": [K]}``, best first (module docstring)."""
    p = {**DEFAULTS, **options}
    x = np.asarray(raw, dtype=np.float32)
    x = x[0] if x.ndim == 4 else x
    C = int(num_classes)
    H, W = x.shape[1:]
    s = scores_map(x, C, float(p["class_logit_offset"]))
    cand = (s >= p["score_threshold"]) & _local_max(s)
    c, yy, xx = np.nonzero(cand)
    sc = s[c, yy, xx]
    top = np.argsort(-sc, kind="mergesort")[: int(p["top_k"])]
    c, yy, xx, sc = c[top], yy[top], xx[top], sc[top]
    d = np.maximum(x[C : C + 4, yy, xx].astype(np.float64), 0.0)  # [4, K]: l, t, r, b
    px, py = (xx + 0.5) / W, (yy + 0.5) / H
    boxes = np.stack([px - d[0], py - d[1], px + d[2], py + d[3]], 1).clip(0.0, 1.0)
    keep = nms(boxes, sc, c, float(p["nms_iou"]))[: int(p["max_dets"])]
    return {
        "boxes": boxes[keep].astype(np.float32),
        "scores": sc[keep].astype(np.float32),
        "labels": c[keep].astype(np.int64),
    }


def matched_fraction(a: dict[str, np.ndarray], b: dict[str, np.ndarray], iou: float = 0.9) -> float:
    """Share of the detections of ``a`` and ``b`` (both ways, the smaller) that the other has too:
    same class, IoU >= ``iou``, matched greedily one to one in score order. Parity of two runtimes'
    decoded boxes: raw outputs that agree to float precision can still order near-tied scores
    differently, which a per-index comparison would count as a difference."""

    def one_way(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> float:
        if not len(x["boxes"]):
            return 1.0
        ious = box_iou(x["boxes"], y["boxes"])
        ious[np.asarray(x["labels"])[:, None] != np.asarray(y["labels"])[None, :]] = 0.0
        free = np.ones(len(y["boxes"]), bool)
        hits = 0
        for i in np.argsort(-np.asarray(x["scores"]), kind="mergesort"):
            cand = np.where(free & (ious[i] >= iou))[0]
            if len(cand):
                free[cand[np.argmax(ious[i, cand])]] = False
                hits += 1
        return hits / len(x["boxes"])

    return min(one_way(a, b), one_way(b, a))


def to_pixels(det: dict[str, np.ndarray], hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boxes as fractions of the image -> pixels of an ``hw`` = (H, W) image (a new dict)."""
    scale = np.array([hw[1], hw[0], hw[1], hw[0]], dtype=np.float32)
    return {**det, "boxes": det["boxes"] * scale}


@functools.lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    from edgemtl.artifact.decoding import palette

    return palette(256)


def box_colour(label: int) -> tuple[int, int, int]:
    """The RGB a box of class ``label`` is drawn in: the palette entry of ``label + 1`` (entry 0 is
    black), as the apps draw it too (apps/web/js/tasks.js boxColour)."""
    return tuple(int(v) for v in _palette()[(int(label) + 1) % 255])  # type: ignore[return-value]


def draw(
    image: np.ndarray,
    det: dict[str, np.ndarray],
    class_names: list[str] | None = None,
    min_score: float = 0.3,
) -> np.ndarray:
    """Boxes in pixels drawn on a copy of the uint8 RGB ``image``: the class's palette colour, a label
    ``name score``; boxes below ``min_score`` are not drawn."""
    import cv2

    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    for box, score, label in zip(det["boxes"], det["scores"], det["labels"]):
        if score < min_score:
            continue
        colour = box_colour(int(label))
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 2)
        name = class_names[int(label)] if class_names and int(label) < len(class_names) else str(int(label))
        cv2.putText(
            out, f"{name} {score:.2f}", (x1 + 2, max(y1 + 10, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1
        )
    return out
