"""Surface normals: angular error statistics in degrees, memory-bounded."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import _check_finite, _check_merge, _to_numpy

_WHAT = "normals metric"
BIN_DEG = 0.01
N_BINS = 18000  # 180° / 0.01°
WITHIN = (11.25, 22.5, 30.0)


def _channels_last(x: np.ndarray, name: str) -> np.ndarray:
    """-> [B,H,W,3]. The last axis wins when it is 3; otherwise axis 1 (batch) or 0 (single) must be 3."""
    if x.ndim == 3:
        if x.shape[-1] == 3:
            return x[None]
        if x.shape[0] == 3:
            return np.moveaxis(x, 0, -1)[None]
    elif x.ndim == 4:
        if x.shape[-1] == 3:
            return x
        if x.shape[1] == 3:
            return np.moveaxis(x, 1, -1)
    raise EdgeMTLError(
        f"{_WHAT}: {name} must be [H,W,3], [3,H,W], [B,H,W,3] or [B,3,H,W]; got shape {tuple(x.shape)}"
    )


def angular_errors(pred: Any, gt: Any) -> np.ndarray:
    """Angles in degrees between pred and gt normals at the valid pixels (flat array).

    Both are normalised to unit length. Invalid gt (all-zero or non-finite vector) is dropped.
    A zero-length prediction carries no direction and is scored as 90° (dot product 0).
    """
    p0 = _to_numpy(pred, "pred")
    g0 = _to_numpy(gt, "gt")
    p = _channels_last(p0, "pred").astype(np.float64)
    g = _channels_last(g0, "gt").astype(np.float64)
    if p.shape != g.shape:  # compared after layout conversion: pred [B,3,H,W] vs gt [B,H,W,3] is fine
        raise EdgeMTLError(
            f"{_WHAT}: prediction shape {tuple(p0.shape)} (as [B,H,W,3]: {tuple(p.shape)}) does not match "
            f"ground-truth shape {tuple(g0.shape)} (as [B,H,W,3]: {tuple(g.shape)})"
        )
    _check_finite(p, "pred", _WHAT)
    valid = np.isfinite(g).all(-1) & (np.abs(g).sum(-1) > 0)
    pv, gv = p[valid], g[valid]
    pn = np.linalg.norm(pv, axis=-1, keepdims=True)
    pv = np.divide(pv, pn, out=np.zeros_like(pv), where=pn > 0)
    gv = gv / np.linalg.norm(gv, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip((pv * gv).sum(-1), -1.0, 1.0)))


class NormalsMeter:
    """Mean/median/RMSE of the angular error and % of pixels under 11.25°/22.5°/30°.

    Keeps a 0.01° histogram (18000 bins) for the median, which is therefore exact to within half
    a bin (0.005°), and exact running sums for everything else.
    """

    # additive (merge adds it); the median's 18000-bin histogram is left out of bootstrap resampling
    STATE: ClassVar[tuple[str, ...]] = ("n", "sum", "sumsq", "within")
    higher_is_better: ClassVar[dict[str, bool]] = {
        "mean": False,
        "median": False,
        "rmse": False,
        "within_11.25": True,
        "within_22.5": True,
        "within_30": True,
    }

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.within = np.zeros(len(WITHIN), dtype=np.int64)
        self.hist = np.zeros(N_BINS, dtype=np.int64)

    def update(self, pred: Any, gt: Any) -> None:
        a = angular_errors(pred, gt)
        self.n += a.size
        self.sum += float(a.sum())
        self.sumsq += float((a**2).sum())
        self.within += np.array([(a < t).sum() for t in WITHIN], dtype=np.int64)
        idx = np.clip((a / BIN_DEG).astype(np.int64), 0, N_BINS - 1)
        self.hist += np.bincount(idx, minlength=N_BINS)

    def merge(self, other: NormalsMeter) -> NormalsMeter:
        _check_merge(self, other, ())
        self.n += other.n
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.within += other.within
        self.hist += other.hist
        return self

    def _median(self) -> float:
        # Same rank rule as np.median (mean of the two middle elements for even n), each
        # element approximated by the centre of its bin.
        cum = np.cumsum(self.hist)
        lo, hi = (self.n - 1) // 2, self.n // 2
        centre = (np.searchsorted(cum, [lo + 1, hi + 1]) + 0.5) * BIN_DEG
        return float(centre.mean())

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise EdgeMTLError("NormalsMeter: no valid normals (non-zero gt vectors) were accumulated")
        out = {
            "mean": self.sum / self.n,
            # NaN when the histogram does not hold every angle (a bootstrap resample rebuilt from STATE)
            "median": self._median() if int(self.hist.sum()) == self.n else float("nan"),
            "rmse": float(np.sqrt(self.sumsq / self.n)),
        }
        for t, c in zip(WITHIN, self.within):
            out[f"within_{t:g}"] = 100.0 * float(c) / self.n
        return out


def normals_metrics(pred: Any, gt: Any) -> dict[str, float]:
    """Angular-error metrics (degrees, %) for [H,W,3]/[B,H,W,3]/[B,3,H,W] normal maps."""
    m = NormalsMeter()
    m.update(pred, gt)
    return m.compute()
