"""``edgemtl bench``: train (or reuse) the suite's models, quantize, export, evaluate and time every
artifact; write the tables and Pareto plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgemtl.cli._args import positive_int

NAME = "bench"
HELP = "Δm vs GMAC / params / latency for every model, precision and format of a suite (tables + Pareto plots)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="quick", help="quick | nyud-like | pascal-like | a suite YAML (default quick)")
    p.add_argument("--data", help="an existing dataset folder to use instead of the suite's data section")
    p.add_argument("--out", help="output folder (default: bench_<suite>); re-runs reuse finished steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="suite override, e.g. model.pretrained=weights.pth or train.epochs=2 (repeatable)")
    p.add_argument("--threads", type=positive_int, help="runtime threads for latency (default: the suite's, else 2)")
    p.add_argument("--seeds", type=positive_int, help="train every model with N seeds (train.seed, +1, ...); tables "
                   "show mean ± std over seeds (default: the suite's seeds, else 1)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def run(args: argparse.Namespace) -> int:
    from edgemtl.bench import load_suite, run_suite, write_outputs
    from edgemtl.bench.report import markdown

    suite = load_suite(args.suite, args.data, args.set)
    if args.seeds is not None:
        suite.set_seeds(args.seeds, "--seeds")
    if args.threads is not None:
        suite.latency["threads"] = args.threads
    out = Path(args.out or f"bench_{suite.name}")
    results = run_suite(suite, out, progress=not args.quiet)
    paths = write_outputs(results, suite, out)
    print(markdown(results["rows"], suite, results))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
