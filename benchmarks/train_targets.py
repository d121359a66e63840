"""Training-issue targets on the embedded scenes: ASTMT vs hard sharing vs single-task, and int8.

Trains single-task baselines (recorded in a run-local baseline registry), hard-sharing MTL,
ASTMT (SE encoder+decoder) with and without the adversarial discriminator, then PTQ and QAT of
the ASTMT model; prints Δm of every model and the target checks, and writes JSON + Markdown.

    python benchmarks/train_targets.py --out benchmarks/results/train_targets_cpu \
        --num 800 --size 96 --epochs 8 --pretrained ../shared/weights/mobilenetv2_100_imagenet_tfslim.pth
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="nyud")
    ap.add_argument("--tasks", nargs="+", default=["semseg", "depth", "normals", "edges"])
    ap.add_argument("--num", type=int, default=800)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--pretrained", default=None, help="TF-slim MobileNet-v2 state_dict (pad same, mean=std=0.5)"
    )
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument(
        "--skip", nargs="*", default=[], help="variants to skip: hard_sharing astmt astmt_adv quant"
    )
    args = ap.parse_args()

    from edgemtl.data.synth import generate
    from edgemtl.metrics import delta_m, per_task_delta
    from edgemtl.quant.pt2e import QuantConfig
    from edgemtl.quant.run import format_report, run_quantization
    from edgemtl.recipes import Recipe
    from edgemtl.tasks import TASKS
    from edgemtl.train.trainer import Trainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if not (data / "dataset.json").is_file():
        generate(data, args.num, (args.size, args.size), seed=args.seed, preset=args.preset)
    registry = str(out / "baselines.json")
    model = {"backbone": "mobilenetv2_100", "output_stride": 16, "image_size": [args.size, args.size]}
    if args.pretrained:
        model.update(
            pretrained=str(Path(args.pretrained).resolve()), pad_type="same", mean=[0.5] * 3, std=[0.5] * 3
        )
    train = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "edge_thresholds": 15,
        "optimizer": "adam",
        "weight_decay": 1e-4,
    }
    timings: dict[str, float] = {}

    def run(
        name: str,
        arch: str,
        tasks: list[str],
        model_extra: dict | None = None,
        train_extra: dict | None = None,
    ):
        recipe = Recipe(
            f"<{name}>",
            name,
            {**model, "arch": arch, **(model_extra or {})},
            tasks,
            [],
            {"root": str(data)},
            {**train, **(train_extra or {})},
        )
        run_dir = out / "runs" / name
        t0 = time.perf_counter()
        if (run_dir / "summary.json").is_file():
            summary = json.loads((run_dir / "summary.json").read_text())
        else:
            resume = (run_dir / "last.pt").is_file()
            summary = Trainer(recipe, run_dir, resume=resume, progress=True, baselines_path=registry).fit()
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] {json.dumps(summary.get('primary'))} Δm={summary.get('delta_m')}", flush=True)
        return summary, recipe

    results = {}
    for t in args.tasks:
        results[f"single_{t}"], _ = run(f"single_{t}", "single_task", [t], {"se": "shared"})
    if "hard_sharing" not in args.skip:
        results["hard_sharing"], _ = run("hard_sharing", "hard_sharing", args.tasks, {"se": "shared"})
    if "astmt" not in args.skip:
        results["astmt"], _ = run("astmt", "astmt", args.tasks, {"se": "encoder_decoder"})
    astmt_recipe = None
    if "astmt_adv" not in args.skip:
        results["astmt_adv"], astmt_recipe = run(
            "astmt_adv",
            "astmt",
            args.tasks,
            {"se": "encoder_decoder"},
            {"adversarial": True, "adv_weight": 0.01},
        )
    base = {t: results[f"single_{t}"]["primary"][t] for t in args.tasks}
    hib = {t: TASKS.get(t).higher_is_better for t in args.tasks}  # each task's own direction
    table = {}
    for name in ("hard_sharing", "astmt", "astmt_adv"):
        if name in results:
            p = results[name]["primary"]
            table[name] = {
                "primary": p,
                "delta_m": delta_m(p, base, hib),
                "per_task": per_task_delta(p, base, hib),
            }
    quant = None
    if "quant" not in args.skip and astmt_recipe is not None:
        t0 = time.perf_counter()
        qcfg = QuantConfig(qat_epochs=args.qat_epochs)  # QAT at 0.1 x the training lr, as `edgemtl qat`
        recipe = qcfg.finetune_recipe(astmt_recipe)
        qdir = out / "quant"
        quant = (
            json.loads((qdir / "quant_report.json").read_text())
            if (qdir / "quant_report.json").is_file()
            else run_quantization(str(out / "runs" / "astmt_adv" / "best.pt"), recipe, qdir, qcfg)
        )
        print(format_report(quant))
        for k in ("ptq", "qat"):
            if k in quant["primary"]:
                p = quant["primary"][k]
                table[f"astmt_adv_{k}_int8"] = {
                    "primary": p,
                    "delta_m": delta_m(p, base, hib),
                    "per_task": per_task_delta(p, base, hib),
                }
        timings["quant"] = round(time.perf_counter() - t0, 1)

    checks = []
    if "astmt_adv" in table:
        a = table["astmt_adv"]["delta_m"]
        checks.append(f"ASTMT (SE enc+dec, +adv) Δm >= 0: {'MET' if a >= 0 else 'NOT MET'} ({a:+.2f}%)")
        if "hard_sharing" in table:
            d = a - table["hard_sharing"]["delta_m"]
            checks.append(
                f"ASTMT beats hard sharing by >= 3 points: {'MET' if d >= 3 else 'NOT MET'} ({d:+.2f} points)"
            )
    if "astmt_adv_qat_int8" in table:
        loss = table["astmt_adv"]["delta_m"] - table["astmt_adv_qat_int8"]["delta_m"]
        ptq_loss = table["astmt_adv"]["delta_m"] - table["astmt_adv_ptq_int8"]["delta_m"]
        checks.append(
            f"QAT int8 loses <= 1 point of Δm: {'MET' if loss <= 1 else 'NOT MET'} ({loss:.2f} points; PTQ "
            f"loses {ptq_loss:.2f})"
        )
    env = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    report = {
        "args": vars(args),
        "baselines": base,
        "models": table,
        "checks": checks,
        "timings_s": timings,
        "env": env,
        "protocol": results[f"single_{args.tasks[0]}"].get("protocol"),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    lines = [
        f"# Training targets on synthetic {args.preset} scenes ({args.num} images, {args.size}x{args.size})",
        "",
        f"Machine: {env}",
        "",
        f"Protocol: {report['protocol']}",
        "",
        "| model | " + " | ".join(args.tasks) + " | Δm (%) |",
        "|---|" + "---|" * (len(args.tasks) + 1),
    ]
    lines.append("| single-task | " + " | ".join(f"{base[t]:.4g}" for t in args.tasks) + " | 0 |")
    for name, row in table.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{row['primary'][t]:.4g}" for t in args.tasks)
            + f" | {row['delta_m']:+.2f} |"
        )
    lines += ["", *[f"- {c}" for c in checks], "", f"Wall time per run (s): {timings}"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
