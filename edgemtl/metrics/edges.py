"""Boundary detection benchmark (BSDS / SEISM style) in pure Python: odsF, oisF, AP in %.

Per image and threshold t: binarise ``pred > t``, thin (``skimage.morphology.thin``, MATLAB's
``bwmorph(.,'thin',inf)``), then match predicted to ground-truth edge pixels one-to-one by a
maximum-cardinality bipartite matching, a pair being allowed when its Euclidean distance is at
most ``max_dist * image diagonal``. Aggregation follows BSDS ``collect_eval_bdry.m``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree
from skimage.morphology import thin

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import (
    IGNORE_INDEX,
    _check_binary_gt,
    _check_merge,
    _check_unit_range,
    _load_maps,
)

_WHAT = "edge metric"
CNT_R, SUM_R, CNT_P, SUM_P = range(4)  # column order of the count arrays, as in BSDS *_ev1.txt


def make_thresholds(thresholds: int | Sequence[float]) -> np.ndarray:
    """An int n gives BSDS's ``linspace(1/(n+1), 1-1/(n+1), n)``; a list is sorted and de-duplicated."""
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        if thresholds < 1:
            raise EdgeMTLError(f"EdgeMeter: thresholds must be >= 1, got {thresholds}")
        n = int(thresholds)
        return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)
    t = np.unique(np.asarray(thresholds, dtype=np.float64).reshape(-1))
    if t.size == 0 or not np.isfinite(t).all() or t.min() < 0 or t.max() >= 1:
        raise EdgeMTLError(
            f"EdgeMeter: thresholds must be an int count or a non-empty list in [0,1), got {thresholds!r}"
        )
    return t


def match_count(pred_pts: np.ndarray, gt_pts: np.ndarray, radius: float) -> int:
    """Size of a maximum one-to-one matching between two point sets [N,2], pairs within ``radius``."""
    if len(pred_pts) == 0 or len(gt_pts) == 0:
        return 0
    tp, tg = cKDTree(pred_pts), cKDTree(gt_pts)
    # 'ndarray' output keeps zero-distance pairs, which a sparse matrix would treat as absent.
    pairs = tp.sparse_distance_matrix(tg, radius * (1 + 1e-9) + 1e-12, output_type="ndarray")
    if len(pairs) == 0:
        return 0
    graph = csr_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs["i"], pairs["j"])), shape=(len(pred_pts), len(gt_pts))
    )
    return int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())


def image_counts(prob: np.ndarray, gt: np.ndarray, max_dist: float, thresholds: np.ndarray) -> np.ndarray:
    """[T,4] counts (cntR, sumR, cntP, sumP) for one probability map [H,W] and gt [H,W] (0/1/255)."""
    h, w = gt.shape
    radius = max_dist * float(np.hypot(h, w))
    valid = gt != IGNORE_INDEX
    gt_pts = np.argwhere(gt == 1)
    out = np.zeros((thresholds.size, 4), dtype=np.int64)
    out[:, SUM_R] = len(gt_pts)
    for k, t in enumerate(thresholds):
        b = prob > t
        if not b.any():
            continue
        # Thin the whole map first (ignore regions must not cut edges), then drop ignored pixels.
        pred_pts = np.argwhere(thin(b) & valid)
        m = match_count(pred_pts, gt_pts, radius)
        out[k] = (m, len(gt_pts), m, len(pred_pts))
    return out


def _rpf(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BSDS: R = cntR/sumR, P = cntP/sumP (0 when the denominator is 0), F = 2PR/(P+R) (0 if P+R=0)."""
    c = counts.astype(np.float64)
    r = c[..., CNT_R] / np.where(c[..., SUM_R] == 0, 1, c[..., SUM_R])
    p = c[..., CNT_P] / np.where(c[..., SUM_P] == 0, 1, c[..., SUM_P])
    return r, p, _fmeasure(r, p)


def _fmeasure(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    s = p + r
    return 2 * p * r / np.where(s == 0, 1, s)


def best_interpolated_f(r: np.ndarray, p: np.ndarray) -> float:
    """BSDS ``maxF``: best F along straight segments (100 steps) between neighbouring thresholds."""
    best = float(_fmeasure(r[:1], p[:1])[0])
    if r.size > 1:
        d = np.linspace(0.0, 1.0, 100)[None, :]
        ri = r[1:, None] * d + r[:-1, None] * (1 - d)
        pi = p[1:, None] * d + p[:-1, None] * (1 - d)
        best = max(best, float(_fmeasure(ri, pi).max()))
    return best


def average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """BSDS AP: P linearly interpolated at R = 0, 0.01, ..., 1 (0 outside the curve), summed x 0.01."""
    ru, idx = np.unique(r, return_index=True)  # first occurrence, as MATLAB >= R2013a
    if ru.size < 2:
        return 0.0
    grid = np.arange(101) * 0.01
    pi = np.interp(grid, ru, p[idx], left=np.nan, right=np.nan)
    return float(np.nansum(pi) * 0.01)


class EdgeMeter:
    """Streaming odsF / oisF / AP. Keeps only [T,4] dataset counts and the summed per-image-best counts."""

    higher_is_better: ClassVar[dict[str, bool]] = {"odsF": True, "oisF": True, "AP": True}

    def __init__(self, max_dist: float = 0.0075, thresholds: int | Sequence[float] = 25) -> None:
        if not (0 < max_dist < 1):
            raise EdgeMTLError(
                f"EdgeMeter: max_dist is a fraction of the image diagonal in (0,1) (0.0075 PASCAL, "
                f"0.011 NYUD), got {max_dist!r}"
            )
        self.max_dist = float(max_dist)
        self.thresholds = make_thresholds(thresholds)
        self.reset()

    def reset(self) -> None:
        self.n_images = 0
        self.total = np.zeros((self.thresholds.size, 4), dtype=np.int64)
        self.ois = np.zeros(4, dtype=np.int64)

    def update(self, pred: Any, gt: Any) -> None:
        p, g = _load_maps(pred, gt, _WHAT)
        p = p.astype(np.float64)
        _check_unit_range(p, "pred", _WHAT)
        _check_binary_gt(g, _WHAT)
        for pi, gi in zip(p, g):
            c = image_counts(pi, gi, self.max_dist, self.thresholds)
            self.total += c
            # OIS: this image's best threshold (first one on ties, like BSDS ff(1)).
            self.ois += c[int(np.argmax(_rpf(c)[2]))]
            self.n_images += 1

    def merge(self, other: EdgeMeter) -> EdgeMeter:
        _check_merge(self, other, ("max_dist", "thresholds"))
        self.n_images += other.n_images
        self.total += other.total
        self.ois += other.ois
        return self

    def curve(self) -> dict[str, np.ndarray]:
        """Dataset precision/recall/F per threshold (fractions)."""
        r, p, f = _rpf(self.total)
        return {"thresholds": self.thresholds, "recall": r, "precision": p, "F": f}

    def compute(self) -> dict[str, float]:
        if self.n_images == 0:
            raise EdgeMTLError("EdgeMeter: no images were accumulated")
        r, p, _ = _rpf(self.total)
        return {
            "odsF": 100.0 * best_interpolated_f(r, p),
            "oisF": 100.0 * float(_rpf(self.ois)[2]),
            "AP": 100.0 * average_precision(r, p),
        }


def edge_metrics(
    pred: Any, gt: Any, max_dist: float = 0.0075, thresholds: int | Sequence[float] = 25
) -> dict[str, float]:
    """``{'odsF', 'oisF', 'AP'}`` in % for edge probability maps [H,W] or [B,H,W]."""
    m = EdgeMeter(max_dist=max_dist, thresholds=thresholds)
    m.update(pred, gt)
    return m.compute()
