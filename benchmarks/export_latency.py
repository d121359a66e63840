"""Export-issue latency targets, measured on this machine's CPU with the real runtimes.

1. Per-task latency of the task-conditional (ASTMT) artifact <= 1.1x a single-task artifact of the
   same backbone and decoder, on the same runtime (ONNX Runtime, ExecuTorch-XNNPACK), fp32.
2. int8 latency <= 0.6x fp32 on ExecuTorch-XNNPACK (PT2E) and on ONNX Runtime (its U8S8 quantizer).

Two phases, so exports (minutes, CPU-hungry) never overlap the timing:

    python benchmarks/export_latency.py export --out benchmarks/results/export_latency_cpu
    python benchmarks/export_latency.py measure --out benchmarks/results/export_latency_cpu --threads 1 2

Artifacts go to <out>/artifacts (not committed); report.json and report.md hold the numbers,
the ratios and the machine. Weights are random (latency does not depend on their values; int8
ranges come from calibration on rendered scenes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# Models: astmt = the recipe (SE in encoder and decoder, per-task BN); astmt_dec = SE and per-task
# BN in the decoder only; *_2t = the same with two tasks, for per-task-method artifacts (each
# method is one specialised single-task graph, so the number of tasks does not change its latency).
ARTIFACTS = [  # (file stem, model, runtime target, precision, suffix, task input)
    ("astmt_fp32", "astmt", "onnx", "fp32", ".onnx", None),
    ("astmt_int8", "astmt", "onnx", "int8", ".onnx", None),
    ("astmt_fp32", "astmt", "executorch", "fp32", ".pte", None),
    ("astmt_int8", "astmt", "executorch", "int8", ".pte", None),
    ("astmt_dec_fp32", "astmt_dec", "onnx", "fp32", ".onnx", None),
    ("astmt_dec_int8", "astmt_dec", "onnx", "int8", ".onnx", None),
    ("astmt_dec_fp32", "astmt_dec", "executorch", "fp32", ".pte", None),
    ("astmt_2t_pertask_fp32", "astmt_2t", "executorch", "fp32", ".pte", "per-task"),
    ("astmt_2t_pertask_int8", "astmt_2t", "executorch", "int8", ".pte", "per-task"),
    ("single_task_fp32", "single_task", "onnx", "fp32", ".onnx", None),
    ("single_task_fp32", "single_task", "executorch", "fp32", ".pte", None),
    ("single_task_int8", "single_task", "onnx", "int8", ".onnx", None),
    ("single_task_int8", "single_task", "executorch", "int8", ".pte", None),
]


def build(name: str, args: argparse.Namespace):
    import torch

    from edgemtl.models import create_model
    from edgemtl.recipes import load_recipe

    torch.manual_seed(0)
    cfg = load_recipe(args.recipe).model_config().to_dict()
    cfg["image_size"] = [args.size, args.size]
    if name == "astmt_dec":
        cfg.update(se="decoder", per_task_bn=None)
    if name == "astmt_2t":
        cfg["tasks"] = {t: cfg["tasks"][t] for t in list(cfg["tasks"])[:2]}
    if name == "single_task":
        first = next(iter(cfg["tasks"]))
        # Same backbone and decoder; a single-task model has no per-task modulation to select.
        cfg.update(
            arch="single_task",
            tasks={first: cfg["tasks"][first]},
            aux_tasks={},
            se="shared",
            per_task_bn=False,
            adapters=False,
            aspp="shared",
        )
    cfg["pretrained"] = None
    return create_model(cfg).eval()


def do_export(args: argparse.Namespace) -> None:
    from edgemtl.export import export

    art = Path(args.out) / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    log = {}
    for stem, name, target, precision, suffix, scheme in ARTIFACTS:
        path = art / f"{stem}{suffix}"
        if path.exists() and Path(f"{path}.json").exists() and not args.force:
            print(f"reuse {path}")
            continue
        t0 = time.perf_counter()
        res = export(build(name, args), target, path, precision=precision, task_input=scheme)
        log[path.name] = round(time.perf_counter() - t0, 1)
        print(f"{path.name}: {res.size_bytes / 1e6:.2f} MB in {log[path.name]} s, parity passed", flush=True)
    (Path(args.out) / "export_seconds.json").write_text(json.dumps(log, indent=2) + "\n")


def do_measure(args: argparse.Namespace) -> None:
    from edgemtl import runtime
    from edgemtl.profile.latency import measure
    from edgemtl.report import write_json

    art = Path(args.out) / "artifacts"
    rows = {}
    for threads in args.threads:
        for stem, name, target, precision, suffix, scheme in ARTIFACTS:
            path = art / f"{stem}{suffix}"
            rt = runtime.load(path, threads=threads)
            per_task = {t: measure(rt, t, args.warmup, args.runs) for t in rt.tasks}
            rows[f"{path.name}@{threads}"] = {
                "model": name,
                "runtime": target,
                "precision": precision,
                "threads": threads,
                "task_input": rt.io["scheme"],
                "bytes": path.stat().st_size,
                "median_ms": {t: m["median_ms"] for t, m in per_task.items()},
                "p90_ms": {t: m["p90_ms"] for t, m in per_task.items()},
            }
            med = rows[f"{path.name}@{threads}"]["median_ms"]
            print(
                f"{path.name:28s} {threads} thr: "
                + ", ".join(f"{t} {v:.2f}" for t, v in med.items())
                + " ms",
                flush=True,
            )

    def mean_ms(name: str, rt_name: str, precision: str, threads: int) -> float | None:
        r = next(
            (
                r
                for r in rows.values()
                if (r["model"], r["runtime"], r["precision"], r["threads"])
                == (name, rt_name, precision, threads)
            ),
            None,
        )
        return sum(r["median_ms"].values()) / len(r["median_ms"]) if r else None

    checks = []

    def check(
        what: str, rt_name: str, threads: int, num: float | None, den: float | None, goal: float
    ) -> None:
        if num is None or den is None:
            return
        checks.append(
            {
                "target": what,
                "runtime": rt_name,
                "threads": threads,
                "ratio": num / den,
                "goal": goal,
                "ok": num / den <= goal,
                "values_ms": [num, den],
            }
        )

    for threads in args.threads:
        for rt_name in ("onnx", "executorch"):
            single = mean_ms("single_task", rt_name, "fp32", threads)
            for model, how in (
                ("astmt", "one-hot input, SE enc+dec"),
                ("astmt_dec", "one-hot input, SE decoder"),
                ("astmt_2t", "per-task methods, SE enc+dec"),
            ):
                check(
                    f"task-conditional per-task latency / single-task ({how})",
                    rt_name,
                    threads,
                    mean_ms(model, rt_name, "fp32", threads),
                    single,
                    1.1,
                )
            for model, how in (
                ("astmt", "one-hot input, SE enc+dec"),
                ("astmt_dec", "one-hot input, SE decoder"),
                ("astmt_2t", "per-task methods, SE enc+dec"),
                ("single_task", "single-task"),
            ):
                check(
                    f"int8 / fp32 latency ({how})",
                    rt_name,
                    threads,
                    mean_ms(model, rt_name, "int8", threads),
                    mean_ms(model, rt_name, "fp32", threads),
                    0.6,
                )
    from edgemtl.profile.cpu import cpu_features

    env = {
        "cpu": _cpu(),
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": _versions(),
        "recipe": args.recipe,
        "input": [args.size, args.size],
        "runs": args.runs,
        "warmup": args.warmup,
        "note": "median of runs after warm-up, batch 1, graph call only (edgemtl.profile.latency.measure)",
    }
    report = {"environment": env, "rows": rows, "checks": checks}
    write_json(Path(args.out) / "report.json", report)
    lines = [
        "# Export latency targets",
        "",
        f"CPU: {env['cpu']} ({env['cores']} cores; SIMD: "
        f"{' '.join(env['cpu_features'])}); input {args.size}x{args.size}; "
        f"recipe {args.recipe}; random weights; {args.runs} runs after {args.warmup} warm-up, batch 1.",
        "",
        "| artifact | threads | size MB | per-task median ms |",
        "|---|---|---|---|",
    ]
    for key, r in rows.items():
        lines.append(
            f"| {key.split('@')[0]} | {r['threads']} | {r['bytes'] / 1e6:.2f} | "
            + ", ".join(f"{t} {v:.2f}" for t, v in r["median_ms"].items())
            + " |"
        )
    lines += ["", "| target | runtime | threads | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(
            f"| {c['target']} | {c['runtime']} | {c['threads']} | {c['ratio']:.3f} | <= {c['goal']} | "
            f"{'yes' if c['ok'] else 'NO'} |"
        )
    (Path(args.out) / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-(len(checks) + 2) :]))


def _cpu() -> str:
    try:
        return next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        return platform.processor()


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "onnxruntime", "executorch", "timm")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["export", "measure"])
    ap.add_argument("--out", default="benchmarks/results/export_latency_cpu")
    ap.add_argument("--recipe", default="astmt_mnv2")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--force", action="store_true", help="re-export existing artifacts")
    args = ap.parse_args()
    do_export(args) if args.phase == "export" else do_measure(args)


if __name__ == "__main__":
    main()
