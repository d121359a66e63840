"""The model card: what a trained model is, written the same way into every file edgemtl makes.

A card is three things:

- ``model_config``: the ModelConfig that rebuilds the network. ``pretrained`` is always None: the
  file holds the weights, so a card never asks for a download.
- ``dataset``: the part of the dataset's description (dataset.json) that decoding and evaluation
  need. That is class names, ignore index, depth range and edge tolerance; it is ``DATASET_KEYS``.
- ``task_info``: each task's ``describe()``, i.e. its kind, channels, decoding, units and colouring.

It is written by one serializer (``ModelCard.of(model, dataset).to_dict()``) into three places:

- checkpoints (edgemtl.checkpoint);
- int8 programs (``.pt2``, edgemtl.quant.pt2e);
- artifact manifests (edgemtl.export.metadata).

It is read back by one loader, ``ModelCard.from_dict``, or ``read_card(path)`` for any of those
files. The loader validates the card and names the file when something is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemtl.errors import EdgeMTLError

DATASET_KEYS = (
    "name",
    "tasks",
    "classes",
    "ignore_index",
    "depth_range",
    "edge_max_dist",
    "image_size",
    "preset",
)


def dataset_subset(meta: dict[str, Any] | None) -> dict[str, Any]:
    """The keys of a dataset.json that travel with a model (the rest describe files, not the model)."""
    return {k: v for k, v in (meta or {}).items() if k in DATASET_KEYS}


def task_info(config, dataset: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per task: the task's ``describe()`` (kind, channels, decoding, unit, visual, class names).

    The model config stores each task's description as it was at training. Fields added since, or
    missing for models built in code, come from the task registry, built for this model and dataset.
    """
    from edgemtl.tasks import TASKS, task_from_description

    out = {}
    for name, described in config.tasks.items():
        stored = {**described, "out_channels": int(described["out_channels"])}
        if name == "depth" and dataset and "depth_range" in dataset:
            stored.setdefault("depth_range", list(dataset["depth_range"]))
        fresh = task_from_description(name, stored).describe() if name in TASKS else {}
        if "class_names" not in stored:  # keep "no names" rather than the registry's class_0, ...
            fresh.pop("class_names", None)
        out[name] = {**fresh, **stored, "name": name}
    return out


@dataclass(frozen=True)
class ModelCard:
    config: Any  # ModelConfig
    dataset: dict[str, Any] = field(default_factory=dict)
    task_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, model, dataset: dict[str, Any] | None = None) -> ModelCard:
        """The card of a model built in this process (``dataset``: its dataset.json, or a subset)."""
        config = model.config.replace(pretrained=None)
        subset = dataset_subset(dataset)
        return cls(config, subset, task_info(config, subset))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_config": self.config.to_dict(),
            "dataset": dict(self.dataset),
            "task_info": {k: dict(v) for k, v in self.task_info.items()},
        }

    @classmethod
    def from_dict(cls, d: Any, source: str | os.PathLike) -> ModelCard:
        """The card stored in ``d`` (a checkpoint, a .pt2's info or a manifest), validated.

        Errors name ``source``. Cards written before ``task_info`` was stored get theirs rebuilt
        from the config.
        """
        from edgemtl.models.config import ModelConfig

        cfg = d.get("model_config") if isinstance(d, dict) else None
        if not isinstance(cfg, dict):
            raise EdgeMTLError(
                f"{source}: no model card (its 'model_config' entry is missing): it was not written "
                "by edgemtl, or was cut short; re-export or re-train"
            )
        try:
            config = ModelConfig.from_dict({**cfg, "pretrained": None})
        except EdgeMTLError as e:
            raise EdgeMTLError(
                f"{source}: its model config is not valid for this edgemtl ({e}); "
                "use the edgemtl version that wrote it"
            ) from None
        dataset = d.get("dataset") or {}
        if not isinstance(dataset, dict):
            raise EdgeMTLError(
                f"{source}: its 'dataset' entry must be a mapping (got {type(dataset).__name__})"
            )
        stored = d.get("task_info")
        if stored is not None and (not isinstance(stored, dict) or set(stored) != set(config.tasks)):
            raise EdgeMTLError(
                f"{source}: its task_info lists {sorted(stored) if isinstance(stored, dict) else stored} "
                f"but its model predicts {sorted(config.tasks)}: the file was edited; re-export"
            )
        info = stored if stored is not None else task_info(config, dataset)
        return cls(config, dataset_subset(dataset), info)

    def build_model(self):
        """The model this card describes, untrained, in eval mode (load the weights into it)."""
        from edgemtl.models import create_model

        return create_model(self.config).eval()


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card of any file edgemtl writes.

    That is a checkpoint (.pt/.pth/.ckpt), an int8 program (.pt2) or an exported artifact (its
    manifest).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".ckpt"):
        from edgemtl.checkpoint import read_checkpoint

        return ModelCard.from_dict(read_checkpoint(path), path)
    if suffix == ".pt2":
        from edgemtl.quant.pt2e import load_program

        return ModelCard.from_dict(load_program(path, with_info=True)[1], path)
    from edgemtl.export import TARGETS

    if suffix in {TARGETS.get(n).suffix for n in TARGETS.names()}:
        from edgemtl.artifact.manifest import read_manifest

        return ModelCard.from_dict(read_manifest(path), path)
    raise EdgeMTLError(
        f"{path}: no model card in a '{suffix}' file; edgemtl writes checkpoints (.pt), int8 programs "
        "(.pt2) and artifacts with a manifest (.onnx, .pte, .mlpackage, .tflite)"
    )
