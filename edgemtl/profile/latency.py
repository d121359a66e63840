"""Latency of exported artifacts on this machine: warm-up, then timed single-image calls.

    rt = edgemtl.runtime.load("model.pte", threads=2)
    measure(rt, "depth")       # {"median_ms": ..., "p90_ms": ..., "threads": 2, ...}
    measure_all_tasks(rt)      # every task once per timed call

Times the graph call only (``Model.run``/``Model.run_all``: the pre-processed float input and
task encoding are prepared once outside the loop), so numbers compare runtimes, not OpenCV
resizing; ``include_processing=True`` times ``predict`` on a uint8 image instead.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.errors import EdgeMTLError


def _samples(call: Callable[[], Any], warmup: int, runs: int) -> np.ndarray:
    """Milliseconds of ``runs`` timed calls after ``warmup`` untimed ones."""
    if runs < 1 or warmup < 0:
        raise EdgeMTLError(f"latency: runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        call()
        times[i] = (time.perf_counter() - t0) * 1e3
    return times


def _summary(times: np.ndarray, warmup: int) -> dict[str, Any]:
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "min_ms": float(times.min()),
        "runs": len(times),
        "warmup": warmup,
    }


def _time(call: Callable[[], Any], warmup: int, runs: int) -> dict[str, Any]:
    return _summary(_samples(call, warmup, runs), warmup)


def _input(model: Any, image: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    from edgemtl.artifact.processing import preprocess

    h, w = model.input_size
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return image, preprocess(image, (h, w))


def task_call(
    model: Any, task: str, include_processing: bool = False, image: np.ndarray | None = None
) -> Callable[[], Any]:
    """One task's timed call: the graph call on a prepared input, or ``predict`` on a uint8 image."""
    image, x = _input(model, image)
    return (lambda: model.predict(image, task)) if include_processing else (lambda: model.run(x, task))


def all_tasks_call(model: Any, image: np.ndarray | None = None) -> Callable[[], Any]:
    """Every task for one image: one call of an all-tasks graph, else one call per task."""
    _, x = _input(model, image)
    if model.io["scheme"] == "all":
        return lambda: model.backend.run("forward", [x])
    return lambda: [model.run(x, t) for t in model.tasks]


def measure_interleaved(
    calls: dict[Any, Callable[[], Any]], warmup: int = 2, runs: int = 50, rounds: int = 5, seed: int = 0
) -> dict[Any, dict[str, Any]]:
    """Latency of several calls measured in turn: ``rounds`` rounds, each running every call (in a
    shuffled order) ``warmup`` times untimed and then about ``runs / rounds`` times timed; median and
    p90 over each call's pooled timings, which are returned too (``times_ms``, for intervals).

    Why: on a shared or thermally throttled machine the speed drifts by 10-20 % over minutes, so
    artifacts timed one after another compare the machine's moods as much as the artifacts. Taking
    every artifact's samples from the same stretches of time makes their ratios measured in one run
    comparable; the drift widens each median's spread instead of biasing one artifact."""
    if runs < 1 or rounds < 1 or warmup < 0:
        raise EdgeMTLError(
            "latency: runs and rounds must be >= 1 and warmup >= 0 "
            f"(got runs={runs}, rounds={rounds}, warmup={warmup})"
        )
    rng = np.random.default_rng(seed)
    keys = list(calls)
    times: dict[Any, list[np.ndarray]] = {k: [] for k in keys}
    for r in range(rounds):
        n = runs // rounds + (r < runs % rounds)
        if n == 0:
            continue
        for i in rng.permutation(len(keys)):
            times[keys[i]].append(_samples(calls[keys[i]], warmup, n))
    out = {}
    for key, ts in times.items():
        arr = np.concatenate(ts)
        out[key] = {**_summary(arr, warmup), "rounds": rounds, "times_ms": np.round(arr, 4).tolist()}
    return out


def ratio_interval(
    num: list, den: list, agg: tuple[str, str] = ("mean", "mean"), resamples: int = 1000
) -> list[float]:
    """95 % bootstrap interval of a latency ratio: each side is the mean (or sum) over its tasks of
    the median of that task's timed calls; every task's calls are resampled with replacement
    (fixed seed). It covers the call-to-call spread of this run, drift included (the calls were
    interleaved); it does not cover another machine or another day."""
    rng = np.random.default_rng(0)
    num, den = [np.asarray(a) for a in num], [np.asarray(a) for a in den]

    def side(arrays: list, how: str) -> float:
        medians = [np.median(a[rng.integers(0, len(a), len(a))]) for a in arrays]
        return float(np.mean(medians) if how == "mean" else np.sum(medians))

    reps = [side(num, agg[0]) / side(den, agg[1]) for _ in range(resamples)]
    return [float(v) for v in np.percentile(reps, [2.5, 97.5])]


def measure(
    model: Any,
    task: str,
    warmup: int = 5,
    runs: int = 30,
    include_processing: bool = False,
    image: np.ndarray | None = None,
) -> dict[str, Any]:
    """Median and p90 latency in milliseconds of ``runs`` calls of one task after ``warmup`` calls."""
    call = task_call(model, task, include_processing, image)
    return _task_entry(_time(call, warmup, runs), model, task, include_processing)


def _task_entry(summary: dict[str, Any], model: Any, task: str, include_processing: bool = False) -> dict:
    return {
        **{k: v for k, v in summary.items() if k != "times_ms"},
        "threads": model.threads,
        "backend": model.backend.name,
        "task": task,
        "input_size": list(model.input_size),
        "includes_processing": include_processing,
    }


def _all_tasks_entry(summary: dict[str, Any], model: Any) -> dict:
    return {
        **{k: v for k, v in summary.items() if k != "times_ms"},
        "threads": model.threads,
        "backend": model.backend.name,
        "calls_per_image": 1 if model.io["scheme"] == "all" else len(model.tasks),
        "task_input": model.io["scheme"],
        "input_size": list(model.input_size),
    }


def measure_all_tasks(
    model: Any, warmup: int = 5, runs: int = 30, image: np.ndarray | None = None
) -> dict[str, Any]:
    """Latency of producing every task for one image: one call of an all-tasks graph (``--task-input
    all``, where the encoder runs once), else one call per task in sequence."""
    return _all_tasks_entry(_time(all_tasks_call(model, image), warmup, runs), model)


def profile_artifact(
    path: str | os.PathLike, threads: int | None, warmup: int = 5, runs: int = 30, memory: bool = True
) -> dict[str, Any]:
    """Per-task and all-tasks latency of one artifact on its own runtime, plus its size on disk and
    (``memory``) its load time and resident memory, measured in a fresh process (profile.memory)."""
    from edgemtl import runtime

    rt = runtime.load(path, threads=threads)
    out = _artifact_entry(path, rt, threads)
    out["per_task"] = {t: measure(rt, t, warmup, runs) for t in rt.tasks}
    out["all_tasks"] = measure_all_tasks(rt, warmup, runs)
    if memory:
        out["memory"] = _memory(path, threads)
    return out


def _artifact_entry(path: str | os.PathLike, rt: Any, threads: int | None) -> dict[str, Any]:
    from edgemtl.artifact.manifest import artifact_size

    return {
        "artifact": str(path),
        "runtime": rt.backend.name,
        "bytes": artifact_size(path),
        "target": rt.metadata.get("target"),
        "precision": rt.metadata.get("precision"),
        "task_input": rt.io["scheme"],
        "threads": threads,
    }


def _memory(path: str | os.PathLike, threads: int | None) -> dict[str, Any]:
    """Load time and resident memory in a fresh process; a failure is said in its place (the
    latency stands)."""
    from edgemtl.profile.memory import footprint

    try:
        return footprint([path], threads or 1)
    except (EdgeMTLError, OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)[:300]}


def profile_runtimes(
    model: Any,
    runtimes: list[str],
    threads: int | None,
    precision: str = "fp32",
    warmup: int = 5,
    runs: int = 30,
    workdir: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Export ``model`` to each runtime (verified as usual), then time every task and all tasks of
    every artifact in interleaved rounds (measure_interleaved: the runtimes are compared on the same
    stretches of the machine's time; ``warmup`` untimed calls in all, spread over the rounds).

    For astmt with a task-independent encoder, a second ``all`` artifact gives the all-tasks
    latency with the encoder computed once.
    """
    from edgemtl import runtime
    from edgemtl.export import TARGETS, export, runnable_targets
    from edgemtl.export.wrapper import valid_schemes

    if runs < 1 or warmup < 0:  # before minutes of export, not after
        raise EdgeMTLError(f"latency: runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        loaded: dict[str, tuple[Path, Any, Any]] = {}
        for name in runtimes:
            if name not in runnable_targets():
                from edgemtl.errors import unknown_choice

                raise unknown_choice("--runtime", name, runnable_targets())
            target, suffix = name, TARGETS.get(name).suffix
            if progress:
                progress(f"exporting to {name} ({precision})")
            res = export(model, target, Path(tmp) / f"model{suffix}", precision=precision)
            rt_all = None
            if model.conditional and "all" in valid_schemes(model) and precision == "fp32":
                if progress:
                    progress(f"exporting the all-tasks graph to {name} (encoder once)")
                res_all = export(
                    model, target, Path(tmp) / f"model_all{suffix}", precision=precision, task_input="all"
                )
                rt_all = runtime.load(res_all.path, threads=threads)
            loaded[name] = (res.path, runtime.load(res.path, threads=threads), rt_all)
        calls: dict[tuple[str, str | None], Callable[[], Any]] = {}
        for name, (_, rt, rt_all) in loaded.items():
            calls.update({(name, t): task_call(rt, t) for t in rt.tasks})
            calls[(name, None)] = all_tasks_call(rt)
            if rt_all is not None:
                calls[(name, "all-graph")] = all_tasks_call(rt_all)
        if progress:
            progress(f"timing {len(calls)} calls in interleaved rounds")
        rounds = min(5, runs)
        timed = measure_interleaved(calls, -(-warmup // rounds), runs, rounds)
        for name, (path, rt, rt_all) in loaded.items():
            entry = _artifact_entry(path, rt, threads)
            entry["per_task"] = {t: _task_entry(timed[(name, t)], rt, t) for t in rt.tasks}
            entry["all_tasks"] = _all_tasks_entry(timed[(name, None)], rt)
            if rt_all is not None:
                entry["all_tasks_sequential"] = entry["all_tasks"]
                entry["all_tasks"] = _all_tasks_entry(timed[(name, "all-graph")], rt_all)
            entry["memory"] = _memory(path, threads)
            entry["artifact"] = None  # a temporary file
            results[name] = entry
    return results
