"""Multi-task summary scores: Δm (ASTMT eq. 4) and Acc_MTL (the AMTL release's merged metric)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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


def task_delta_m(
    tasks: Mapping[str, Any],
    mine: Mapping[str, Mapping[str, float]],
    ref: Mapping[str, Mapping[str, float]],
    protocol: str = "edgemtl",
    per_task: bool = False,
) -> Any:
    """Δm of the metrics ``mine`` against ``ref`` (each: task -> {metric: value}), over the tasks of
    ``tasks`` that ``mine`` has, each by its primary metric under ``protocol`` (``Task.primary``) and
    its direction (``Task.higher_is_better``): the one place those choices are made.
    ``per_task=True`` returns ``(delta_m, per_task_delta)``."""
    names = [t for t in tasks if t in mine]
    a = {t: mine[t][tasks[t].primary(protocol)] for t in names}
    b = {t: float(ref[t][tasks[t].primary(protocol)]) for t in names}
    hib = {t: tasks[t].higher_is_better for t in names}
    return (delta_m(a, b, hib), per_task_delta(a, b, hib)) if per_task else delta_m(a, b, hib)


def acc_mtl(
    metrics: Mapping[str, Mapping[str, float]], terms: Mapping[str, Sequence[tuple[str, bool, float]]]
) -> float:
    """Acc_MTL as the AMTL authors' release computes its summary metric (``merge_metrics`` in
    core/metrics/utils.py of Samsung/Achievement-based-MTL, commit 4e6f39b): per task, the geometric
    mean of its sub-metrics, accuracy-type ones as fractions and error-type ones inverted
    (1 / (x + 1e-10)); then the geometric mean over the tasks. Not relative to single-task models
    (Δm is); higher is better; unitless.

    ``terms[task]`` lists (metric, higher_is_better, factor): the value used is metrics[task][metric]
    * factor (e.g. 0.01 turns edgemtl's percentages into the release's fractions). The release's
    tasks: segmentation mIoU; depth δ1 and RMSE (m); normals mean and median (degrees) and the
    fraction within 11.25°; detection mAP. edgemtl's other tasks enter with their KPI as a fraction
    (Task.acc_mtl_terms).
    """
    if not metrics:
        raise EdgeMTLError("acc_mtl: no task metrics given")
    log_total = 0.0
    for task, values in metrics.items():
        if task not in terms or not terms[task]:
            raise EdgeMTLError(f"acc_mtl: task '{task}' has no Acc_MTL terms")
        logs = []
        for key, higher, factor in terms[task]:
            v = _value(values, key, f"Acc_MTL metric of {task}") * factor
            v = v if higher else 1.0 / (v + 1e-10)
            if v <= 0:  # the release would return 0 (or a complex number) here
                return 0.0
            logs.append(math.log(v))
        log_total += sum(logs) / len(logs)
    return math.exp(log_total / len(metrics))
