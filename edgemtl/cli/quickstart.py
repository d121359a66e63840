"""``edgemtl quickstart``: the whole pipeline on the embedded scenes, in minutes on 2 CPU cores.

Synthesise scenes, train single-task baselines and an ASTMT model (MobileNet-v2 0.5), QAT-finetune
it, export to ONNX, ExecuTorch and CoreML (each verified against PyTorch), evaluate and time the
artifacts on their runtimes, then print the bench table and the Pareto plot's path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "quickstart"
HELP = (
    "the main job on the embedded data: synth -> train -> QAT -> export x3 -> profile -> bench table "
    "(minutes)"
)
BUDGET_S = 600

# Stage times of a reference run on the 2-core CI machine (AMD EPYC, 2 threads); the clock scales
# them by this machine's observed speed to print a time estimate per stage and in all.
ESTIMATES = {
    "data": 10,
    "train single_task_semseg": 16,
    "train single_task_saliency": 10,
    "train single_task_normals": 10,
    "train astmt": 24,
    "qat astmt": 153,
    "export astmt onnx fp32": 28,
    "export astmt onnx int8-qat": 61,
    "export astmt executorch fp32": 85,
    "export astmt coreml fp16": 37,
    "report": 2,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="edgemtl_quickstart", help="output folder (default edgemtl_quickstart/)")
    p.add_argument("--verbose", action="store_true", help="per-epoch training lines")


def run(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    from edgemtl.bench import load_suite, run_suite, write_outputs
    from edgemtl.bench.clock import StageClock
    from edgemtl.bench.report import markdown

    suite = load_suite("quick")
    out = Path(args.out)
    planned = [
        "data",
        *[f"train {n}" for n in suite.model_names()],
        *[f"qat {n}" for n in suite.quant.get("variants", [])],
        *[
            f"export {m} {f['target']} {f['precision']}"
            for m in suite.export.get("models", [])
            for f in suite.export.get("formats", [])
        ],
        "report",
    ]
    clock = StageClock(planned, ESTIMATES)
    print(f"edgemtl quickstart -> {out}/ ({len(planned)} stages; suite {suite.path})", flush=True)
    results = run_suite(suite, out, progress=args.verbose, clock=clock)
    clock.progress = True
    with clock.stage("report", "tables and Pareto plots"):
        paths = write_outputs(results, suite, out)
    print()
    print(markdown(results["rows"], suite, results))
    total = time.perf_counter() - t0
    print(
        f"Pareto plot: {paths.get('pareto_gmac.png', 'not drawn')} (also "
        f"{', '.join(str(p) for k, p in paths.items() if k != 'pareto_gmac.png')})"
    )
    verdict = "within" if total <= BUDGET_S else "OVER"
    print(
        f"quickstart finished in {int(total) // 60}:{int(total) % 60:02d} ({verdict} the "
        f"{BUDGET_S // 60}-minute budget); "
        f"stage times in {out}/results.json"
    )
    return 0
