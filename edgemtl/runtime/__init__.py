"""Run exported edgemtl artifacts: ``edgemtl.runtime.load(path)`` for ``.onnx`` (ONNX Runtime) and
``.pte`` (ExecuTorch).

    rt = edgemtl.runtime.load("model.onnx", threads=2)
    pred = rt.predict(rgb_uint8, "depth")       # {"raw", "prediction", "unit", ...}
    png = rt.visualize(pred)                      # uint8 RGB, same size as the input image

Everything comes from the artifact's manifest (``<artifact>.json``, see edgemtl.export.metadata):
task order and encoding, input size, decoding, units, class names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.errors import EdgeMTLError, UnsupportedError, unknown_choice
from edgemtl.export.metadata import check_manifest, file_digest, read_manifest
from edgemtl.export.wrapper import encode_task, select_output
from edgemtl.runtime.backends import open_backend
from edgemtl.runtime.processing import check_image, preprocess, resize_output


class Model:
    """A loaded artifact. ``tasks`` are the task names in the artifact's order."""

    def __init__(self, path: Path, backend: Any, metadata: dict[str, Any]) -> None:
        self.path = path
        self.backend = backend
        self.metadata = metadata
        self.io = metadata["task_input"]
        self.tasks: list[str] = list(metadata["tasks"])
        self.input_size: tuple[int, int] = tuple(metadata["preprocessing"]["size_hw"])  # type: ignore[assignment]
        self.threads = backend.threads
        self._task_objs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"edgemtl.runtime.Model({self.path.name}, {self.backend.name}, tasks={self.tasks}, "
                f"input={self.input_size[0]}x{self.input_size[1]}, task_input={self.io['scheme']})")

    def run(self, x: np.ndarray, task: str | int) -> np.ndarray:
        """Raw graph call: float32 [1, 3, H, W] in [0, 1] -> the task's raw output [1, C, H, W]."""
        h, w = self.input_size
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != (1, 3, h, w):
            got = f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
            raise EdgeMTLError(f"run() takes float32 [1, 3, {h}, {w}] (RGB in [0,1]), got {got}; "
                               "predict() takes uint8 HxWx3 images of any size")
        method, extra = encode_task(self.io, task)
        name = task if isinstance(task, str) else self.tasks[int(task)]
        return select_output(self.io, name, self.backend.run(method, [x, *extra]))

    def predict(self, image: np.ndarray, task: str | int, resize: bool = True) -> dict[str, Any]:
        """uint8 HxWx3 RGB -> raw output (model resolution) and decoded prediction (image resolution).

        ``resize=False`` demands an image of exactly the model input size.
        """
        image = check_image(image)
        encode_task(self.io, task)  # validate the task before any work
        name = task if isinstance(task, str) else self.tasks[int(task)]
        raw = self.run(preprocess(image, self.input_size, resize), name)
        full = resize_output(raw, image.shape[:2])
        info = self.metadata["task_info"][name]
        pred = {"task": name, "raw": raw[0], "prediction": self._decode(name, full), "decoding": info.get("decoding"),
                "unit": info.get("unit"), "kind": info.get("kind")}
        if info.get("class_names"):
            pred["class_names"] = info["class_names"]
        return pred

    def visualize(self, pred: dict[str, Any], task: str | None = None) -> np.ndarray:
        """A prediction from :meth:`predict` -> uint8 RGB image (the task's own colouring)."""
        name = task or pred["task"]
        if name not in self.tasks:
            raise unknown_choice("task", name, self.tasks)
        return np.ascontiguousarray(self.task(name).visualize(pred["prediction"]), dtype=np.uint8)

    def task(self, name: str):
        """The edgemtl Task rebuilt from the manifest (decoding and visualisation)."""
        if name not in self._task_objs:
            self._task_objs[name] = _build_task(name, self.metadata["task_info"][name])
        return self._task_objs[name]

    def _decode(self, name: str, raw: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.task(name).decode(torch.from_numpy(np.ascontiguousarray(raw)))[0].numpy()


def _build_task(name: str, info: dict[str, Any]):
    from edgemtl.tasks import TASKS, build_task

    if name not in TASKS:
        raise EdgeMTLError(f"task '{name}' of this artifact is not an edgemtl task "
                           f"(known: {', '.join(TASKS.names())}): upgrade edgemtl")
    meta: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if info.get("kind") == "classes":
        if info.get("class_names"):
            meta["classes"] = {name: info["class_names"]}
        else:
            options["num_classes"] = int(info["out_channels"])
    if "depth_range" in info:
        meta["depth_range"] = info["depth_range"]
    return build_task(name, meta, **options)


def load(path: str | os.PathLike, threads: int | None = None, allow_unverified: bool = False) -> Model:
    """Load an ``.onnx`` or ``.pte`` artifact exported by ``edgemtl export`` (manifest beside it)."""
    path = Path(path)
    if not path.exists():
        raise EdgeMTLError(f"artifact not found: {path}")
    if path.suffix.lower() == ".mlpackage":
        open_backend(path)  # raises UnsupportedError with the explanation
    embedded = _onnx_embedded(path) if path.suffix.lower() == ".onnx" and not Path(f"{path}.json").exists() else None
    meta = read_manifest(path, embedded)
    if embedded is not None and meta is embedded:
        check_manifest(meta, f"{path} (embedded metadata)")
    digest = meta.get("artifact_sha256")
    if digest and file_digest(path) != digest:
        raise EdgeMTLError(f"{path} does not match its manifest (sha256 differs): the file is truncated, corrupt or "
                           "was replaced; copy the artifact and its .json together, or re-export")
    ver = meta.get("verification", {})
    if ver and not ver.get("passed", False) and not allow_unverified:
        raise EdgeMTLError(f"{path} failed its export verification ({'; '.join(_failures(ver))[:300]}); "
                           "re-export, or load(..., allow_unverified=True) to inspect it")
    backend = open_backend(path, threads, _DELEGATES.get(meta.get("target", "")))
    missing = sorted(set(meta["task_input"]["methods"]) - set(backend.methods))
    if missing:
        raise EdgeMTLError(f"{path} lacks method(s) {missing} that its manifest lists: manifest and artifact "
                           "come from different exports")
    return Model(path, backend, meta)


_DELEGATES = {"executorch-coreml": "CoreMLBackend"}


def _failures(ver: dict[str, Any]) -> list[str]:
    return list(ver.get("structure", {}).get("problems", [])) + list(ver.get("numeric", {}).get("failures", []))


def _onnx_embedded(path: Path) -> dict[str, Any] | None:
    """Metadata embedded in an ONNX file (fallback when its manifest was not copied)."""
    import json

    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 (onnx raises DecodeError and others)
        raise EdgeMTLError(f"cannot read ONNX file {path} (truncated or corrupt?): {str(e)[:200]}") from None
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props["edgemtl"]) if "edgemtl" in props else None


__all__ = ["Model", "UnsupportedError", "load"]
