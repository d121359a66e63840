"""The quantization study behind ``edgemtl qat``: fp32 vs PTQ vs QAT, per task, same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemtl.checkpoint import load_checkpoint
from edgemtl.data.dataset import MultiTaskDataset, load_meta
from edgemtl.evaluate import Protocol, evaluate
from edgemtl.metrics import task_delta_m
from edgemtl.quant.pt2e import QuantConfig, convert, prepare_qat, ptq, save_program
from edgemtl.quant.wrapper import QuantizedModel
from edgemtl.recipes import Recipe
from edgemtl.report import write_json
from edgemtl.tasks import build_tasks
from edgemtl.train.data import eval_split, make_loader, resolve_data_root


def run_quantization(
    checkpoint: str, recipe: Recipe, out: Path, qcfg: QuantConfig, do_qat: bool = True, progress: bool = True
) -> dict[str, Any]:
    model, ckpt = load_checkpoint(checkpoint)
    root = resolve_data_root(recipe.data, progress)
    meta = load_meta(root)
    tasks = build_tasks(model.task_names, meta)
    train_cfg = recipe.train_config
    bs = train_cfg.batch_size
    split = eval_split(root)
    # One input scale everywhere (docs/metrics.md): the test images and the calibration images are
    # prepared exactly as the deployed artifact prepares them, whatever size they are stored at.
    size = tuple(model.config.image_size)
    test_ds = MultiTaskDataset(root, split, tasks=list(tasks), input_size=size)
    protocol = Protocol(split, edge_thresholds=train_cfg.edge_thresholds, input_size=size)

    def score(m) -> dict[str, dict[str, float]]:
        return evaluate(m, make_loader(test_ds, bs, False, 0, 0, 0), tasks, protocol)

    out.mkdir(parents=True, exist_ok=True)
    calib_ds = MultiTaskDataset(root, "train", tasks=[], input_size=size)
    calib = []
    for i, batch in enumerate(make_loader(calib_ds, bs, True, 0, 0, 0)):
        if i >= qcfg.calib_batches:
            break
        calib.append(batch["image"])
    results: dict[str, Any] = {"fp32": score(model)}
    ptq_model = QuantizedModel(ptq(model, calib, qcfg), model, "ptq")
    results["ptq"] = score(ptq_model)
    save_program(ptq_model.gm, model, out / "ptq_int8.pt2", "ptq", ckpt.get("dataset"))
    artifacts = {"ptq": str(out / "ptq_int8.pt2")}
    if do_qat:
        from edgemtl.train.trainer import Trainer

        prepared = prepare_qat(model, qcfg)
        qat_model = QuantizedModel(prepared, model, "qat")
        trainer = Trainer(recipe, out / "qat_finetune", progress=progress, model=qat_model)
        results["qat_history"] = trainer.finetune()
        converted = QuantizedModel(convert(prepared), model, "converted")
        results["qat"] = score(converted)
        save_program(converted.gm, model, out / "qat_int8.pt2", "converted", ckpt.get("dataset"))
        artifacts["qat"] = str(out / "qat_int8.pt2")
    prim = {
        k: {n: results[k][n][t.primary_metric] for n, t in tasks.items()}
        for k in ("fp32", "ptq", "qat")
        if k in results
    }
    report = {
        "checkpoint": checkpoint,
        "protocol": protocol.describe(tasks),
        "quant_config": vars(qcfg),
        "metrics": {k: results[k] for k in prim},
        "primary": prim,
        "artifacts": artifacts,
        # Δm of each int8 model relative to its own fp32 model (0 = no loss from quantization).
        "delta_vs_fp32": {k: task_delta_m(tasks, results[k], results["fp32"]) for k in prim if k != "fp32"},
        "model_config": ckpt["model_config"],
    }
    write_json(out / "quant_report.json", report)
    return report


def format_report(report: dict[str, Any]) -> str:
    prim = report["primary"]
    names = list(prim["fp32"])
    lines = [report["protocol"], f"  {'task':9s} " + " ".join(f"{k:>10s}" for k in prim)]
    for n in names:
        lines.append(f"  {n:9s} " + " ".join(f"{prim[k][n]:10.4g}" for k in prim))
    for k, v in report["delta_vs_fp32"].items():
        lines.append(f"  {k.upper()} int8: Δm vs its fp32 model {v:+.2f}% (target: QAT loses ≤ 1 point)")
    return "\n".join(lines)


__all__ = ["format_report", "run_quantization"]
