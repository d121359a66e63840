"""What shipping an artifact costs an app besides latency: load time and resident memory.

    footprint(["model.onnx"], threads=1)
    footprint(["semseg.onnx", "depth.onnx", "normals.onnx"], threads=1)  # T single-task artifacts

Each measurement runs in a fresh Python process, so that nothing loaded before counts:

- it imports the runtimes the artifacts need;
- it loads every artifact (``load_ms``);
- it calls each artifact once per task.

Resident memory comes from ``/proc/self/status`` and is reported in MB:

- ``baseline_mb``: after the imports;
- ``after_load_mb``: after loading;
- ``peak_mb``: the high-water mark (VmHWM) after the calls;
- ``*_delta_mb``: the same minus the baseline, which is what the artifacts themselves cost.

Linux only (``/proc``); elsewhere ``resource``'s peak RSS, without the after-load value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgemtl.errors import EdgeMTLError


def _rss_mb() -> tuple[float | None, float]:
    """(current RSS, peak RSS) of this process in MB."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return None, peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _child(paths: list[str], threads: int, options: dict[str, Any]) -> dict[str, Any]:
    import time

    import numpy as np

    from edgemtl import runtime
    from edgemtl.export import target_class

    for p in paths:  # the runtime libraries are part of the baseline, not of an artifact's cost
        backend = target_class(p).backend
        if backend is not None and backend.runtime_module:
            __import__(backend.runtime_module)
    try:  # reset the high-water mark so that import-time peaks do not count (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    base, _ = _rss_mb()
    t0 = time.perf_counter()
    models = [runtime.load(p, threads=threads, **options) for p in paths]
    load_ms = (time.perf_counter() - t0) * 1e3
    after_load, _ = _rss_mb()
    for m in models:
        x = np.zeros((1, 3, *m.input_size), np.float32)
        for t in m.tasks:
            m.run(x, t)
    _, peak = _rss_mb()
    return {
        "artifacts": [Path(p).name for p in paths],
        "threads": threads,
        "options": options,
        "load_ms": round(load_ms, 1),
        "baseline_mb": None if base is None else round(base, 1),
        "after_load_mb": None if after_load is None else round(after_load, 1),
        "peak_mb": round(peak, 1),
        "after_load_delta_mb": None if base is None or after_load is None else round(after_load - base, 1),
        "peak_delta_mb": None if base is None else round(peak - base, 1),
    }


def footprint(
    paths: list[str | os.PathLike],
    threads: int = 1,
    timeout: float = 600,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load time and resident memory of loading ``paths`` together and calling each task once;
    ``options`` go to ``runtime.load`` (e.g. ``{"sessions": "single"}`` for ONNX Runtime)."""
    for p in paths:
        if not Path(p).exists():
            raise EdgeMTLError(f"artifact not found: {p}")
    opts = json.dumps(options or {})
    cmd = [sys.executable, "-m", "edgemtl.profile.memory", str(int(threads)), opts, *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EdgeMTLError(f"memory profile of {', '.join(map(str, paths))} failed: {tail[0][:300]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.stdout.write(
        json.dumps(_child(sys.argv[3:], int(sys.argv[1]), json.loads(sys.argv[2]))) + "\n"
    )  # the parent parses it
