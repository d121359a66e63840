"""Monocular depth (metres): RMSE, absolute relative error, log-RMSE and δ-accuracies."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import _check_finite, _check_merge, _load_maps

_WHAT = "depth metric"
EPS = 1e-3  # metres; a floor on predictions (incl. <= 0) for the log and ratio metrics only
_KEYS = ("rmse", "abs_rel", "log_rmse", "delta1", "delta2", "delta3")


class DepthMeter:
    """Depth errors over valid pixels (gt finite and > 0).

    ``image_wise=False`` (default, MTL-PyTorch): every metric pools all valid pixels of the dataset.
    ``image_wise=True`` (ASTMT): every metric is computed per image, then averaged over the images
    that hold at least one valid pixel. Both sets of sums are always kept, so ``merge`` is exact.
    """

    STATE: ClassVar[tuple[str, ...]] = ("n_pixels", "pix", "n_images", "img")  # additive (merge adds it)
    higher_is_better: ClassVar[dict[str, bool]] = {
        "rmse": False,
        "abs_rel": False,
        "log_rmse": False,
        "delta1": True,
        "delta2": True,
        "delta3": True,
    }

    def __init__(
        self,
        image_wise: bool = False,
        clamp: float | None = None,
        include_invalid: bool = False,
        log_median: bool = False,
    ) -> None:
        """Peer conventions (edgemtl's own are the defaults):
        ``clamp`` 1e-9: predictions <= 0 become 1e-9 before every term, RMSE included (both peers);
        ``include_invalid``: gt 0 becomes 1e-9 *before* the valid mask is built, so every pixel counts
        (ASTMT's eval_depth.py order of operations); ``log_median``: log_rmse is the median over images
        of the per-image value (ASTMT) instead of the mean."""
        self.image_wise = bool(image_wise)
        self.clamp = None if clamp is None else float(clamp)
        self.include_invalid, self.log_median = bool(include_invalid), bool(log_median)
        self.reset()

    def reset(self) -> None:
        # Pixel-wise: sums of sq. error, abs. rel. error, sq. log error, δ1..3 hit counts.
        self.n_pixels = 0
        self.pix = np.zeros(6, dtype=np.float64)
        # Image-wise: sums over images of per-image rmse, abs_rel, log_rmse, δ1..3 (fractions).
        self.n_images = 0
        self.img = np.zeros(6, dtype=np.float64)
        self.img_log: list[float] = []  # per-image log_rmse, for log_median (not additive: not in STATE)

    def update(self, pred: Any, gt: Any) -> None:
        p, g = _load_maps(pred, gt, _WHAT)
        p, g = p.astype(np.float64), g.astype(np.float64)
        _check_finite(p, "pred", _WHAT)
        for pi, gi in zip(p, g):
            if self.include_invalid:
                gi = np.where(gi == 0, 1e-9, gi)
                valid = np.isfinite(gi)
            else:
                valid = np.isfinite(gi) & (gi > 0)
            n = int(valid.sum())
            if n == 0:
                continue  # an image without valid depth contributes nothing to either mode
            pv, gv = pi[valid], gi[valid]
            if self.clamp is not None:
                pv = np.where(pv <= 0, self.clamp, pv)
            sq = (pv - gv) ** 2  # raw prediction: a negative depth is simply a large error
            rel = np.abs(pv - gv) / gv
            pc = np.maximum(pv, EPS) if self.clamp is None else pv
            sqlog = (np.log(pc) - np.log(gv)) ** 2
            ratio = np.maximum(pc / gv, gv / pc)
            hits = [int((ratio < 1.25**k).sum()) for k in (1, 2, 3)]
            sums = np.array([sq.sum(), rel.sum(), sqlog.sum(), *hits], dtype=np.float64)
            self.n_pixels += n
            self.pix += sums
            per = sums / n
            self.img += np.array([np.sqrt(per[0]), per[1], np.sqrt(per[2]), *per[3:]])
            self.img_log.append(float(np.sqrt(per[2])))
            self.n_images += 1

    def merge(self, other: DepthMeter) -> DepthMeter:
        _check_merge(self, other, ("image_wise", "clamp", "include_invalid", "log_median"))
        self.n_pixels += other.n_pixels
        self.pix += other.pix
        self.n_images += other.n_images
        self.img += other.img
        self.img_log += other.img_log
        return self

    def compute(self) -> dict[str, float]:
        if self.n_images == 0:
            raise EdgeMTLError("DepthMeter: no valid depth pixels (gt > 0) were accumulated")
        if self.image_wise:
            v = self.img / self.n_images
        else:
            m = self.pix / self.n_pixels
            v = np.array([np.sqrt(m[0]), m[1], np.sqrt(m[2]), *m[3:]])
        v[3:] *= 100.0
        out = {k: float(x) for k, x in zip(_KEYS, v)}
        if self.log_median:
            # NaN on a bootstrap resample rebuilt from STATE, which holds no per-image list
            out["log_rmse"] = (
                float(np.median(self.img_log)) if len(self.img_log) == self.n_images else float("nan")
            )
        return out


def depth_metrics(pred: Any, gt: Any, image_wise: bool = False) -> dict[str, float]:
    """Depth metrics for maps [H,W] or batches [B,H,W] in metres (δ in %)."""
    m = DepthMeter(image_wise=image_wise)
    m.update(pred, gt)
    return m.compute()
