"""Run a benchmark suite: train (or reuse) every model, quantize, export, evaluate the artifacts
on the runtimes themselves, time them, and collect one row per (model, precision, format).

Re-running with the same ``--out`` reuses every finished step: a training run is keyed by the
hash of its resolved recipe, so editing one variant retrains only that variant.
"""

from __future__ import annotations

import hashlib
import json
import traceback
from pathlib import Path
from typing import Any

from edgemtl import __version__
from edgemtl.bench.clock import StageClock
from edgemtl.bench.suite import Suite
from edgemtl.data.dataset import load_meta
from edgemtl.errors import EdgeMTLError, UnsupportedError
from edgemtl.log import get_logger

log = get_logger(__name__)

# The suite's quant settings that change the int8 programs: a report made with others is redone.
QUANT_KEYS = ("qat_epochs", "calib_batches", "lr_scale", "task_weights", "float_modules")


def recipe_hash(recipe) -> str:
    """The key of a training run: its resolved recipe, edgemtl's version and the evaluation protocol.
    A pretrained weights file counts by its content, not its path, so that a result set made on one
    machine is reused on another where the same file lives elsewhere."""
    from edgemtl.artifact.manifest import file_digest
    from edgemtl.evaluate import EVAL_PROTOCOL

    model = dict(recipe.model)
    weights = model.get("pretrained")
    if isinstance(weights, str) and weights != "timm" and Path(weights).is_file():
        model["pretrained"] = f"sha256:{file_digest(weights)}"
    # The precision a run trains in, not how it was asked for: train.precision=auto resolves per
    # machine (bf16 where the CPU or GPU has it), so a bf16 run is never reused as the fp32 run of the
    # same recipe, and an explicit fp32 is the same run as an auto that resolves to fp32. fp32 adds
    # nothing to the key, so the keys of fp32 runs made before this stay valid.
    train = {k: v for k, v in recipe.train.items() if k != "precision"}
    key = {
        "model": model,
        "tasks": recipe.tasks,
        "data": recipe.data,
        "train": train,
        "edgemtl": __version__,
        "protocol": EVAL_PROTOCOL,
    }
    precision = _resolved_precision(recipe.train_config)
    if precision != "fp32":
        key["precision"] = precision
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _resolved_precision(cfg) -> str:
    from edgemtl.train.speed import resolve_device, resolve_precision

    return resolve_precision(cfg.precision, resolve_device(cfg.device))


def amtl_potentials(suite: Suite, trained: dict[str, dict[str, Any]], root: Path) -> dict[str, float]:
    """AMTL's potentials: each task's single-task KPI in (0, 1], from this suite's baselines."""
    from edgemtl.tasks import build_tasks

    tasks = build_tasks(suite.tasks, load_meta(root))
    out = {}
    for t, task in tasks.items():
        base = trained.get(f"single_task_{t}", {})
        if "metrics" not in base:
            raise EdgeMTLError(f"amtl needs the single-task baseline of '{t}', which did not train")
        out[t] = min(max(base["metrics"][t][task.kpi_metric] / 100.0, 1e-3), 1.0)
    return out


def train_model(
    suite: Suite,
    name: str,
    out: Path,
    progress: bool,
    trained: dict[str, dict[str, Any]] | None = None,
    root: Path | None = None,
    seed: int | None = None,
    need_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train one model of the suite at ``seed`` (or reuse the finished run with the same recipe hash).

    A finished run is its ``summary.json`` (with ``test_states.npz``, ``metrics.jsonl``): that is all a
    table row needs, so result sets can be carried to another machine without their checkpoints
    (benchmarks/README.md). Where the bench needs the weights (``need_checkpoint``: int8, export and
    peer-protocol rows) and ``best.pt`` was not kept, the run is trained again and replaces them.
    """
    from edgemtl.train.trainer import Trainer

    recipe = suite.recipe(name, seed)
    params = recipe.train_config.balancer_params
    if recipe.train_config.balancer == "amtl" and "potentials" not in params and trained is not None and root:
        # Part of the recipe hash: new baselines retrain the AMTL model.
        potentials = amtl_potentials(suite, trained, root)
        recipe = recipe.with_train(balancer_params={**params, "potentials": potentials})
    run = out / "runs" / f"{name}-{recipe_hash(recipe)}"
    if (run / "summary.json").is_file() and (not need_checkpoint or (run / "best.pt").is_file()):
        summary = json.loads((run / "summary.json").read_text())
        summary["reused"] = True
        summary["run"] = str(run)  # where it is now (a carried result set moves)
        return {**summary, "seed": recipe.train_config.seed}
    if (run / "summary.json").is_file():
        kept = run.with_name(f"{run.name}.results-without-checkpoint")
        if progress:
            log.info(
                f"    {name}: the weights of the finished run were not kept; training it again "
                f"(its results move to {kept.name})"
            )
        if kept.exists():
            import shutil

            shutil.rmtree(kept)
        run.rename(kept)
    resume = (run / "last.pt").is_file()  # an interrupted run continues exactly where it stopped
    trainer = Trainer(
        recipe, run, resume=resume, progress=progress, baselines_path=str(out / "baselines.json")
    )
    return {**trainer.fit(), "seed": recipe.train_config.seed}


def quantize_model(suite: Suite, name: str, checkpoint: str, out: Path, progress: bool) -> dict[str, Any]:
    from edgemtl.quant.pt2e import PROGRAM_VERSION, QuantConfig
    from edgemtl.quant.run import run_quantization

    qdir = Path(checkpoint).parent / "quant"
    q = suite.quant
    settings = {k: q.get(k) for k in QUANT_KEYS}
    key = {**settings, "program_version": PROGRAM_VERSION}
    if (qdir / "quant_report.json").is_file():
        report = json.loads((qdir / "quant_report.json").read_text())
        if report.get("suite_quant") == key:  # other settings or programs (or none recorded): again
            return report
    qcfg = QuantConfig(
        **{k: (list(v) if k == "float_modules" else v) for k, v in settings.items() if v is not None}
    )
    recipe = qcfg.finetune_recipe(suite.recipe(name))
    report = run_quantization(checkpoint, recipe, qdir, qcfg, do_qat=True, progress=progress)
    report["suite_quant"] = key
    from edgemtl.report import write_json

    write_json(qdir / "quant_report.json", report)
    return report


def export_row(
    model: str, fmt: dict[str, str], run: Path, quant: dict[str, Any] | None, out: Path, images: Path
) -> dict[str, Any]:
    """Export one (model, format, precision); status ok | unsupported | skipped | parity failed |
    export failed."""
    from edgemtl.export import TARGETS, export
    from edgemtl.export.verify import VerificationError

    target, precision = fmt["target"], fmt["precision"]
    row: dict[str, Any] = {
        "model": model,
        "format": target,
        "precision": precision,
        "status": "ok",
        "error": None,
    }
    path = out / "artifacts" / f"{model}_{precision}{TARGETS.get(target).suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    source = str(run / "best.pt")
    options: dict[str, Any] = {}
    if precision in ("int8-ptq", "int8-qat"):
        if quant is None:
            row.update(
                status="skipped", error=f"{model} is not in quant.variants of this suite (no int8 program)"
            )
            return row
        source = quant["artifacts"].get(precision[5:])
        if target == "onnx":
            options["quantizer"] = "pt2e"
    elif precision == "int8-ort":
        if target != "onnx":
            row.update(status="unsupported", error="int8-ort is ONNX Runtime's quantizer: onnx only")
            return row
        options["quantizer"] = "ort"
    export_precision = "int8" if precision.startswith("int8") else precision
    try:
        res = export(
            source, target, path, precision=export_precision, options=options, images=images, num_images=4
        )
        row.update(
            artifact=str(path),
            bytes=res.size_bytes,
            export_seconds=res.seconds,
            parity=res.parity,
            notes=res.metadata.get("notes", []),
        )
    except UnsupportedError as e:
        row.update(status="unsupported", error=str(e))
    except VerificationError as e:
        row.update(
            status="parity failed",
            error=str(e),
            artifact=str(path.with_name(f"{path.stem}.failed{path.suffix}")),
        )
    except EdgeMTLError as e:
        row.update(status="export failed", error=str(e))
    except Exception as e:  # noqa: BLE001 (a crash in a converter is a row, not the end of the bench)
        row.update(
            status="export failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=6)
        )
    return row


def _test_protocol(suite: Suite, root: Path, input_size):
    from edgemtl.evaluate import Protocol
    from edgemtl.train.data import eval_split

    split = eval_split(root)
    return Protocol(
        split,
        edge_thresholds=suite.train_config.edge_thresholds,
        input_size=tuple(input_size),
        name=suite.protocol,
    )


def evaluate_test(
    model, suite: Suite, root: Path, states: dict | None = None, batch_size: int | None = None
) -> dict[str, dict[str, float]]:
    """A PyTorch model (checkpoint or simulated-int8 program) on the test split under the suite's protocol."""
    from edgemtl.data.dataset import MultiTaskDataset
    from edgemtl.evaluate import evaluate
    from edgemtl.tasks import build_tasks
    from edgemtl.train.data import make_loader

    meta = load_meta(root)
    tasks = build_tasks(model.task_names, meta)
    protocol = _test_protocol(suite, root, model.config.image_size)
    ds = MultiTaskDataset(root, protocol.split, tasks=list(tasks), input_size=protocol.input_size)
    bs = batch_size or suite.train_config.batch_size
    return evaluate(model, make_loader(ds, bs, False, 0, 0, 0), tasks, protocol, image_states=states)


def reevaluate_run(entry: dict[str, Any], suite: Suite, root: Path) -> dict[str, Any]:
    """A finished run's test metrics under the suite's peer protocol (with its per-image states for
    the bootstrap), computed once per run and protocol from best.pt."""
    from edgemtl.bench.report import states_file
    from edgemtl.checkpoint import load_checkpoint
    from edgemtl.report import write_json
    from edgemtl.tasks import build_tasks
    from edgemtl.train.trainer import save_image_states

    run = Path(entry["run"])
    cache = run / f"test_{suite.protocol}.json"
    if cache.is_file() and (run / states_file(suite.protocol)).is_file():
        got = json.loads(cache.read_text())
    else:
        model, _ = load_checkpoint(run / "best.pt")
        states: dict[str, Any] = {}
        metrics = evaluate_test(model, suite, root, states)
        save_image_states(run / states_file(suite.protocol), states)
        tasks = build_tasks(model.task_names, load_meta(root))
        got = {
            "metrics": metrics,
            "protocol": _test_protocol(suite, root, model.config.image_size).describe(tasks),
        }
        write_json(cache, got)
    return {
        **entry,
        "metrics_edgemtl": entry.get("metrics"),
        "metrics": got["metrics"],
        "protocol": got["protocol"],
    }


def reevaluate_quant(q: dict[str, Any], suite: Suite, root: Path) -> dict[str, Any]:
    """The simulated-int8 programs' test metrics under the suite's peer protocol."""
    from edgemtl.quant.pt2e import load_quantized_model
    from edgemtl.report import write_json

    cache = Path(q["artifacts"]["ptq"]).parent / f"metrics_{suite.protocol}.json"
    # Keyed by the programs' quant settings: quantizing again with others must not reuse these numbers.
    got = json.loads(cache.read_text()) if cache.is_file() else {}
    if got.get("suite_quant") != q.get("suite_quant") or set(got.get("metrics", {})) != set(q["artifacts"]):
        got = {
            "suite_quant": q.get("suite_quant"),
            # a saved program is traced at batch 1 (the deployed shape)
            "metrics": {
                k: evaluate_test(load_quantized_model(path)[0], suite, root, batch_size=1)
                for k, path in q["artifacts"].items()
            },
        }
        write_json(cache, got)
    return {**q, "metrics": got["metrics"]}


def evaluate_artifact(path: str, suite: Suite, root: Path, threads: int) -> dict[str, dict[str, float]]:
    """Task metrics of an exported artifact, run by its own runtime over the test split."""
    from edgemtl import runtime
    from edgemtl.bench.artifact_eval import RuntimeModel
    from edgemtl.data.dataset import MultiTaskDataset
    from edgemtl.evaluate import evaluate
    from edgemtl.tasks import build_tasks
    from edgemtl.train.data import make_loader

    rt = runtime.load(path, threads=threads)
    tasks = build_tasks(rt.tasks, load_meta(root))
    protocol = _test_protocol(suite, root, rt.input_size)  # the same protocol as the PyTorch rows
    # Images prepared as the artifact's own predict() prepares them; metrics at label resolution.
    ds = MultiTaskDataset(root, protocol.split, tasks=list(tasks), input_size=rt.input_size)
    return evaluate(RuntimeModel(rt), make_loader(ds, 8, False, 0, 0, 0), tasks, protocol)


def _train_all(
    suite: Suite, out: Path, root: Path, clock: StageClock, progress: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Every model at the first seed, then every other seed: (first-seed runs, runs per seed, failures)."""
    trained: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    # the first seed's weights are read by the int8, export and peer-protocol steps
    needs_weights = set(suite.quant.get("variants", [])) | set(
        suite.export.get("models", list(suite.variants))
    )
    for name in suite.model_names():
        with clock.stage(f"train {name}", f"train {name}"):
            keep = name in needs_weights or suite.protocol != "edgemtl"
            try:
                trained[name] = train_model(suite, name, out, progress, trained, root, need_checkpoint=keep)
            except EdgeMTLError as e:  # one bad variant is a row, not the end of the bench
                failed[name] = str(e)
                log.warning(f"    train {name} failed: {e}")
    if any(f"single_task_{t}" in failed for t in suite.tasks):
        raise EdgeMTLError(f"single-task baselines failed, Δm is undefined: {failed}")
    # More seeds: the same models trained again (runs keyed by recipe hash, so they are reused too);
    # quantization, export and latency use the first seed's model.
    trained_seeds: dict[str, list[dict[str, Any]]] = {n: [s] for n, s in trained.items()}
    for seed in suite.seeds[1:]:
        for name in list(trained):
            with clock.stage(f"train {name} seed {seed}", f"train {name} (seed {seed})"):
                try:
                    keep = suite.protocol != "edgemtl"
                    run = train_model(suite, name, out, progress, trained, root, seed, need_checkpoint=keep)
                    trained_seeds[name].append(run)
                except EdgeMTLError as e:
                    failed[f"{name} (seed {seed})"] = str(e)
                    log.warning(f"    train {name} seed {seed} failed: {e}")
    return trained, trained_seeds, failed


def _quantize_all(
    suite: Suite, trained: dict[str, dict[str, Any]], out: Path, root: Path, clock: StageClock, progress: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """PTQ + QAT of the suite's quant variants: (reports, failures); a failure is said in its rows."""
    quant: dict[str, dict[str, Any]] = {}
    quant_failed: dict[str, str] = {}
    for name in [v for v in suite.quant.get("variants", []) if v in trained]:
        with clock.stage(f"qat {name}", f"PTQ + QAT finetune {name}"):
            try:
                q = quantize_model(suite, name, str(Path(trained[name]["run"]) / "best.pt"), out, progress)
                # under a peer protocol, no int8 row without its re-evaluation (never edgemtl's numbers)
                quant[name] = reevaluate_quant(q, suite, root) if suite.protocol != "edgemtl" else q
            except Exception as e:  # noqa: BLE001 (its int8 rows say why; the rest of the bench goes on)
                quant_failed[name] = f"{type(e).__name__}: {e}" if not isinstance(e, EdgeMTLError) else str(e)
                log.warning(f"    quantize {name} failed: {quant_failed[name]}")
    return quant, quant_failed


def _artifact_row(
    name: str,
    fmt: dict[str, Any],
    suite: Suite,
    run: Path,
    quant: dict[str, Any] | None,
    quant_error: str | None,
    out: Path,
    root: Path,
    lat: dict[str, Any],
) -> dict[str, Any]:
    """One exported artifact: exported and verified, then evaluated and timed on its own runtime."""
    from edgemtl.export import runnable_targets
    from edgemtl.profile.latency import profile_artifact

    if quant_error is not None and fmt["precision"] in ("int8-ptq", "int8-qat"):
        return {
            "model": name,
            "format": fmt["target"],
            "precision": fmt["precision"],
            "status": "export failed",
            "error": f"quantization failed: {quant_error}",
        }
    row = export_row(name, fmt, run, quant, out, root / "images")
    if row["status"] == "ok" and fmt["target"] in runnable_targets():
        try:
            row["metrics"] = evaluate_artifact(row["artifact"], suite, root, int(lat["threads"]))
            row["latency"] = profile_artifact(
                row["artifact"], int(lat["threads"]), int(lat["warmup"]), int(lat["runs"])
            )
        except Exception as e:  # noqa: BLE001 (a runtime that cannot run it is a row too)
            trace = traceback.format_exc(limit=6)
            row.update(status="eval failed", error=f"{type(e).__name__}: {e}", traceback=trace)
    elif row["status"] == "ok":
        row["status"] = "ok (structural; does not run on this host)"
    return row


def run_suite(
    suite: Suite, out: Path, progress: bool = True, clock: StageClock | None = None
) -> dict[str, Any]:
    """Everything the suite names; returns the results (rows + context), also written to out."""
    from edgemtl.bench.report import build_rows
    from edgemtl.models import create_model
    from edgemtl.profile.counts import profile_counts
    from edgemtl.train.data import resolve_data_root

    out.mkdir(parents=True, exist_ok=True)
    clock = clock or StageClock(progress=progress)
    with clock.stage("data", "render or locate the dataset"):
        root = resolve_data_root(suite.data, progress)
    trained, trained_seeds, failed = _train_all(suite, out, root, clock, progress)
    if suite.protocol != "edgemtl":  # every number under the peer's conventions, from the same runs
        with clock.stage(
            f"evaluate ({suite.protocol})", f"re-evaluate the test split under {suite.protocol}"
        ):
            trained_seeds = {
                n: [reevaluate_run(r, suite, root) for r in runs] for n, runs in trained_seeds.items()
            }
            trained = {n: runs[0] for n, runs in trained_seeds.items()}
    meta = load_meta(root)
    counts = {}
    for name in trained:  # parameters and MACs are the architecture's: no weights needed
        model = create_model(suite.recipe(name).model_config(meta), pretrained=None).eval()
        counts[name] = profile_counts(model).to_dict()
    quant, quant_failed = _quantize_all(suite, trained, out, root, clock, progress)
    lat = {"threads": 2, "runs": 10, "warmup": 3, **suite.latency}
    exported = []
    for name in [m for m in suite.export.get("models", list(suite.variants)) if m in trained]:
        for fmt in suite.export.get("formats", []):
            label = f"{fmt['target']} {fmt['precision']}"
            with clock.stage(f"export {name} {label}", f"export {name} to {label}, verify, evaluate, time"):
                run = Path(trained[name]["run"])
                q, q_error = quant.get(name), quant_failed.get(name)
                exported.append(_artifact_row(name, fmt, suite, run, q, q_error, out, root, lat))
    results = {
        "suite": suite.to_dict(),
        "data_root": str(root),
        "trained": trained,
        "trained_seeds": trained_seeds,
        "train_failed": failed,
        "counts": counts,
        "quant": quant,
        "quant_failed": quant_failed,
        "exported": exported,
        "latency_settings": lat,
        "stages": clock.records,
    }
    results["rows"] = build_rows(suite, results)
    return results
