"""Saliency (foreground objects): BCE loss, maxF (β²=0.3) and max-mIoU over thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import IGNORE, Task, binary_bce, colormap


@TASKS.register("saliency")
class Saliency(Task):
    name = "saliency"
    kind = "binary"
    label_ext = ".png"
    primary_metric = "maxF"
    higher_is_better = True
    kpi_metric = "maxF"
    loss_weight = 5.0
    decoding = "sigmoid"
    unit = "probability"

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return binary_bce(pred, target)

    def decode(self, pred: Tensor) -> Tensor:
        return torch.sigmoid(pred[:, 0])

    def new_meter(self, **_: Any) -> Any:
        from edgemtl.metrics import SaliencyMeter

        return SaliencyMeter()

    def visualize(self, label: np.ndarray) -> np.ndarray:
        v = np.asarray(label, dtype=np.float32)
        return colormap(np.where(v == IGNORE, 0, v), 0.0, 1.0)
