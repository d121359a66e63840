"""On-device cost of the task input, measured on this machine's CPU with the real runtimes.

Targets (issue: on-device speed and memory):

1. Per-task latency of the task-conditional artifact <= 1.05x the single-task network of the same
   backbone and decoder, in ONNX Runtime and ExecuTorch, for SE decoder-only and SE encoder+decoder.
   ONNX: the conditional graph (one-hot input) and the specialised one (``graphs=specialized``:
   one If branch per task behind the same input); ExecuTorch: one-hot graph and per-task methods.
2. int8 <= 0.55x fp32 latency where the hardware has int8 dot products (x86 VNNI, ARM); on hosts
   without them the report says so instead of presenting a slowdown as a result.
3. All tasks at once (SE decoder-only: encoder computed once) >= 1.5x faster than T single-task
   calls, for T = 3 and 5.
4. What a user would otherwise ship: (a) the task-conditional artifact, (b) its per-task
   (specialised) variant, (c) T separate single-task artifacts: disk size, load time, resident
   memory after load and after one call per task (edgemtl.profile.memory, fresh process each),
   per-task and all-task latency.

Two phases, so exports (minutes, CPU-hungry) never overlap the timing:

    python benchmarks/export_latency.py export --out benchmarks/results/export_latency_cpu
    python benchmarks/export_latency.py measure --out benchmarks/results/export_latency_cpu --threads 1 2
    python benchmarks/export_latency.py web --out benchmarks/results/export_latency_cpu --threads 1 2

``web`` runs the ONNX artifacts in onnxruntime-web in headless Chromium (apps/web/bench.html):
WebAssembly with SIMD and threads (the demo server sends COOP/COEP) and WebGPU where there is an adapter.

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

REPO = Path(__file__).resolve().parents[1]
TASKS = ["semseg", "parts", "saliency", "normals", "edges"]  # the recipe's tasks, in its order
SPEC = {"graphs": "specialized", "shared_weights": False}  # each branch its own weights
SPEC_SHARED = {"graphs": "specialized", "shared_weights": True}  # common weights once (the default)
# The specialised files are also timed as one session running their If graph (sessions="single"):
# how ONNX Runtime programs other than edgemtl's runtime run them.
ONE_SESSION = " (one If session)"
# Models: astmt = the recipe (SE in encoder and decoder, per-task BN); astmt_dec = SE and per-task
# BN in the decoder only; astmt_dec3 = the same with its first three tasks; astmt_2t = astmt with two
# tasks, for per-task-method artifacts (each method is one specialised single-task graph, so the
# number of tasks does not change its latency); single_<task> = a single-task network of the same
# backbone and decoder (single_task = the first task's).
ARTIFACTS = [  # (file stem, model, runtime target, precision, suffix, task input, target options)
    ("astmt_fp32", "astmt", "onnx", "fp32", ".onnx", None, None),
    ("astmt_int8", "astmt", "onnx", "int8", ".onnx", None, None),
    ("astmt_spec_fp32", "astmt", "onnx", "fp32", ".onnx", "index", SPEC),
    ("astmt_spec_int8", "astmt", "onnx", "int8", ".onnx", "index", SPEC),
    ("astmt_fp32", "astmt", "executorch", "fp32", ".pte", None, None),
    ("astmt_int8", "astmt", "executorch", "int8", ".pte", None, None),
    ("astmt_dec_fp32", "astmt_dec", "onnx", "fp32", ".onnx", None, None),
    ("astmt_dec_int8", "astmt_dec", "onnx", "int8", ".onnx", None, None),
    ("astmt_dec_spec_fp32", "astmt_dec", "onnx", "fp32", ".onnx", "index", SPEC),
    ("astmt_dec_spec_int8", "astmt_dec", "onnx", "int8", ".onnx", "index", SPEC),
    ("astmt_dec_specshared_fp32", "astmt_dec", "onnx", "fp32", ".onnx", "index", SPEC_SHARED),
    ("astmt_dec_all_fp32", "astmt_dec", "onnx", "fp32", ".onnx", "all", None),
    ("astmt_dec3_spec_fp32", "astmt_dec3", "onnx", "fp32", ".onnx", "index", SPEC),
    ("astmt_dec3_all_fp32", "astmt_dec3", "onnx", "fp32", ".onnx", "all", None),
    ("astmt_dec_fp32", "astmt_dec", "executorch", "fp32", ".pte", None, None),
    ("astmt_2t_pertask_fp32", "astmt_2t", "executorch", "fp32", ".pte", "per-task", None),
    ("astmt_2t_pertask_int8", "astmt_2t", "executorch", "int8", ".pte", "per-task", None),
    ("single_task_fp32", "single_task", "onnx", "fp32", ".onnx", None, None),
    ("single_task_fp32", "single_task", "executorch", "fp32", ".pte", None, None),
    ("single_task_int8", "single_task", "onnx", "int8", ".onnx", None, None),
    ("single_task_int8", "single_task", "executorch", "int8", ".pte", None, None),
    *[(f"single_{t}_fp32", f"single_{t}", "onnx", "fp32", ".onnx", None, None) for t in TASKS[1:]],
    # CoreML (sizes only: prediction needs macOS): does a multifunction package store the weights
    # its functions share once? Against the one-hot program and one single-task network.
    ("astmt_pertask_fp16", "astmt", "coreml", "fp16", ".mlpackage", "per-task", None),
    ("astmt_dec_pertask_fp16", "astmt_dec", "coreml", "fp16", ".mlpackage", "per-task", None),
    ("astmt_fp16", "astmt", "coreml", "fp16", ".mlpackage", None, None),
    ("astmt_dec_fp16", "astmt_dec", "coreml", "fp16", ".mlpackage", None, None),
    ("single_task_fp16", "single_task", "coreml", "fp16", ".mlpackage", None, None),
]


def build(name: str, args: argparse.Namespace):
    import torch

    from edgemtl.models import create_model
    from edgemtl.recipes import load_recipe

    torch.manual_seed(0)
    cfg = load_recipe(args.recipe).model_config().to_dict()
    cfg["image_size"] = [args.size, args.size]
    if name.startswith("astmt_dec"):
        cfg.update(se="decoder", per_task_bn=None)
    keep = {"astmt_2t": 2, "astmt_dec3": 3}.get(name)
    if keep:
        cfg["tasks"] = {t: cfg["tasks"][t] for t in list(cfg["tasks"])[:keep]}
    if name.startswith("single"):
        first = next(iter(cfg["tasks"])) if name == "single_task" else name[len("single_") :]
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
    for stem, name, target, precision, suffix, scheme, options in ARTIFACTS:
        path = art / f"{stem}{suffix}"
        if args.target and target not in args.target:
            continue
        if path.exists() and Path(f"{path}.json").exists() and not args.force:
            print(f"reuse {path}")
            continue
        t0 = time.perf_counter()
        model = build(name, args)
        res = export(model, target, path, precision=precision, task_input=scheme, options=options)
        log[path.name] = round(time.perf_counter() - t0, 1)
        print(f"{path.name}: {res.size_bytes / 1e6:.2f} MB in {log[path.name]} s, parity passed", flush=True)
    seconds = Path(args.out) / "export_seconds.json"  # merged: each run exports only what is missing
    merged = {**(json.loads(seconds.read_text()) if seconds.exists() else {}), **log}
    seconds.write_text(json.dumps(merged, indent=2) + "\n")


def do_measure(args: argparse.Namespace) -> None:
    from edgemtl import runtime
    from edgemtl.profile.cpu import cpu_features
    from edgemtl.profile.latency import all_tasks_call, measure_interleaved, task_call
    from edgemtl.profile.memory import footprint
    from edgemtl.report import write_json

    art = Path(args.out) / "artifacts"
    rows = {}
    for threads in args.threads:
        # Every artifact is loaded first and timed in interleaved rounds (measure_interleaved), so
        # that the machine's drift over the minutes this takes does not land on some artifacts only.
        loaded = {}
        for stem, name, target, precision, suffix, _scheme, options in ARTIFACTS:
            path = art / f"{stem}{suffix}"
            if target == "coreml":
                continue  # no CoreML prediction off macOS: sizes only (coreml_sizes)
            if not path.exists():
                print(f"skip {path.name} (not exported)")
                continue
            for tag in ("", ONE_SESSION) if options and target == "onnx" else ("",):
                rt = runtime.load(path, threads=threads, **({"sessions": "single"} if tag else {}))
                loaded[f"{path.name}{tag}@{threads}"] = (rt, path, name, target, precision)
        calls = {}
        for key, (rt, *_) in loaded.items():
            calls.update({(key, t): task_call(rt, t) for t in rt.tasks})
            calls[(key, None)] = all_tasks_call(rt)
        timed = measure_interleaved(calls, args.warmup, args.runs, args.rounds)
        for key, (rt, path, name, target, precision) in loaded.items():
            rows[key] = {
                "model": name,
                "runtime": target,
                "precision": precision,
                "threads": threads,
                "task_input": rt.io["scheme"],
                "graphs": (rt.metadata.get("target_options") or {}).get("graphs", "conditional"),
                "bytes": path.stat().st_size,
                "median_ms": {t: timed[(key, t)]["median_ms"] for t in rt.tasks},
                "p90_ms": {t: timed[(key, t)]["p90_ms"] for t in rt.tasks},
                "all_tasks_ms": timed[(key, None)]["median_ms"],
                # every timed call, for the ratios' bootstrap intervals (ratio_checks)
                "samples_ms": {t: timed[(key, t)]["times_ms"] for t in rt.tasks},
                "all_tasks_samples_ms": timed[(key, None)]["times_ms"],
            }
            med = rows[key]["median_ms"]
            print(f"{key:44s}: " + ", ".join(f"{t} {v:.2f}" for t, v in med.items()) + " ms", flush=True)
        del loaded, calls
    if not rows:  # nothing exported: say so instead of writing an empty report over a good one
        raise SystemExit(
            f"export_latency measure: no artifacts in {art}; "
            f"run `python benchmarks/export_latency.py export --out {args.out}` first"
        )

    features = cpu_features()
    int8_hw = bool({"avx512_vnni", "avx_vnni", "amx"} & set(features)) or platform.machine() in (
        "arm64",
        "aarch64",
    )
    checks = ratio_checks(rows, [(rt, t) for t in args.threads for rt in ("onnx", "executorch")])
    # 4. What the user would otherwise ship (ONNX Runtime, fp32): memory and load time, fresh process each.
    ship = {}
    singles = [art / f"single_{t}_fp32.onnx" for t in TASKS[1:]]
    shared, own = art / "astmt_dec_specshared_fp32.onnx", art / "astmt_dec_spec_fp32.onnx"
    options = {  # label: (artifacts, the runtime's session mode, tag of their latency rows)
        "(a) task-conditional, one-hot graph": ([art / "astmt_dec_fp32.onnx"], {}, ""),
        "(b) specialised, common weights once (default): a session per task, made when first used": (
            [shared],
            {},
            "",
        ),
        "(b2) specialised, each branch its own weights: a session per task": ([own], {}, ""),
        "(b3) specialised, common weights once, the If graph as one session": (
            [shared],
            {"sessions": "single"},
            ONE_SESSION,
        ),
        "(b4) specialised, each branch its own weights, the If graph as one session": (
            [own],
            {"sessions": "single"},
            ONE_SESSION,
        ),
        "(c) T single-task artifacts": ([art / "single_task_fp32.onnx", *singles], {}, ""),
    }
    for threads in args.threads:
        for label, (paths, session_opts, tag) in options.items():
            if not all(p.exists() for p in paths):
                continue
            fp = footprint(paths, threads, options=session_opts)
            lat = [rows.get(f"{p.name}{tag}@{threads}") for p in paths]
            per_task = [v for r in lat if r for v in r["median_ms"].values()]
            ship[f"{label}@{threads}"] = {
                **fp,
                "label": label,
                "disk_mb": round(sum(p.stat().st_size for p in paths) / 1e6, 2),
                "per_task_ms": round(sum(per_task) / len(per_task), 2) if per_task else None,
                "all_tasks_ms": round(sum(r["all_tasks_ms"] for r in lat if r), 2),
            }
    env = {
        "cpu": _cpu(),
        "cpu_features": features,
        "int8_dot_product_hardware": int8_hw,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": _versions(),
        "recipe": args.recipe,
        "input": [args.size, args.size],
        "runs": args.runs,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "note": (
            "median of runs, batch 1, graph call only; every artifact of one thread count loaded, then "
            "timed in interleaved rounds, warm-up calls at the start of each (edgemtl.profile.latency."
            "measure_interleaved)"
        ),
    }
    report = {
        "environment": env,
        "rows": rows,
        "checks": checks,
        "shipping": ship,
        "coreml_sizes": coreml_sizes(art),
    }
    write_json(Path(args.out) / "report.json", report)
    (Path(args.out) / "report.md").write_text(_markdown(report, args) + "\n")
    print(_markdown(report, args))


SUFFIX = {"onnx": ".onnx", "executorch": ".pte", "onnxruntime-web": ".onnx"}


def coreml_sizes(art: Path) -> dict[str, dict]:
    """Weight bytes of each CoreML package (its manifest's structural check: the ``weights/`` blob),
    and for a multifunction package the largest single function converted alone."""
    sizes = {}
    for stem, name, target, precision, suffix, scheme, _ in ARTIFACTS:
        meta = art / f"{stem}{suffix}.json"
        if target != "coreml" or not meta.exists():
            continue
        s = json.loads(meta.read_text())["verification"]["structure"]
        sizes[f"{stem}{suffix}"] = {
            "model": name,
            "task_input": scheme or "onehot",
            "precision": precision,
            "functions": len(s["io"]),
            "weights_mb": round(s["weights_bytes"] / 1e6, 2),
            "package_mb": round(s["bytes"] / 1e6, 2),
            "one_function_weights_mb": round(s["single_function_weights_bytes"] / 1e6, 2)
            if "single_function_weights_bytes" in s
            else None,
        }
    return sizes


def ratio_checks(rows: dict, configs: list[tuple[str, object]]) -> list[dict]:
    """The issue's ratios from measured rows (keys ``<artifact file>@<config>``), for each
    (runtime, config): config is a thread count, or e.g. ``wasm2`` / ``webgpu`` in the browser."""
    from edgemtl.profile.latency import ratio_interval

    def row(stem: str, rt_name: str, config: object) -> dict | None:
        name, _, tag = stem.partition(" ")  # "<stem> (one If session)": the file's If graph
        return rows.get(f"{name}{SUFFIX[rt_name]}{' ' + tag if tag else ''}@{config}")

    def mean_ms(stem: str, rt_name: str, config: object) -> float | None:
        r = row(stem, rt_name, config)
        return sum(r["median_ms"].values()) / len(r["median_ms"]) if r else None

    def samples(stem: str, rt_name: str, config: object, all_tasks: bool = False) -> list | None:
        """The row's timed calls (per task, or of the all-tasks call), where the run kept them."""
        r = row(stem, rt_name, config) or {}
        if all_tasks:
            return [r["all_tasks_samples_ms"]] if "all_tasks_samples_ms" in r else None
        return list(r["samples_ms"].values()) if "samples_ms" in r else None

    checks = []

    def check(
        what, rt_name, config, num, den, goal, num_samples=None, den_samples=None, agg=("mean", "mean")
    ):
        if num is None or den is None:
            return
        ci = ratio_interval(num_samples, den_samples, agg) if num_samples and den_samples else None
        checks.append(
            {
                "target": what,
                "runtime": rt_name,
                "threads": config,
                "ratio": num / den,
                "ci95": ci,
                "goal": goal,
                "ok": num / den <= goal,
                # at 95 %: met (the whole interval under the goal), missed (over it), or undecided
                "verdict": None
                if ci is None
                else ("met" if ci[1] <= goal else "missed" if ci[0] > goal else "undecided"),
                "values_ms": [num, den],
            }
        )

    for rt_name, config in configs:
        single = mean_ms("single_task_fp32", rt_name, config)
        for stem, how in (
            ("astmt_fp32", "one-hot graph, SE enc+dec"),
            ("astmt_dec_fp32", "one-hot graph, SE decoder"),
            ("astmt_spec_fp32", "specialised graphs behind the task input, SE enc+dec"),
            ("astmt_dec_spec_fp32", "specialised graphs behind the task input, SE decoder"),
            ("astmt_dec_specshared_fp32", "specialised graphs, common weights stored once, SE decoder"),
            (f"astmt_dec_specshared_fp32{ONE_SESSION}", "the same file's If graph as one session"),
            (f"astmt_dec_spec_fp32{ONE_SESSION}", "specialised, own weights, If graph as one session"),
            ("astmt_2t_pertask_fp32", "per-task methods, SE enc+dec"),
        ):
            what = f"task-conditional per-task latency / single-task ({how})"
            num, n_s = mean_ms(stem, rt_name, config), samples(stem, rt_name, config)
            check(what, rt_name, config, num, single, 1.05, n_s, samples("single_task_fp32", rt_name, config))
        for stem, how in (
            ("astmt", "one-hot graph, SE enc+dec"),
            ("astmt_dec", "one-hot graph, SE decoder"),
            ("astmt_spec", "specialised graphs, SE enc+dec"),
            ("astmt_dec_spec", "specialised graphs, SE decoder"),
            ("astmt_2t_pertask", "per-task methods, SE enc+dec"),
            ("single_task", "single-task"),
        ):
            num, den = mean_ms(f"{stem}_int8", rt_name, config), mean_ms(f"{stem}_fp32", rt_name, config)
            n_s, d_s = samples(f"{stem}_int8", rt_name, config), samples(f"{stem}_fp32", rt_name, config)
            check(f"int8 / fp32 latency ({how})", rt_name, config, num, den, 0.55, n_s, d_s)
        if SUFFIX[rt_name] != ".onnx":
            continue
        for stem, spec, t in (
            ("astmt_dec3_all_fp32", "astmt_dec3_spec_fp32", 3),
            ("astmt_dec_all_fp32", "astmt_dec_spec_fp32", 5),
        ):
            a, per = row(stem, rt_name, config), row(spec, rt_name, config)
            if a and per:
                what = f"all {t} tasks in one call / {t} per-task calls (SE decoder, encoder once)"
                num, den = a["all_tasks_ms"], sum(per["median_ms"].values())
                n_s, d_s = samples(stem, rt_name, config, all_tasks=True), samples(spec, rt_name, config)
                check(what, rt_name, config, num, den, 1 / 1.5, n_s, d_s, ("mean", "sum"))
    return checks


def do_web(args: argparse.Namespace) -> None:
    """The same artifacts in onnxruntime-web in headless Chromium (apps/web/bench.html through the
    demo server, which sends COOP/COEP: WebAssembly with SIMD and threads), and WebGPU where
    Chromium finds an adapter (``--webgpu swiftshader`` uses the CPU emulation: a check that the
    path runs, not a GPU figure). Like ``measure``, every artifact's page is opened once per round,
    in a shuffled order, so all artifacts are timed over the same stretches of time and their ratios
    get bootstrap intervals. Writes web_report.json / web_report.md beside report.json."""
    import shutil
    import subprocess
    import tempfile

    from edgemtl.cli.demo import load_app
    from edgemtl.profile.cpu import cpu_features
    from edgemtl.report import write_json

    chromium, node = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("node")
    if not chromium or not node:
        raise SystemExit("web: needs chromium and node on PATH (see the README's test command)")
    web = load_app("web")
    art = Path(args.out) / "artifacts"
    paths = sorted({art / f"{stem}.onnx" for stem, _, target, *_ in ARTIFACTS if target == "onnx"})
    paths = [p for p in paths if p.exists()]
    if not paths:
        raise SystemExit(f"web: no ONNX artifacts under {art}: run the export phase first")
    configs = [f"wasm{t}" for t in args.threads] + (["webgpu"] if args.webgpu != "off" else [])
    servers = [web.start_background(p) for p in paths]
    steps = _web_steps([(p.name, url) for (_, url), p in zip(servers, paths)], configs, args)
    flags = ["--enable-blink-features=ForceEagerMeasureMemory"]
    if args.webgpu == "swiftshader":
        flags += ["--enable-unsafe-webgpu", "--enable-unsafe-swiftshader", "--use-webgpu-adapter=swiftshader"]
    with tempfile.TemporaryDirectory() as tmp:
        plan = {
            "chromium": chromium,
            "out": f"{tmp}/results.json",
            "timeout_ms": 120000,
            "bench_timeout_ms": 1800000,
            "progress": True,
            "args": flags,
            "scenarios": [{"name": "bench", "steps": steps}],
        }
        Path(f"{tmp}/plan.json").write_text(json.dumps(plan))
        try:
            subprocess.run([node, str(REPO / "apps/web/tests/drive.mjs"), f"{tmp}/plan.json"], check=True)
        finally:
            for server, _ in servers:
                server.shutdown()
                server.server_close()
        got = json.loads(Path(f"{tmp}/results.json").read_text())["bench"]["collected"]
    rows, errors = _web_rows(got)
    for key, r in rows.items():
        print(f"{key:36s} " + ", ".join(f"{t} {v:.1f}" for t, v in r["median_ms"].items()), flush=True)
    first = [rec["result"] for rec in got.values() if rec["result"]]
    env = {
        "cpu": _cpu(),
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "browser": first[0]["user_agent"] if first else None,
        "onnxruntime_web": json.loads((REPO / "apps/web/package.json").read_text())["dependencies"][
            "onnxruntime-web"
        ],
        "cross_origin_isolated": sorted({r["cross_origin_isolated"] for r in first}),
        "webgpu": args.webgpu,
        "runs": args.runs,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "warmup_ms": args.warmup_ms,
        "note": "median of the runs pooled over the interleaved rounds (each round opens every "
        "artifact's page in a shuffled order, warms it up and times its share of the runs), batch 1, "
        "session.run only (apps/web/js/bench.js); load = fetch + session creation, the median over "
        "rounds; memory = performance.measureUserAgentSpecificMemory of the page, first round",
    }
    checks = ratio_checks(rows, [("onnxruntime-web", c) for c in configs])
    report = {"environment": env, "rows": rows, "errors": errors, "checks": checks}
    write_json(Path(args.out) / "web_report.json", report)
    text = _web_markdown(report, args)
    (Path(args.out) / "web_report.md").write_text(text + "\n")
    print(text)


def _web_steps(pages: list[tuple[str, str]], configs: list[str], args: argparse.Namespace) -> list[dict]:
    """bench.html visits: ``args.rounds`` rounds, each opening every (artifact, config) once in a
    shuffled order for its share of ``args.runs``; the page memory is asked for in the first round
    only (the browser answers at its next garbage collection, up to 30 s)."""
    import numpy as np

    rng = np.random.default_rng(0)
    pairs = [(name, url, c) for name, url in pages for c in configs]
    steps = []
    for r in range(args.rounds):
        n = args.runs // args.rounds + (r < args.runs % args.rounds)
        if n == 0:
            continue
        for i in rng.permutation(len(pairs)):
            name, url, c = pairs[i]
            ep = "ep=webgpu" if c == "webgpu" else f"ep=wasm&threads={c[4:]}"
            query = f"{ep}&runs={n}&warmup={args.warmup}&warmup_ms={args.warmup_ms}&memory={int(r == 0)}"
            steps.append({"bench": f"{url}bench.html?{query}", "key": f"{name}@{c}#{r}"})
    return steps


def _web_rows(got: dict) -> tuple[dict, dict]:
    """One row per ``<artifact>@<config>``: the rounds' timed calls pooled (medians, p90 and the
    samples the ratio intervals resample), the median load time; a round that failed or ran on
    another backend or thread count than asked makes the artifact an error, not a row."""
    import numpy as np

    rounds: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    for key, rec in got.items():
        base = key.rsplit("#", 1)[0]
        r, config = rec["result"], base.rsplit("@", 1)[1]
        want = ("webgpu", None) if config == "webgpu" else ("wasm", int(config[4:]))
        if r is None or (r["backend"], r["threads"]) != want:
            seen = r and f"ran on {r['backend']} with {r['threads']} thread(s), not {want}"
            errors[base] = rec["error"] or rec["warning"] or seen
            continue
        rounds.setdefault(base, []).append(r)
    rows = {}
    for base, rs in rounds.items():
        if base in errors:
            continue
        tasks = list(rs[0]["tasks"])
        samples = {t: [v for r in rs for v in r["tasks"][t]["times_ms"]] for t in tasks}
        all_samples = [v for r in rs for v in r["all_tasks"]["times_ms"]]
        memory = next((r["page_memory_mb"] for r in rs if r["page_memory_mb"] is not None), None)
        rows[base] = {
            "backend": rs[0]["backend"],
            "threads": rs[0]["threads"],
            "task_input": rs[0]["task_input"],
            "graphs": rs[0]["graphs"],
            "bytes": rs[0]["bytes"],
            "rounds": len(rs),
            "load_ms": round(float(np.median([r["fetch_ms"] + r["session_ms"] for r in rs])), 1),
            "page_memory_mb": memory and round(memory, 1),
            "median_ms": {t: float(np.median(v)) for t, v in samples.items()},
            "p90_ms": {t: float(np.percentile(v, 90)) for t, v in samples.items()},
            "all_tasks_ms": float(np.median(all_samples)),
            "samples_ms": samples,
            "all_tasks_samples_ms": all_samples,
        }
    return dict(sorted(rows.items())), errors


RATIO_NOTE = (
    "Ratios with a 95 % bootstrap interval over the timed calls (ratio_interval); met = the whole "
    "interval under the goal, NO = over it, undecided = it spans the goal."
)


def _met(c: dict) -> str:
    """A check's verdict as the tables print it (yes / NO / undecided; without an interval, the ratio's)."""
    return {"met": "yes", "missed": "NO", "undecided": "undecided"}.get(
        c.get("verdict"), "yes" if c["ok"] else "NO"
    )


def _ci_text(c: dict) -> str:
    ci = c.get("ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _web_markdown(report: dict, args: argparse.Namespace) -> str:
    env, rows, checks, errors = report["environment"], report["rows"], report["checks"], report["errors"]
    lines = [
        "# onnxruntime-web in headless Chromium",
        "",
        f"CPU: {env['cpu']} ({env['cores']} cores; SIMD: {' '.join(env['cpu_features'])}); "
        f"onnxruntime-web {env['onnxruntime_web']}; {env['browser']}; "
        f"cross-origin isolated: {env['cross_origin_isolated']}; "
        f"{args.runs} runs in {args.rounds} interleaved rounds (every artifact's page opened once per "
        f"round in a shuffled order, warmed up each time by {args.warmup} rounds over its tasks and for at "
        f"least {args.warmup_ms} ms); the median "
        "of each.",
        "",
        "| artifact | backend | threads | size MB | load ms | page memory MB | per-task median ms "
        "| all tasks ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in rows.items():
        lines.append(
            f"| {key.split('@')[0]} | {r['backend']} | {r['threads']} | {r['bytes'] / 1e6:.2f} | "
            f"{r['load_ms']} | {'' if r['page_memory_mb'] is None else r['page_memory_mb']} | "
            + ", ".join(f"{t} {v:.1f}" for t, v in r["median_ms"].items())
            + f" | {r['all_tasks_ms']:.1f} |"
        )
    lines += [
        "",
        RATIO_NOTE,
        "",
        "| target | config | ratio | 95 % CI | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['target']} | {c['threads']} | {c['ratio']:.3f} | {_ci_text(c)} | <= {c['goal']:.3g} "
        f"| {_met(c)} |"
        for c in checks
    ]
    if errors:
        lines += ["", "Not measured:", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    return "\n".join(lines)


def _markdown(report: dict, args: argparse.Namespace) -> str:
    env, rows, checks, ship = report["environment"], report["rows"], report["checks"], report["shipping"]
    lines = [
        "# On-device cost of the task input",
        "",
        f"CPU: {env['cpu']} ({env['cores']} cores; SIMD: {' '.join(env['cpu_features'])}); input "
        f"{args.size}x{args.size}; recipe {args.recipe} (MobileNet-v2 1.0, 5 tasks); random weights; "
        f"{args.runs} runs in {args.rounds} interleaved rounds (every artifact of a thread count timed in "
        f"turn, {args.warmup} warm-up calls each round), batch 1; the median of each.",
        "",
        "| artifact | threads | task input | graphs | size MB | per-task median ms | all tasks ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in rows.items():
        lines.append(
            f"| {key.split('@')[0]} | {r['threads']} | {r['task_input']} | {r['graphs']} | "
            f"{r['bytes'] / 1e6:.2f} | "
            + ", ".join(f"{t} {v:.2f}" for t, v in r["median_ms"].items())
            + f" | {r['all_tasks_ms']:.2f} |"
        )
    lines += [
        "",
        RATIO_NOTE,
        "",
        "| target | runtime | threads | ratio | 95 % CI | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        met = _met(c)
        if c["target"].startswith("int8") and not env["int8_dot_product_hardware"]:
            met = "n/a: no VNNI/AMX/ARM dot product on this CPU"
        lines.append(
            f"| {c['target']} | {c['runtime']} | {c['threads']} | {c['ratio']:.3f} | {_ci_text(c)} "
            f"| <= {c['goal']:.3g} | {met} |"
        )
    if ship:
        lines += [
            "",
            "What a user would ship for the 5 tasks (ONNX Runtime, fp32, SE decoder): resident memory in a "
            "fresh process, above the baseline after importing onnxruntime (edgemtl.profile.memory).",
            "",
            "| option | threads | disk MB | load ms | RSS after load MB | "
            "peak RSS after one call per task MB | per-task ms | all tasks ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in ship.values():
            lines.append(
                f"| {s['label']} | {s['threads']} | {s['disk_mb']} | {s['load_ms']} | "
                f"{s['after_load_delta_mb']} | "
                f"{s['peak_delta_mb']} | {s['per_task_ms']} | {s['all_tasks_ms']} |"
            )
    if report.get("coreml_sizes"):
        lines += [
            "",
            "CoreML packages (fp16; sizes only, prediction needs macOS): weights blob, whole package, and "
            "for a multifunction package (one function per task) the largest function converted alone.",
            "",
            "| package | model | task input | functions | weights MB | package MB | one function alone MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, c in report["coreml_sizes"].items():
            one = "" if c["one_function_weights_mb"] is None else c["one_function_weights_mb"]
            lines.append(
                f"| {key} | {c['model']} | {c['task_input']} | {c['functions']} | {c['weights_mb']} | "
                f"{c['package_mb']} | {one} |"
            )
    return "\n".join(lines)


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
    from edgemtl.cli._args import non_negative_int, positive_int

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["export", "measure", "web"])
    ap.add_argument("--out", default="benchmarks/results/export_latency_cpu")
    ap.add_argument("--recipe", default="astmt_mnv2")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=positive_int, default=50)
    ap.add_argument(
        "--warmup",
        type=non_negative_int,
        help="untimed calls before each interleaved round: calls (measure, default 2), rounds over "
        "every task after each page load (web, default 3)",
    )
    ap.add_argument(
        "--warmup-ms",
        type=non_negative_int,
        default=3000,
        help="web: each page also warms up for at least this long (V8 swaps optimised WebAssembly in "
        "for the baseline code while it runs; default 3000)",
    )
    ap.add_argument(
        "--rounds", type=positive_int, default=5, help="interleaved rounds the --runs are spread over"
    )
    ap.add_argument("--force", action="store_true", help="re-export existing artifacts")
    ap.add_argument(
        "--target", nargs="+", choices=["onnx", "executorch", "coreml"], help="export: only these"
    )
    ap.add_argument(
        "--webgpu",
        choices=["off", "on", "swiftshader"],
        default="off",
        help="web: also measure WebGPU (on: Chromium's own GPU adapter, if any; swiftshader: its CPU "
        "emulation, very slow: a check that the path runs)",
    )
    args = ap.parse_args()
    if args.warmup is None:
        args.warmup = 2 if args.phase == "measure" else 3
    {"export": do_export, "measure": do_measure, "web": do_web}[args.phase](args)


if __name__ == "__main__":
    main()
