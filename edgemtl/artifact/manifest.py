"""The manifest: one JSON document per artifact, written beside it (``<artifact>.json``) and embedded
where the format allows (ONNX ``metadata_props`` and CoreML ``userDefined``, key ``edgemtl``).
ExecuTorch programs have no metadata slot; the manifest is the one place that works for all.

It is bound both ways: ``artifact_sha256`` to the artifact's bytes and ``manifest_sha256`` to its
own content. Schema: docs/export.md, "Metadata".
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgemtl.errors import EdgeMTLError

FORMAT = "edgemtl-artifact"
FORMAT_VERSION = 1
METADATA_KEY = "edgemtl"

# What edgemtl.artifact.processing does (also the evaluation pre-processing, edgemtl.data.dataset),
# so an app sees what the metrics were computed on.
RESIZE_POLICY = (
    "stretch the whole RGB image to the input HxW (no crop, no padding, aspect ratio not kept): "
    "cv2.INTER_AREA when shrinking both sides, else cv2.INTER_LINEAR; raw outputs are resized back "
    "to the original size with cv2.INTER_LINEAR before decoding"
)


def manifest_path(artifact: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (also for ``.pte`` and ``.mlpackage``)."""
    p = Path(artifact)
    return p.with_name(p.name + ".json")


def preprocessing(size: tuple[int, int], mean: list[float] | None, std: list[float] | None) -> dict[str, Any]:
    """The manifest's ``preprocessing`` section: what :func:`edgemtl.artifact.processing.preprocess` does."""
    return {
        "input": "image",
        "size_hw": [int(size[0]), int(size[1])],
        "layout": "NCHW, batch 1",
        "color": "RGB",
        "dtype": "float32",
        "range": [0.0, 1.0],
        "scale": "uint8 / 255",
        "normalization": "inside the graph: do NOT subtract mean or divide by std yourself",
        "mean_in_graph": list(mean) if mean else None,
        "std_in_graph": list(std) if std else None,
        "resize": RESIZE_POLICY,
    }


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a file artifact (None for directory artifacts such as .mlpackage)."""
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_size(path: str | os.PathLike) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def manifest_digest(meta: dict[str, Any], legacy: bool = False) -> str:
    """sha256 of the manifest's content (canonical JSON, without this digest itself). ``legacy``:
    as manifests written before non-finite numbers became null digested it (NaN/Infinity kept), so
    that their artifacts still load."""
    body = {k: v for k, v in meta.items() if k != "manifest_sha256"}
    text = json.dumps(body, default=_jsonable) if legacy else to_json(body)
    return hashlib.sha256(json.dumps(json.loads(text), sort_keys=True).encode()).hexdigest()


def write_manifest(artifact: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write ``<artifact>.json``. It is bound both ways: ``artifact_sha256`` to the artifact's bytes,
    ``manifest_sha256`` to its own content, so an edited task order, input size or decoding is refused
    by the runtime instead of silently giving wrong predictions."""
    meta = {
        **meta,
        "artifact": Path(artifact).name,
        "artifact_bytes": artifact_size(artifact),
        "artifact_sha256": file_digest(artifact),
    }
    meta["manifest_sha256"] = manifest_digest(meta)
    path = manifest_path(artifact)
    from edgemtl.data.layout import atomic_write_bytes, json_text

    atomic_write_bytes(path, (json_text(meta, indent=2, default=_jsonable) + "\n").encode())
    return path


def read_manifest(artifact: str | os.PathLike, embedded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest beside ``artifact``; ``embedded`` (e.g. ONNX metadata_props) is the fallback."""
    path = manifest_path(artifact)
    if not path.is_file():
        if embedded is not None:
            return embedded
        raise EdgeMTLError(
            f"missing manifest {path}: edgemtl export writes it beside the artifact; copy it along "
            f"with {Path(artifact).name} (or re-export)"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgeMTLError(f"cannot read manifest {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EdgeMTLError(f"{path} is not an edgemtl manifest (no 'format: {FORMAT}' entry)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise EdgeMTLError(
            f"{path} has manifest format {meta['format_version']}; this edgemtl reads up to "
            f"{FORMAT_VERSION}: upgrade edgemtl"
        )
    check_manifest(meta, path)
    if "manifest_sha256" in meta and meta["manifest_sha256"] not in (
        manifest_digest(meta),
        manifest_digest(meta, legacy=True),
    ):
        raise EdgeMTLError(
            f"{path} was edited after export (its content no longer matches its manifest_sha256): "
            "a changed task order, input size or decoding would give wrong predictions; restore "
            "the .json that came with the artifact, or re-export"
        )
    return meta


# What the runtime reads: a manifest without them was edited or cut short.
REQUIRED = {"tasks": list, "task_input": dict, "preprocessing": dict, "model_config": dict}


def check_manifest(meta: dict[str, Any], where: str | os.PathLike) -> None:
    problems = [f"'{k}' ({t.__name__})" for k, t in REQUIRED.items() if not isinstance(meta.get(k), t)]
    for key in ("methods", "task_outputs"):
        if isinstance(meta.get("task_input"), dict) and not isinstance(meta["task_input"].get(key), dict):
            problems.append(f"'task_input.{key}' (dict)")
    if isinstance(meta.get("preprocessing"), dict) and len(meta["preprocessing"].get("size_hw") or []) != 2:
        problems.append("'preprocessing.size_hw' ([H, W])")
    if problems:
        raise EdgeMTLError(
            f"{where}: manifest lacks or mangles {', '.join(problems)}; it was edited or cut short: "
            "re-export, or copy the .json that came with the artifact"
        )


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def to_json(meta: dict[str, Any]) -> str:
    """Compact JSON (embedded metadata, digests); non-finite numbers as null (data.layout.json_text)."""
    from edgemtl.data.layout import json_text

    return json_text(meta, default=_jsonable)
