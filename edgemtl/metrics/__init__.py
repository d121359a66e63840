"""Evaluation metrics: pure functions plus streaming, mergeable meters.

Every meter has ``update(pred, gt)``, ``compute() -> dict[str, float]``, ``reset()``,
``merge(other)`` and a class attribute ``higher_is_better`` covering every key of ``compute()``.
Definitions, units and masks are written down in ``docs/metrics.md``.

The small input helpers live here (before the submodule imports) so that every metric module
validates inputs the same way; submodules import them from the package, which is already
partially initialised by the time they run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemtl.errors import EdgeMTLError

IGNORE_INDEX = 255


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy array or torch tensor (any device/dtype) -> numpy array."""
    if hasattr(x, "detach"):  # torch tensor; duck-typed so this module does not import torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()  # numpy has no bfloat16; float16 sums overflow
        return np.asarray(x)
    try:
        return np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise EdgeMTLError(f"{name}: cannot convert {type(x).__name__} to an array ({e})") from e


def _check_same_shape(pred: np.ndarray, gt: np.ndarray, what: str, shapes: tuple = ()) -> None:
    """Compare the normalised arrays; ``shapes`` = the caller's original (pred, gt) shapes for the message."""
    if pred.shape != gt.shape:
        ps, gs = shapes or (pred.shape, gt.shape)
        raise EdgeMTLError(
            f"{what}: prediction shape {tuple(ps)} does not match ground-truth shape {tuple(gs)}"
        )


def _as_maps(x: np.ndarray, name: str, what: str) -> np.ndarray:
    """[H,W], [B,H,W] or [B,1,H,W] -> [B,H,W]."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 3:
        return x
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    raise EdgeMTLError(
        f"{what}: {name} must be a map [H,W] or a batch [B,H,W] (or [B,1,H,W]); got shape {tuple(x.shape)}"
    )


def _load_maps(pred: Any, gt: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt) -> two [B,H,W] arrays of equal shape, or a shape error quoting the caller's shapes."""
    p0, g0 = _to_numpy(pred, "pred"), _to_numpy(gt, "gt")
    p, g = _as_maps(p0, "pred", what), _as_maps(g0, "gt", what)
    _check_same_shape(p, g, what, (p0.shape, g0.shape))
    return p, g


def _check_finite(x: np.ndarray, name: str, what: str) -> None:
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        kind = "NaN" if np.isnan(x).any() else "inf"
        raise EdgeMTLError(
            f"{what}: {name} contains {bad} non-finite value(s) ({kind}), shape {tuple(x.shape)}"
        )


def _check_unit_range(x: np.ndarray, name: str, what: str) -> None:
    """Probabilities must lie in [0,1] (thresholds are in (0,1); logits or 0..255 maps are a bug)."""
    _check_finite(x, name, what)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise EdgeMTLError(
            f"{what}: {name} must hold probabilities in [0,1]; got values in [{float(x.min())}, "
            f"{float(x.max())}] (apply a sigmoid, or divide 0..255 maps by 255)"
        )


def _check_binary_gt(gt: np.ndarray, what: str, ignore_index: int = IGNORE_INDEX) -> None:
    """Binary ground truth holds 0/1 plus the ignore value."""
    ok = (gt == 0) | (gt == 1) | (gt == ignore_index)
    if not ok.all():
        bad = np.unique(gt[~ok])[:5].tolist()
        raise EdgeMTLError(
            f"{what}: ground truth must hold 0, 1 or {ignore_index} (ignore); found {bad} "
            f"(shape {tuple(gt.shape)})"
        )


def _check_merge(a: Any, b: Any, fields: tuple[str, ...]) -> None:
    if type(a) is not type(b):
        raise EdgeMTLError(f"cannot merge {type(b).__name__} into {type(a).__name__}")
    for f in fields:
        va, vb = getattr(a, f), getattr(b, f)
        same = np.array_equal(va, vb) if isinstance(va, np.ndarray) else va == vb
        if not same:
            raise EdgeMTLError(f"cannot merge {type(a).__name__}s with different {f}: {va!r} vs {vb!r}")


from edgemtl.metrics.deltam import acc_mtl, delta_m, per_task_delta, task_delta_m  # noqa: E402
from edgemtl.metrics.depth import DepthMeter, depth_metrics  # noqa: E402
from edgemtl.metrics.detection import DetectionMeter  # noqa: E402
from edgemtl.metrics.edges import EdgeMeter, edge_metrics  # noqa: E402
from edgemtl.metrics.normals import NormalsMeter, normals_metrics  # noqa: E402
from edgemtl.metrics.saliency import SaliencyMeter, saliency_metrics  # noqa: E402
from edgemtl.metrics.segmentation import ConfusionMeter, miou  # noqa: E402

__all__ = [
    "IGNORE_INDEX",
    "ConfusionMeter",
    "DepthMeter",
    "DetectionMeter",
    "EdgeMeter",
    "NormalsMeter",
    "SaliencyMeter",
    "acc_mtl",
    "delta_m",
    "depth_metrics",
    "edge_metrics",
    "miou",
    "normals_metrics",
    "per_task_delta",
    "task_delta_m",
    "saliency_metrics",
]
