"""Which task owns each parameter.

- Stacked per-task tensors ``[T, ...]`` (marked ``_edgemtl_per_task``): row t belongs to task t.
- Parameters inside a ``ModuleDict`` keyed by a task name (heads, per-task decoders, MTI-Net
  blocks; ``a_to_t`` distillation blocks belong to their target ``t``): that task.
- Auxiliary-task modules: ``"_aux"``. Everything else: shared (``None``).
"""

from __future__ import annotations

from torch import nn

STACKED = "_stacked"
AUX = "_aux"


def owner_from_path(path: str, tasks: list[str], aux: list[str]) -> str | None:
    for part in path.split("."):
        for t in tasks:
            if part == t or part.endswith(f"_to_{t}"):
                return t
        if part in aux:
            return AUX
    return None


def param_owners(model: nn.Module) -> dict[str, str | None]:
    """Map parameter name -> owning task, ``"_stacked"``, ``"_aux"`` or ``None`` (shared)."""
    tasks = list(model.task_names)
    aux = list(getattr(model.config, "aux_tasks", {}) or {})
    owners = {}
    for name, p in model.named_parameters():
        owners[name] = (
            STACKED if getattr(p, "_edgemtl_per_task", False) else owner_from_path(name, tasks, aux)
        )
    return owners
