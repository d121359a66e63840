"""``edgemtl profile``: parameters (total/shared/per task), MACs per task and for all tasks, artifact
size and latency on ONNX Runtime / ExecuTorch (per task and all tasks, threads stated)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgemtl.cli._args import non_negative_int, positive_int, size_arg

NAME = "profile"
HELP = "params, MACs per task, artifact size and runtime latency of a checkpoint, artifact or recipe"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgemtl.export import runnable_targets

    p.add_argument(
        "target",
        help="a checkpoint (.pt), an exported artifact (.onnx, .pte, ... with its manifest) "
        "or a recipe (models/<name>.yaml or its name)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override, e.g. model.se=decoder",
    )
    p.add_argument("--size", type=size_arg, help="input HxW for MACs (default: the model's image_size)")
    p.add_argument("--json", dest="json_out", help="write the profile to this JSON file")
    p.add_argument(
        "--no-single-task", action="store_true", help="skip the comparison with a single-task model"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="runtime CPU threads for latency (default: all cores of this machine)",
    )
    p.add_argument(
        "--runtime",
        action="append",
        choices=runnable_targets(),
        default=None,
        help="export targets to time a checkpoint/recipe on, repeatable (default: all that run here; "
        "an artifact uses its own)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8"],
        help="precision of the artifacts exported for timing a checkpoint/recipe (default fp32)",
    )
    p.add_argument("--no-latency", action="store_true", help="counts only (no export, no timing)")
    p.add_argument("--runs", type=positive_int, default=30, help="timed calls per measurement (default 30)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed calls first (default 5)")


def _model(target: str, overrides: list[str]):
    """(model for counting, input size of the target or None)."""
    from edgemtl.card import ModelCard, read_card
    from edgemtl.errors import EdgeMTLError
    from edgemtl.export import TARGETS, runnable_targets, target_class
    from edgemtl.models import create_model

    suffixes = {TARGETS.get(n).suffix for n in TARGETS.names()}
    kind = target_class(target.rstrip("/")) if Path(target.rstrip("/")).suffix.lower() in suffixes else None
    if kind is not None and not kind.runs_here():
        raise EdgeMTLError(
            f"{target}: {kind.why_not_here()}; profile the checkpoint it was exported from, or its "
            f"{' / '.join(TARGETS.get(n).suffix for n in runnable_targets())} export"
        )
    if kind is not None:
        from edgemtl import runtime

        meta = runtime.load(target).metadata  # checks the manifest and the file first
        size = (meta.get("preprocessing") or {}).get("size_hw")
        return ModelCard.from_dict(meta, target).build_model(), tuple(size) if size else None
    if target.endswith((".pt", ".pth", ".ckpt")):
        from edgemtl.checkpoint import load_checkpoint

        return load_checkpoint(target)[0], None
    if target.endswith(".pt2"):
        # An int8 program from `edgemtl qat`: the counts are those of its float architecture.
        return read_card(target).build_model(), None
    if not target.endswith((".yaml", ".yml")) and "." in target.rsplit("/", 1)[-1]:
        raise EdgeMTLError(
            f"{target}: not something edgemtl profile reads; pass a checkpoint (.pt), an int8 "
            "program (.pt2), an artifact (.onnx, .pte) or a recipe (models/<name>.yaml or its name)"
        )
    from edgemtl.recipes import load_recipe

    return create_model(load_recipe(target, overrides).model_config()), None


def single_task_reference(model):
    """The single-task model with the same backbone and decoder (shared SE where the MTL has SE)."""
    from edgemtl.models import create_model

    cfg = model.config
    first = model.task_names[0]
    se = "none" if cfg.se == "none" else "shared"
    return create_model(
        cfg.replace(
            arch="single_task",
            tasks={first: cfg.tasks[first]},
            aux_tasks={},
            se=se,
            per_task_bn=False,
            adapters=False,
            aspp="shared",
            pretrained=None,
        )
    )


def run(args: argparse.Namespace) -> int:
    from edgemtl.cli._args import check_output_file
    from edgemtl.errors import EdgeMTLError
    from edgemtl.models.config import MAX_SIDE, MIN_SIDE
    from edgemtl.profile.counts import profile_counts
    from edgemtl.report import write_json

    check_output_file("--json", args.json_out)  # before the timing, not after it
    if args.size and not all(MIN_SIDE <= v <= MAX_SIDE for v in args.size):
        raise EdgeMTLError(
            f"--size {args.size[0]}x{args.size[1]}: each side must be in [{MIN_SIDE}, {MAX_SIDE}]"
        )
    model, artifact_size = _model(args.target, args.set)
    c = profile_counts(model, args.size or artifact_size)
    cfg = model.config
    print(
        f"{args.target}: arch={cfg.arch} backbone={cfg.backbone} se={cfg.se} "
        f"tasks={','.join(model.task_names)} "
        f"input={c.input_size[0]}x{c.input_size[1]}"
    )
    print(
        f"  params: total {c.params_total / 1e6:.3f} M, shared {c.params_shared / 1e6:.3f} M"
        + (f", auxiliary-only {c.params_aux / 1e6:.3f} M" if c.params_aux else "")
    )
    for t in model.task_names:
        print(
            f"  {t:9s} per-task params {c.params_per_task[t] / 1e3:9.1f} k   MACs "
            f"{c.macs_per_task[t] / 1e9:7.4f} G"
        )
    enc = "encoder once" if c.encoder_once_for_all_tasks else "encoder per task"
    print(f"  all tasks: {c.macs_all_tasks / 1e9:.4f} GMAC ({enc})")
    for note in c.notes:
        print(f"  note: {note}")
    out = {"target": args.target, "model_config": cfg.to_dict(), **c.to_dict()}
    if not args.no_single_task and (len(model.task_names) > 1 or cfg.arch != "single_task"):
        ref = single_task_reference(model)
        rc = profile_counts(ref, c.input_size)
        first = model.task_names[0]
        p_ratio = c.params_total / rc.params_total
        m_ratio = {t: c.macs_per_task[t] / rc.macs_per_task[first] for t in model.task_names}
        print(
            f"  vs one single-task model (same backbone+decoder, {rc.params_total / 1e6:.3f} M params, "
            f"{rc.macs_per_task[first] / 1e9:.4f} GMAC): params x{p_ratio:.3f} for {len(model.task_names)} "
            "tasks; "
            f"per-task MACs x{min(m_ratio.values()):.3f}..x{max(m_ratio.values()):.3f}"
        )
        out["single_task_reference"] = {
            "params": rc.params_total,
            "macs": rc.macs_per_task[first],
            "params_ratio": p_ratio,
            "macs_ratio_per_task": m_ratio,
        }
    if not args.no_latency and args.target.endswith(".pt2"):
        print(
            f"  latency: an int8 program is timed as an artifact: edgemtl export --checkpoint {args.target} "
            "--target onnx|executorch --out M, then edgemtl profile M"
        )
    elif not args.no_latency:
        out["latency"] = _latency(args, model)
    if args.json_out:
        write_json(args.json_out, out)
        print(f"wrote {args.json_out}")
    return 0


def _latency(args: argparse.Namespace, model) -> dict:
    import os

    from edgemtl.export import TARGETS, runnable_targets
    from edgemtl.profile import latency

    threads = args.threads or os.cpu_count() or 1
    if args.target.lower().endswith(tuple(TARGETS.get(n).suffix for n in runnable_targets())):
        r = latency.profile_artifact(args.target, threads, args.warmup, args.runs)
        res = {r["runtime"]: r}
    else:
        runtimes = args.runtime or runnable_targets()
        res = latency.profile_runtimes(
            model,
            runtimes,
            threads,
            args.precision,
            args.warmup,
            args.runs,
            progress=lambda msg: print(f"  ... {msg}", flush=True),
        )
    from edgemtl.profile.cpu import cpu_features

    cpu = f"{_cpu_name()} ({' '.join(cpu_features()) or 'SIMD unknown'})"
    how = "" if len(res) < 2 else "; the runtimes timed in turn, in interleaved rounds"
    print(
        f"  latency at batch 1, {threads} thread(s), median (p90) of {args.runs} runs after {args.warmup} "
        f"warm-up{how}, graph call only; CPU: {cpu}"
    )
    for name, r in res.items():
        size = f"{r['bytes'] / 1e6:.2f} MB" if r.get("bytes") else ""
        print(f"  {name} [{r['precision']}, task input {r['task_input']}, {size}]")
        for t, m in r["per_task"].items():
            print(f"    {t:9s} {m['median_ms']:8.2f} ms ({m['p90_ms']:.2f})")
        if r.get("memory", {}).get("error"):
            print(f"    load time and memory: not measured ({r['memory']['error']})")
        elif r.get("memory") and r["memory"].get("after_load_delta_mb") is not None:
            mem = r["memory"]
            print(
                f"    load {mem['load_ms']:.0f} ms; resident memory "
                f"+{mem['after_load_delta_mb']} MB after load, "
                f"peak +{mem['peak_delta_mb']} MB after one call per task (above the runtime's own "
                f"{mem['baseline_mb']} MB)"
            )
        a = r["all_tasks"]
        how = "one call, encoder once" if a["calls_per_image"] == 1 else f"{a['calls_per_image']} calls"
        print(f"    all tasks {a['median_ms']:8.2f} ms ({a['p90_ms']:.2f}) [{how}]")
        if "all_tasks_sequential" in r:
            q = r["all_tasks_sequential"]
            print(
                f"    all tasks {q['median_ms']:8.2f} ms ({q['p90_ms']:.2f}) [{q['calls_per_image']} "
                "task-conditional calls]"
            )
    return {"threads": threads, "cpu": cpu, "runtimes": res}


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
