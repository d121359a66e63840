"""NormalsMeter against a per-pixel math.acos loop and np.median."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import NormalsMeter, normals_metrics


def _loop_angles(pred: np.ndarray, gt: np.ndarray) -> list[float]:
    """pred, gt: [B,H,W,3]."""
    out = []
    for b in range(gt.shape[0]):
        for i in range(gt.shape[1]):
            for j in range(gt.shape[2]):
                g = [float(v) for v in gt[b, i, j]]
                if g == [0.0, 0.0, 0.0]:
                    continue
                p = [float(v) for v in pred[b, i, j]]
                np_, ng = math.sqrt(sum(v * v for v in p)), math.sqrt(sum(v * v for v in g))
                dot = 0.0 if np_ == 0 else sum(a * c for a, c in zip(p, g)) / (np_ * ng)
                out.append(math.degrees(math.acos(max(-1.0, min(1.0, dot)))))
    return out


def _summary(a: list[float]) -> dict[str, float]:
    n = len(a)
    return {
        "mean": sum(a) / n,
        "median": float(np.median(a)),
        "rmse": math.sqrt(sum(x * x for x in a) / n),
        "within_11.25": 100 * sum(x < 11.25 for x in a) / n,
        "within_22.5": 100 * sum(x < 22.5 for x in a) / n,
        "within_30": 100 * sum(x < 30 for x in a) / n,
    }


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 6, 7, 3))
    gt /= np.linalg.norm(gt, axis=-1, keepdims=True)
    pred = gt + rng.normal(scale=0.4, size=gt.shape)  # not unit length: normalised inside
    gt[rng.random(gt.shape[:3]) < 0.2] = 0.0  # invalid
    pred[0, 0, 0] = 0.0  # zero-length prediction -> 90°
    gt[0, 0, 0] = [0.0, 0.0, 1.0]
    return pred, gt


def test_vs_loop_all_layouts(data) -> None:
    pred, gt = data
    ref = _summary(_loop_angles(pred, gt))
    chw = torch.from_numpy(np.ascontiguousarray(pred.transpose(0, 3, 1, 2)))
    for p in (pred, chw):
        out = normals_metrics(p, gt)
        med = out.pop("median")
        assert med == pytest.approx(ref["median"], abs=0.005 + 1e-9)
        assert out == pytest.approx({k: v for k, v in ref.items() if k != "median"}, rel=1e-9)
    single = normals_metrics(pred[1], gt[1])  # [H,W,3]
    assert single["mean"] == pytest.approx(_summary(_loop_angles(pred[1:2], gt[1:2]))["mean"], rel=1e-9)
    single_chw = normals_metrics(pred[1].transpose(2, 0, 1), gt[1])  # [3,H,W]
    assert single_chw["mean"] == pytest.approx(single["mean"], rel=1e-12)


def test_zero_pred_is_90_degrees() -> None:
    out = normals_metrics(np.zeros((1, 1, 3)), np.array([[[0.0, 0.0, 2.0]]]))
    assert out["mean"] == pytest.approx(90.0)


@pytest.mark.parametrize("n", [20001, 20000])  # odd and even counts
def test_median_histogram_within_a_bin(n: int) -> None:
    rng = np.random.default_rng(n)
    gt = np.tile([0.0, 0.0, 1.0], (n, 1))[None]
    pred = gt + rng.normal(scale=0.5, size=gt.shape)
    m = NormalsMeter()
    m.update(pred[:, : n // 3], gt[:, : n // 3])
    m.update(pred[:, n // 3 :], gt[:, n // 3 :])
    ref = float(np.median(_loop_angles(pred[:, :, None], gt[:, :, None])))
    assert m.compute()["median"] == pytest.approx(ref, abs=0.005 + 1e-9)  # half a bin


def test_median_is_bin_centre() -> None:
    theta = np.radians([10.001, 20.002, 30.003])
    pred = np.stack([np.sin(theta), np.zeros(3), np.cos(theta)], -1)[None, None]
    gt = np.tile([0.0, 0.0, 1.0], (1, 1, 3, 1))
    assert normals_metrics(pred, gt)["median"] == pytest.approx(20.005, abs=1e-6)  # bin [20.00, 20.01)


def test_merge_equals_one_shot(data) -> None:
    pred, gt = data
    a, b = NormalsMeter(), NormalsMeter()
    a.update(pred[:1], gt[:1])
    b.update(pred[1:], gt[1:])
    assert a.merge(b).compute() == pytest.approx(normals_metrics(pred, gt))
    assert set(a.compute()) == set(NormalsMeter.higher_is_better)


def test_errors() -> None:
    with pytest.raises(EdgeMTLError, match="does not match"):
        normals_metrics(np.ones((4, 4, 3)), np.ones((4, 5, 3)))
    with pytest.raises(EdgeMTLError, match="NaN"):
        normals_metrics(np.full((1, 2, 3), np.nan), np.ones((1, 2, 3)))
    with pytest.raises(EdgeMTLError, match=r"\[H,W,3\]"):
        normals_metrics(np.ones((4, 4)), np.ones((4, 4)))
    with pytest.raises(EdgeMTLError, match="no valid normals"):
        normals_metrics(np.ones((2, 2, 3)), np.zeros((2, 2, 3)))
