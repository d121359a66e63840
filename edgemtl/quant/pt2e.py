"""PT2E quantization of edgemtl models (XNNPACK quantizer: int8 weights per channel, int8 activations).

Task-selected weights (per-task SE, per-task BN, adapters, stacked heads) are *dynamic* weights
in the graph (computed by the one-hot matmul): quantizing them per channel makes ExecuTorch fail
at lowering or abort at run time (stack-probe gotcha 2). So the task modules are excluded from
quantization by default (``task_weights="float"``: they compute in fp32), or quantized with a
per-tensor config (``"per_tensor"``: their activations and arithmetic run in int8 per tensor;
the XNNPACK quantizer leaves the in-graph selected weights fp32).
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgemtl.errors import EdgeMTLError
from edgemtl.quant.config import QuantConfig


def _quiet_imports():
    # torchao prints loader noise for CUDA-only kernels on a CPU machine; it is harmless.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization import pt2e as pt2e_mod
        from torchao.quantization.pt2e import quantize_pt2e
    return XNNPACKQuantizer, get_symmetric_quantization_config, pt2e_mod, quantize_pt2e


def task_module_types() -> tuple[type, ...]:
    from edgemtl.models.layers import TaskConv2d, TaskHead
    from edgemtl.models.modulation import TaskAdapter, TaskBatchNorm, TaskSE

    return (TaskSE, TaskBatchNorm, TaskAdapter, TaskConv2d, TaskHead)


def make_quantizer(qcfg: QuantConfig, qat: bool, float_types: tuple[type, ...] = ()):
    XNNPACKQuantizer, get_cfg, _, _ = _quiet_imports()
    q = XNNPACKQuantizer().set_global(get_cfg(is_per_channel=True, is_qat=qat))
    task_cfg = None if qcfg.task_weights == "float" else get_cfg(is_per_channel=False, is_qat=qat)
    for t in task_module_types():
        q.set_module_type(t, task_cfg)
    for t in float_types:
        q.set_module_type(t, None)
    return q


@contextmanager
def float_module_types(model: nn.Module, names: list[str]):
    """Give each named module a unique marker subclass while the graph is exported.

    The XNNPACK quantizer cannot exclude a module by name (``set_module_name(name, None)`` is
    unsupported), but it can exclude a module *type*, which export records per node.
    """
    modules = dict(model.named_modules())
    patched = []
    try:
        for name in names:
            if name not in modules:
                from edgemtl.errors import did_you_mean

                raise EdgeMTLError(
                    f"float module '{name}' not in the model.{did_you_mean(name, modules)} "
                    "Per-task heads are named heads.<task> (hard_sharing) or aggregate.<task> (mtinet)"
                )
            mod = modules[name]
            cls = mod.__class__
            mod.__class__ = type(f"Float_{cls.__name__}_{len(patched)}", (cls,), {})
            patched.append((mod, cls))
        yield tuple(m.__class__ for m, _ in patched)
    finally:
        for mod, cls in patched:
            mod.__class__ = cls


def example_inputs(model: nn.Module, batch: int = 2) -> tuple[torch.Tensor, ...]:
    return model.example_inputs(batch, "onehot") if model.conditional else model.example_inputs(batch)


def export_for_quant(model: nn.Module, train: bool) -> Any:
    """torch.export with a dynamic batch dimension (training batches and batch-1 export differ).

    For QAT (``train``) the per-task BNs are traced in eval mode: QAT fine-tunes their affine
    parameters on frozen running statistics. They select the task's rows of stacked statistics (a
    batch norm on copies of those rows in training), so torchao's ``move_exported_model_to_eval``
    cannot switch them after tracing: traced in train mode (then tensor arithmetic),
    the deployed QAT program normalised every image with its own batch statistics (ASTMT SE decoder
    on pascal-like: Δm −17.6 through ONNX Runtime and ExecuTorch at batch 1 against −13.8 for the
    same graph scored at batch 16, and the mean/var arithmetic made it 1.5-2.6x slower than PTQ)."""
    from edgemtl.models.modulation import TaskBatchNorm

    was_training = model.training
    model.train(train)
    for m in model.modules():
        if isinstance(m, TaskBatchNorm):
            m.eval()
    ex = example_inputs(model)
    b = torch.export.Dim("batch", min=1, max=1024)
    dyn = tuple({0: b} for _ in ex)
    try:
        return torch.export.export(model, ex, dynamic_shapes=dyn).module()
    finally:
        model.train(was_training)  # the float model is the caller's: leave its mode as it was


def _mark_per_task(gm: nn.Module, model: nn.Module) -> None:
    """Carry the per-task markers over to the exported module's parameters (same FQNs)."""
    marked = {n for n, p in model.named_parameters() if getattr(p, "_edgemtl_per_task", False)}
    for n, p in gm.named_parameters():
        if n in marked:
            p._edgemtl_per_task = True


def calibrate(prepared: nn.Module, model_like, batches) -> None:
    """Run calibration batches through every task (conditional models see each task's statistics)."""
    with torch.no_grad():
        for image in batches:
            if model_like.conditional:
                t = len(model_like.task_names)
                for i in range(t):
                    onehot = torch.nn.functional.one_hot(torch.full((image.shape[0],), i), t).float()
                    prepared(image, onehot)
            else:
                prepared(image)


def ptq(model: nn.Module, batches, qcfg: QuantConfig | None = None) -> nn.Module:
    """Post-training quantization: export, insert observers, calibrate, convert."""
    qcfg = qcfg or QuantConfig()
    _, _, _, qp = _quiet_imports()
    with float_module_types(model, qcfg.float_modules) as float_types:
        gm = export_for_quant(model, train=False)
    prepared = qp.prepare_pt2e(gm, make_quantizer(qcfg, False, float_types))
    calibrate(prepared, model, batches)
    out = qp.convert_pt2e(prepared)
    _mark_per_task(out, model)
    return out


def prepare_qat(model: nn.Module, qcfg: QuantConfig | None = None) -> nn.Module:
    qcfg = qcfg or QuantConfig()
    _, _, _, qp = _quiet_imports()
    with float_module_types(model, qcfg.float_modules) as float_types:
        gm = export_for_quant(model, train=True)
    prepared = qp.prepare_qat_pt2e(gm, make_quantizer(qcfg, True, float_types))
    _mark_per_task(prepared, model)
    return prepared


def convert(prepared: nn.Module) -> nn.Module:
    """Freeze a QAT module: eval mode, observers off (else outputs drift call to call), convert."""
    _, _, pt2e_mod, qp = _quiet_imports()
    pt2e_mod.move_exported_model_to_eval(prepared)
    prepared.apply(pt2e_mod.disable_observer)
    return qp.convert_pt2e(prepared)


PROGRAM_INFO = "edgemtl.json"  # extra file inside a .pt2: model config, stage, dataset
# What the int8 programs are made by; a bench's quant report made by another is made again.
# 2: QAT traces per-task BN in eval mode (export_for_quant).
PROGRAM_VERSION = 2


def save_program(
    module: nn.Module,
    model_like,
    path: str | os.PathLike,
    stage: str = "converted",
    dataset: dict[str, Any] | None = None,
) -> None:
    """Save a converted module as a torch.export program (.pt2), batch 1, atomically.

    The model config travels inside the file, so ``edgemtl export`` can rebuild task names,
    channels and pre-processing from the .pt2 alone.
    """
    import io
    import json

    from edgemtl.data.layout import atomic_write_bytes

    ep = torch.export.export(module, example_inputs(model_like, 1))
    from edgemtl.card import ModelCard

    info = {**ModelCard.of(model_like, dataset).to_dict(), "stage": stage}
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files={PROGRAM_INFO: json.dumps(info)})
    atomic_write_bytes(Path(path), buf.getvalue())


def load_program(path: str | os.PathLike, with_info: bool = False):
    """The ExportedProgram in a .pt2 (and, ``with_info``, its edgemtl info dict)."""
    import json

    _quiet_imports()  # registers the quantized_decomposed ops the program refers to
    if not Path(path).is_file():
        raise EdgeMTLError(f"quantized program not found: {path}")
    extra = {PROGRAM_INFO: ""}
    try:
        ep = torch.export.load(str(path), extra_files=extra)
    except Exception as e:
        raise EdgeMTLError(f"cannot read quantized program {path}: {str(e)[:300]}") from None
    if not with_info:
        return ep
    if not extra[PROGRAM_INFO]:
        raise EdgeMTLError(
            f"{path} has no edgemtl model info (saved by an older edgemtl): re-run 'edgemtl qat'"
        )
    return ep, json.loads(extra[PROGRAM_INFO])


def load_quantized_model(path: str | os.PathLike):
    """A .pt2 from ``edgemtl qat`` as a QuantizedModel (the float model is rebuilt from its config
    for task names, channels and normalisation; its weights are not needed)."""
    from edgemtl.card import ModelCard
    from edgemtl.quant.wrapper import QuantizedModel

    ep, info = load_program(path, with_info=True)
    if info.get("stage") != "ptq" and any(
        n.op == "call_function" and str(n.target).startswith("aten.var") for n in ep.graph.nodes
    ):
        # QAT programs made before export_for_quant traced per-task BN in eval mode normalise
        # with batch statistics: deployed, every image would be normalised by itself.
        raise EdgeMTLError(
            f"{path} normalises with batch statistics (a QAT program from an edgemtl before the "
            "per-task BN fix): re-run 'edgemtl qat' on its checkpoint"
        )
    reference = ModelCard.from_dict(info, path).build_model()
    return QuantizedModel(ep.module(), reference, "ptq" if info.get("stage") == "ptq" else "converted"), info
