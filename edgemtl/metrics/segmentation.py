"""Semantic / part segmentation: confusion matrix, mIoU and pixel accuracy (in %)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import _check_merge, _load_maps

_WHAT = "segmentation metric"


def _class_ids(x: np.ndarray, name: str) -> np.ndarray:
    """Integer class-id array; floats are accepted only if they hold whole numbers."""
    if x.dtype == bool:
        return x.astype(np.int64)
    if np.issubdtype(x.dtype, np.floating):
        if np.isnan(x).any():
            raise EdgeMTLError(f"{_WHAT}: {name} contains NaN (shape {tuple(x.shape)}); expected class ids")
        if not (np.isfinite(x).all() and (x == np.round(x)).all()):
            raise EdgeMTLError(
                f"{_WHAT}: {name} must hold integer class ids, got non-integer floats "
                f"(did you pass logits? take argmax over the class axis first)"
            )
    elif not np.issubdtype(x.dtype, np.integer):
        raise EdgeMTLError(f"{_WHAT}: {name} must hold integer class ids, got dtype {x.dtype}")
    return x.astype(np.int64, copy=False)


class ConfusionMeter:
    """Dataset-level confusion matrix over ``num_classes`` classes.

    ``ignore_index`` pixels in the ground truth are skipped. A prediction equal to ``ignore_index``
    is allowed and counts as a miss for the true class (a false negative, no false positive).
    """

    STATE: ClassVar[tuple[str, ...]] = ("cm",)  # additive: merge() adds it (bootstrap resamples it)
    higher_is_better: ClassVar[dict[str, bool]] = {"mIoU": True, "pixel_acc": True}

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        absent: str = "skip",
        skip_uniform_images: bool = False,
    ) -> None:
        """``absent``: "skip" (edgemtl: mIoU over classes with a non-empty union) or "zero" (ASTMT /
        MTL-PyTorch: every class of the dataset, a class never annotated nor predicted scoring 0).
        ``skip_uniform_images``: leave out images whose gt holds a single value, 0 or the ignore index
        (the peers' human-parts rule: no person, or persons without part annotations)."""
        if absent not in ("skip", "zero"):
            raise EdgeMTLError(f"ConfusionMeter: absent must be 'skip' or 'zero', got {absent!r}")
        self.absent, self.skip_uniform_images = absent, bool(skip_uniform_images)
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise EdgeMTLError(f"ConfusionMeter: num_classes must be a positive int, got {num_classes!r}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise EdgeMTLError(
                f"ConfusionMeter: ignore_index {ignore_index} collides with a class id (0..{num_classes - 1})"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        # Column C collects predictions equal to ignore_index (rows: gt class, cols: pred class).
        self.cm = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def update(self, pred: Any, gt: Any) -> None:
        p, g = _load_maps(pred, gt, _WHAT)
        p, g = _class_ids(p, "pred"), _class_ids(g, "gt")
        if self.skip_uniform_images:
            keep = [
                i for i in range(g.shape[0]) if np.unique(g[i]).tolist() not in ([0], [self.ignore_index])
            ]
            if len(keep) < g.shape[0]:
                if not keep:
                    return
                p, g = p[keep], g[keep]
        c, ign = self.num_classes, self.ignore_index
        valid = g != ign if ign is not None else np.ones(g.shape, dtype=bool)
        gv, pv = g[valid], p[valid]
        bad_g = (gv < 0) | (gv >= c)
        if bad_g.any():
            raise EdgeMTLError(
                f"{_WHAT}: gt holds class id(s) {np.unique(gv[bad_g])[:5].tolist()} outside 0..{c - 1} "
                f"(ignore={ign}), shape {tuple(g.shape)}"
            )
        # Checked on every pixel, not only valid ones: an out-of-range id is a bug wherever it is.
        bad_p = ((p < 0) | (p >= c)) & ((p != ign) if ign is not None else True)
        if bad_p.any():
            raise EdgeMTLError(
                f"{_WHAT}: pred holds class id(s) {np.unique(p[bad_p])[:5].tolist()} outside 0..{c - 1} "
                f"(ignore={ign}), shape {tuple(p.shape)}"
            )
        pv = np.where(pv == ign, c, pv) if ign is not None else pv
        self.cm += np.bincount(gv * (c + 1) + pv, minlength=c * (c + 1)).reshape(c, c + 1)

    def merge(self, other: ConfusionMeter) -> ConfusionMeter:
        _check_merge(self, other, ("num_classes", "ignore_index", "absent", "skip_uniform_images"))
        self.cm += other.cm
        return self

    def per_class_iou(self) -> np.ndarray:
        """IoU per class in %, NaN for classes absent from both gt and pred (zero union)."""
        tp = np.diag(self.cm[:, : self.num_classes]).astype(np.float64)
        gt_n = self.cm.sum(1)
        pred_n = self.cm[:, : self.num_classes].sum(0)
        union = gt_n + pred_n - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, 100.0 * tp / np.maximum(union, 1), np.nan)

    def compute(self) -> dict[str, float]:
        total = int(self.cm.sum())
        if total == 0:
            raise EdgeMTLError("ConfusionMeter: no valid (non-ignored) pixels were accumulated")
        iou = self.per_class_iou()
        return {
            "mIoU": float(np.nanmean(iou) if self.absent == "skip" else np.nan_to_num(iou, nan=0.0).mean()),
            "pixel_acc": 100.0 * float(np.trace(self.cm[:, : self.num_classes])) / total,
        }


def miou(pred: Any, gt: Any, num_classes: int, ignore_index: int | None = 255) -> dict[str, float]:
    """``{'mIoU', 'pixel_acc'}`` in % for class maps [H,W] or [B,H,W] (dataset-level union)."""
    m = ConfusionMeter(num_classes, ignore_index)
    m.update(pred, gt)
    return m.compute()
