"""``edgemtl bench``: train (or reuse) the suite's models, quantize, export, evaluate and time every
artifact; write the tables and Pareto plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgemtl.cli._args import positive_int

NAME = "bench"
HELP = (
    "Δm vs GMAC / params / latency for every model, precision and format of a suite (tables + Pareto plots)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--suite", default="quick", help="quick | nyud-like | pascal-like | a suite YAML (default quick)"
    )
    p.add_argument("--data", help="an existing dataset folder to use instead of the suite's data section")
    p.add_argument("--out", help="output folder (default: bench_<suite>); re-runs reuse finished steps")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="suite override, e.g. model.pretrained=weights.pth or train.epochs=2 (repeatable)",
    )
    p.add_argument(
        "--threads", type=positive_int, help="runtime threads for latency (default: the suite's, else 2)"
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        help="train every model with N seeds (train.seed, +1, ...); tables "
        "show mean ± std over seeds (default: the suite's seeds, else 1)",
    )
    p.add_argument(
        "--scale",
        default="smoke",
        help="the suite's preset: smoke (minutes; a pipeline test) | cpu "
        "(converged on a 2-core CPU, 3 seeds) | gpu (towards the papers' schedules); default smoke",
    )
    p.add_argument(
        "--protocol",
        default="edgemtl",
        help="metric conventions of every number: edgemtl | "
        "mtl-pytorch | astmt (the peers' evaluation code; docs/metrics.md). The runs of --out are reused and "
        "re-evaluated on the test split; tables go to OUT/protocol-NAME/",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def run(args: argparse.Namespace) -> int:
    from edgemtl.bench import load_suite, run_suite, write_outputs
    from edgemtl.bench.report import markdown

    suite = load_suite(args.suite, args.data, args.set, args.scale)
    from edgemtl.evaluate import PROTOCOLS

    if args.protocol not in PROTOCOLS:
        from edgemtl.errors import unknown_choice

        raise unknown_choice("--protocol", args.protocol, PROTOCOLS)
    suite.protocol = args.protocol
    if args.seeds is not None:
        suite.set_seeds(args.seeds, "--seeds")
    if args.threads is not None:
        suite.latency["threads"] = args.threads
    out = Path(
        args.out or (f"bench_{suite.name}" if suite.scale == "smoke" else f"bench_{suite.name}-{suite.scale}")
    )
    results = run_suite(suite, out, progress=not args.quiet)
    # A peer protocol reuses the runs of `out` and writes its tables beside edgemtl's, not over them.
    tables = out if args.protocol == "edgemtl" else out / f"protocol-{args.protocol}"
    tables.mkdir(parents=True, exist_ok=True)
    paths = write_outputs(results, suite, tables)
    print(markdown(results["rows"], suite, results))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
