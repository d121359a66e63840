"""Saliency: maxF (β² = 0.3) and max-mIoU over binarisation thresholds, in %."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import (
    IGNORE_INDEX,
    _check_binary_gt,
    _check_merge,
    _check_unit_range,
    _load_maps,
)

_WHAT = "saliency metric"


def default_thresholds() -> np.ndarray:
    """0.01, 0.02, ..., 0.99."""
    return np.round(np.arange(1, 100) * 0.01, 2)


def _thresholds(thresholds: Sequence[float] | None) -> np.ndarray:
    if thresholds is None:
        return default_thresholds()
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise EdgeMTLError(f"SaliencyMeter: thresholds must be a non-empty list in [0,1], got {thresholds!r}")
    return t


def peer_thresholds() -> np.ndarray:
    """ASTMT / MTL-PyTorch: 15 thresholds 0.2, 0.25, ..., 0.9."""
    return np.linspace(0.2, 0.9, 15)


def peer_image_stats(prob: np.ndarray, gt: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[3, T] as the peers' ``eval_sal`` computes them: gt 255 counts as foreground (no ignore),
    P = tp / (#pred + 1e-12) and R = tp / (#gt + 1e-12) (both 0 on an image without foreground, which
    is kept), IoU 1 when gt and prediction are both empty."""
    fg = (gt == 1) | (gt == IGNORE_INDEX)
    p = prob.reshape(-1)
    srt_all, srt_fg = np.sort(p), np.sort(p[fg.reshape(-1)])
    n_pred = p.size - np.searchsorted(srt_all, thresholds, side="right")
    tp = srt_fg.size - np.searchsorted(srt_fg, thresholds, side="right")
    n_gt = srt_fg.size
    union = n_pred + n_gt - tp
    prec = tp / (n_pred + 1e-12)
    rec = tp / (n_gt + 1e-12)
    iou = np.where(union > 0, tp / np.maximum(union, 1), 1.0)
    return np.stack([prec, rec, iou])


def per_image_stats(prob: np.ndarray, gt: np.ndarray, thresholds: np.ndarray) -> np.ndarray | None:
    """[3, T] precision, recall, foreground IoU (fractions) of ``prob > t``; None if all ignored.

    Empty cases: no predicted positives -> precision 1; no gt foreground -> recall 1; empty
    union (no gt and no prediction) -> IoU 1.
    """
    valid = gt != IGNORE_INDEX
    p, fg = prob[valid], gt[valid] == 1
    if p.size == 0:
        return None
    # #(x > t) for every threshold from one sort: size - #(x <= t).
    srt_all, srt_fg = np.sort(p), np.sort(p[fg])
    n_pred = p.size - np.searchsorted(srt_all, thresholds, side="right")
    tp = srt_fg.size - np.searchsorted(srt_fg, thresholds, side="right")
    n_gt = srt_fg.size
    union = n_pred + n_gt - tp
    prec = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 1.0)
    rec = np.full(thresholds.shape, 1.0) if n_gt == 0 else tp / n_gt
    iou = np.where(union > 0, tp / np.maximum(union, 1), 1.0)
    return np.stack([prec, rec, iou])


class SaliencyMeter:
    """maxF and max_mIoU of a probability map against a binary mask (255 = ignore).

    Per threshold, precision, recall and foreground IoU are computed per image and averaged over
    images (ASTMT / MTL-PyTorch). F uses the averaged P and R; both keys are maxima over thresholds.
    """

    STATE: ClassVar[tuple[str, ...]] = ("n_images", "sums")  # additive (merge adds it)
    higher_is_better: ClassVar[dict[str, bool]] = {"maxF": True, "max_mIoU": True}

    def __init__(
        self, thresholds: Sequence[float] | None = None, beta2: float = 0.3, peer: bool = False
    ) -> None:
        """``peer=True``: the image statistics of ASTMT / MTL-PyTorch (:func:`peer_image_stats`) and
        their F = (1+β²)PR / (β²P + R + 1e-12); pass ``thresholds=peer_thresholds(), beta2=1`` too."""
        self.thresholds = _thresholds(thresholds)
        if not beta2 > 0:
            raise EdgeMTLError(f"SaliencyMeter: beta2 must be > 0, got {beta2!r}")
        self.beta2 = float(beta2)
        self.peer = bool(peer)
        self.reset()

    def reset(self) -> None:
        self.n_images = 0
        self.sums = np.zeros((3, self.thresholds.size), dtype=np.float64)  # Σ P, Σ R, Σ IoU

    def update(self, pred: Any, gt: Any) -> None:
        p, g = _load_maps(pred, gt, _WHAT)
        p = p.astype(np.float64)
        _check_unit_range(p, "pred", _WHAT)
        _check_binary_gt(g, _WHAT)
        for pi, gi in zip(p, g):
            s = (
                peer_image_stats(pi, gi, self.thresholds)
                if self.peer
                else per_image_stats(pi, gi, self.thresholds)
            )
            if s is not None:
                self.sums += s
                self.n_images += 1

    def merge(self, other: SaliencyMeter) -> SaliencyMeter:
        _check_merge(self, other, ("thresholds", "beta2", "peer"))
        self.n_images += other.n_images
        self.sums += other.sums
        return self

    def curves(self) -> dict[str, np.ndarray]:
        """Per-threshold mean precision, recall, F and mIoU (fractions)."""
        if self.n_images == 0:
            raise EdgeMTLError("SaliencyMeter: no images with valid (non-ignored) pixels were accumulated")
        mp, mr, miou = self.sums / self.n_images
        den = self.beta2 * mp + mr
        if self.peer:
            f = (1 + self.beta2) * mp * mr / (den + 1e-12)
        else:
            f = np.where(den > 0, (1 + self.beta2) * mp * mr / np.where(den > 0, den, 1), 0.0)
        return {"thresholds": self.thresholds, "precision": mp, "recall": mr, "F": f, "mIoU": miou}

    def compute(self) -> dict[str, float]:
        c = self.curves()
        return {"maxF": 100.0 * float(c["F"].max()), "max_mIoU": 100.0 * float(c["mIoU"].max())}


def saliency_metrics(
    pred: Any, gt: Any, thresholds: Sequence[float] | None = None, beta2: float = 0.3
) -> dict[str, float]:
    """``{'maxF', 'max_mIoU'}`` in % for probability maps [H,W] or [B,H,W]."""
    m = SaliencyMeter(thresholds, beta2)
    m.update(pred, gt)
    return m.compute()
