"""The task-selection input.

A model takes ``task`` as a tensor so one code path serves eager PyTorch and exported graphs:
either a float one-hot ``[B, T]`` or an int64 index ``[B]``. Task-specific weights are stacked
along a leading ``T`` axis and selected per sample: by ``onehot @ W`` (plain matmul, no gather,
which CoreML and ANE prefer) or by ``index_select`` (a gather). Multiplying by exact 0/1 values
adds only exact zeros, so both selections give bit-identical outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgemtl.errors import EdgeMTLError


class TaskContext:
    """Holds the current task input while a task-conditional forward runs.

    Modulation modules deep inside a (timm) backbone read it instead of having the task threaded
    through every block's forward signature, which would mean re-implementing timm's blocks.
    """

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self.onehot: Tensor | None = None
        self.index: Tensor | None = None

    def set(self, task: Tensor | None) -> None:
        self.onehot = self.index = None
        if task is None:
            return
        if task.dtype.is_floating_point:
            self.onehot = task
        else:
            self.index = task

    def clear(self) -> None:
        self.onehot = self.index = None

    @property
    def active(self) -> bool:
        return self.onehot is not None or self.index is not None

    def select(self, stacked: Tensor) -> Tensor:
        """[T, *shape] -> per-sample [B, *shape] for the current task input."""
        if self.onehot is not None:
            flat = stacked.reshape(stacked.shape[0], -1)
            onehot = self.onehot.to(flat.dtype)
            if onehot.shape[0] == 1:
                # Batch 1 (every exported graph): a bmm, which ExecuTorch's XNNPACK partitioner delegates
                # (it leaves a 2-D mm to the portable kernels, and each one split the delegated graph).
                # Same products and sums as the mm: bit-identical.
                picked = torch.bmm(onehot.reshape(1, 1, -1), flat.reshape(1, *flat.shape))
                return picked.reshape(1, *stacked.shape[1:])
            return (onehot @ flat).reshape(self.onehot.shape[0], *stacked.shape[1:])
        if self.index is not None:
            return torch.index_select(stacked, 0, self.index)
        raise RuntimeError("task-conditional module called without a task input")

    def select_first(self, stacked: Tensor) -> Tensor:
        """[T, *shape] -> [*shape] for the task of sample 0 (batches are single-task in training)."""
        return self.select(stacked)[0]

    def first(self) -> Tensor:
        """The task of sample 0 as a one-element index tensor (no host sync on CUDA)."""
        if self.onehot is not None:
            return self.onehot[:1].argmax(1)
        if self.index is not None:
            return self.index[:1].long()
        raise RuntimeError("task-conditional module called without a task input")


def check_task_tensor(task: Tensor, num_tasks: int, batch: int) -> None:
    """Validate a task input eagerly (skipped while tracing/exporting)."""
    if task.dtype.is_floating_point:
        if task.dim() != 2 or task.shape[1] != num_tasks or task.shape[0] not in (1, batch):
            raise EdgeMTLError(
                f"one-hot task input must have shape [B, {num_tasks}] (got {list(task.shape)})"
            )
        ok = ((task == 0) | (task == 1)).all() and (task.sum(1) == 1).all()
        if not bool(ok):
            raise EdgeMTLError("one-hot task input must hold exactly one 1 per row and 0 elsewhere")
    else:
        if task.dim() != 1 or task.shape[0] not in (1, batch):
            raise EdgeMTLError(f"task index input must have shape [B] (got {list(task.shape)})")
        if bool(((task < 0) | (task >= num_tasks)).any()):
            raise EdgeMTLError(f"task index out of range: {task.tolist()} (valid: 0..{num_tasks - 1})")


def task_tensor(names: list[str], task: str | int | Tensor, batch: int = 1, mode: str = "index") -> Tensor:
    """Build a task input for ``task`` (a name, an id or an existing tensor)."""
    if isinstance(task, Tensor):
        return task
    if isinstance(task, str):
        if task not in names:
            from edgemtl.errors import unknown_choice

            raise unknown_choice("task", task, names)
        idx = names.index(task)
    else:
        idx = int(task)
        if not 0 <= idx < len(names):
            raise EdgeMTLError(f"task id {idx} out of range (valid: 0..{len(names) - 1})")
    index = torch.full((batch,), idx, dtype=torch.long)
    if mode == "index":
        return index
    if mode == "onehot":
        return torch.nn.functional.one_hot(index, len(names)).float()
    raise EdgeMTLError(f"unknown task input mode '{mode}' (valid: index, onehot)")
