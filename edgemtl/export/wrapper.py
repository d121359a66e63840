"""The graphs an artifact is exported from: wrappers that give a model the input signature of
edgemtl.artifact.signature (task schemes, guards that return NaN on an invalid task input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from edgemtl.artifact import signature
from edgemtl.artifact.signature import CONDITIONAL_SCHEMES, MULTI_OUTPUT_SCHEMES, SCHEMES
from edgemtl.errors import UnsupportedError, unknown_choice


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
            kind = (
                "task-conditional with a task-modulated encoder (an all-tasks graph would run the "
                "encoder once per task anyway)"
            )
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
        # sqrt(-bad) is -0.0 for a valid input (x + -0.0 == x exactly) and NaN otherwise: a broadcast
        # add that every runtime delegates, where a ``where`` over the output ran outside XNNPACK.
        return out + torch.sqrt(-bad).view(-1, 1, 1, 1)


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
    # Specialised graphs behind a task input (a target's ``specializes``, e.g. ONNX graphs=specialized):
    # one single-task graph per task (``method`` = the task), which the target selects by the task
    # input inside the artifact; ``module`` stays the task-conditional graph the artifact must match.
    branches: list[Graph] | None = None


def _spec(name: str, t: Tensor) -> dict[str, Any]:
    return {"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}


def build_graphs(
    model: nn.Module,
    scheme: str,
    size: tuple[int, int] | None = None,
    per_task_models: dict[str, nn.Module] | None = None,
) -> list[Graph]:
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
        branches = None
        if per_task_models:
            branches = [
                Graph(
                    n,
                    FixedTaskWrapper(per_task_models[n], n),
                    (image,),
                    [_spec("image", image)],
                    [_spec(n, torch.zeros(1, model.out_channels[n], h, w))],
                )
                for n in names
            ]
        return [
            Graph(
                "forward",
                module,
                (image, task),
                [_spec("image", image), _spec("task", task)],
                [_spec("out", out)],
                branches=branches,
            )
        ]
    if scheme == "per-task":
        graphs = []
        for n in names:
            inner = (per_task_models or {}).get(n, model)
            ref = (
                FixedTaskWrapper(model, n)
                if inner is not model and getattr(inner, "stage", None) is None
                else None
            )
            graphs.append(
                Graph(
                    n,
                    FixedTaskWrapper(inner, n),
                    (image,),
                    [_spec("image", image)],
                    [_spec(n, torch.zeros(1, model.out_channels[n], h, w))],
                    ref,
                )
            )
        return graphs
    return [
        Graph(
            "forward",
            AllTasksWrapper(model),
            (image,),
            [_spec("image", image)],
            [_spec(n, torch.zeros(1, model.out_channels[n], h, w)) for n in names],
        )
    ]


def task_io(model: nn.Module, scheme: str, graphs: list[Graph]) -> dict[str, Any]:
    """The manifest's ``task_input`` section for ``model`` exported as ``graphs``."""
    return signature.task_io(
        list(model.task_names),
        dict(model.out_channels),
        scheme,
        {g.method: {"inputs": g.inputs, "outputs": g.outputs} for g in graphs},
    )
