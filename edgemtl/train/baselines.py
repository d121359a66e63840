"""The single-task baseline registry that Δm reads (no hand-copied numbers).

A JSON file mapping a key ``dataset@fingerprint|backbone|HxW|seed|task`` to the single-task
model's test metrics, its checkpoint and recipe. ``edgemtl train`` of a single-task recipe
records into it; multi-task runs look their baselines up with the same key fields.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from edgemtl.data.layout import atomic_write_bytes


def registry_path(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path)
    if os.environ.get("EDGEMTL_BASELINES"):
        return Path(os.environ["EDGEMTL_BASELINES"])
    from edgemtl.train.data import cache_dir

    return cache_dir() / "baselines.json"


def baseline_key(dataset: str, backbone: str, size: tuple[int, int], seed: int, task: str) -> str:
    from edgemtl.evaluate import EVAL_PROTOCOL

    # The evaluation protocol is part of the key: a baseline measured another way is not comparable.
    return f"{dataset}|{backbone}|{size[0]}x{size[1]}|seed{seed}|{EVAL_PROTOCOL}|{task}"


def load_registry(path: str | os.PathLike | None = None) -> dict[str, Any]:
    p = registry_path(path)
    if not p.is_file():
        return {}
    return json.loads(p.read_text())


def record_baseline(key: str, entry: dict[str, Any], path: str | os.PathLike | None = None) -> Path:
    p = registry_path(path)
    reg = load_registry(p)
    reg[key] = {**entry, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_bytes(p, (json.dumps(reg, indent=2, sort_keys=True) + "\n").encode())
    return p


def lookup_baselines(
    dataset: str,
    backbone: str,
    size: tuple[int, int],
    seed: int,
    tasks: list[str],
    path: str | os.PathLike | None = None,
) -> dict[str, dict[str, float]] | None:
    """Test metrics per task if the registry has every task's baseline, else None."""
    reg = load_registry(path)
    out = {}
    for t in tasks:
        entry = reg.get(baseline_key(dataset, backbone, size, seed, t))
        if entry is None:
            return None
        out[t] = entry["metrics"]
    return out
