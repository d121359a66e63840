"""Edge benchmark: matching vs exhaustive search, exact cases, BSDS aggregation vs a literal port."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.morphology import thin

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import EdgeMeter, edge_metrics
from edgemtl.metrics.edges import (
    average_precision,
    best_interpolated_f,
    image_counts,
    make_thresholds,
    match_count,
)


def _allowed(pred_pts, gt_pts, radius) -> list[list[int]]:
    return [[j for j, g in enumerate(gt_pts) if math.dist(p, g) <= radius] for p in pred_pts]


def _exhaustive(adj: list[list[int]]) -> int:
    """Try every assignment (each pred: unmatched or any free allowed gt)."""

    def rec(i: int, used: frozenset) -> int:
        if i == len(adj):
            return 0
        best = rec(i + 1, used)
        for j in adj[i]:
            if j not in used:
                best = max(best, 1 + rec(i + 1, used | {j}))
        return best

    return rec(0, frozenset())


def _kuhn(adj: list[list[int]], n_gt: int) -> int:
    """Augmenting-path maximum matching (independent of scipy's Hopcroft-Karp)."""
    owner = [-1] * n_gt

    def augment(i: int, seen: set) -> bool:
        for j in adj[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] == -1 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(adj)))


def test_matching_vs_exhaustive_search() -> None:
    rng = np.random.default_rng(0)
    for trial in range(300):
        n_p, n_g = rng.integers(0, 8, 2)
        pred_pts = rng.integers(0, 6, (n_p, 2))
        gt_pts = rng.integers(0, 6, (n_g, 2))
        radius = float(rng.choice([0.0, 1.0, math.sqrt(2), 1.5, 2.5]))
        ref = _exhaustive(_allowed(pred_pts.tolist(), gt_pts.tolist(), radius))
        assert match_count(pred_pts, gt_pts, radius) == ref, trial


def _line_gt(h: int = 40, w: int = 40) -> np.ndarray:
    gt = np.zeros((h, w), np.uint8)
    gt[10, 5:35] = 1
    gt[5:30, 25] = 1
    return gt


def test_exact_cases() -> None:
    gt = _line_gt()
    r = 0.0075 * math.hypot(40, 40)  # 0.42 px: only exact hits
    perfect = edge_metrics(gt.astype(float), gt, max_dist=0.0075)
    assert perfect["odsF"] == perfect["oisF"] == pytest.approx(100.0)
    # BSDS AP needs >= 2 distinct recalls; a binary map has one (R = 1 at every threshold) -> 0.
    assert perfect["AP"] == 0.0
    shifted = np.roll(gt, 1, axis=0).astype(float)
    assert math.hypot(40, 40) * 0.03 > 1  # 1.7 px tolerance: a 1 px shift stays matched
    assert edge_metrics(shifted, gt, max_dist=0.03)["odsF"] == pytest.approx(100.0)
    assert r < 1
    # Radius < 1 px: only pixels that coincide match, so F = |P ∩ G| / |G| (|P| = |G|).
    overlap = np.logical_and(shifted > 0, gt > 0).sum() / (gt > 0).sum()
    assert 0 < overlap < 0.6
    assert edge_metrics(shifted, gt, max_dist=0.0075)["odsF"] == pytest.approx(100 * overlap)
    line = np.zeros((40, 40), np.uint8)
    line[10, 5:35] = 1
    for rows, expected in ((1, 100.0), (3, 0.0)):  # 1 px < 1.7 px tolerance < 3 px
        assert (
            edge_metrics(np.roll(line, rows, axis=0).astype(float), line, max_dist=0.03)["odsF"] == expected
        )


def test_one_gt_pixel_cannot_match_two_preds() -> None:
    gt = np.zeros((20, 20), np.uint8)
    gt[10, 10] = 1
    pred = np.zeros((20, 20))
    pred[10, 9] = pred[10, 11] = 0.9
    c = image_counts(pred, gt, 0.1, np.array([0.5]))  # radius 2.8 px: both preds in range
    assert c.tolist() == [[1, 1, 1, 2]]  # cntR sumR cntP sumP


def test_ignore_pixels_excluded() -> None:
    gt = _line_gt()
    pred = gt.astype(float)
    pred[30:, :] = 0.9  # a blob of false positives ...
    gt[30:, :] = 255  # ... inside the ignore region
    assert edge_metrics(pred, gt, max_dist=0.0075)["odsF"] == pytest.approx(100.0)


def _literal_bsds(counts: np.ndarray, thresh: np.ndarray) -> dict[str, float]:
    """Loop port of collect_eval_bdry.m; counts [N,T,4] = cntR sumR cntP sumP per image."""

    def fm(r, p):
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def rp(c):
        return (c[0] / c[1] if c[1] else 0.0), (c[2] / c[3] if c[3] else 0.0)

    n, t = counts.shape[:2]
    total = [[sum(int(counts[i, k, m]) for i in range(n)) for m in range(4)] for k in range(t)]
    ois = [0, 0, 0, 0]
    for i in range(n):
        fs = [fm(*rp(counts[i, k])) for k in range(t)]
        k = fs.index(max(fs))
        ois = [a + int(b) for a, b in zip(ois, counts[i, k])]
    R = [rp(c)[0] for c in total]
    P = [rp(c)[1] for c in total]
    best = fm(R[0], P[0])
    for k in range(1, t):
        for d in [s / 99 for s in range(100)]:
            best = max(best, fm(R[k] * d + R[k - 1] * (1 - d), P[k] * d + P[k - 1] * (1 - d)))
    pairs = sorted({r: p for r, p in reversed(list(zip(R, P)))}.items())  # first occurrence wins
    area = 0.0
    if len(pairs) > 1:
        for s in range(101):
            x = s / 100
            for (r0, p0), (r1, p1) in zip(pairs, pairs[1:]):
                if r0 <= x <= r1:
                    area += p0 + (p1 - p0) * (x - r0) / (r1 - r0)
                    break
        area *= 0.01
    return {"odsF": 100 * best, "oisF": 100 * fm(*rp(ois)), "AP": 100 * area}


def test_ods_interpolates_between_thresholds() -> None:
    # Endpoints have F = 0; the straight segment between them peaks at R = P = 0.5 (F = 0.5).
    assert best_interpolated_f(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.5, abs=1e-3)
    rng = np.random.default_rng(3)
    for _ in range(20):
        cnt_r, cnt_p = np.sort(rng.integers(0, 1000, 6))[::-1], np.sort(rng.integers(0, 1000, 6))
        counts = np.zeros((1, 6, 4), np.int64)
        counts[0, :, 0], counts[0, :, 1], counts[0, :, 2], counts[0, :, 3] = cnt_r, 1000, cnt_p, 1000
        r, p = cnt_r / 1000, cnt_p / 1000
        ref = _literal_bsds(counts, np.arange(6))
        assert 100 * best_interpolated_f(r, p) == pytest.approx(ref["odsF"], abs=1e-9)
        assert 100 * average_precision(r, p) == pytest.approx(ref["AP"], abs=1e-9)


def _noisy_batch(seed: int, n: int = 3, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = np.zeros((n, size, size), np.uint8)
    for b in range(n):
        gt[b, rng.integers(3, size - 3), 2:-2] = 1
        gt[b, 2:-2, rng.integers(3, size - 3)] = 1
    blurred = gt.astype(float)
    for ax in (1, 2):
        blurred = np.maximum(blurred, 0.6 * np.roll(gt, 1, axis=ax))
    pred = np.clip(0.7 * blurred + 0.45 * rng.random(gt.shape), 0, 1)
    gt[0, :4, :4] = 255
    return pred, gt


def test_pipeline_vs_independent_counts_and_aggregation() -> None:
    pred, gt = _noisy_batch(1)
    max_dist, ths = 0.04, make_thresholds(9)
    np.testing.assert_allclose(ths, [k / 10 for k in range(1, 10)])  # BSDS linspace(1/(n+1), ...)
    radius = max_dist * math.hypot(*gt.shape[1:])
    counts = np.zeros((len(gt), len(ths), 4), np.int64)
    for i in range(len(gt)):
        gt_pts = np.argwhere(gt[i] == 1).tolist()
        for k, t in enumerate(ths):
            pred_pts = np.argwhere(thin(pred[i] > t) & (gt[i] != 255)).tolist()
            m = _kuhn(_allowed(pred_pts, gt_pts, radius), len(gt_pts))
            counts[i, k] = (m, len(gt_pts), m, len(pred_pts))
        np.testing.assert_array_equal(image_counts(pred[i], gt[i], max_dist, ths), counts[i])
    out = edge_metrics(pred, gt, max_dist=max_dist, thresholds=9)
    assert out == pytest.approx(_literal_bsds(counts, ths), abs=1e-9)
    assert out["oisF"] >= out["odsF"] - 1e-9 and 0 < out["AP"] <= 100


def test_streaming_merge_and_threshold_list() -> None:
    pred, gt = _noisy_batch(2, n=4, size=20)
    one = edge_metrics(pred, gt, max_dist=0.03, thresholds=[0.7, 0.2, 0.5])
    a = EdgeMeter(max_dist=0.03, thresholds=[0.2, 0.5, 0.7])
    b = EdgeMeter(max_dist=0.03, thresholds=[0.2, 0.5, 0.7])
    a.update(pred[0], gt[0])
    b.update(pred[1:, None], gt[1:, None])
    assert a.merge(b).compute() == pytest.approx(one)
    assert set(one) == set(EdgeMeter.higher_is_better)


def test_errors() -> None:
    with pytest.raises(EdgeMTLError, match="does not match"):
        edge_metrics(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(EdgeMTLError, match=r"found \[3\]"):
        edge_metrics(np.zeros((4, 4)), np.full((4, 4), 3))
    with pytest.raises(EdgeMTLError, match="NaN"):
        edge_metrics(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(EdgeMTLError, match=r"\[0,1\]"):
        edge_metrics(np.full((4, 4), 255.0), np.zeros((4, 4)))
    with pytest.raises(EdgeMTLError, match="max_dist"):
        EdgeMeter(max_dist=2)
    with pytest.raises(EdgeMTLError, match="thresholds"):
        EdgeMeter(thresholds=0)
    with pytest.raises(EdgeMTLError, match="no images"):
        EdgeMeter().compute()
    with pytest.raises(EdgeMTLError, match="max_dist"):
        EdgeMeter(max_dist=0.011).merge(EdgeMeter())


def _reference_counts(
    prob: np.ndarray, gt: np.ndarray, max_dist: float, thresholds: np.ndarray
) -> np.ndarray:
    """The benchmark written plainly: skimage's thin on every threshold, every pixel in the matching."""
    radius = max_dist * float(np.hypot(*gt.shape))
    gt_pts = np.argwhere(gt == 1)
    out = np.zeros((thresholds.size, 4), dtype=np.int64)
    out[:, 1] = len(gt_pts)
    for k, t in enumerate(thresholds):
        b = prob > t
        if b.any():
            pred_pts = np.argwhere(thin(b) & (gt != 255))
            m = match_count(pred_pts, gt_pts, radius)
            out[k] = (m, len(gt_pts), m, len(pred_pts))
    return out


def test_fast_thin_is_skimage_thin_bit_for_bit() -> None:
    import cv2

    from edgemtl.metrics.edges import fast_thin

    rng = np.random.default_rng(7)
    for i in range(300):
        h, w = rng.integers(1, 70, 2)
        b = rng.random((h, w)) < rng.random()
        if i % 3 == 0:  # thick blobs: many dense iterations, then sparse ones
            b = cv2.dilate(b.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert np.array_equal(fast_thin(b), thin(b)), i


@pytest.mark.parametrize("workers", [1, 2])
def test_pruned_parallel_counts_equal_the_plain_benchmark(workers) -> None:
    """Distance-transform pruning, fast thinning and worker processes leave every count unchanged."""
    import cv2

    from edgemtl.data.synth import render_scene

    rng = np.random.default_rng(3)
    th = make_thresholds(9)
    meter = EdgeMeter(max_dist=0.011, thresholds=th, workers=workers)
    total = np.zeros((th.size, 4), dtype=np.int64)
    for s in range(4):
        gt = render_scene(s, (64, 80), "pascal")["edges"].astype(np.uint8)
        if s % 2:
            gt[:10] = 255
        blur = cv2.GaussianBlur((gt == 1).astype(np.float32), (0, 0), 1.5)
        prob = np.clip(blur * 2 + rng.random(gt.shape).astype(np.float32) * 0.3 * (s + 1), 0, 0.999)
        ref = _reference_counts(prob, gt, 0.011, th)
        assert np.array_equal(image_counts(prob, gt, 0.011, th), ref), s
        total += ref
        meter.update(prob, gt)
    meter.compute()
    assert np.array_equal(meter.total, total) and meter.n_images == 4
