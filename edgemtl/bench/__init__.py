"""``edgemtl bench``: Δm against GMAC, params and latency for every (model, precision, format).

from edgemtl.bench import load_suite, run_suite, write_outputs
suite = load_suite("quick")                       # benchmarks/quick.yaml
results = run_suite(suite, Path("bench_out"))
write_outputs(results, suite, Path("bench_out"))  # results.{md,csv,json}, pareto_*.png
"""

from edgemtl.bench.report import write_outputs
from edgemtl.bench.runner import run_suite
from edgemtl.bench.suite import Suite, load_suite

__all__ = ["Suite", "load_suite", "run_suite", "write_outputs"]
