"""Run exported edgemtl artifacts: ``edgemtl.runtime.load(path)`` for every export target with a
runtime on this host (``.onnx``: ONNX Runtime; ``.pte``: ExecuTorch; see ``edgemtl.export.TARGETS``).

    rt = edgemtl.runtime.load("model.onnx", threads=2)
    pred = rt.predict(rgb_uint8, "depth")       # {"raw", "prediction", "unit", ...}
    det = rt.predict(rgb_uint8, "detection")["prediction"]  # {"boxes" (pixels), "scores", "labels"}
    png = rt.visualize(pred)                      # uint8 RGB, same size as the input image

Everything comes from the artifact's manifest (``<artifact>.json``, see edgemtl.artifact):
task order and encoding, input size, decoding, colouring, units, class names. Running an ``.onnx``
artifact needs numpy, OpenCV and onnxruntime only, not PyTorch (``tests/test_artifact.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.artifact import boxes, decoding
from edgemtl.artifact.manifest import check_manifest, file_digest, read_manifest
from edgemtl.artifact.processing import check_image, preprocess, resize_output
from edgemtl.artifact.signature import encode_task, select_output, task_name
from edgemtl.errors import EdgeMTLError, UnsupportedError, unknown_choice
from edgemtl.export import target_class  # the registry only: target files import no torch


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

    def __repr__(self) -> str:
        return (
            f"edgemtl.runtime.Model({self.path.name}, {self.backend.name}, tasks={self.tasks}, "
            f"input={self.input_size[0]}x{self.input_size[1]}, task_input={self.io['scheme']})"
        )

    def run(self, x: np.ndarray, task: str | int) -> np.ndarray:
        """Raw graph call: float32 [1, 3, H, W] in [0, 1] -> the task's raw output [1, C, H, W]."""
        h, w = self.input_size
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != (1, 3, h, w):
            got = f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
            raise EdgeMTLError(
                f"run() takes float32 [1, 3, {h}, {w}] (RGB in [0,1]), got {got}; "
                "predict() takes uint8 HxWx3 images of any size"
            )
        method, extra = encode_task(self.io, task)
        return select_output(self.io, task_name(self.io, task), self.backend.run(method, [x, *extra]))

    def predict(self, image: np.ndarray, task: str | int, resize: bool = True) -> dict[str, Any]:
        """uint8 HxWx3 RGB -> raw output (model resolution) and decoded prediction (image resolution).

        ``resize=False`` demands an image of exactly the model input size.
        """
        image = check_image(image)
        encode_task(self.io, task)  # validate the task before any work
        name = task_name(self.io, task)
        raw = self.run(preprocess(image, self.input_size, resize), name)
        info = self.task_info(name)
        if info.get("decoding") == "boxes":  # decoded at model resolution, boxes scaled to the image
            prediction = boxes.to_pixels(decoding.decode(raw, info), image.shape[:2])
        else:
            prediction = decoding.decode(resize_output(raw, image.shape[:2]), info)
        pred = {
            "task": name,
            "raw": raw[0],
            "image_hw": tuple(image.shape[:2]),
            "prediction": prediction,
            "decoding": info.get("decoding"),
            "unit": info.get("unit"),
            "kind": info.get("kind"),
        }
        if info.get("class_names"):
            pred["class_names"] = info["class_names"]
        return pred

    def visualize(
        self, pred: dict[str, Any], task: str | None = None, image: np.ndarray | None = None
    ) -> np.ndarray:
        """A prediction from :meth:`predict` -> uint8 RGB image (the task's own colouring). Boxes are
        drawn on ``image`` (the one predicted on), or on black without it."""
        name = task or pred["task"]
        if name not in self.tasks:
            raise unknown_choice("task", name, self.tasks)
        info = self.task_info(name)
        if image is None and decoding.visual_spec(info).get("style") == "boxes":
            image = np.zeros((*pred["image_hw"], 3), np.uint8)
        return np.ascontiguousarray(decoding.visualize(pred["prediction"], info, image), dtype=np.uint8)

    def task_info(self, name: str) -> dict[str, Any]:
        """The task's manifest entry (kind, decoding, visual, unit, class names, ...)."""
        return {"name": name, **self.metadata["task_info"][name]}


def load(
    path: str | os.PathLike, threads: int | None = None, allow_unverified: bool = False, **options: Any
) -> Model:
    """Load an artifact exported by ``edgemtl export`` (manifest beside it) with its target's runtime.

    ``options`` go to the runtime backend. ONNX Runtime: ``sessions="per-task"`` (default; a
    ``graphs=specialized`` file runs each task as its own single-task session, created when the task
    is first asked for) or ``"single"`` (the file's ``If`` graph as one session, as other ONNX
    Runtime programs run it)."""
    path = Path(path)
    if not path.exists():
        raise EdgeMTLError(f"artifact not found: {path}")
    if path.is_dir() and path.suffix.lower() != ".mlpackage":  # a CoreML package is the one folder artifact
        raise EdgeMTLError(
            f"{path} is a folder, not an exported artifact: name the .onnx / .pte / .tflite file"
        )
    target = target_class(path)
    if target.backend is None:
        target.open(path)  # raises UnsupportedError saying where this format runs
    embedded = target.backend.embedded_manifest(path) if not Path(f"{path}.json").exists() else None
    meta = read_manifest(path, embedded)
    if embedded is not None and meta is embedded:
        check_manifest(meta, f"{path} (embedded metadata)")
    digest = meta.get("artifact_sha256")
    if digest and file_digest(path) != digest:
        raise EdgeMTLError(
            f"{path} does not match its manifest (sha256 differs): the file is truncated, corrupt or "
            "was replaced; copy the artifact and its .json together, or re-export"
        )
    ver = meta.get("verification", {})
    if ver and not ver.get("passed", False) and not allow_unverified:
        raise EdgeMTLError(
            f"{path} failed its export verification ({'; '.join(_failures(ver))[:300]}); "
            "re-export, or load(..., allow_unverified=True) to inspect it"
        )
    backend = target_class(path, meta.get("target")).open(path, threads, **options)
    missing = sorted(set(meta["task_input"]["methods"]) - set(backend.methods))
    if missing:
        raise EdgeMTLError(
            f"{path} lacks method(s) {missing} that its manifest lists: manifest and artifact "
            "come from different exports"
        )
    return Model(path, backend, meta)


def _failures(ver: dict[str, Any]) -> list[str]:
    return list(ver.get("structure", {}).get("problems", [])) + list(
        ver.get("numeric", {}).get("failures", [])
    )


__all__ = ["Model", "UnsupportedError", "load"]
