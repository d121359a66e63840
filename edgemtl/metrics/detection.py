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

import warnings
from typing import Any, ClassVar

import numpy as np

from edgemtl.artifact.boxes import box_iou
from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import _check_merge, _to_numpy

_WHAT = "detection metric"
COCO_IOUS = np.linspace(0.5, 0.95, 10)
RECALLS = np.linspace(0.0, 1.0, 101)


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


def _voc_image(p: dict, g: dict, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image, one class, detections in score order: (scores, true positive, counted): a detection
    whose best box is a difficult one it overlaps >= 0.5 counts for nothing, as if it were not there."""
    d, gsel = p["labels"] == c, g["labels"] == c
    gboxes, diff = g["boxes"][gsel], g["ignore"][gsel]
    order = np.argsort(-p["scores"][d], kind="mergesort")
    scores = p["scores"][d][order]
    ious = box_iou(p["boxes"][d][order], gboxes)
    taken = np.zeros(len(gboxes), bool)
    tp, counted = np.zeros(len(order)), np.ones(len(order), bool)
    for di in range(len(order)):
        j = int(np.argmax(ious[di])) if len(gboxes) else -1
        if j >= 0 and ious[di, j] >= 0.5:
            if diff[j]:
                counted[di] = False
            elif not taken[j]:
                taken[j], tp[di] = True, 1.0
    return scores, tp, counted


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
        scores, tp = [], []
        for p, g in zip(self.preds, self.gts):
            s, t, k = _voc_image(p, g, c)
            scores.append(s[k])
            tp.append(t[k])
        sc, tps = np.concatenate(scores), np.concatenate(tp)
        order = np.argsort(-sc, kind="mergesort")
        return _voc_ap(tps[order], 1.0 - tps[order], n_gt)

    # ---- paired bootstrap (edgemtl.metrics.bootstrap) ----
    # AP is not a sum over images, so the additive-state rule of the other meters does not apply.
    # Instead an image's state records what AP needs of it: its ground-truth count per class and,
    # per detection, class, score and its matching outcome (matching is decided within the image). A
    # resample with image multiplicities w weighs each detection by its image's w, which gives
    # exactly the AP of the image multiset (a repeated image's copies are adjacent in score order).
    # The state keeps an image's ``max_dets`` best detections (all of them for edgemtl's decoders).
    _FIELDS = 3 + 2 * len(COCO_IOUS) + 2  # class, score, coco_in, matched[T], ignored[T], voc_in, voc_tp

    def image_state(self) -> np.ndarray:
        """The state vector of a meter that holds exactly one image (see above)."""
        if len(self.gts) > 1:
            raise EdgeMTLError(f"DetectionMeter.image_state: needs a meter of one image, not {len(self.gts)}")
        if not self.gts:  # an image not labelled for detection: counts for nothing on any resample
            return np.concatenate([np.zeros(self.num_classes), np.full(self.max_dets * self._FIELDS, np.nan)])
        p, g = self.preds[0], self.gts[0]
        T = len(COCO_IOUS)
        n_gt = [float(((g["labels"] == c) & ~g["ignore"]).sum()) for c in range(self.num_classes)]
        rows = []
        for c in range(self.num_classes):
            scores, matched, ignored, _ = _coco_image(p, g, c, self.max_dets)
            vs, vtp, vin = _voc_image(p, g, c)
            r = np.zeros((len(vs), self._FIELDS))
            r[:, 0], r[:, 1] = c, vs
            r[: len(scores), 2] = 1.0
            r[: len(scores), 3 : 3 + T] = matched.T
            r[: len(scores), 3 + T : 3 + 2 * T] = ignored.T
            r[:, -2], r[:, -1] = vin, vtp
            rows.append(r)
        allrows = np.concatenate(rows) if rows else np.zeros((0, self._FIELDS))
        allrows = allrows[np.argsort(-allrows[:, 1], kind="mergesort")][: self.max_dets]
        out = np.full((self.max_dets, self._FIELDS), np.nan)
        out[: len(allrows)] = allrows
        return np.concatenate([n_gt, out.ravel()])

    def resampled(self, states: np.ndarray, weights: np.ndarray, key: str) -> np.ndarray:
        """``key`` of compute() on each resample: ``states`` [N, K] from :meth:`image_state`,
        ``weights`` [R, N] image multiplicities -> [R] (NaN where a resample has no ground truth)."""
        C, T = self.num_classes, len(COCO_IOUS)
        n_img = states.shape[0]
        rows = states[:, C:].reshape(n_img * self.max_dets, self._FIELDS)
        img = np.repeat(np.arange(n_img), self.max_dets)
        real = rows[:, 0] >= 0
        rows, img = rows[real], img[real]
        n_gt = weights @ states[:, :C]  # [R, C]
        R = weights.shape[0]
        coco = np.full((R, C, T), np.nan)
        voc = np.full((R, C), np.nan)
        for c in range(C):
            sel = rows[:, 0] == c
            order = np.argsort(-rows[sel, 1], kind="mergesort")
            d, img_c = rows[sel][order], img[sel][order]
            for r in range(R):  # one resample at a time: [R, D] weights could take gigabytes
                if n_gt[r, c] <= 0:
                    continue
                w = weights[r, img_c]
                if key != "VOC_mAP50":
                    wc = w * d[:, 2]
                    for ti in [0] if key == "AP50" else [5] if key == "AP75" else range(T):
                        keep = wc * (1.0 - d[:, 3 + T + ti])
                        coco[r, c, ti] = _interpolated_ap(
                            keep * d[:, 3 + ti], keep * (1 - d[:, 3 + ti]), n_gt[r, c]
                        )
                else:
                    wv = w * d[:, -2]
                    voc[r, c] = _voc_ap(wv * d[:, -1], wv * (1 - d[:, -1]), n_gt[r, c])
        with warnings.catch_warnings():  # a resample whose classes all lack ground truth is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            if key == "VOC_mAP50":
                return 100 * np.nanmean(voc, axis=1)
            ti = {"AP50": 0, "AP75": 5}.get(key)
            per_class = coco[:, :, ti] if ti is not None else np.nanmean(coco, axis=2)
            return 100 * np.nanmean(per_class, axis=1)

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
