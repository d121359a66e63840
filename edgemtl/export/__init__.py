"""Export to on-device formats, one file per target, every artifact verified against PyTorch.

    from edgemtl.export import export
    result = export("run/best.pt", "onnx", "model.onnx")                    # or a model object
    result = export(model, "coreml", "m.mlpackage", precision="fp16", task_input="per-task")

Targets (``TARGETS``, one file each in edgemtl/export/targets/; each declares its suffix,
``precisions``, ``task_inputs``, ``options`` and the runtime ``backend`` of its artifacts).
See docs/export.md for the support table, the metadata schema and the verification rules.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgemtl.registry import Registry

TARGETS: Registry[type] = Registry("export target", package="edgemtl.export.targets")


def target_class(path: str | os.PathLike, name: str | None = None):
    """The target of an artifact: ``name`` (its manifest's ``target``) when registered, else the one
    whose suffix ``path`` has (the first by name where several share it, e.g. .pte)."""
    if name and name in TARGETS:
        return TARGETS.get(name)
    suffix = Path(path).suffix.lower()
    for n in TARGETS.names():
        if TARGETS.get(n).suffix == suffix:
            return TARGETS.get(n)
    from edgemtl.errors import EdgeMTLError

    known = ", ".join(sorted({TARGETS.get(n).suffix for n in TARGETS.names()}))
    raise EdgeMTLError(f"{path}: unknown artifact type '{suffix}' (expected one of {known})")


def runnable_targets() -> list[str]:
    """Targets whose artifacts run on this kind of host (evaluated, profiled and timed here)."""
    return [n for n in TARGETS.names() if TARGETS.get(n).runs_here()]


def get_target(name: str):
    """An instance of the registered target ``name`` (unknown names raise with a suggestion)."""
    return TARGETS.get(name)()


def export(
    model_or_ckpt: Any,
    target: str,
    out: str | os.PathLike,
    precision: str = "fp32",
    task_input: str | None = None,
    options: dict[str, Any] | None = None,
    images: str | os.PathLike | list | None = None,
    num_images: int = 3,
    input_size: tuple[int, int] | None = None,
):
    """Export a model (or a checkpoint path) to ``target`` at ``out``; returns an ExportResult.

    A ``.pt2`` path is an int8 program from ``edgemtl qat`` (ptq_int8.pt2 / qat_int8.pt2): export
    it with ``precision="int8"``; a float checkpoint with ``precision="int8"`` is quantized here.

    ``task_input``: onehot | index | per-task | all (None: onehot for task-conditional models,
    all otherwise). ``images``: a folder (or a list of ``(name, uint8 HxWx3)``) for the parity
    check; None renders synthetic scenes. Raises UnsupportedError for combinations the target
    does not declare and VerificationError when the artifact does not match PyTorch.
    """
    from edgemtl.export.base import run_export

    dataset = None
    if isinstance(model_or_ckpt, (str, Path)) and Path(model_or_ckpt).suffix == ".pt2":
        from edgemtl.quant.pt2e import load_quantized_model

        model, info = load_quantized_model(model_or_ckpt)  # int8 program from 'edgemtl qat'
        dataset = info.get("dataset") or None
    elif isinstance(model_or_ckpt, (str, Path)):
        from edgemtl.checkpoint import load_checkpoint

        model, ckpt = load_checkpoint(model_or_ckpt)
        dataset = ckpt.get("dataset") or None
    else:
        model = model_or_ckpt
    return run_export(
        model,
        get_target(target),
        out,
        precision,
        task_input,
        options,
        images,
        num_images,
        dataset,
        input_size,
    )


def support_table() -> list[dict[str, Any]]:
    """One row per target: what it declares (docs and tests iterate over this)."""
    return [
        {
            "target": n,
            "suffix": TARGETS.get(n).suffix,
            "precisions": TARGETS.get(n).precisions,
            "task_inputs": TARGETS.get(n).task_inputs,
            "options": TARGETS.get(n).options,
            "runs_here": TARGETS.get(n).runs_here(),
            "description": TARGETS.get(n).description,
        }
        for n in TARGETS.names()
    ]


__all__ = ["TARGETS", "export", "get_target", "runnable_targets", "support_table", "target_class"]
