"""The paired bootstrap recomputes pooled metrics exactly on every resample (checked by brute force:
a fresh meter fed each image as many times as the resample draws it)."""

from __future__ import annotations

import numpy as np
import pytest

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import ConfusionMeter, DepthMeter, EdgeMeter, NormalsMeter
from edgemtl.metrics.bootstrap import (
    delta_m_samples,
    resample_weights,
    resampled_metric,
    seed_weights,
    state_vector,
    summarize,
    with_state,
)
from edgemtl.metrics.saliency import SaliencyMeter

N = 10


def _same(rebuilt: dict, direct: dict) -> None:
    """Every key equal, except the normals' median, which resampling does not rebuild (NaN)."""
    assert set(rebuilt) == set(direct)
    for k, v in direct.items():
        if k == "median":
            assert np.isnan(rebuilt[k])
        else:
            assert rebuilt[k] == pytest.approx(v, abs=1e-9), k


def _images(kind: str, rng: np.random.Generator):
    out = []
    for _ in range(N):
        h, w = rng.integers(12, 24, 2)
        if kind == "classes":
            gt = rng.integers(0, 5, (h, w))
            gt[rng.random((h, w)) < 0.1] = 255
            out.append((np.where(rng.random((h, w)) < 0.6, gt % 5, rng.integers(0, 5, (h, w))), gt))
        elif kind == "depth":
            gt = rng.random((h, w)) * 5
            gt[rng.random((h, w)) < 0.2] = 0
            out.append((gt + rng.normal(0, 0.3, (h, w)), gt))
        elif kind == "normals":
            g = rng.normal(size=(h, w, 3))
            out.append((g + rng.normal(0, 0.5, (h, w, 3)), g))
        else:  # saliency / edges: probability and 0/1/255 ground truth
            gt = (rng.random((h, w)) < 0.2).astype(np.uint8)
            gt[0, :3] = 255
            out.append((np.clip(gt * 0.6 + rng.random((h, w)) * 0.5, 0, 0.999), gt))
    return out


CASES = [
    ("classes", lambda: ConfusionMeter(5), "mIoU"),
    ("depth", lambda: DepthMeter(), "rmse"),
    ("depth", lambda: DepthMeter(image_wise=True), "rmse"),
    ("normals", lambda: NormalsMeter(), "mean"),
    ("saliency", lambda: SaliencyMeter(), "maxF"),
    ("edges", lambda: EdgeMeter(0.05, 5, workers=1), "odsF"),
    ("edges", lambda: EdgeMeter(0.05, 5, workers=1), "oisF"),
]


@pytest.mark.parametrize("kind,make,key", CASES)
def test_resampled_metric_equals_brute_force(kind, make, key):
    rng = np.random.default_rng(hash(kind) % 2**32)
    images = _images("binary" if kind in ("saliency", "edges") else kind, rng)
    states, whole = [], make()
    for p, g in images:
        m = make()
        m.update(p[None], g[None])
        states.append(state_vector(m))
        whole.update(p[None], g[None])
    S = np.stack(states)
    template = make()
    # identity weights give the plain dataset metric
    assert resampled_metric(template, S, key, np.ones((1, N)))[0] == pytest.approx(
        whole.compute()[key], abs=1e-9
    )
    W = resample_weights(N, 5, seed=3)
    got = resampled_metric(template, S, key, W)
    for r in range(5):
        brute = make()
        for i, (p, g) in enumerate(images):
            for _ in range(int(W[r, i])):
                brute.update(p[None], g[None])
        assert got[r] == pytest.approx(brute.compute()[key], abs=1e-9), r
    _same(with_state(template, S.sum(0)).compute(), whole.compute())


def test_resamples_are_fixed_and_multinomial():
    W = resample_weights(7, 50)
    assert W.shape == (50, 7) and np.all(W.sum(1) == 7)
    assert np.array_equal(W, resample_weights(7, 50)), "a fixed seed: the same resamples for every model"


def test_seed_weights_resample_the_training_seeds():
    W = seed_weights(3, 400)
    assert W.shape == (400, 3) and np.allclose(W.sum(1), 1) and np.allclose(W * 3, np.rint(W * 3))
    assert np.array_equal(W, seed_weights(3, 400)) and np.array_equal(seed_weights(1, 5), np.ones((5, 1)))
    # Every seed is left out of some resamples and drawn 3 times in others (1/27 each: ~15 of 400).
    assert all((W[:, k] == 0).any() and (W[:, k] == 1).any() for k in range(3))
    with pytest.raises(EdgeMTLError, match="at least one seed"):
        seed_weights(0)


def test_seed_resampling_turns_a_seed_dependent_difference_into_a_tie():
    """Three seeds whose Δm vs a reference is +0.4, +0.6 and -3.0 points, each measured precisely
    (image noise 0.05): resampling images only, the seed mean (-0.67) looks significant; resampling
    the seeds too (as edgemtl bench does) gives an interval that spans 0. A difference of the same
    sign on every seed (-2.8, -1.5, -4.8) stays significant."""
    rng = np.random.default_rng(3)
    W = seed_weights(3)

    def intervals(per_seed_delta):
        per_seed = np.array(per_seed_delta)[:, None] + rng.normal(0, 0.05, (3, W.shape[0]))  # [S, R]
        images_only = summarize(per_seed.mean(0), float(np.mean(per_seed_delta)))
        two_level = summarize(np.einsum("rs,sr->r", W, per_seed), float(np.mean(per_seed_delta)))
        return images_only, two_level

    images_only, two_level = intervals([0.4, 0.6, -3.0])
    assert images_only["significant"] and not two_level["significant"], (images_only, two_level)
    assert two_level["ci_low"] < -2.5 and two_level["ci_high"] > 0.3
    assert all(ci["significant"] for ci in intervals([-2.8, -1.5, -4.8]))


def test_paired_delta_m_interval():
    rng = np.random.default_rng(0)
    base = {"a": 50 + rng.normal(0, 1, 1000), "b": 2.0 + rng.normal(0, 0.05, 1000)}
    better = {"a": base["a"] * 1.05, "b": base["b"] * 0.95}  # 5 % better on both (b: lower is better)
    d = delta_m_samples(better, base, {"a": True, "b": False})
    assert np.allclose(d, 5.0)
    ci = summarize(d, 5.0)
    assert ci["significant"] and ci["ci_low"] == pytest.approx(5.0)
    same = summarize(delta_m_samples(base, base, {"a": True, "b": False}) + rng.normal(0, 1, 1000), 0.0)
    assert not same["significant"] and same["ci_low"] < 0 < same["ci_high"]


def test_evaluate_states_merge_to_the_same_metrics(tiny_data):
    import torch
    from conftest import TINY_MODEL

    from edgemtl.data.dataset import MultiTaskDataset
    from edgemtl.evaluate import Protocol, evaluate
    from edgemtl.models import create_model
    from edgemtl.recipes import Recipe
    from edgemtl.tasks import build_tasks
    from edgemtl.train.data import make_loader

    torch.manual_seed(0)
    names = ["semseg", "depth", "normals", "edges", "saliency"]
    recipe = Recipe("r", "", {"arch": "hard_sharing", **TINY_MODEL}, names, [], {"root": str(tiny_data)}, {})
    model = create_model(recipe.model_config())
    ds = MultiTaskDataset(tiny_data, "test", tasks=names, input_size=(48, 48))
    tasks = build_tasks(names, ds.meta)
    protocol = Protocol("test", edge_thresholds=3)
    plain = evaluate(model, make_loader(ds, 2, False, 0, 0, 0), tasks, protocol)
    states: dict = {}
    again = evaluate(model, make_loader(ds, 2, False, 0, 0, 0), tasks, protocol, image_states=states)
    assert again == plain and states["_ids"] == ds.ids
    for n in names:
        assert states[n].shape[0] == len(ds)
        template = tasks[n].new_meter(edge_thresholds=3)
        _same(with_state(template, states[n].sum(0)).compute(), plain[n])
