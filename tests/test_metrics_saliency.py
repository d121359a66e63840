"""SaliencyMeter against a brute-force per-threshold loop over pixel sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import SaliencyMeter, saliency_metrics


def _brute_force(pred: np.ndarray, gt: np.ndarray, thresholds: list[float], beta2: float = 0.3) -> dict:
    best_f = best_iou = 0.0
    images = [b for b in range(pred.shape[0]) if (gt[b] != 255).any()]
    for t in thresholds:
        ps, rs, ious = [], [], []
        for b in images:
            fg, pos = set(), set()
            for i in range(pred.shape[1]):
                for j in range(pred.shape[2]):
                    if gt[b, i, j] == 255:
                        continue
                    if gt[b, i, j] == 1:
                        fg.add((i, j))
                    if pred[b, i, j] > t:
                        pos.add((i, j))
            tp = len(fg & pos)
            ps.append(tp / len(pos) if pos else 1.0)
            rs.append(tp / len(fg) if fg else 1.0)
            ious.append(tp / len(fg | pos) if fg | pos else 1.0)
        mp, mr = sum(ps) / len(ps), sum(rs) / len(rs)
        f = (1 + beta2) * mp * mr / (beta2 * mp + mr) if beta2 * mp + mr > 0 else 0.0
        best_f = max(best_f, f)
        best_iou = max(best_iou, sum(ious) / len(ious))
    return {"maxF": 100 * best_f, "max_mIoU": 100 * best_iou}


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gt = (rng.random((5, 9, 11)) < 0.35).astype(np.uint8)
    pred = np.clip(0.55 * gt + 0.6 * rng.random(gt.shape), 0, 1)
    gt[rng.random(gt.shape) < 0.1] = 255
    gt[1] = np.where(gt[1] == 255, 255, 0)  # no foreground at all
    gt[2] = 255  # fully ignored: not counted as an image
    pred[0, 0, 0] = 0.3  # exactly on a threshold: 'pred > t' excludes it
    return pred, gt


@pytest.mark.parametrize("thresholds", [None, [0.1, 0.3, 0.5, 0.7]])
def test_vs_brute_force(data, thresholds) -> None:
    pred, gt = data
    ths = [round(0.01 * k, 2) for k in range(1, 100)] if thresholds is None else thresholds
    ref = _brute_force(pred, gt, ths)
    assert saliency_metrics(pred, gt, thresholds) == pytest.approx(ref, rel=1e-10)
    ref1 = _brute_force(pred, gt, ths, beta2=1.0)
    assert saliency_metrics(pred, gt, thresholds, beta2=1.0) == pytest.approx(ref1, rel=1e-10)


def test_hand_computed_single_threshold() -> None:
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[0.9, 0.2, 0.8, 0.1]])
    # t=0.5: TP 1, pred 2, gt 2 -> P .5, R .5, F .5, IoU 1/3
    out = saliency_metrics(pred, gt, [0.5])
    assert out["maxF"] == pytest.approx(50.0)
    assert out["max_mIoU"] == pytest.approx(100 / 3)


def test_threshold_is_strict() -> None:
    # 0.5 is not > 0.5: nothing is predicted, so P = 1 (empty), R = 0, IoU = 0.
    out = saliency_metrics(np.array([[0.5, 0.5]]), np.array([[1, 0]]), [0.5])
    assert out == {"maxF": 0.0, "max_mIoU": 0.0}
    # the background pixel at exactly 0.5 is not a false positive
    assert saliency_metrics(np.array([[0.9, 0.5]]), np.array([[1, 0]]), [0.5])["maxF"] == 100.0


def test_empty_conventions() -> None:
    # no gt foreground, no prediction above threshold: P = R = IoU = 1
    out = saliency_metrics(np.zeros((3, 3)), np.zeros((3, 3), np.uint8), [0.5])
    assert out == {"maxF": 100.0, "max_mIoU": 100.0}


def test_streaming_merge_torch(data) -> None:
    pred, gt = data
    one = saliency_metrics(pred, gt)
    a, b = SaliencyMeter(), SaliencyMeter()
    a.update(torch.from_numpy(pred[:2]).float(), torch.from_numpy(gt[:2].astype(np.float32)))
    b.update(pred[2:, None], gt[2:, None])
    assert a.merge(b).compute() == pytest.approx(one, rel=1e-6)
    assert a.n_images == 4
    assert set(one) == set(SaliencyMeter.higher_is_better)


def test_errors() -> None:
    with pytest.raises(EdgeMTLError, match=r"probabilities in \[0,1\]"):
        saliency_metrics(np.full((2, 2), 2.0), np.zeros((2, 2)))
    with pytest.raises(EdgeMTLError, match="NaN"):
        saliency_metrics(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(EdgeMTLError, match=r"found \[2\]"):
        saliency_metrics(np.zeros((2, 2)), np.full((2, 2), 2))
    with pytest.raises(EdgeMTLError, match="does not match"):
        saliency_metrics(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(EdgeMTLError, match="no images"):
        SaliencyMeter().compute()
    with pytest.raises(EdgeMTLError, match="thresholds"):
        SaliencyMeter(thresholds=[1.5])
    with pytest.raises(EdgeMTLError, match="thresholds"):
        SaliencyMeter().merge(SaliencyMeter(thresholds=[0.5]))
