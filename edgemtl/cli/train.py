"""``edgemtl train``: train a recipe (model + data + tasks + balancer + schedule)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train"
HELP = "train a recipe: single-tasking or joint loop, balancers, adversarial, resume, DDP via torchrun"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="models/<name>.yaml or a recipe name")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe entry, e.g. --set train.epochs=5 --set model.se=decoder",
    )
    p.add_argument("--out", help="run directory (default runs/<recipe>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument(
        "--baselines", help="single-task baseline registry JSON (default ~/.cache/edgemtl/baselines.json)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from edgemtl.recipes import load_recipe
    from edgemtl.report import format_results
    from edgemtl.train.trainer import Trainer

    recipe = load_recipe(args.recipe, args.set)
    out = Path(args.out or Path("runs") / Path(recipe.path).stem)
    trainer = Trainer(recipe, out, resume=args.resume, progress=not args.quiet, baselines_path=args.baselines)
    summary = trainer.fit()
    if trainer.dist.rank == 0:
        if "metrics" in summary:
            print(
                format_results(
                    {
                        "protocol_text": summary["protocol"],
                        "metrics": summary["metrics"],
                        **(
                            {"delta_m": summary["delta_m"], "delta_m_per_task": summary["delta_m_per_task"]}
                            if "delta_m" in summary
                            else {}
                        ),
                    }
                )
            )
        if "baseline_recorded" in summary:
            print(f"recorded single-task baseline in {summary['baseline_recorded']}")
        print(f"run: {out} (best.pt, last.pt, metrics.jsonl, summary.json)")
    return 0
