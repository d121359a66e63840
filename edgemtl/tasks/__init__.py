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


def task_from_description(name: str, desc: dict[str, Any]) -> Task:
    """Task ``name`` rebuilt from its ``describe()`` dict (a checkpoint's model config or a manifest):
    class names or the channel count, and the depth range where given."""
    meta: dict[str, Any] = {}
    options: dict[str, Any] = {}
    cls = TASKS.get(name)
    if desc.get("class_names") and (desc.get("kind") == "classes" or cls.kind in ("classes", "boxes")):
        meta["classes"] = {name: list(desc["class_names"])}
    elif desc.get("kind") == "classes" or cls.kind == "classes":
        options["num_classes"] = int(desc["out_channels"])
    elif cls.kind == "boxes":
        options["num_classes"] = int(desc["out_channels"]) - 5  # class logits + 4 distances + centre-ness
    if desc.get("depth_range"):
        meta["depth_range"] = list(desc["depth_range"])
    return build_task(name, meta, **options)


def build_tasks(names: list[str], meta: dict[str, Any] | None = None, **options: Any) -> dict[str, Task]:
    return {n: build_task(n, meta, **options) for n in names}


__all__ = ["TASKS", "Task", "build_task", "build_tasks", "task_from_description"]
