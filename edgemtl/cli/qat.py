"""``edgemtl qat``: post-training quantization and quantization-aware finetuning (PT2E, XNNPACK)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "qat"
HELP = "int8: PTQ baseline and QAT finetuning of a checkpoint, fp32 vs PTQ vs QAT metrics per task"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgemtl.quant.config import QuantConfig

    d = QuantConfig()  # the defaults the bench and quickstart use too
    p.add_argument("--checkpoint", required=True, help="the fp32 checkpoint to quantize")
    p.add_argument("--recipe", required=True, help="recipe giving data and training settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    p.add_argument("--out", help="output folder (default: <checkpoint folder>/quant)")
    p.add_argument(
        "--epochs", type=int, default=d.qat_epochs, help=f"QAT finetuning epochs (default {d.qat_epochs})"
    )
    p.add_argument(
        "--lr-scale", type=float, default=d.lr_scale, help=f"QAT lr = train.lr x this (default {d.lr_scale})"
    )
    p.add_argument(
        "--calib-batches",
        type=int,
        default=d.calib_batches,
        help=f"PTQ calibration batches (default {d.calib_batches})",
    )
    p.add_argument(
        "--task-weights",
        default=d.task_weights,
        choices=["float", "per_tensor"],
        help="task-selected weights: keep fp32 (default) or int8 per-tensor",
    )
    p.add_argument(
        "--float-modules", nargs="*", default=[], help="modules kept fp32, e.g. heads.depth heads.normals"
    )
    p.add_argument("--ptq-only", action="store_true", help="skip QAT finetuning")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from edgemtl.quant.pt2e import QuantConfig
    from edgemtl.quant.run import format_report, run_quantization
    from edgemtl.recipes import load_recipe

    qcfg = QuantConfig(
        args.task_weights, list(args.float_modules), args.calib_batches, args.epochs, args.lr_scale
    )
    recipe = qcfg.finetune_recipe(load_recipe(args.recipe, args.set))
    out = Path(args.out or Path(args.checkpoint).resolve().parent / "quant")
    report = run_quantization(
        args.checkpoint, recipe, out, qcfg, do_qat=not args.ptq_only, progress=not args.quiet
    )
    print(format_report(report))
    print(f"wrote {out}/quant_report.json and int8 programs: {', '.join(report['artifacts'].values())}")
    return 0
