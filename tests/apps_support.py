"""Artifacts and images shared by tests/test_apps_web.py and tests/test_apps_camera.py.

Exports take 10-60 s each here, so each artifact is built once per pytest session (in the
session's base temp dir) whichever of the two test files asks first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

TINY = {
    "backbone": "mobilenetv2_tiny",
    "image_size": (32, 32),
    "decoder_channels": 16,
    "low_level_channels": 8,
}
ALL_TASKS = {
    "semseg": {"out_channels": 5, "class_names": ["background", "wall", "floor", "table", "person"]},
    "depth": {"out_channels": 1},
    "normals": {"out_channels": 3},
    "edges": {"out_channels": 1},
    "saliency": {"out_channels": 1},
    "parts": {"out_channels": 4, "class_names": ["background", "head", "torso", "limbs"]},
    "detection": {"out_channels": 8, "class_names": ["person", "chair", "table"]},  # 3 classes + 5
}
TWO_TASKS = {"semseg": ALL_TASKS["semseg"], "depth": ALL_TASKS["depth"]}


def _model(arch: str, tasks: dict):
    from edgemtl.models import create_model

    torch.manual_seed(0)
    # se="decoder" keeps astmt's task SE out of the encoder: far fewer XNNPACK partitions to lower.
    extra = {"se": "decoder"} if arch == "astmt" else {}
    return _spread_outputs(create_model(arch=arch, tasks=tasks, **TINY, **extra).eval())


def _spread_outputs(model):
    """Rescale each task's last layer so its outputs vary over the image.

    A freshly initialised decoder's outputs are almost constant (spatial std ~1e-3), so every
    class map would be one flat colour and two tasks' canvases could be identical. Standardising
    each output channel over rendered scenes (an affine change of the last layer, folded into its
    weights) keeps the weights random but gives structured maps the comparisons can tell apart.
    Depth is centred at 4 m so its colours fall inside the 0-10 m scale.
    """
    from edgemtl.artifact.processing import preprocess

    hw = tuple(TINY["image_size"])
    x = torch.cat([torch.from_numpy(preprocess(scene(100 + i, hw), hw)) for i in range(4)])
    with torch.no_grad():
        for i, task in enumerate(model.task_names):
            out = model.forward_task(x, task) if hasattr(model, "head") else model(x)[task]
            mean, std = out.mean((0, 2, 3)), out.std((0, 2, 3)).clamp_min(1e-6)
            centre, spread = (4.0, 2.0) if task == "depth" else (0.0, 1.5)
            if task == "detection":  # some confident classes, boxes a few tenths of the image wide
                c = out.shape[1] - 5
                centre = torch.tensor([4.0] * c + [0.15] * 4 + [0.0])
                spread = torch.tensor([1.5] * c + [0.08] * 4 + [1.5])
            scale = spread / std
            if hasattr(model, "head"):  # astmt: one stacked head, rows per task
                c = out.shape[1]
                w, b = model.head.weight[i, :c], model.head.bias[i, :c]
                shape = (-1, 1)
            else:
                w, b = model.heads[task].weight, model.heads[task].bias
                shape = (-1, 1, 1, 1)
            b.copy_((b - mean) * scale + centre)
            w.mul_(scale.view(shape))
    return model


def artifact(tmp_path_factory, kind: str) -> Path:
    """``astmt.onnx`` (6 tasks, one-hot task input), ``hs.onnx`` / ``hs.pte`` (hard sharing, 2 tasks,
    all outputs)."""
    from edgemtl.export import export

    root = tmp_path_factory.getbasetemp() / "apps_artifacts"
    root.mkdir(exist_ok=True)
    path = root / kind
    done = root / f"{kind}.done"
    if not done.exists():
        arch, tasks = ("astmt", ALL_TASKS) if kind.startswith("astmt") else ("hard_sharing", TWO_TASKS)
        target = "onnx" if kind.endswith(".onnx") else "executorch"
        export(_model(arch, tasks), target, path, images=None, num_images=1)
        done.touch()
    return path


def scene(seed: int, hw: tuple[int, int]) -> np.ndarray:
    """A rendered (real, not random-noise) RGB uint8 image."""
    from edgemtl.data.synth import render_scene

    return np.ascontiguousarray(render_scene(seed, hw, "pascal")["image"])


PHOTO = Path(__file__).parent / "fixtures" / "grace_hopper_96x72.png"  # a real photo (see fixtures/README.md)


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def write_png(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"cannot write {path}")
    return path
