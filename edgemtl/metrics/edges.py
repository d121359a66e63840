"""Boundary detection benchmark (BSDS / SEISM style) in pure Python: odsF, oisF, AP in %.

Per image and threshold t: binarise ``pred > t``, thin (``skimage.morphology.thin``, MATLAB's
``bwmorph(.,'thin',inf)``; computed by the bit-identical :func:`fast_thin`), then match predicted
to ground-truth edge pixels one-to-one by a maximum-cardinality bipartite matching, a pair being
allowed when its Euclidean distance is at most ``max_dist * image diagonal``. Aggregation
follows BSDS ``collect_eval_bdry.m``.
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


def fast_thin(b: np.ndarray) -> np.ndarray:
    """Bit-identical to ``skimage.morphology.thin(b)``: Guo-Hall thinning with the same two look-up
    tables and the same parallel sub-iterations, computed faster (thinning noisy maps at many thresholds
    is most of the edge benchmark's time).

    While many pixels are deleted per sub-iteration, every pixel's neighbourhood code is computed with
    eight shifted slices of the image (cheaper than a 3x3 correlation). Once deletions get sparse, a
    pixel is looked at again only when one of its 8 neighbours was deleted since it was last looked at
    under that table: its code, hence its decision, cannot have changed otherwise.
    """
    if _LUTS is None:  # pragma: no cover - a scikit-image without the tables: the reference itself
        return thin(b)
    h, w = b.shape
    wp = w + 2
    pad = np.zeros((h + 2, wp), dtype=np.uint8)
    pad[1:-1, 1:-1] = b
    flat = pad.reshape(-1)
    inner = pad[1:-1, 1:-1]
    # neighbour offsets and their bits, as skimage's correlation mask [[8,4,2],[16,0,1],[32,64,128]]
    shifts = ((0, 0, 8), (0, 1, 4), (0, 2, 2), (1, 0, 16), (1, 2, 1), (2, 0, 32), (2, 1, 64), (2, 2, 128))
    offsets = np.array([(dy - 1) * wp + (dx - 1) for dy, dx, _ in shifts])
    bits = np.array([bit for _, _, bit in shifts], dtype=np.uint8)

    # Phase 1: whole-image sub-iterations while deletions are dense.
    while True:
        gone = []
        for lut in _LUTS:
            code = np.zeros((h, w), dtype=np.uint8)
            for dy, dx, bit in shifts:
                code |= pad[dy : dy + h, dx : dx + w] * np.uint8(bit)
            drop = lut[code].astype(bool) & (inner == 1)
            idx = np.flatnonzero(drop)
            gone.append((idx // w + 1) * wp + idx % w + 1)  # flat indices into pad
            inner[drop] = 0
        n_gone = gone[0].size + gone[1].size
        if n_gone == 0:
            return inner.astype(bool)
        if n_gone * 16 < h * w:
            break
    # Phase 2: only pixels whose neighbourhood changed since their last look under each table
    # (marked when a neighbour is deleted; table 0 last looked before both deletions above).
    marks = [np.zeros(flat.size, dtype=bool), np.zeros(flat.size, dtype=bool)]
    for k, dead in ((0, gone[0]), (0, gone[1]), (1, gone[1])):
        marks[k][(dead[:, None] + offsets[None, :]).reshape(-1)] = True
    while True:
        deleted = False
        for k, lut in enumerate(_LUTS):
            idx = np.flatnonzero(marks[k])
            marks[k][idx] = False
            idx = idx[flat[idx] == 1]
            code = np.zeros(idx.size, dtype=np.uint8)
            for off, bit in zip(offsets, bits):
                code |= flat[idx + off] * bit
            dead = idx[lut[code].astype(bool)]
            if dead.size:
                flat[dead] = 0  # all deletions of a sub-iteration at once, as the reference
                near = (dead[:, None] + offsets[None, :]).reshape(-1)
                marks[0][near] = True
                marks[1][near] = True
                deleted = True
        if not deleted:
            return inner.astype(bool)


def _luts():
    try:
        from skimage.morphology._skeletonize import G123_LUT, G123P_LUT
    except ImportError:  # pragma: no cover
        return None
    return (np.asarray(G123_LUT, dtype=np.uint8), np.asarray(G123P_LUT, dtype=np.uint8))


_LUTS = _luts()


def image_counts(
    prob: np.ndarray, gt: np.ndarray, max_dist: float, thresholds: np.ndarray, inclusive: bool = False
) -> np.ndarray:
    """[T,4] counts (cntR, sumR, cntP, sumP) for one probability map [H,W] and gt [H,W] (0/1/255).
    ``inclusive``: binarise ``prob >= t`` (MTL-PyTorch's SEISM reader) instead of ``prob > t``."""
    from scipy.ndimage import distance_transform_edt

    h, w = gt.shape
    radius = max_dist * float(np.hypot(h, w))
    valid = gt != IGNORE_INDEX
    gt_mask = gt == 1
    gt_pts = np.argwhere(gt_mask)
    # Pruning: a predicted pixel farther than the radius from every gt edge pixel can match nothing
    # (and vice versa), so only pixels near the other set enter the matching; the counts are the same.
    near_gt = (distance_transform_edt(~gt_mask) <= radius * (1 + 1e-9) + 1e-12) if gt_pts.size else None
    out = np.zeros((thresholds.size, 4), dtype=np.int64)
    out[:, SUM_R] = len(gt_pts)
    for k, t in enumerate(thresholds):
        b = prob >= t if inclusive else prob > t
        if not b.any():
            continue
        # Thin the whole map first (ignore regions must not cut edges), then drop ignored pixels.
        pred = fast_thin(b) & valid
        n_pred = int(pred.sum())
        m = 0
        if near_gt is not None:
            cand = pred & near_gt
            if cand.any():
                near_pred = distance_transform_edt(~cand) <= radius * (1 + 1e-9) + 1e-12
                m = match_count(np.argwhere(cand), np.argwhere(gt_mask & near_pred), radius)
        out[k] = (m, len(gt_pts), m, n_pred)
    return out


def _rpf(counts: np.ndarray, seism: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BSDS: R = cntR/sumR, P = cntP/sumP (0 when the denominator is 0), F = 2PR/(P+R) (0 if P+R=0).
    ``seism``: SEISM's special cases, no prediction -> P = 1, R = 0; no gt boundary -> R = 1, P = 0."""
    c = counts.astype(np.float64)
    r = c[..., CNT_R] / np.where(c[..., SUM_R] == 0, 1, c[..., SUM_R])
    p = c[..., CNT_P] / np.where(c[..., SUM_P] == 0, 1, c[..., SUM_P])
    if seism:
        no_gt, no_pred = c[..., SUM_R] == 0, c[..., SUM_P] == 0
        r, p = np.where(no_gt, 1.0, r), np.where(no_gt, 0.0, p)
        r, p = np.where(no_pred, 0.0, r), np.where(no_pred, 1.0, p)
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


_POOL: Any = None
_POOL_WORKERS = 0


def _pool(workers: int):
    """One process pool for all meters of this process, started once so that evaluating every epoch
    does not pay the start-up again. Forked, as torch's DataLoader workers are: spawn/forkserver would
    re-import the user's __main__ (a script without an ``if __name__ == "__main__"`` guard would run
    again in every worker)."""
    global _POOL, _POOL_WORKERS
    if _POOL is None or _POOL_WORKERS != workers:
        import atexit
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if _POOL is not None:
            _POOL.shutdown()
        _POOL, _POOL_WORKERS = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")), workers
        atexit.register(_POOL.shutdown)
    return _POOL


def default_workers() -> int:
    """Processes for the edge benchmark: EDGEMTL_EVAL_WORKERS, else every core (at most 8); 1 where
    processes cannot be forked (macOS, Windows)."""
    import multiprocessing as mp
    import os
    import sys

    env = os.environ.get("EDGEMTL_EVAL_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise EdgeMTLError(f"EDGEMTL_EVAL_WORKERS={env!r}: expected a whole number >= 1") from None
        if n < 1:
            raise EdgeMTLError(f"EDGEMTL_EVAL_WORKERS={env!r}: expected a whole number >= 1")
        return n if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods() else 1
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(8, os.cpu_count() or 1))


class EdgeMeter:
    """Streaming odsF / oisF / AP. Keeps only [T,4] dataset counts and the summed per-image-best counts.

    ``workers`` > 1 computes images in parallel processes (default :func:`default_workers`); the
    counts are integers summed in any order, so the results are bit-identical to ``workers=1``.
    """

    STATE: ClassVar[tuple[str, ...]] = ("n_images", "total", "ois")  # additive (merge adds it)
    higher_is_better: ClassVar[dict[str, bool]] = {"odsF": True, "oisF": True, "AP": True}

    def __init__(
        self,
        max_dist: float = 0.0075,
        thresholds: int | Sequence[float] = 25,
        workers: int | None = None,
        seism: bool = False,
        inclusive: bool = False,
    ) -> None:
        """``seism``: SEISM's summaries as the peers ran them (P = 1 / R = 0 at a threshold without
        predictions, R = 1 / P = 0 without gt boundaries; odsF is the best F over the thresholds, not
        interpolated between them). ``inclusive``: binarise with ``>=`` (MTL-PyTorch's reader)."""
        self.seism, self.inclusive = bool(seism), bool(inclusive)
        if not (0 < max_dist < 1):
            raise EdgeMTLError(
                f"EdgeMeter: max_dist is a fraction of the image diagonal in (0,1) (0.0075 PASCAL, "
                f"0.011 NYUD), got {max_dist!r}"
            )
        self.max_dist = float(max_dist)
        self.thresholds = make_thresholds(thresholds)
        self.workers = default_workers() if workers is None else int(workers)
        self._pending: list = []
        self.reset()

    def reset(self) -> None:
        self._pending = []
        self.n_images = 0
        self.total = np.zeros((self.thresholds.size, 4), dtype=np.int64)
        self.ois = np.zeros(4, dtype=np.int64)

    def _add(self, c: np.ndarray) -> None:
        self.total += c
        # OIS: this image's best threshold (first one on ties, like BSDS ff(1)).
        self.ois += c[int(np.argmax(_rpf(c, self.seism)[2]))]
        self.n_images += 1

    def _drain(self, keep: int = 0) -> None:
        while len(self._pending) > keep:
            self._add(self._pending.pop(0).result())

    def update(self, pred: Any, gt: Any) -> None:
        p, g = _load_maps(pred, gt, _WHAT)
        p = p.astype(np.float64)
        _check_unit_range(p, "pred", _WHAT)
        _check_binary_gt(g, _WHAT)
        for pi, gi in zip(p, g):
            if self.workers > 1:
                self._pending.append(
                    _pool(self.workers).submit(
                        image_counts,
                        np.ascontiguousarray(pi),
                        np.ascontiguousarray(gi),
                        self.max_dist,
                        self.thresholds,
                        self.inclusive,
                    )
                )
                self._drain(keep=4 * self.workers)  # bounded memory: a few images in flight per worker
            else:
                self._add(image_counts(pi, gi, self.max_dist, self.thresholds, self.inclusive))

    def merge(self, other: EdgeMeter) -> EdgeMeter:
        _check_merge(self, other, ("max_dist", "thresholds", "seism", "inclusive"))
        self._drain()
        other._drain()
        self.n_images += other.n_images
        self.total += other.total
        self.ois += other.ois
        return self

    def curve(self) -> dict[str, np.ndarray]:
        """Dataset precision/recall/F per threshold (fractions)."""
        self._drain()
        r, p, f = _rpf(self.total, self.seism)
        return {"thresholds": self.thresholds, "recall": r, "precision": p, "F": f}

    def compute(self) -> dict[str, float]:
        self._drain()
        if self.n_images == 0:
            raise EdgeMTLError("EdgeMeter: no images were accumulated")
        r, p, f = _rpf(self.total, self.seism)
        return {
            "odsF": 100.0 * (float(f.max()) if self.seism else best_interpolated_f(r, p)),
            "oisF": 100.0 * float(_rpf(self.ois, self.seism)[2]),
            "AP": 100.0 * average_precision(r, p),
        }


def edge_metrics(
    pred: Any, gt: Any, max_dist: float = 0.0075, thresholds: int | Sequence[float] = 25
) -> dict[str, float]:
    """``{'odsF', 'oisF', 'AP'}`` in % for edge probability maps [H,W] or [B,H,W]."""
    m = EdgeMeter(max_dist=max_dist, thresholds=thresholds)
    m.update(pred, gt)
    return m.compute()
