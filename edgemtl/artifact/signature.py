"""The input signature of an artifact: how a task is encoded in a call and where its output is.

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
id, or a one-hot that is not 0/1 with a single 1). :func:`encode_task` rejects such inputs before
they reach the graph. The graphs themselves are built by edgemtl.export.wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemtl.errors import EdgeMTLError, unknown_choice

SCHEMES = ("onehot", "index", "per-task", "all")
CONDITIONAL_SCHEMES = ("onehot", "index", "per-task")
MULTI_OUTPUT_SCHEMES = ("all", "per-task")
ENCODING = {
    "onehot": "input 'task': float32 [1, {t}], 1.0 at the task's position in 'tasks', 0.0 elsewhere",
    "index": "input 'task': int64 [1], the task's position in 'tasks' (0-based)",
    "per-task": "no task input: call the method/function named after the task",
    "all": "no task input: every call returns every task, one output per task",
}


def task_io(
    names: list[str], out_channels: dict[str, int], scheme: str, methods: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The manifest's ``task_input`` section: how to call the artifact for each task.
    ``methods``: method name -> ``{"inputs": [...], "outputs": [...]}`` specs of the exported graphs."""
    outputs = {}
    for n in names:
        channels = [0, int(out_channels[n])]
        if scheme in ("onehot", "index"):
            outputs[n] = {"method": "forward", "output": "out", "index": 0, "channels": channels}
        elif scheme == "per-task":
            outputs[n] = {"method": n, "output": n, "index": 0, "channels": channels}
        else:
            outputs[n] = {"method": "forward", "output": n, "index": names.index(n), "channels": channels}
    return {
        "scheme": scheme,
        "tasks": list(names),
        "encoding": ENCODING[scheme].format(t=len(names)),
        "invalid_task": "the graph returns NaN (graphs cannot raise); edgemtl.runtime rejects it first"
        if scheme in ("onehot", "index")
        else None,
        "methods": methods,
        "task_outputs": outputs,
    }


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
            raise EdgeMTLError(
                f"task must be a task name ({', '.join(names)}) or an integer id 0..{len(names) - 1}, "
                f"got {task!r} ({type(task).__name__})"
            )
        idx = int(task)
        if not 0 <= idx < len(names):
            raise EdgeMTLError(
                f"task id {idx} out of range: this model has tasks 0..{len(names) - 1} ({', '.join(names)})"
            )
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


def task_name(io: dict[str, Any], task: str | int) -> str:
    """The task's name, ``task`` being a name or an id already accepted by :func:`encode_task`."""
    return task if isinstance(task, str) else io["tasks"][int(task)]


def select_output(io: dict[str, Any], task: str, outputs: list[np.ndarray]) -> np.ndarray:
    """The task's raw output [1, C_t, H, W] out of a call's outputs."""
    spec = io["task_outputs"][task]
    lo, hi = spec["channels"]
    return outputs[spec["index"]][:, lo:hi]
