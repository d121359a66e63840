"""Surface normals (unit vectors, camera frame: x right, y up, z to the camera): L1 loss, angles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import Task, masked_mean


@TASKS.register("normals")
class Normals(Task):
    name = "normals"
    kind = "normals"
    label_ext = ".npy"
    primary_metric = "mean"
    higher_is_better = False
    kpi_metric = "within_11.25"
    # AMTL's release: mean and median (degrees), fraction within 11.25 degrees
    acc_mtl_metrics = (("mean", False, 1.0), ("median", False, 1.0), ("within_11.25", True, 0.01))
    loss_weight = 10.0
    decoding = "l2_normalize"
    unit = "unit vector"
    visual = {"style": "signed_rgb", "legend": "as RGB: R = x (right), G = y (up), B = z (to the camera)"}

    @property
    def out_channels(self) -> int:
        return 3

    fill = 0.0  # outside the image: no normal (all-zero = invalid)

    @classmethod
    def empty_label(cls, hw: tuple[int, int]) -> np.ndarray:
        return np.zeros((*hw, 3), np.float32)

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        from edgemtl.tasks.labels import read_float_npy

        return read_float_npy(path, hw, "normals", channels=3)

    @classmethod
    def label_tensor(cls, arr: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))

    @classmethod
    def flip_label(cls, label: Tensor) -> Tensor:
        # camera frame x right, y up, z to the camera: a mirror negates x
        out = label.clone()
        out[0].neg_()
        return out

    @classmethod
    def rotate_label(cls, label: np.ndarray, cos: float, sin: float) -> np.ndarray:
        # with y up, a counter-clockwise turn maps (1, 0) to (cos a, sin a)
        a = label.copy()
        x, y = a[..., 0].copy(), a[..., 1].copy()
        a[..., 0], a[..., 1] = cos * x - sin * y, sin * x + cos * y
        return a

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        # L1 between the unit-normalised prediction and the ground truth (ASTMT's normals loss).
        unit = unit_normalize(pred)
        valid = (target.abs().sum(1, keepdim=True) > 0).expand_as(target)
        return masked_mean((unit - target).abs(), valid)

    def valid_mask(self, target: Tensor) -> Tensor:
        return target.abs().sum(1) > 0

    def decode(self, pred: Tensor) -> Tensor:
        return unit_normalize(pred).permute(0, 2, 3, 1)

    def target_to_label(self, target: Tensor) -> Tensor:
        return target.permute(0, 2, 3, 1)

    def new_meter(self, **_: Any) -> Any:
        from edgemtl.metrics import NormalsMeter

        return NormalsMeter()


def unit_normalize(pred: Tensor, eps: float = 1e-6) -> Tensor:
    """``F.normalize(pred, dim=1, eps)`` (x / max(|x|, eps)) written out: torch's channel-dim
    ``vector_norm`` is about 10x slower on CPU, which made it 4 % of a training step. The clamp is on
    the squared norm (sqrt(max(s, eps²)) = max(sqrt(s), eps)) so that a zero vector has a finite
    gradient, and the sum is in float32 so that fp16 predictions do not underflow to 0."""
    p = pred.float() if pred.dtype in (torch.float16, torch.bfloat16) else pred
    return p / (p * p).sum(1, keepdim=True).clamp_min(eps * eps).sqrt()
