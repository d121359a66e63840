"""Multi-task summary scores: Δm (ASTMT eq. 4) and Acc_MTL (AMTL-style achievement)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from edgemtl.errors import EdgeMTLError


def _value(d: Mapping[str, float], task: str, role: str) -> float:
    if task not in d:
        raise EdgeMTLError(f"task '{task}' has no {role} value (have: {', '.join(sorted(d)) or 'none'})")
    v = float(d[task])
    if not math.isfinite(v):
        raise EdgeMTLError(f"task '{task}': {role} value is not finite ({v})")
    return v


def per_task_delta(
    mtl: Mapping[str, float], stl: Mapping[str, float], higher_is_better: Mapping[str, bool]
) -> dict[str, float]:
    """Per task: 100 · (−1)^l (M_mtl − M_stl) / M_stl, l = 1 when lower is better. Positive = better."""
    if not mtl:
        raise EdgeMTLError("delta_m: no multi-task results given")
    out: dict[str, float] = {}
    for task in mtl:
        m = _value(mtl, task, "multi-task")
        s = _value(stl, task, "single-task baseline")
        if s == 0:
            raise EdgeMTLError(f"task '{task}': single-task baseline is 0, relative difference undefined")
        if task not in higher_is_better or not isinstance(higher_is_better[task], (bool, np.bool_)):
            raise EdgeMTLError(
                f"task '{task}': unknown metric direction; pass higher_is_better['{task}'] = True/False"
            )
        sign = 1.0 if bool(higher_is_better[task]) else -1.0
        out[task] = 100.0 * sign * (m - s) / s
    return out


def delta_m(
    mtl: Mapping[str, float], stl: Mapping[str, float], higher_is_better: Mapping[str, bool]
) -> float:
    """Δm in %: mean over the tasks of ``mtl`` of :func:`per_task_delta`. Positive = better than single-task.

    ASTMT's README column "Average drop" is −Δm.
    """
    terms = per_task_delta(mtl, stl, higher_is_better)
    return sum(terms.values()) / len(terms)


def acc_mtl(mtl_acc: Mapping[str, float], stl_acc: Mapping[str, float]) -> float:
    """100 · mean over tasks of a_t / a_stl,t for accuracy-type KPIs (same unit for both, [0,1] or %).

    This is edgemtl's definition (AMTL's "achievement" averaged over tasks); the AMTL paper's own
    equation could not be verified offline.
    """
    if not mtl_acc:
        raise EdgeMTLError("acc_mtl: no multi-task accuracies given")
    ratios = []
    for task in mtl_acc:
        a = _value(mtl_acc, task, "multi-task accuracy")
        s = _value(stl_acc, task, "single-task accuracy")
        if s <= 0:
            raise EdgeMTLError(f"task '{task}': single-task accuracy must be > 0, got {s}")
        ratios.append(a / s)
    return 100.0 * sum(ratios) / len(ratios)
