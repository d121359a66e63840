"""The manifest of an exported model: what edgemtl.artifact.manifest writes, filled from the model.

The schema, the digests and reading live in edgemtl.artifact.manifest (shared with the runtime);
this module only knows how a model and its dataset become that document.
"""

from __future__ import annotations

from typing import Any

from edgemtl import __version__
from edgemtl.artifact.manifest import FORMAT, FORMAT_VERSION, preprocessing


def task_info(model, dataset: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per task: the task's ``describe()`` (kind, channels, decoding, unit, visual, class names).

    The model config stores each task's description as it was at training; fields added since (or
    missing for models built in code) come from the task registry, built for this model and dataset.
    """
    from edgemtl.tasks import TASKS, task_from_description

    out = {}
    for name in model.task_names:
        stored = {**model.config.tasks[name], "out_channels": int(model.out_channels[name])}
        if name == "depth" and dataset and "depth_range" in dataset:
            stored.setdefault("depth_range", list(dataset["depth_range"]))
        fresh = task_from_description(name, stored).describe() if name in TASKS else {}
        if "class_names" not in stored:  # keep "no names" rather than the registry's class_0, class_1, ...
            fresh.pop("class_names", None)
        out[name] = {**fresh, **stored, "name": name}
    return out


def build_metadata(
    model,
    target: str,
    precision: str,
    io: dict[str, Any],
    size: tuple[int, int],
    options: dict[str, Any],
    dataset: dict[str, Any] | None,
) -> dict[str, Any]:
    cfg = model.config
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgemtl_version": __version__,
        "target": target,
        "precision": precision,
        "target_options": options,
        "arch": cfg.arch,
        "tasks": list(model.task_names),
        "task_info": task_info(model, dataset),
        "task_input": io,
        "preprocessing": preprocessing(size, cfg.mean, cfg.std),
        "model_config": cfg.to_dict(),
        "dataset": dataset or {},
    }
