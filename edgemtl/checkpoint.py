"""Checkpoints: one self-describing file, written atomically, read with ``weights_only=True``.

Layout (a plain dict of tensors and builtins, so no pickle code runs on load)::

    format: "edgemtl-checkpoint", format_version: 1, edgemtl_version
    model_config: ModelConfig.to_dict()       (tasks carry their class names, units, decoding)
    state_dict: the model's weights
    dataset: dataset.json subset (name, classes, depth_range, edge_max_dist, ...)
    extra: free-form (trainer state, metrics, ...)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from edgemtl import __version__
from edgemtl.data.layout import atomic_write_bytes
from edgemtl.errors import EdgeMTLError

FORMAT = "edgemtl-checkpoint"
FORMAT_VERSION = 1
_DATASET_KEYS = (
    "name",
    "tasks",
    "classes",
    "ignore_index",
    "depth_range",
    "edge_max_dist",
    "image_size",
    "preset",
)


def save_checkpoint(
    path: str | os.PathLike, model, dataset_meta: dict | None = None, extra: dict | None = None
) -> None:
    cfg = model.config.to_dict()
    cfg["pretrained"] = None  # the weights are in the file; never re-download on load
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgemtl_version": __version__,
        "model_config": cfg,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dataset": {k: v for k, v in (dataset_meta or {}).items() if k in _DATASET_KEYS},
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EdgeMTLError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            # torch's own message suggests weights_only=False: exactly what must not be done with a
            # stranger's file.
            raise EdgeMTLError(
                f"{path} is not a plain edgemtl checkpoint: it holds pickled Python objects, which "
                "edgemtl will not unpickle (unpickling can run arbitrary code). Use a checkpoint "
                "written by edgemtl, or re-save the weights as a plain state_dict"
            ) from None
        raise EdgeMTLError(
            f"cannot read checkpoint {path} (truncated or not an edgemtl checkpoint): {str(e)[:300]}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise EdgeMTLError(f"{path} is not an edgemtl checkpoint (no 'format: {FORMAT}' entry)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise EdgeMTLError(
            f"{path} has checkpoint format {ckpt['format_version']}; this edgemtl reads up to "
            f"{FORMAT_VERSION}: upgrade edgemtl"
        )
    return ckpt


def load_checkpoint(path: str | os.PathLike):
    """Rebuild the model from a checkpoint; returns ``(model, checkpoint_dict)``."""
    from edgemtl.models import create_model

    ckpt = read_checkpoint(path)
    model = create_model(ckpt["model_config"])
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise EdgeMTLError(
            f"checkpoint {path} does not match its own model config: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}"
        )
    return model.eval(), ckpt
