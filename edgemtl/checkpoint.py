"""Checkpoints: one self-describing file, written atomically, read with ``weights_only=True``.

Layout (a plain dict of tensors and builtins, so no pickle code runs on load)::

    format: "edgemtl-checkpoint", format_version: 1, edgemtl_version
    model_config, dataset, task_info: the model card (edgemtl.card), as in .pt2 programs and manifests
    state_dict: the model's weights
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


def save_checkpoint(
    path: str | os.PathLike, model, dataset_meta: dict | None = None, extra: dict | None = None
) -> None:
    from edgemtl.card import ModelCard

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgemtl_version": __version__,
        **ModelCard.of(model, dataset_meta).to_dict(),  # pretrained: None (the weights are in the file)
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming ``what`` (e.g. "checkpoint").

    torch's own messages run to a page and suggest ``weights_only=False``: exactly what must not be done
    with a stranger's file. A file that is not a zip archive (what torch.save writes) gets no unpickling
    diagnosis: an image or a truncated copy is not "pickled Python objects"."""
    import zipfile

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        unsafe = "Weights only load failed" in str(e) or "Unsupported global" in str(e)
        if unsafe and zipfile.is_zipfile(path):
            raise EdgeMTLError(
                f"{path} is not a plain {what}: it holds pickled Python objects, which edgemtl will not "
                "unpickle (unpickling can run arbitrary code). Re-save the weights as a plain state_dict "
                "of tensors (or use a .safetensors file)"
            ) from None
        raise EdgeMTLError(
            f"cannot read {what} {path}: truncated, or not a file torch.save wrote (an image, an exported "
            "artifact, an interrupted copy?)"
        ) from None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        inside = [n for n in ("best.pt", "last.pt") if (path / n).is_file()]
        hint = (
            f"pass {path / inside[0]}" if inside else "pass the best.pt or last.pt of an 'edgemtl train' run"
        )
        raise EdgeMTLError(f"checkpoint {path} is a folder, not a checkpoint file: {hint}")
    if not path.is_file():
        raise EdgeMTLError(f"checkpoint not found: {path}")
    try:
        ckpt = load_torch_file(path, "edgemtl checkpoint")
    except EdgeMTLError as e:
        raise EdgeMTLError(f"{e}: pass the best.pt or last.pt of an 'edgemtl train' run") from None
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
    from edgemtl.card import ModelCard

    ckpt = read_checkpoint(path)
    model = ModelCard.from_dict(ckpt, path).build_model()
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise EdgeMTLError(
            f"checkpoint {path} does not match its own model config: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}"
        )
    return model.eval(), ckpt
