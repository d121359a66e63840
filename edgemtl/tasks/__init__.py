"""Dense prediction tasks, one file each, registered by name.

A task owns everything task-specific: output channels, loss, decoding, metric meter and
visualisation. Nothing else in edgemtl branches on a task name.
"""

from __future__ import annotations

from typing import Any

from edgemtl.registry import Registry
from edgemtl.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task", package="edgemtl.tasks")


def build_task(name: str, meta: dict[str, Any] | None = None, **options: Any) -> Task:
    """Instantiate task ``name`` for a dataset described by ``meta`` (its dataset.json)."""
    return TASKS.get(name).from_meta(meta or {}, **options)


def build_tasks(names: list[str], meta: dict[str, Any] | None = None, **options: Any) -> dict[str, Task]:
    return {n: build_task(n, meta, **options) for n in names}


__all__ = ["TASKS", "Task", "build_task", "build_tasks"]
