"""Object detection: COCO-style mAP@[.5:.95] / AP50 / AP75 and VOC (2010+) mAP@0.5, in %.

Boxes are ``[x1, y1, x2, y2]`` in pixels, continuous coordinates (area = (x2 - x1) * (y2 - y1), no
"+1"). One image's prediction is ``{"boxes": [N, 4], "scores": [N], "labels": [N]}``; its ground
truth is ``{"boxes": [M, 4], "labels": [M]}`` with an optional ``"ignore": [M]`` (bool).

COCO (the definition of pycocotools' ``COCOeval`` for bounding boxes, area range "all"):

- per image and class, detections sorted by score (stable) and cut to the top ``max_dets`` (100);
- at each IoU threshold 0.50, 0.55, ..., 0.95, each detection in score order takes the unmatched
  ground-truth box of highest IoU >= the threshold (boxes not ignored first); an ``ignore`` box is a
  crowd region: its IoU is intersection / detection area, it may take several detections, and a
  detection matched to it counts neither as true nor as false positive;
- per class, all images' detections sorted by score (stable); precision made non-increasing from the
  right and read at the 101 recalls 0, 0.01, ..., 1 (0 beyond the highest recall reached); AP = their
  mean; a class without ground truth (other than ignored) is left out, a class with ground truth
  but no detection scores 0;
- ``mAP`` = the mean over classes and the 10 thresholds; ``AP50`` / ``AP75`` at one threshold.

VOC (the PASCAL VOC 2010+ devkit's ``VOCevaldet``: all-point AP at IoU 0.5): detections of a class
over all images sorted by score; each takes the ground-truth box of highest IoU in its image; it is a
true positive if that IoU >= 0.5 and the box is not yet taken, a false positive otherwise, and
ignored ("difficult") if the box is ``ignore``; AP = the area under the precision-recall curve with
precision made non-increasing (every recall point, no 11-point sampling). Unlike the devkit, boxes
are continuous (no "+1" in widths), as in COCO. ``VOC_mAP50`` = the mean over classes with ground truth.

Tested against pycocotools on the same boxes (tests/test_metrics_detection.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import _check_merge, _to_numpy

_WHAT = "detection metric"
COCO_IOUS = np.linspace(0.5, 0.95, 10)
RECALLS = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU; where ``crowd[j]``, intersection / area of ``a``'s box."""
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


def _boxes(x: Any, name: str) -> np.ndarray:
    b = _to_numpy(x, name).astype(np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise EdgeMTLError(
            f"{_WHAT}: {name} must be [N, 4] boxes (x1, y1, x2, y2), got shape {list(b.shape)}"
        )
    bad = ~np.isfinite(b).all(1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise EdgeMTLError(
            f"{_WHAT}: {name} box {i} is {b[i].tolist()}: boxes are finite (x1, y1, x2, y2) with x2 >= x1, "
            "y2 >= y1"
        )
    return b


def _vector(x: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    v = _to_numpy(x, name).reshape(-1)
    if v.size != n:
        raise EdgeMTLError(f"{_WHAT}: {name} has {v.size} entries for {n} boxes")
    if dtype is np.int64 and v.size and (v.astype(np.float64) != np.round(v.astype(np.float64))).any():
        raise EdgeMTLError(f"{_WHAT}: {name} must hold integer class ids, got {v[:5].tolist()}")
    return v.astype(dtype)


def _image(d: Any, name: str, with_scores: bool) -> dict[str, np.ndarray]:
    if not isinstance(d, dict) or "boxes" not in d or "labels" not in d:
        keys = "boxes, scores, labels" if with_scores else "boxes, labels (and optionally ignore)"
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise EdgeMTLError(f"{_WHAT}: each {name} must be a dict with {keys}, got {got}")
    boxes = _boxes(d["boxes"], f"{name} boxes")
    out = {"boxes": boxes, "labels": _vector(d["labels"], len(boxes), f"{name} labels", np.int64)}
    if with_scores:
        if "scores" not in d:
            raise EdgeMTLError(f"{_WHAT}: each {name} needs scores")
        out["scores"] = _vector(d["scores"], len(boxes), f"{name} scores", np.float64)
        if not np.isfinite(out["scores"]).all():
            i = int(np.argmax(~np.isfinite(out["scores"])))
            raise EdgeMTLError(f"{_WHAT}: {name} score {i} is {out['scores'][i]}; scores must be finite")
    else:
        ignore = d.get("ignore")
        out["ignore"] = (
            np.zeros(len(boxes), bool) if ignore is None else _vector(ignore, len(boxes), "ignore", bool)
        )
    return out


def _coco_image(
    dt: dict, gt: dict, cls: int, max_dets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One image, one class: (scores [D], matched [T, D], ignored [T, D], #gt not ignored)."""
    d_sel, g_sel = dt["labels"] == cls, gt["labels"] == cls
    order = np.argsort(-dt["scores"][d_sel], kind="mergesort")[:max_dets]
    scores, dboxes = dt["scores"][d_sel][order], dt["boxes"][d_sel][order]
    g_ign = gt["ignore"][g_sel]
    g_order = np.argsort(g_ign, kind="mergesort")  # boxes not ignored first
    gboxes, g_ign = gt["boxes"][g_sel][g_order], g_ign[g_order]
    ious = box_iou(dboxes, gboxes, crowd=g_ign)
    t_n, d_n = len(COCO_IOUS), len(scores)
    matched, ignored = np.zeros((t_n, d_n), bool), np.zeros((t_n, d_n), bool)
    for ti, thr in enumerate(COCO_IOUS):
        taken = np.zeros(len(gboxes), bool)
        for di in range(d_n):
            best, m = min(thr, 1 - 1e-10), -1
            for gi in range(len(gboxes)):
                if taken[gi] and not g_ign[gi]:
                    continue
                if m > -1 and not g_ign[m] and g_ign[gi]:
                    break  # a real match beats any crowd region after it
                if ious[di, gi] < best:
                    continue
                best, m = ious[di, gi], gi
            if m > -1:
                taken[m], matched[ti, di], ignored[ti, di] = True, True, g_ign[m]
    return scores, matched, ignored, int((~g_ign).sum())


def _interpolated_ap(tp: np.ndarray, fp: np.ndarray, n_gt: int) -> float:
    """COCO's 101-point AP of one class at one threshold (detections already in score order)."""
    if len(tp) == 0:
        return 0.0
    tps, fps = np.cumsum(tp), np.cumsum(fp)
    rec = tps / n_gt
    prec = tps / (tps + fps + np.spacing(1))
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    idx = np.searchsorted(rec, RECALLS, side="left")
    q = np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)], 0.0)
    return float(q.mean())


def _voc_ap(tp: np.ndarray, fp: np.ndarray, n_gt: int) -> float:
    """Area under the PR curve with precision made non-increasing (VOC 2010+)."""
    if len(tp) == 0:
        return 0.0
    tps, fps = np.cumsum(tp), np.cumsum(fp)
    rec = np.concatenate([[0.0], tps / n_gt, [1.0]])
    prec = np.concatenate([[0.0], tps / np.maximum(tps + fps, np.finfo(np.float64).eps), [0.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.nonzero(rec[1:] != rec[:-1])[0]
    return float(((rec[steps + 1] - rec[steps]) * prec[steps + 1]).sum())


class DetectionMeter:
    """Dataset-level detection AP. ``update(preds, gts)`` takes one image's dicts or lists of them
    (see the module docstring); ``compute()`` -> ``mAP``, ``AP50``, ``AP75`` (COCO) and ``VOC_mAP50``,
    in %, plus ``per_class`` via :meth:`per_class_ap`."""

    higher_is_better: ClassVar[dict[str, bool]] = {"mAP": True, "AP50": True, "AP75": True, "VOC_mAP50": True}

    def __init__(self, num_classes: int, max_dets: int = 100) -> None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise EdgeMTLError(f"DetectionMeter: num_classes must be a positive int, got {num_classes!r}")
        if not isinstance(max_dets, (int, np.integer)) or max_dets < 1:
            raise EdgeMTLError(f"DetectionMeter: max_dets must be a positive int, got {max_dets!r}")
        self.num_classes, self.max_dets = int(num_classes), int(max_dets)
        self.reset()

    def reset(self) -> None:
        self.preds: list[dict[str, np.ndarray]] = []
        self.gts: list[dict[str, np.ndarray]] = []

    def update(self, pred: Any, gt: Any) -> None:
        preds, gts = (pred, gt) if isinstance(pred, (list, tuple)) else ([pred], [gt])
        if not isinstance(gts, (list, tuple)) or len(preds) != len(gts):
            n_gt = len(gts) if isinstance(gts, (list, tuple)) else type(gts).__name__
            raise EdgeMTLError(
                f"{_WHAT}: {len(preds)} predictions for {n_gt} ground truths; give one per image"
            )
        batch = [
            (_image(p, "prediction", True), _image(g, "ground truth", False)) for p, g in zip(preds, gts)
        ]
        for p, g in batch:  # all checked before any is kept: a bad image leaves the meter as it was
            for what, labels in (("prediction", p["labels"]), ("ground truth", g["labels"])):
                out = labels[(labels < 0) | (labels >= self.num_classes)]
                if out.size:
                    raise EdgeMTLError(
                        f"{_WHAT}: {what} class id {int(out[0])} is outside 0..{self.num_classes - 1}"
                    )
        self.preds += [p for p, _ in batch]
        self.gts += [g for _, g in batch]

    def merge(self, other: DetectionMeter) -> DetectionMeter:
        _check_merge(self, other, ("num_classes", "max_dets"))
        self.preds += other.preds
        self.gts += other.gts
        return self

    def per_class_ap(self) -> dict[str, np.ndarray]:
        """``coco`` [classes, 10] and ``voc`` [classes] AP as fractions; NaN for classes without gt."""
        coco = np.full((self.num_classes, len(COCO_IOUS)), np.nan)
        voc = np.full(self.num_classes, np.nan)
        for c in range(self.num_classes):
            per_image = [_coco_image(p, g, c, self.max_dets) for p, g in zip(self.preds, self.gts)]
            n_gt = sum(r[3] for r in per_image)
            if n_gt == 0:
                continue
            scores = np.concatenate([r[0] for r in per_image])
            order = np.argsort(-scores, kind="mergesort")
            matched = np.concatenate([r[1] for r in per_image], axis=1)[:, order]
            ignored = np.concatenate([r[2] for r in per_image], axis=1)[:, order]
            for ti in range(len(COCO_IOUS)):
                keep = ~ignored[ti]
                coco[c, ti] = _interpolated_ap(matched[ti][keep], ~matched[ti][keep], n_gt)
            voc[c] = self._voc_class(c, n_gt)
        return {"coco": coco, "voc": voc}

    def _voc_class(self, c: int, n_gt: int) -> float:
        scores, tp, fp = [], [], []
        for p, g in zip(self.preds, self.gts):
            d, gsel = p["labels"] == c, g["labels"] == c
            gboxes, diff = g["boxes"][gsel], g["ignore"][gsel]
            order = np.argsort(-p["scores"][d], kind="mergesort")
            ious = box_iou(p["boxes"][d][order], gboxes)
            taken = np.zeros(len(gboxes), bool)
            for di in range(len(order)):
                j = int(np.argmax(ious[di])) if len(gboxes) else -1
                if j >= 0 and ious[di, j] >= 0.5 and diff[j]:
                    continue  # on a difficult box: counts for nothing, as if it were not there
                scores.append(p["scores"][d][order][di])
                if j >= 0 and ious[di, j] >= 0.5:
                    hit = not taken[j]
                    taken[j] = True
                    tp.append(float(hit))
                    fp.append(float(not hit))
                else:
                    tp.append(0.0)
                    fp.append(1.0)
        order = np.argsort(-np.asarray(scores), kind="mergesort")
        return _voc_ap(np.asarray(tp)[order], np.asarray(fp)[order], n_gt)

    def compute(self) -> dict[str, float]:
        if not self.gts:
            raise EdgeMTLError("DetectionMeter: no images were accumulated")
        ap = self.per_class_ap()
        if np.isnan(ap["voc"]).all():
            raise EdgeMTLError("DetectionMeter: no ground-truth boxes (other than ignored ones) to score")
        coco = ap["coco"][~np.isnan(ap["coco"][:, 0])]
        return {
            "mAP": 100 * float(coco.mean()),
            "AP50": 100 * float(coco[:, 0].mean()),
            "AP75": 100 * float(coco[:, 5].mean()),
            "VOC_mAP50": 100 * float(np.nanmean(ap["voc"])),
        }
