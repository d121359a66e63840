"""Monocular depth in metres: L1 + gradient-matching loss, RMSE (pixel-wise by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import Task, masked_mean


@TASKS.register("depth")
class Depth(Task):
    name = "depth"
    kind = "depth"
    label_ext = ".npy"
    primary_metric = "rmse"
    higher_is_better = False
    kpi_metric = "delta1"
    acc_mtl_metrics = (("delta1", True, 0.01), ("rmse", False, 1.0))  # AMTL's release: d1 and rms (metres)
    loss_weight = 1.0
    decoding = "identity"
    unit = "metres"

    def __init__(self, grad_weight: float = 0.5, depth_range: tuple[float, float] = (0.0, 10.0)) -> None:
        super().__init__()
        # The gradient term penalises wrong depth *discontinuities* (object boundaries), which
        # plain L1 under-weights because they are few pixels.
        self.grad_weight = float(grad_weight)
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))

    @classmethod
    def from_meta(cls, meta: dict[str, Any], **options: Any) -> Task:
        if "depth_range" in meta and "depth_range" not in options:
            options["depth_range"] = tuple(meta["depth_range"])
        return cls(**options)

    @property
    def out_channels(self) -> int:
        return 1

    fill = 0.0  # outside the image: no depth (0 = invalid)

    @classmethod
    def check_meta(cls, meta: dict[str, Any]) -> str | None:
        dr = meta.get("depth_range")
        ok = isinstance(dr, list) and len(dr) == 2 and all(isinstance(v, (int, float)) for v in dr)
        if not ok or not 0 <= dr[0] < dr[1]:
            return (
                "key 'depth_range' must be [min, max] metres with 0 <= min < max (required when 'depth' "
                "is a task)."
            )
        return None

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        from edgemtl.tasks.labels import read_float_npy

        return read_float_npy(path, hw, "depth", channels=1, nonnegative=True)

    def protocol_note(self, protocol: Any) -> str:
        return f", {'image' if protocol.depth_image_wise else 'pixel'}-wise"

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        valid = (target > 0) & torch.isfinite(target)
        target = torch.where(valid, target, torch.zeros_like(target))
        loss = masked_mean((pred - target).abs(), valid)
        if self.grad_weight:
            for dim in (2, 3):
                d_pred = pred.diff(dim=dim)
                d_gt = target.diff(dim=dim)
                both = valid.narrow(dim, 1, valid.shape[dim] - 1) & valid.narrow(dim, 0, valid.shape[dim] - 1)
                loss = loss + self.grad_weight * masked_mean((d_pred - d_gt).abs(), both)
        return loss

    def valid_mask(self, target: Tensor) -> Tensor:
        return (target[:, 0] > 0) & torch.isfinite(target[:, 0])

    def decode(self, pred: Tensor) -> Tensor:
        return pred[:, 0].clamp_min(0)

    def new_meter(self, image_wise: bool = False, protocol: str = "edgemtl", **_: Any) -> Any:
        from edgemtl.metrics import DepthMeter

        if protocol == "mtl-pytorch":  # pixel-wise, predictions <= 0 -> 1e-9 before RMSE and log
            return DepthMeter(image_wise=False, clamp=1e-9)
        if protocol == "astmt":  # per-image RMSE averaged, invalid pixels included, median log-RMSE
            return DepthMeter(image_wise=True, clamp=1e-9, include_invalid=True, log_median=True)
        return DepthMeter(image_wise=image_wise)

    @property
    def visual(self) -> dict[str, Any]:  # type: ignore[override]
        return {"style": "colormap", "range": list(self.depth_range), "mask_nonpositive": True}

    def describe(self) -> dict[str, Any]:
        # clamp_min: decode() clamps negative depth to 0; depth_range: the colour scale (the camera legend)
        return {**super().describe(), "clamp_min": 0.0, "depth_range": list(self.depth_range)}
