"""Training speed: images/s of the training loop per model, with the speed settings off ("before")
and at their defaults ("after"), measured in one run, interleaved, on the same data.

    python benchmarks/train_speed.py [--out benchmarks/results/train_speed_cpu] [--rounds 2]
    python benchmarks/train_speed.py --check-metrics   # also: do the settings change final metrics?

Models: single-task (semseg), hard sharing (joint loop), ASTMT with per-task SE in the decoder
(single-tasking loop: one forward/backward per task) and MTI-Net; MobileNet-v2 1.0 at 128x128,
output stride 16, batch 16, four NYUD-style tasks, on embedded scenes rendered at 192x256 and
256x192 (so every image is decoded and resized, as with real photos).

"before": train.precision=fp32, channels_last=false, data_cache=0, the plain dilated depthwise
convolution; "after": the defaults (precision auto, channels_last on, 4 GiB decode cache, the fast
dilated depthwise backward). The normals loss's normalisation rewrite (edgemtl.tasks.normals
.unit_normalize) is in both; its own ratio is printed separately. Time = whole training epochs
(data loading included) after one warm-up epoch; the median of ``--rounds`` interleaved rounds.

``--check-metrics`` trains hard sharing to the end of a short schedule with seeds 0 and 1 in both
settings and prints the test metrics: the settings pass if before/after differ by less than the
seed-to-seed spread. State the CPU model and flags with any figure (printed first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "single_task": ({"arch": "single_task"}, ["semseg"]),
    "hard_sharing": ({"arch": "hard_sharing"}, ["semseg", "depth", "normals", "edges"]),
    "astmt_se_dec": ({"arch": "astmt", "se": "decoder"}, ["semseg", "depth", "normals", "edges"]),
    "mtinet": ({"arch": "mtinet"}, ["semseg", "depth", "normals", "edges"]),
}
BEFORE = {"precision": "fp32", "channels_last": False, "data_cache": 0.0}
AFTER: dict = {}  # the defaults
AFTER_BF16 = {"precision": "bf16"}  # --bf16: the defaults in bf16, to check what precision=auto picks


def machine() -> str:
    from edgemtl.profile.cpu import cpu_features

    cpu, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
        flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    except OSError:
        pass
    wanted = [f for f in ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"SIMD: {', '.join(cpu_features()) or 'unknown'}; "
        + (
            "int8/bf16 flags: " + ", ".join(wanted)
            if wanted
            else "no avx512_vnni, avx_vnni, avx512_bf16 or amx"
        )
    )


def auto_precision() -> str:
    import torch

    from edgemtl.train.speed import resolve_precision

    return resolve_precision("auto", torch.device("cpu"))


def recipe(model: str, train: dict, args, epochs: int, seed: int = 0):
    from edgemtl.recipes import Recipe

    arch, tasks = MODELS[model]
    return Recipe(
        f"train_speed:{model}",
        "",
        model={"backbone": "mobilenetv2_100", "image_size": [args.input] * 2, **arch},
        tasks=tasks,
        data={"synth": {"preset": "nyud", "num": args.num, "size": [[192, 256], [256, 192]], "seed": 0}},
        train={
            "epochs": epochs,
            "batch_size": 16,
            "max_steps_per_epoch": args.steps,
            "seed": seed,
            "eval_every": 1000,
            **train,
        },
    )


def images_per_s(model: str, train: dict, args) -> float:
    from edgemtl.train.speed import plain_convs
    from edgemtl.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(recipe(model, train, args, epochs=1 + args.epochs), Path(tmp) / "run", progress=False)
        try:
            if train is BEFORE:
                plain_convs(tr.model)  # the stock dilated depthwise backward
            else:
                tr.train_ds.preload()  # as after the first epoch of a real run (untimed, like the warm-up)
            tr._train_epoch()  # warm-up: allocator, oneDNN primitives
            tr.epoch += 1
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                tr._train_epoch()
                tr.epoch += 1
            dt = time.perf_counter() - t0
        finally:
            tr.release()
    return args.epochs * args.steps * 16 / dt


def normalize_ratio() -> float:
    import torch

    from edgemtl.tasks.normals import unit_normalize

    x = torch.randn(16, 3, 128, 128, requires_grad=True)
    times = {}
    for name, fn in (
        ("F.normalize", lambda t: torch.nn.functional.normalize(t, dim=1, eps=1e-6)),
        ("unit_normalize", unit_normalize),
    ) * 2:
        t0 = time.perf_counter()
        for _ in range(10):
            fn(x).sum().backward()
        times[name] = time.perf_counter() - t0
    return times["F.normalize"] / times["unit_normalize"]


def check_metrics(args) -> dict:
    from edgemtl.train.trainer import Trainer

    out = {}
    for seed in (0, 1):
        for label, train in (("before", BEFORE), ("after", AFTER)):
            with tempfile.TemporaryDirectory() as tmp:
                r = recipe(
                    "hard_sharing",
                    {**train, "max_steps_per_epoch": None, "eval_every": 1},
                    args,
                    epochs=args.check_epochs,
                    seed=seed,
                )
                s = Trainer(r, Path(tmp) / "run", progress=False).fit()
            out[f"{label}-seed{seed}"] = s["primary"]
            print(
                f"  {label} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in s["primary"].items()),
                flush=True,
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="write report.json / report.md here")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement (after one warm-up)")
    ap.add_argument("--steps", type=int, default=4, help="steps per epoch (batch 16)")
    ap.add_argument("--num", type=int, default=120, help="scenes to render (the train split is about 60%%)")
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--check-metrics", action="store_true")
    ap.add_argument("--check-epochs", type=int, default=6)
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="also time the defaults with train.precision=bf16 (a third column)",
    )
    args = ap.parse_args()
    import edgemtl._compat  # noqa: F401  (timm beside the CPU torch)

    info = machine()
    print(info, flush=True)
    settings = [("before", BEFORE), ("after", AFTER)] + ([("after_bf16", AFTER_BF16)] if args.bf16 else [])
    results = {m: {label: [] for label, _ in settings} for m in args.models}
    for r in range(args.rounds):
        for m in args.models:
            for label, train in settings:
                ips = images_per_s(m, train, args)
                results[m][label].append(ips)
                print(f"round {r + 1} {m:13s} {label:10s} {ips:6.2f} images/s", flush=True)
    rows = []
    for m in args.models:
        b, a = statistics.median(results[m]["before"]), statistics.median(results[m]["after"])
        rows.append({"model": m, "before": b, "after": a, "ratio": a / b, "runs": results[m]})
        if args.bf16:
            rows[-1]["after_bf16"] = statistics.median(results[m]["after_bf16"])
    norm = normalize_ratio()
    print("\nmodel          before  after  (images/s, median)  after/before")
    for row in rows:
        bf = f"   bf16 / defaults {row['after_bf16'] / row['after']:.2f}x" if args.bf16 else ""
        print(f"{row['model']:13s} {row['before']:7.2f} {row['after']:6.2f}  {row['ratio']:.2f}x{bf}")
    print(
        "normals normalisation alone (forward+backward, 16x3x128x128): F.normalize / unit_normalize = "
        f"{norm:.1f}x"
    )
    report = {
        "machine": info,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "args": vars(args),
        "before": BEFORE,
        "after": f"defaults (precision auto = {auto_precision()})",
        "rows": rows,
        "normalize_ratio": norm,
    }
    if args.check_metrics:
        print(
            "\nfinal test metrics, hard sharing, "
            f"{args.check_epochs} epochs (before = speed settings off, after = defaults):",
            flush=True,
        )
        report["check_metrics"] = check_metrics(args)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        bf_head = " defaults in bf16 (img/s) | bf16 / defaults |" if args.bf16 else ""
        md = [
            f"# Training speed\n\nCommand: `python benchmarks/{report['command']}`\n\nMachine: {info}\n",
            f"Defaults here: train.precision=auto = {auto_precision()}.\n",
            "| model | before (img/s) | after (img/s) | after / before |" + bf_head,
            "|---|---|---|---|" + ("---|---|" if args.bf16 else ""),
        ]
        for r in rows:
            bf = f" {r['after_bf16']:.2f} | {r['after_bf16'] / r['after']:.2f}x |" if args.bf16 else ""
            md.append(f"| {r['model']} | {r['before']:.2f} | {r['after']:.2f} | {r['ratio']:.2f}x |" + bf)
        md.append(
            f"\nNormals normalisation alone: F.normalize / unit_normalize = {norm:.1f}x (in both columns)."
        )
        if args.check_metrics:
            md.append("\n| run | " + " | ".join(next(iter(report["check_metrics"].values()))) + " |")
            md.append("|---" * (1 + len(next(iter(report["check_metrics"].values())))) + "|")
            for k, v in report["check_metrics"].items():
                md.append(f"| {k} | " + " | ".join(f"{x:.4g}" for x in v.values()) + " |")
        (out / "report.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
