"""DepthMeter against explicit per-pixel / per-image Python loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import DepthMeter, depth_metrics

EPS = 1e-3


def _pixel_terms(p: float, g: float) -> tuple[float, ...]:
    pc = max(p, EPS)  # floor at 1 mm (covers <= 0)
    ratio = max(pc / g, g / pc)
    return (
        (p - g) ** 2,
        abs(p - g) / g,
        (math.log(pc) - math.log(g)) ** 2,
        float(ratio < 1.25),
        float(ratio < 1.25**2),
        float(ratio < 1.25**3),
    )


def _loops(pred: np.ndarray, gt: np.ndarray) -> tuple[dict, dict]:
    all_terms, per_image = [], []
    for b in range(pred.shape[0]):
        terms = []
        for i in range(pred.shape[1]):
            for j in range(pred.shape[2]):
                g = float(gt[b, i, j])
                if not math.isfinite(g) or g <= 0:
                    continue
                terms.append(_pixel_terms(float(pred[b, i, j]), g))
        if terms:
            all_terms += terms
            per_image.append(terms)

    def summarise(ts):
        n = len(ts)
        s = [sum(t[k] for t in ts) / n for k in range(6)]
        return [math.sqrt(s[0]), s[1], math.sqrt(s[2]), 100 * s[3], 100 * s[4], 100 * s[5]]

    keys = ("rmse", "abs_rel", "log_rmse", "delta1", "delta2", "delta3")
    pix = dict(zip(keys, summarise(all_terms)))
    imgs = [summarise(ts) for ts in per_image]
    img = {k: sum(v[i] for v in imgs) / len(imgs) for i, k in enumerate(keys)}
    return pix, img


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 5.0, (4, 7, 9))
    pred = gt * rng.uniform(0.6, 1.6, gt.shape)
    gt[rng.random(gt.shape) < 0.2] = 0.0  # invalid
    gt[0, 0, 0], gt[1, 0, 0], gt[1, 0, 1] = np.nan, np.inf, -1.0  # non-finite / negative: invalid
    gt[3] = 0.0  # an image without any valid pixel
    pred[0, 1, :3] = [-0.5, 0.0, 1e-5]  # <= 0 and tiny predictions
    return pred, gt


def test_pixel_and_image_wise_vs_loops(data) -> None:
    pred, gt = data
    ref_pix, ref_img = _loops(pred, gt)
    assert depth_metrics(pred, gt) == pytest.approx(ref_pix, rel=1e-10)
    assert depth_metrics(pred, gt, image_wise=True) == pytest.approx(ref_img, rel=1e-10)
    assert ref_pix["rmse"] != pytest.approx(ref_img["rmse"])  # the two modes really differ here


def test_streaming_merge_layouts(data) -> None:
    pred, gt = data
    one = depth_metrics(pred, gt, image_wise=True)
    a, b = DepthMeter(image_wise=True), DepthMeter(image_wise=True)
    a.update(torch.from_numpy(pred[0]).float(), gt[0])  # single map, float32 tensor
    a.update(pred[1:2, None], gt[1:2, None])  # [B,1,H,W]
    b.update(pred[2:], gt[2:])
    assert a.merge(b).compute() == pytest.approx(one, rel=1e-6)
    assert set(one) == set(DepthMeter.higher_is_better)


def test_perfect_prediction() -> None:
    gt = np.array([[1.0, 2.0], [0.0, 4.0]])
    out = depth_metrics(gt.copy(), gt)
    assert out["rmse"] == 0 and out["abs_rel"] == 0 and out["delta1"] == 100.0


def test_delta_threshold_is_strict() -> None:
    gt = np.array([[1.0, 2.0, 4.0, 0.5]])  # powers of two: 1.25·g and the ratio are exact
    out = depth_metrics(1.25 * gt, gt)
    assert out["delta1"] == 0.0 and out["delta2"] == 100.0
    assert out["abs_rel"] == pytest.approx(0.25)


def test_errors() -> None:
    with pytest.raises(EdgeMTLError, match=r"\(2, 2\).*\(2, 3\)"):
        depth_metrics(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(EdgeMTLError, match="NaN"):
        depth_metrics(np.array([[1.0, np.nan]]), np.ones((1, 2)))
    with pytest.raises(EdgeMTLError, match="no valid depth"):
        depth_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(EdgeMTLError, match="image_wise"):
        DepthMeter(image_wise=True).merge(DepthMeter())
