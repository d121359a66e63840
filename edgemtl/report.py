"""Formatting and writing results (tables, JSON), and Δm against stored baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgemtl.data.layout import atomic_write_bytes, json_text
from edgemtl.errors import EdgeMTLError


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json_text(obj, indent=2, default=float) + "\n").encode())


def format_results(report: dict[str, Any]) -> str:
    lines = [report.get("protocol_text", "")]
    for task, metrics in report["metrics"].items():
        vals = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        lines.append(f"  {task:9s} {vals}")
    if "delta_m" in report:
        terms = ", ".join(f"{t} {v:+.2f}%" for t, v in report["delta_m_per_task"].items())
        lines.append(
            f"  Δm = {report['delta_m']:+.2f}% vs single-task baselines ({terms}); positive = better"
        )
    return "\n".join(lines)


def baseline_delta(
    results: dict[str, dict[str, float]], tasks: dict, baselines_path: str, protocol: str = "edgemtl"
) -> dict[str, Any]:
    from edgemtl.metrics import task_delta_m

    try:
        base = json.loads(Path(baselines_path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgeMTLError(f"--baselines: cannot read {baselines_path}: {e}") from None
    for n, t in tasks.items():
        key = t.primary(protocol)
        if n not in base or key not in base[n]:
            raise EdgeMTLError(f"--baselines {baselines_path} has no {n}.{key} (the metric Δm uses for {n})")
    dm, per_task = task_delta_m(tasks, {n: results[n] for n in tasks}, base, protocol, per_task=True)
    return {"delta_m": dm, "delta_m_per_task": per_task, "baselines": baselines_path}
