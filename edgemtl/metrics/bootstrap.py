"""Paired bootstrap over test images: confidence intervals of metrics and of Δm, computed exactly.

Every meter's state is additive (``STATE``: merge() adds it), so the state of any multiset of images
is the sum of their per-image states. A bootstrap resample is a vector of image multiplicities ``w``
(multinomial, N draws from N images); the resampled state is ``w @ S`` for the per-image state
matrix ``S`` [N, K], and the metric is recomputed from it by the meter's own ``compute()``. Pooled
metrics (mIoU from one confusion matrix, odsF from summed edge counts, pixel-pooled RMSE, the
image-averaged saliency curves) are therefore recomputed exactly on each resample, never
approximated by averaging per-image scores. Detection AP is not additive: its meter records each
image's matched detections instead and recomputes AP on a resample itself (``image_state`` /
``resampled``, exact as well). Models compared on the same test images use the same
resamples (paired), so image difficulty cancels out of a difference.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from edgemtl.errors import EdgeMTLError

N_RESAMPLES = 1000
SEED = 0


def state_vector(meter: Any) -> np.ndarray:
    """A meter's additive state as one float64 vector (integer counts stay exact below 2**53)."""
    if hasattr(meter, "image_state"):  # a meter that is not additive records its image instead
        return np.asarray(meter.image_state(), dtype=np.float64)
    if hasattr(meter, "_drain"):  # an edge meter may still have images in flight in its workers
        meter._drain()
    return np.concatenate([np.asarray(getattr(meter, k), dtype=np.float64).ravel() for k in meter.STATE])


def with_state(template: Any, vec: np.ndarray) -> Any:
    """A copy of ``template`` whose additive state is ``vec`` (shapes and dtypes from the template)."""
    m = copy.copy(template)
    if hasattr(m, "_pending"):
        m._pending = []
    at = 0
    for k in m.STATE:
        ref = getattr(template, k)
        arr = np.asarray(ref)
        part = vec[at : at + arr.size]
        at += arr.size
        if isinstance(ref, np.ndarray):
            value = part.reshape(arr.shape)
            setattr(
                m, k, np.rint(value).astype(arr.dtype) if arr.dtype.kind in "iu" else value.astype(arr.dtype)
            )
        elif isinstance(ref, (int, np.integer)):
            setattr(m, k, int(round(float(part[0]))))
        else:
            setattr(m, k, float(part[0]))
    if at != vec.size:
        raise EdgeMTLError(f"state vector of {vec.size} values does not fit {type(template).__name__} ({at})")
    return m


def resample_weights(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[R, N] image multiplicities of R bootstrap resamples (each sums to N); fixed seed, so every
    model evaluated on the same N test images gets the same resamples."""
    rng = np.random.default_rng([seed, n])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)


def seed_weights(n_seeds: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[R, S] weights of S training seeds in R resamples: seed multiplicities drawn with replacement
    (multinomial, S draws), divided by S. Averaging per-seed metrics with these weights resamples the
    seeds as well as the images (a two-level bootstrap), so an interval also covers how much another
    training run would move the result. The same draw for every model (paired by seed: seed k of a
    model against seed k of its baselines). One seed: all ones, the images-only bootstrap."""
    if n_seeds < 1:
        raise EdgeMTLError(f"seed_weights: need at least one seed (got {n_seeds})")
    rng = np.random.default_rng([seed, n_seeds, 1])
    counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_resamples)
    return counts.astype(np.float64) / n_seeds


def resampled_metric(template: Any, states: np.ndarray, key: str, weights: np.ndarray) -> np.ndarray:
    """``key`` of ``template``'s compute() on each resample: [R] values."""
    if hasattr(template, "resampled"):  # not additive (detection AP): the meter resamples itself
        return template.resampled(states, weights, key)
    summed = weights @ states
    return np.array([with_state(template, s).compute()[key] for s in summed])


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values."""
    a = (1 - level) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return float(lo), float(hi)


def delta_m_samples(
    model: dict[str, np.ndarray], base: dict[str, np.ndarray], higher_is_better: dict[str, bool]
) -> np.ndarray:
    """Δm (%) per resample from per-task resampled metrics of a model and of its reference."""
    terms = []
    for t, hib in higher_is_better.items():
        b = base[t]
        if np.any(b == 0):
            raise EdgeMTLError(f"Δm: the reference's {t} metric is 0 on a resample; Δm is undefined")
        terms.append((1 if hib else -1) * (model[t] - b) / b)
    return 100.0 * np.mean(terms, axis=0)


def summarize(samples: np.ndarray, point: float, level: float = 0.95) -> dict[str, Any]:
    lo, hi = interval(samples, level)
    return {
        "value": float(point),
        "ci_low": lo,
        "ci_high": hi,
        "level": level,
        "significant": bool(lo > 0 or hi < 0),
        "n_resamples": int(samples.size),
    }
