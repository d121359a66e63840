"""The export signature: the ONLY place that knows how a task is encoded for an exported graph.

Task-input schemes (``--task-input``):

========== ============================ ================================================================
scheme     graph inputs                 outputs
========== ============================ ================================================================
onehot     image f32 [1,3,H,W],         ``out`` f32 [1,C_max,H,W]: the selected task's channels first,
           task f32 [1,T] (task order)  the rest zero (task-conditional models only)
index      image, task int64 [1]        ``out`` as above. The id becomes a one-hot *inside* the graph
                                        (``Equal`` against 0..T-1), so there is no gather.
per-task   image                        one method/function per task, named after the task, with the
                                        task baked in (edgemtl.models.specialize: static weights
                                        only, so BN folds and the whole graph delegates); output
                                        named after the task [1,C_t,H,W]
all        image                        one output per task, named after the task, in task order
                                        (multi-output models: hard_sharing, mtinet, padnet, single_task;
                                        and astmt with a task-independent encoder, which then
                                        runs the encoder once and the decoder once per task)
========== ============================ ================================================================

Graphs cannot raise, and ONNX Runtime silently wraps ``task = -1`` to the last task; so with a
task input the graph returns all-NaN when the input is not exactly one valid task (out-of-range
id, or a one-hot that is not 0/1 with a single 1). :func:`encode_task` (used by the runtime)
rejects such inputs before they reach the graph with an :class:`EdgeMTLError`.

Everything below the graph helpers is numpy-only so the runtime can encode and decode without
tracing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from edgemtl.errors import EdgeMTLError, UnsupportedError, unknown_choice

SCHEMES = ("onehot", "index", "per-task", "all")
CONDITIONAL_SCHEMES = ("onehot", "index", "per-task")
MULTI_OUTPUT_SCHEMES = ("all", "per-task")


def default_scheme(model: nn.Module) -> str:
    """One-hot for task-conditional models (plain matmul, no gather); all outputs otherwise."""
    return "onehot" if model.conditional else "all"


def valid_schemes(model: nn.Module) -> tuple[str, ...]:
    if not model.conditional:
        return MULTI_OUTPUT_SCHEMES
    # "all" is worth having only where the encoder runs once for every task.
    return CONDITIONAL_SCHEMES + (("all",) if model.encoder_shared else ())


def check_scheme(model: nn.Module, scheme: str | None) -> str:
    """Resolve ``None`` to the default and reject schemes the model cannot have."""
    scheme = scheme or default_scheme(model)
    if scheme not in SCHEMES:
        raise unknown_choice("--task-input", scheme, SCHEMES)
    valid = valid_schemes(model)
    if scheme not in valid:
        if model.conditional:
            kind = ("task-conditional with a task-modulated encoder (an all-tasks graph would run the "
                    "encoder once per task anyway)")
        else:
            kind = "multi-output (it computes every task in one pass)"
        raise UnsupportedError(
            f"--task-input {scheme} does not apply to arch '{model.config.arch}', which is {kind}: "
            f"use one of {', '.join(valid)}"
        )
    return scheme


class _TaskGuard(nn.Module):
    """Shared by the one-hot and index wrappers: NaN unless the task input selects exactly one task."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("ids", torch.arange(len(model.task_names)), persistent=False)

    def run(self, image: Tensor, onehot: Tensor) -> Tensor:
        # Arithmetic rather than boolean logic: CoreML's converter rejects the fx ``__or__`` node.
        # 0 exactly when every entry is 0 or 1 and there is a single 1.
        bad = (onehot * (1 - onehot)).abs().sum(1) + (onehot.sum(1) - 1).abs()
        out = self.model(image, onehot)
        return torch.where(bad.view(-1, 1, 1, 1) == 0, out, torch.full_like(out, float("nan")))


class OneHotWrapper(_TaskGuard):
    def forward(self, image: Tensor, task: Tensor) -> Tensor:
        return self.run(image, task)


class IndexWrapper(_TaskGuard):
    def forward(self, image: Tensor, task: Tensor) -> Tensor:
        # Equal + cast instead of a gather: CoreML and ANE dislike int gathers, and an
        # out-of-range id gives an all-zero row that the guard turns into NaN.
        return self.run(image, (task.view(-1, 1) == self.ids.view(1, -1)).to(image.dtype))


class FixedTaskWrapper(nn.Module):
    """One task baked in: ``forward(image) -> [1, C_t, H, W]``. ``model`` may be the model
    specialised to the task (edgemtl.models.specialize) or the task-conditional model itself."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.channels = int(model.out_channels[task])
        onehot = torch.zeros(1, len(model.task_names))
        onehot[0, model.task_names.index(task)] = 1
        self.register_buffer("onehot", onehot, persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        if self.model.conditional:
            out = self.model(image, self.onehot)
            # A full-width slice exports as an ``alias`` node, which coremltools rejects.
            return out if out.shape[1] == self.channels else out[:, : self.channels]
        return self.model(image)[self.task]


class AllTasksWrapper(nn.Module):
    """Every task in one call, as a tuple in task order (graphs have no dicts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        # forward_all: astmt runs its shared encoder once here; multi-output models are one pass.
        out = self.model.forward_all(image) if self.model.conditional else self.model(image)
        return tuple(out[t] for t in self.model.task_names)


@dataclass
class Graph:
    """One graph to export: an ONNX model, a .pte method or a CoreML function."""

    method: str  # "forward", or the task name for per-task
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: list[dict[str, Any]]  # [{name, dtype, shape}]
    outputs: list[dict[str, Any]]
    # What verification compares the artifact with when it is not ``module`` itself: the
    # task-conditional model a specialised graph was derived from (fp32), so a specialisation
    # error cannot hide behind a self-consistent graph.
    reference: nn.Module | Callable[..., Any] | None = None


def _spec(name: str, t: Tensor) -> dict[str, Any]:
    return {"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}


def build_graphs(model: nn.Module, scheme: str, size: tuple[int, int] | None = None,
                 per_task_models: dict[str, nn.Module] | None = None) -> list[Graph]:
    """Wrap ``model`` (eval mode, batch 1, input ``size`` or the config's) into the graphs of ``scheme``.

    ``per_task_models`` (per-task scheme): the module to export for each task, e.g. the model
    specialised to it and possibly quantized; ``model`` then stays the fp32 reference.
    """
    scheme = check_scheme(model, scheme)
    model = model.eval()
    h, w = size or model.config.image_size
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    names, t = list(model.task_names), len(model.task_names)
    c_max = max(model.out_channels.values())
    out = torch.zeros(1, c_max, h, w)
    if scheme in ("onehot", "index"):
        task = torch.zeros(1, t) if scheme == "onehot" else torch.zeros(1, dtype=torch.long)
        if scheme == "onehot":
            task[0, 0] = 1
        module = OneHotWrapper(model) if scheme == "onehot" else IndexWrapper(model)
        return [Graph("forward", module, (image, task), [_spec("image", image), _spec("task", task)], [_spec("out", out)])]
    if scheme == "per-task":
        graphs = []
        for n in names:
            inner = (per_task_models or {}).get(n, model)
            ref = FixedTaskWrapper(model, n) if inner is not model and getattr(inner, "stage", None) is None else None
            graphs.append(Graph(n, FixedTaskWrapper(inner, n), (image,), [_spec("image", image)],
                                [_spec(n, torch.zeros(1, model.out_channels[n], h, w))], ref))
        return graphs
    return [Graph("forward", AllTasksWrapper(model), (image,), [_spec("image", image)],
                  [_spec(n, torch.zeros(1, model.out_channels[n], h, w)) for n in names])]


def task_io(model: nn.Module, scheme: str, graphs: list[Graph]) -> dict[str, Any]:
    """The manifest's ``task_input`` section: how to call the artifact for each task."""
    names = list(model.task_names)
    encoding = {
        "onehot": f"input 'task': float32 [1, {len(names)}], 1.0 at the task's position in 'tasks', 0.0 elsewhere",
        "index": "input 'task': int64 [1], the task's position in 'tasks' (0-based)",
        "per-task": "no task input: call the method/function named after the task",
        "all": "no task input: every call returns every task, one output per task",
    }[scheme]
    outputs = {}
    for n in names:
        if scheme in ("onehot", "index"):
            outputs[n] = {"method": "forward", "output": "out", "index": 0, "channels": [0, model.out_channels[n]]}
        elif scheme == "per-task":
            outputs[n] = {"method": n, "output": n, "index": 0, "channels": [0, model.out_channels[n]]}
        else:
            outputs[n] = {"method": "forward", "output": n, "index": names.index(n), "channels": [0, model.out_channels[n]]}
    return {
        "scheme": scheme,
        "tasks": names,
        "encoding": encoding,
        "invalid_task": "the graph returns NaN (graphs cannot raise); edgemtl.runtime rejects it first"
        if scheme in ("onehot", "index") else None,
        "methods": {g.method: {"inputs": g.inputs, "outputs": g.outputs} for g in graphs},
        "task_outputs": outputs,
    }


# ---- numpy side (runtime and verification) -------------------------------------------------


def encode_task(io: dict[str, Any], task: str | int) -> tuple[str, list[np.ndarray]]:
    """(method name, extra inputs after the image) for ``task`` (a name or an id)."""
    names = io["tasks"]
    if isinstance(task, str):
        if task not in names:
            raise unknown_choice("task", task, names)
        idx = names.index(task)
    else:
        # Only whole task ids: int(1.7) or int(True) would silently run another task.
        if isinstance(task, (bool, np.bool_)) or not isinstance(task, (int, np.integer)):
            raise EdgeMTLError(f"task must be a task name ({', '.join(names)}) or an integer id 0..{len(names) - 1}, "
                               f"got {task!r} ({type(task).__name__})")
        idx = int(task)
        if not 0 <= idx < len(names):
            raise EdgeMTLError(f"task id {idx} out of range: this model has tasks 0..{len(names) - 1} ({', '.join(names)})")
    scheme = io["scheme"]
    if scheme == "onehot":
        onehot = np.zeros((1, len(names)), dtype=np.float32)
        onehot[0, idx] = 1
        return "forward", [onehot]
    if scheme == "index":
        return "forward", [np.array([idx], dtype=np.int64)]
    if scheme == "per-task":
        return names[idx], []
    return "forward", []


def select_output(io: dict[str, Any], task: str, outputs: list[np.ndarray]) -> np.ndarray:
    """The task's raw output [1, C_t, H, W] out of a call's outputs."""
    spec = io["task_outputs"][task]
    lo, hi = spec["channels"]
    return outputs[spec["index"]][:, lo:hi]
