"""The pipeline every export target shares (the interface is edgemtl.export.target):

    check support -> precision hook -> wrap (wrapper.py) -> torch.export -> target.write
    -> verify (structure + numbers) -> embed metadata -> manifest beside the artifact

A target declares what it supports (``precisions``, ``task_inputs``, ``options``); anything else
raises :class:`UnsupportedError` before any work is done.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgemtl.artifact import manifest as md
from edgemtl.errors import EdgeMTLError, UnsupportedError
from edgemtl.export.metadata import build_metadata
from edgemtl.export.target import ExportContext, ExportTarget
from edgemtl.export.verify import raise_if_failed, sample_images
from edgemtl.export.wrapper import Graph, build_graphs, check_scheme, task_io

CALIBRATION_IMAGES = 16  # int8 at export time: images (x every task) the observers see


@dataclass
class ExportResult:
    path: Path
    manifest: Path
    target: str
    precision: str
    task_input: str
    metadata: dict[str, Any]
    seconds: float
    size_bytes: int

    @property
    def parity(self) -> dict[str, Any]:
        return self.metadata["verification"].get("numeric", {}).get("tasks", {})


def calibration_batches(
    images: list[tuple[str, Any]], size: tuple[int, int], batch: int = 4
) -> list[torch.Tensor]:
    """uint8 RGB images -> float batches [B,3,H,W] in [0,1], preprocessed exactly as at inference."""
    from edgemtl.artifact.processing import preprocess

    xs = [torch.from_numpy(preprocess(img, size)) for _, img in images]
    return [torch.cat(xs[i : i + batch]) for i in range(0, len(xs), batch)]


def prepare_precision(
    model: nn.Module, precision: str, calibration: Callable[[], list], size: tuple[int, int], notes: list[str]
) -> nn.Module:
    """The module whose graph gets exported for ``precision``.

    fp32/fp16 export the float model (fp16 is the target's compute precision, e.g. CoreML).
    int8 takes a model already quantized with edgemtl.quant (a PTQ or QAT-converted program, e.g.
    ``qat_int8.pt2`` from ``edgemtl qat``) as is; a float model is quantized here with PT2E
    post-training quantization calibrated on ``calibration()`` images (every task).
    """
    stage = getattr(model, "stage", None)
    if precision != "int8":
        if stage is not None:
            raise UnsupportedError(
                f"--precision {precision}: this model is quantized ({stage}); export it as int8"
            )
        return model
    if stage in ("ptq", "converted"):
        notes.append(f"int8: the {'QAT-converted' if stage == 'converted' else 'PTQ'} PT2E program as given")
        return model
    if stage is not None:
        raise UnsupportedError(
            "--precision int8: this QAT model still has fake-quant observers; convert it first "
            "(edgemtl.quant.convert; 'edgemtl qat' writes qat_int8.pt2)"
        )
    if tuple(size) != tuple(model.config.image_size):
        raise EdgeMTLError(
            f"--precision int8 quantizes at the model's image_size {tuple(model.config.image_size)}; "
            f"drop --size {size[0]}x{size[1]} (or retrain at that size)"
        )
    from edgemtl.quant.pt2e import ptq
    from edgemtl.quant.wrapper import QuantizedModel

    batches = calibration()
    n = sum(b.shape[0] for b in batches)
    notes.append(
        f"int8: PT2E post-training quantization at export time (XNNPACK quantizer, int8 per-channel "
        f"weights, int8 activations; task-selected weights fp32), calibrated on {n} images x every task. "
        "For QAT, export the qat_int8.pt2 that 'edgemtl qat' writes"
    )
    return QuantizedModel(ptq(model, batches), model, "ptq")


def export_program(graph: Graph) -> Any:
    """``torch.export`` of a graph's module at its example inputs (warnings off: they are the exporter's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(graph.module, graph.example, strict=False)


def check_finite(model: nn.Module) -> None:
    """NaN/inf weights make every parity tolerance NaN: name the tensors instead."""
    bad = [
        n
        for n, t in model.state_dict().items()
        if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise EdgeMTLError(
            f"the model holds non-finite (NaN/inf) weights in {', '.join(bad[:5])}{more}: the checkpoint "
            "comes from a diverged run; export an earlier checkpoint (e.g. best.pt) or retrain"
        )


def remove_stale_stages(out: Path) -> None:
    """Delete the staging files (``.<stem>.partial-PID``, ``.<stem>.old-PID``) left beside ``out`` by
    exports whose process died (kill -9, power loss); those of live processes are theirs to finish."""
    from edgemtl._proc import pid_alive

    for p in out.parent.glob(f".{out.stem}.*-*{out.suffix}"):
        kind, _, pid = p.name[len(out.stem) + 2 : -len(out.suffix) or None].rpartition("-")
        if (
            kind in ("partial", "old")
            and pid.isdigit()
            and int(pid) != os.getpid()
            and not pid_alive(int(pid))
        ):
            remove_artifact(p)


def remove_artifact(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def install_artifact(stage: Path, out: Path) -> None:
    """Move a finished artifact into place: one rename for a file; for a package directory the old
    one is renamed aside first (a directory cannot be replaced in one step) and removed after."""
    if stage.is_dir() and out.exists():
        aside = out.parent / f".{out.stem}.old-{os.getpid()}{out.suffix}"
        remove_artifact(aside)
        os.replace(out, aside)
        os.replace(stage, out)
        remove_artifact(aside)
    else:
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(stage, out)


def run_export(
    model: nn.Module,
    target: ExportTarget,
    out: str | os.PathLike,
    precision: str = "fp32",
    task_input: str | None = None,
    options: dict[str, Any] | None = None,
    images: str | os.PathLike | list | None = None,
    num_images: int = 3,
    dataset: dict[str, Any] | None = None,
    input_size: tuple[int, int] | None = None,
) -> ExportResult:
    """The shared pipeline (see the module docstring)."""
    start = time.perf_counter()
    if not target.available():
        raise UnsupportedError(f"target '{target.name}' is not installed: {target.install}")
    scheme = check_scheme(model, task_input)
    target.check_support(precision, scheme)
    opts = target.resolve_options(options)
    out = Path(out)
    if out.suffix != target.suffix:
        raise EdgeMTLError(
            f"--out {out}: target '{target.name}' writes a {target.suffix} file; "
            f"use e.g. --out {out.with_suffix(target.suffix)}"
        )
    size = tuple(input_size or model.config.image_size)
    check_finite(model)
    imgs = images if isinstance(images, list) else sample_images(images, size, num_images)
    notes: list[str] = []

    def calibration() -> list[torch.Tensor]:
        calib = (
            images
            if isinstance(images, list)
            else sample_images(images, size, max(num_images, CALIBRATION_IMAGES))
        )
        return calibration_batches(calib, size)

    model = model.eval()
    per_task_models = None
    if target.specializes(scheme, opts) and model.conditional and getattr(model, "stage", None) is None:
        # Each task's graph gets static weights (and, for int8, its own calibration/quantization).
        from edgemtl.models.specialize import specialize

        per_task_models = {
            t: target.prepare_model(
                specialize(model, t), precision, opts, calibration, size, notes if i == 0 else []
            )
            for i, t in enumerate(model.task_names)
        }
        what = "each method" if scheme == "per-task" else f"behind the {scheme} task input, each branch"
        notes.append(
            f"{scheme}: {what} is the model specialised to its task (per-task SE/BN/heads baked in "
            "as plain layers); verified against the task-conditional model (ORT int8: its QDQ simulation)"
        )
    else:
        model = target.prepare_model(model, precision, opts, calibration, size, notes)
    graphs = build_graphs(model, scheme, size, per_task_models)
    io = task_io(model, scheme, graphs)
    programs = {g.method: export_program(g) for g in graphs}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built, checked and stamped beside the destination, then moved in: a crash in a converter
    # or in verification leaves the previous artifact and its manifest as they were.
    stage = out.parent / f".{out.stem}.partial-{os.getpid()}{out.suffix}"
    remove_stale_stages(out)
    remove_artifact(stage)
    ctx = ExportContext(stage, precision, scheme, opts, io, model, notes)
    try:
        target.write(programs, graphs, ctx)
        if md.artifact_size(stage) == 0:
            raise EdgeMTLError(f"target '{target.name}' wrote nothing for {out}")
        structure = target.inspect(graphs, ctx)
        numeric = target.numeric(programs, graphs, ctx, imgs)
        verification = {
            "structure": structure,
            "numeric": numeric,
            "passed": not structure.get("problems") and numeric.get("passed", False),
        }
        meta = build_metadata(model, target.name, precision, io, size, opts, dataset)
        meta["verification"] = verification
        meta["notes"] = ctx.notes
        meta["export_seconds"] = round(time.perf_counter() - start, 2)
        target.embed_metadata(stage, meta)
    except BaseException:
        remove_artifact(stage)
        raise
    if not verification["passed"]:
        # Never replace a good artifact with one that failed its checks: keep the failure beside it,
        # under its own name, for inspection (its manifest records verification.passed=false).
        failed = out.with_name(f"{out.stem}.failed{out.suffix}")
        remove_artifact(md.manifest_path(failed))
        install_artifact(stage, failed)
        md.write_manifest(failed, meta)
        raise_if_failed(verification, failed, kept=out if out.exists() else None)
    remove_artifact(md.manifest_path(out))  # a stale manifest must never describe a new artifact
    install_artifact(stage, out)
    manifest = md.write_manifest(out, meta)
    return ExportResult(
        out, manifest, target.name, precision, scheme, meta, meta["export_seconds"], md.artifact_size(out)
    )
