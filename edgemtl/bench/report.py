"""Bench rows, tables (Markdown, CSV, JSON), Pareto plots and the environment record.

Δm of a row is edgemtl.metrics.delta_m over the row's tasks against the suite's single-task fp32
PyTorch models (positive = better than single-task); Acc_MTL is the AMTL release's merged metric
(edgemtl.metrics.deltam.acc_mtl: geometric means of the tasks' metrics, not relative).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from edgemtl.bench.suite import Suite
from edgemtl.data.dataset import load_meta
from edgemtl.errors import EdgeMTLError
from edgemtl.profile.cpu import cpu_features


def _tasks(results: dict[str, Any], names: list[str]):
    from edgemtl.tasks import build_tasks

    meta = load_meta(Path(results["data_root"]))
    return build_tasks(names, meta)


def _scores(
    row: dict[str, Any], tasks, stl_metrics: dict[str, dict[str, float]], protocol: str = "edgemtl"
) -> None:
    from edgemtl.metrics import acc_mtl, task_delta_m

    metrics = row.get("metrics") or {}
    names = [t for t in tasks if t in metrics]
    if not names:
        row.update(delta_m=None, acc_mtl=None)
        return
    prim = {t: metrics[t][tasks[t].primary(protocol)] for t in names}
    row["primary"] = prim
    try:
        row["delta_m"] = task_delta_m({t: tasks[t] for t in names}, metrics, stl_metrics, protocol)
    except EdgeMTLError as e:  # a single-task baseline of 0 (e.g. a far too short run)
        row.update(delta_m=None, delta_m_error=str(e))
    try:
        row["acc_mtl"] = acc_mtl({t: metrics[t] for t in names}, {t: tasks[t].acc_mtl_terms() for t in names})
    except EdgeMTLError:  # a metric the row's evaluation did not produce
        row["acc_mtl"] = None


def seed_runs(results: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The finished training runs of ``name``, one per seed (first seed first)."""
    runs = (results.get("trained_seeds") or {}).get(name) or [results["trained"][name]]
    return [r for r in runs if r.get("metrics")]


def _mean_std(runs: list[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per task and metric: mean and sample standard deviation over seeds (std 0 for one seed)."""
    import numpy as np

    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    for t, keys in runs[0]["metrics"].items():
        for k in keys:
            vals = np.array([r["metrics"][t][k] for r in runs], dtype=np.float64)
            mean.setdefault(t, {})[k] = float(vals.mean())
            std.setdefault(t, {})[k] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return mean, std


def _seed_spread(
    row: dict[str, Any],
    runs: list[dict[str, Any]],
    stl_by_seed: dict[int, dict[str, Any]],
    tasks,
    protocol: str = "edgemtl",
) -> None:
    """Δm of each seed against the single-task models of the same seed: its mean ± std."""
    import numpy as np

    from edgemtl.metrics import task_delta_m

    names = [t for t in tasks if t in runs[0]["metrics"]]
    per_seed = []
    for r in runs:
        base = stl_by_seed.get(r.get("seed"))
        if base is None or any(t not in base for t in names):
            continue
        try:
            per_seed.append(task_delta_m({t: tasks[t] for t in names}, r["metrics"], base, protocol))
        except EdgeMTLError:
            continue
    if len(per_seed) > 1:
        row["delta_m_seeds"] = {
            "mean": float(np.mean(per_seed)),
            "std": float(np.std(per_seed, ddof=1)),
            "n": len(per_seed),
        }


def build_rows(suite: Suite, results: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = _tasks(results, suite.tasks)
    trained, counts = results["trained"], results["counts"]
    # Every fp32 PyTorch number is the mean over the suite's seeds (std beside it).
    st_runs = {t: seed_runs(results, f"single_task_{t}") for t in suite.tasks}
    stl_metrics = {t: _mean_std(st_runs[t])[0][t] for t in suite.tasks}
    stl_by_seed: dict[int, dict[str, Any]] = {}
    for t, runs in st_runs.items():
        for r in runs:
            stl_by_seed.setdefault(r.get("seed"), {})[t] = r["metrics"][t]
    rows: list[dict[str, Any]] = []

    def base(name: str) -> dict[str, Any]:
        c = counts[name]
        return {
            "model": name,
            "arch": trained[name].get("arch") or _arch(suite, name),
            "params": c["params_total"],
            "gmac_per_task": {t: v / 1e9 for t, v in c["macs_per_task"].items()},
            "gmac_all_tasks": c["macs_all_tasks"] / 1e9,
        }

    # All single-task models together: the reference point of Δm = 0 (ASTMT Fig. 5's "single").
    st = [f"single_task_{t}" for t in suite.tasks]
    rows.append(
        {
            "model": f"single_task x{len(st)}",
            "arch": "single_task",
            "precision": "fp32",
            "format": "pytorch",
            "status": "ok",
            "params": sum(counts[n]["params_total"] for n in st),
            "gmac_per_task": {t: counts[f"single_task_{t}"]["macs_per_task"][t] / 1e9 for t in suite.tasks},
            "gmac_all_tasks": sum(counts[n]["macs_all_tasks"] for n in st) / 1e9,
            "metrics": {t: stl_metrics[t] for t in suite.tasks},
        }
    )
    for name in suite.model_names():
        if name in results.get("train_failed", {}):
            rows.append(
                {
                    "model": name,
                    "arch": _arch(suite, name),
                    "precision": "fp32",
                    "format": "pytorch",
                    "status": "train failed",
                    "error": results["train_failed"][name],
                    "params": None,
                }
            )
            continue
        runs = seed_runs(results, name)
        mean, std = _mean_std(runs)
        row = {
            **base(name),
            "precision": "fp32",
            "format": "pytorch",
            "status": "ok",
            "metrics": mean,
            "run": trained[name].get("run"),
            "seeds": [r.get("seed") for r in runs],
        }
        if len(runs) > 1:
            row["metrics_std"] = std
            _seed_spread(row, runs, stl_by_seed, tasks, suite.protocol)
        rows.append(row)
    for name, q in results["quant"].items():
        for key in ("ptq", "qat"):
            if key in q.get("metrics", {}):
                rows.append(
                    {
                        **base(name),
                        "precision": f"int8-{key}",
                        "format": "pytorch (simulated int8)",
                        "status": "ok",
                        "metrics": q["metrics"][key],
                    }
                )
    for ex in results["exported"]:
        row = {**base(ex["model"]), **{k: v for k, v in ex.items() if k not in ("traceback",)}}
        row["size_mb"] = ex["bytes"] / 1e6 if ex.get("bytes") else None
        lat = ex.get("latency")
        if lat:
            row["latency_ms_per_task"] = {t: m["median_ms"] for t, m in lat["per_task"].items()}
            row["latency_ms_all_tasks"] = lat["all_tasks"]["median_ms"]
            row["latency_threads"] = lat["threads"]
        rows.append(row)
    for row in rows:
        _scores(row, tasks, stl_metrics, suite.protocol)
    results["bootstrap"] = _bootstrap(suite, results, tasks, rows)
    return rows


def states_file(protocol: str) -> str:
    """A run's per-image test states under ``protocol`` (the trainer writes edgemtl's)."""
    return "test_states.npz" if protocol == "edgemtl" else f"test_states_{protocol}.npz"


def reference_hard_sharing(suite: Suite) -> str | None:
    """The hard-sharing model other designs are compared with: the first hard_sharing variant."""
    return next(
        (n for n, v in suite.variants.items() if v.get("model", {}).get("arch") == "hard_sharing"), None
    )


def _seed_states(suite: Suite, results: dict[str, Any]) -> tuple[dict[str, list], dict[str, list]]:
    """Per trained model whose runs all saved them: the per-image test states of each seed's run,
    and those runs' seeds (in the same order)."""
    from edgemtl.train.trainer import load_image_states

    states: dict[str, list[dict[str, Any]]] = {}
    run_seeds: dict[str, list[Any]] = {}
    for name in results["trained"]:
        runs = [r for r in seed_runs(results, name) if r.get("run")]
        paths = [Path(r["run"]) / states_file(suite.protocol) for r in runs]
        if paths and all(p.is_file() for p in paths):
            states[name] = [load_image_states(p) for p in paths]
            run_seeds[name] = [r.get("seed") for r in runs]
    return states, run_seeds


def _bootstrap(suite: Suite, results: dict[str, Any], tasks, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """95 % paired-bootstrap intervals of Δm (vs the single-task models, and vs hard sharing) for every
    fp32 PyTorch row, from the per-image states each run saved (docs/metrics.md, "Confidence intervals")."""
    import numpy as np

    from edgemtl.evaluate import Protocol
    from edgemtl.metrics import task_delta_m
    from edgemtl.metrics.bootstrap import (
        N_RESAMPLES,
        SEED,
        delta_m_samples,
        resample_weights,
        resampled_metric,
        seed_weights,
        summarize,
    )

    trained = results["trained"]
    states, run_seeds = _seed_states(suite, results)
    st = {t: f"single_task_{t}" for t in suite.tasks}
    if not all(n in states for n in st.values()):
        return {"status": "skipped: runs without per-image states (trained by an older edgemtl)"}
    ids = states[st[suite.tasks[0]]][0]["_ids"]
    if any(s["_ids"] != ids for runs in states.values() for s in runs):
        return {"status": "skipped: the runs were tested on different images"}
    weights = resample_weights(len(ids))
    # Training seeds are resampled too (two levels: seeds, then images; seed_weights), paired by
    # seed. A model trained on other seeds than the single-task baselines averages its own seeds.
    seeds = run_seeds[st[suite.tasks[0]]]
    by_seed = seed_weights(len(seeds))
    # The meters the runs' test evaluation used (the trainer's protocol), to rebuild resampled states.
    protocol = Protocol(edge_thresholds=suite.train_config.edge_thresholds, name=suite.protocol)
    templates = {t: protocol.new_meter(tasks[t]) for t in suite.tasks}
    hib = {t: tasks[t].higher_is_better for t in suite.tasks}
    samples: dict[str, dict[str, np.ndarray]] = {}
    unpaired: set[str] = set()

    def metric_samples(name: str, names: list[str]) -> dict[str, np.ndarray]:
        """Per resample, the metric averaged over the model's seeds, weighted by the resample's seed
        draw (the same image resample for every seed)."""
        got = samples.setdefault(name, {})
        for t in names:
            if t not in got:
                per_seed = np.stack(
                    [
                        resampled_metric(templates[t], run[t], tasks[t].primary(suite.protocol), weights)
                        for run in states[name]
                    ]
                )  # [S, R]
                if run_seeds[name] == seeds:
                    got[t] = np.einsum("rs,sr->r", by_seed, per_seed)
                else:  # no seed to pair with: its own seeds averaged, images resampled only
                    got[t] = per_seed.mean(axis=0)
                    unpaired.add(name)
        return {t: got[t] for t in names}

    base = {t: metric_samples(n, [t])[t] for t, n in st.items()}
    hs = reference_hard_sharing(suite)
    for row in rows:
        name = row["model"]
        if row.get("format") != "pytorch" or row.get("precision") != "fp32" or name not in states:
            continue
        names = [t for t in suite.tasks if t in states[name][0]]
        if name in st.values() or row.get("delta_m") is None or names != list(suite.tasks):
            continue
        mine = metric_samples(name, names)
        # A reference metric of 0 on some resample (e.g. a barely trained detector's mAP) leaves Δm
        # undefined there: the row gets no interval and says why, instead of the bench stopping.
        try:
            row["delta_m_ci"] = summarize(delta_m_samples(mine, base, hib), row["delta_m"])
        except EdgeMTLError as e:
            row["delta_m_ci_note"] = str(e)
        if hs and name != hs and hs in states and trained.get(hs, {}).get("metrics"):
            ref = metric_samples(hs, names)
            hs_mean = _mean_std(seed_runs(results, hs))[0]
            try:
                point = task_delta_m({t: tasks[t] for t in names}, row["metrics"], hs_mean, suite.protocol)
                ci = summarize(delta_m_samples(mine, ref, hib), point)
                row["delta_m_vs_hs_ci"] = {**ci, "reference": hs}
            except (EdgeMTLError, ZeroDivisionError) as e:
                row["delta_m_vs_hs_ci_note"] = str(e)
    return {
        "status": "ok",
        "n_images": len(ids),
        "n_resamples": N_RESAMPLES,
        "seed": SEED,
        "level": 0.95,
        "hard_sharing_reference": hs,
        "training_seeds": list(suite.seeds),
        "seeds_resampled": len(seeds) > 1,
        # models trained on other seeds than the single-task baselines: their seeds are not resampled
        "seeds_not_resampled": sorted(unpaired) if len(seeds) > 1 else [],
    }


def _arch(suite: Suite, name: str) -> str:
    if name in suite.variants:
        return suite.variants[name].get("model", {}).get("arch", suite.model.get("arch", "?"))
    return "single_task"


def _mean(d: dict[str, float] | None) -> float | None:
    return sum(d.values()) / len(d) if d else None


def _f(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


COLUMNS = [
    "model",
    "arch",
    "precision",
    "format",
    "status",
    "size_mb",
    "params_m",
    "gmac_task",
    "gmac_all",
    "latency_ms_task",
    "latency_ms_all",
    "delta_m",
    "acc_mtl",
]


def flat(row: dict[str, Any], tasks: list[str], primary_names: dict[str, str]) -> dict[str, Any]:
    out = {
        "model": row["model"],
        "arch": row.get("arch"),
        "precision": row["precision"],
        "format": row["format"],
        "status": row["status"],
        "size_mb": row.get("size_mb"),
        "params_m": row["params"] / 1e6 if row.get("params") else None,
        "gmac_task": _mean(row.get("gmac_per_task")),
        "gmac_all": row.get("gmac_all_tasks"),
        "latency_ms_task": _mean(row.get("latency_ms_per_task")),
        "latency_ms_all": row.get("latency_ms_all_tasks"),
        "delta_m": row.get("delta_m"),
        "acc_mtl": row.get("acc_mtl"),
    }
    for key, prefix in (("delta_m_ci", "delta_m"), ("delta_m_vs_hs_ci", "delta_m_vs_hs")):
        ci = row.get(key) or {}
        if key == "delta_m_vs_hs_ci":
            out[prefix] = ci.get("value")
        out[f"{prefix}_ci_low"], out[f"{prefix}_ci_high"] = ci.get("ci_low"), ci.get("ci_high")
    for t in tasks:
        out[f"{t}.{primary_names[t]}"] = (row.get("primary") or {}).get(t)
    out["error"] = (row.get("error") or "").replace("\n", " ")[:300] or None
    return out


def markdown(rows: list[dict[str, Any]], suite: Suite, results: dict[str, Any]) -> str:
    tasks = _tasks(results, suite.tasks)
    prim = {t: tasks[t].primary(suite.protocol) for t in suite.tasks}
    arrows = {t: "↑" if tasks[t].higher_is_better else "↓" for t in suite.tasks}
    head = [
        "model",
        "precision",
        "format",
        "status",
        "MB",
        "params M",
        "GMAC/task",
        "GMAC all",
        "ms/task",
        "ms all",
        *[f"{t} {prim[t]} {arrows[t]}" for t in suite.tasks],
        "Δm % ↑",
        "Δm 95% CI",
        "vs hard sharing",
        "Acc_MTL",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        f = flat(r, suite.tasks, prim)
        cells = [
            f["model"],
            f["precision"],
            f["format"],
            f["status"],
            _f(f["size_mb"], ".2f"),
            _f(f["params_m"], ".3f"),
            _f(f["gmac_task"], ".4f"),
            _f(f["gmac_all"], ".4f"),
            _f(f["latency_ms_task"], ".2f"),
            _f(f["latency_ms_all"], ".2f"),
            *[
                _f(f[f"{t}.{prim[t]}"], ".4g")
                + _pm((r.get("metrics_std") or {}).get(t, {}).get(prim[t]), ".2g")
                for t in suite.tasks
            ],
            _f(f["delta_m"], "+.2f") + _pm((r.get("delta_m_seeds") or {}).get("std"), ".2f"),
            _ci(r.get("delta_m_ci")),
            _ci(r.get("delta_m_vs_hs_ci"), True),
            _f(f["acc_mtl"], ".4f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    protocols = [t["protocol"] for t in results.get("trained", {}).values() if t.get("protocol")]
    if protocols:  # every row, PyTorch or runtime, is evaluated under this protocol (docs/metrics.md)
        lines += ["", f"Evaluation {max(protocols, key=len)}"]
    boot = results.get("bootstrap") or {}
    if boot.get("status") == "ok":
        hs = boot.get("hard_sharing_reference")
        lines.append(
            f"Δm intervals: 95 % paired bootstrap over the {boot['n_images']} test images "
            f"({boot['n_resamples']} resamples, seed {boot['seed']}; pooled metrics recomputed exactly per "
            "resample); bold = the interval excludes 0."
            + (f" 'vs hard sharing': Δm against {hs} instead of the single-task models." if hs else "")
        )
        seeds = boot.get("training_seeds") or []
        if len(seeds) > 1:
            lines.append(
                f"Training seeds {seeds}: PyTorch fp32 metrics are means ± std over seeds, Δm ± the std of "
                "per-seed Δm (each seed against the single-task models of the same seed); intervals are "
                "of the seed-mean Δm"
                + (
                    ", resampling the training seeds (with replacement, paired by seed) and then the test "
                    "images: they cover seed-to-seed variation too"
                    + (
                        f" (not for {', '.join(boot['seeds_not_resampled'])}: other seeds than the "
                        "single-task models, so images only)."
                        if boot.get("seeds_not_resampled")
                        else "."
                    )
                    if boot.get("seeds_resampled")
                    else " over test-image resamples (seed variation not included)."
                )
            )
    elif boot:
        lines.append(f"Δm intervals: {boot['status']}")
    conv = results.get("convergence") or {}
    if conv:
        flat_runs = [k for k, v in conv.items() if v]
        not_flat = [k for k, v in conv.items() if v is False]
        unknown = [k for k, v in conv.items() if v is None]
        lines.append(
            f"Convergence (each task's val primary metric within 2 % over the last fifth of the epochs; "
            f"curves.png): {len(flat_runs)} of {len(conv)} runs flat"
            + (f"; not flat: {', '.join(not_flat)}" if not_flat else "")
            + (f"; too few validations to tell: {len(unknown)}" if unknown else "")
            + "."
            + _gain_text(results.get("convergence_gain") or {})
        )
    errors = [
        f"- {r['model']} {r['format']} {r['precision']}: {r['status']}: {str(r.get('error'))[:400]}"
        for r in rows
        if r.get("error")
    ]
    if errors:
        lines += ["", "Rows that did not export:", *errors]
    return "\n".join(lines) + "\n"


def _pm(std: float | None, fmt: str) -> str:
    """`` ± std`` over seeds (nothing for one seed)."""
    return f" ± {std:{fmt}}" if std else ""


def _ci(ci: dict[str, Any] | None, with_value: bool = False) -> str:
    """``[lo, hi]``, bold when the interval excludes 0 (a difference the test set supports)."""
    if not ci:
        return ""
    text = f"[{ci['ci_low']:+.2f}, {ci['ci_high']:+.2f}]"
    if with_value:
        text = f"{ci['value']:+.2f} {text}"
    return f"**{text}**" if ci["significant"] else text


def write_csv(rows: list[dict[str, Any]], suite: Suite, results: dict[str, Any], path: Path) -> None:
    from edgemtl.data.layout import atomic_write_bytes

    tasks = _tasks(results, suite.tasks)
    prim = {t: tasks[t].primary(suite.protocol) for t in suite.tasks}
    flats = [flat(r, suite.tasks, prim) for r in rows]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(flats[0]))
    w.writeheader()
    w.writerows(flats)
    atomic_write_bytes(path, buf.getvalue().encode())


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (x lower is better, y higher)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i
        ):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot(rows: list[dict[str, Any]], x_key: str, x_label: str, path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Only models that solve every task of the suite compete (one single-task network does not).
    full = max((len(r.get("primary") or {}) for r in rows), default=0)
    pts = [
        (r[x_key], r["delta_m"], r)
        for r in rows
        if r.get(x_key) is not None and r.get("delta_m") is not None and len(r.get("primary") or {}) == full
    ]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.6), dpi=120)
    markers = {"pytorch": "o", "pytorch (simulated int8)": "s", "onnx": "^", "executorch": "v"}
    for x, y, r in pts:
        yerr = _error_bar(r)
        ax.errorbar([x], [y], yerr=yerr, fmt=markers.get(r["format"], "D"), ms=6, capsize=3, lw=0.8)
        ax.annotate(
            f"{r['model']} {r['precision']}"
            + ("" if r["format"].startswith("pytorch") else f" {r['format']}"),
            (x, y),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    front = pareto_front([(x, y) for x, y, _ in pts])
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=0.8, label="Pareto front")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel(x_label)
    ax.set_ylabel("Δm vs single-task (%) ↑  (bars: 95 % CI)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    from edgemtl.data.layout import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())
    return True


def _error_bar(row: dict[str, Any]):
    """The row's 95 % paired-bootstrap interval of Δm as matplotlib's [[below], [above]], else ± the
    seed std, else None."""
    ci = row.get("delta_m_ci")
    if ci and row.get("delta_m") is not None:
        return [[max(row["delta_m"] - ci["ci_low"], 0.0)], [max(ci["ci_high"] - row["delta_m"], 0.0)]]
    std = (row.get("delta_m_seeds") or {}).get("std")
    return [[std], [std]] if std else None


def _gain_text(gains: dict[str, float | None]) -> str:
    """The trend of the convergence line: how much the runs still gained in their last fifth."""
    import statistics

    known = sorted(g for g in gains.values() if g is not None)
    if not known:
        return ""
    rising = [k for k, g in gains.items() if g is not None and g > 2]
    return (
        f" Trend (per run, the largest per-task gain of the last fifth's mean val metric over the fifth "
        f"before, % of the final value): median {statistics.median(known):.1f} %, max {known[-1]:.1f} %; "
        f"{len(rising)} of {len(known)} runs still gained over 2 %"
        + (f" ({', '.join(rising)})" if rising else "")
        + "."
    )


def curves(results: dict[str, Any], flat_tolerance: float = 0.02) -> dict[str, Any]:
    """Validation curves of every training run (``metrics.jsonl``: each task's primary metric per
    validated epoch) and whether each run converged: every task's primary metric moved by at most
    ``flat_tolerance`` (relative to its final value) over the last fifth of the validations (at least
    two). The bench writes them to curves.json and plots curves.png.

    ``last_fifth_gain`` is the trend beside that verdict: per task, the mean of the last fifth's
    validations minus the mean of the fifth before, in the task's direction of improvement, in % of
    the final value; the largest over the tasks. On a small val split the range rule also fails on
    noise, and under a poly schedule (learning rate to 0 at the end) the last fifth is where annealing
    gains come; a gain near 0 says the run stopped improving, a large one that it had not."""
    import math

    tasks = None
    out: dict[str, Any] = {}
    for name, runs in (
        results.get("trained_seeds") or {n: [r] for n, r in results["trained"].items()}
    ).items():
        for r in runs:
            path = Path(r.get("run") or "") / "metrics.jsonl"
            if not path.is_file():
                continue
            if tasks is None:
                tasks = _tasks(results, list(results["suite"]["tasks"]))
            recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            recs = [x for x in recs if x.get("val")]
            series = (
                {t: [x["val"][t][tasks[t].primary_metric] for x in recs] for t in recs[0]["val"]}
                if recs
                else {}
            )
            k = max(2, math.ceil(len(recs) / 5))
            is_flat = None
            if len(recs) >= k + 1:
                is_flat = all(
                    (max(v[-k:]) - min(v[-k:])) <= flat_tolerance * max(abs(v[-1]), 1e-9)
                    for v in series.values()
                )
            gain = None
            if len(recs) >= 2 * k:
                gain = max(
                    (1 if tasks[t].higher_is_better else -1)
                    * (sum(v[-k:]) - sum(v[-2 * k : -k]))
                    / k
                    / max(abs(v[-1]), 1e-9)
                    * 100
                    for t, v in series.items()
                )
            out[f"{name} seed {r.get('seed')}"] = {
                "model": name,
                "seed": r.get("seed"),
                "epochs": [x["epoch"] + 1 for x in recs],
                "val": series,
                "converged": is_flat,
                "window": k,
                "last_fifth_gain": gain,
            }
    return out


def plot_curves(curve_data: dict[str, Any], path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = [c for c in curve_data.values() if c["epochs"]]
    task_names = sorted({t for c in first for t in c["val"]})
    if not task_names:
        return False
    fig, axes = plt.subplots(1, len(task_names), figsize=(3.2 * len(task_names), 3.0), dpi=110, squeeze=False)
    for ax, t in zip(axes[0], task_names):
        for label, c in curve_data.items():
            if t in c["val"]:
                ax.plot(c["epochs"], c["val"][t], lw=0.9, label=label if t == task_names[0] else None)
        ax.set_title(t, fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.legend(fontsize=5, loc="lower center", ncol=4)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    from edgemtl.data.layout import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())
    return True


def environment(threads: int) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for pkg in ("edgemtl", "torch", "timm", "onnxruntime", "executorch", "coremltools", "torchao", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    cpu = platform.processor()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "runtime_threads": threads,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "command": " ".join(["edgemtl", *sys.argv[1:]]) if sys.argv else None,
    }


def write_outputs(results: dict[str, Any], suite: Suite, out: Path) -> dict[str, Path]:
    from edgemtl.report import write_json

    rows = results["rows"]
    with_x = []
    for r in rows:
        f = dict(r)
        f["params_m"] = r["params"] / 1e6 if r.get("params") else None
        f["latency_all"] = r.get("latency_ms_all_tasks")
        with_x.append(f)
    if "environment" not in results:  # a re-render from results.json keeps the run's own record
        results["environment"] = environment(int(results["latency_settings"]["threads"]))
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    curve_data = curves(results)
    results["convergence"] = {k: v["converged"] for k, v in curve_data.items()}
    results["convergence_gain"] = {k: v["last_fifth_gain"] for k, v in curve_data.items()}
    write_json(paths["json"], results)
    write_json(out / "curves.json", curve_data)
    paths["curves.json"] = out / "curves.json"
    if plot_curves(curve_data, out / "curves.png", f"{suite.name}: validation primary metric per epoch"):
        paths["curves.png"] = out / "curves.png"
    write_csv(rows, suite, results, paths["csv"])
    from edgemtl.data.layout import atomic_write_bytes

    env = results["environment"]
    header = (
        f"# {suite.name}\n\n{suite.description}\n\nMachine: {env['cpu']} ({env['cores']} cores; "
        f"{' '.join(env['cpu_features'])}), GPU: {env['gpu']}; "
        f"runtime latency at {env['runtime_threads']} thread(s), batch 1, median of "
        f"{results['latency_settings']['runs']} runs. Data: {results['data_root']}.\n\n"
    )
    atomic_write_bytes(paths["md"], (header + markdown(rows, suite, results)).encode())
    for key, label, name in (
        ("gmac_all_tasks", "GMAC for all tasks", "pareto_gmac.png"),
        ("latency_all", "latency for all tasks (ms)", "pareto_latency.png"),
        ("params_m", "parameters (M)", "pareto_params.png"),
    ):
        if plot(with_x, key, label, out / name, f"{suite.name}: Δm vs {label}"):
            paths[name] = out / name
    return paths
