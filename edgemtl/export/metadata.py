"""The manifest of an exported model: what edgemtl.artifact.manifest writes, filled from the model.

The schema, the digests and reading live in edgemtl.artifact.manifest (shared with the runtime);
this module only knows how a model and its dataset become that document. The model's part (config,
dataset subset, task descriptions) is its card (edgemtl.card), written as into checkpoints.
"""

from __future__ import annotations

from typing import Any

from edgemtl import __version__
from edgemtl.artifact.manifest import FORMAT, FORMAT_VERSION, preprocessing


def build_metadata(
    model,
    target: str,
    precision: str,
    io: dict[str, Any],
    size: tuple[int, int],
    options: dict[str, Any],
    dataset: dict[str, Any] | None,
) -> dict[str, Any]:
    from edgemtl.card import ModelCard

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
        "task_input": io,
        "preprocessing": preprocessing(size, cfg.mean, cfg.std),
        **ModelCard.of(model, dataset).to_dict(),  # model_config, dataset, task_info
    }
