"""Saliency (foreground objects): BCE loss, maxF (β²=0.3) and max-mIoU over thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import IGNORE, Task, binary_bce


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
    visual = {"style": "colormap", "range": [0.0, 1.0], "ignore": IGNORE}

    @property
    def out_channels(self) -> int:
        return 1

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        from edgemtl.tasks.labels import read_binary_png

        return read_binary_png(path, hw, cls.name)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return binary_bce(pred, target)

    def decode(self, pred: Tensor) -> Tensor:
        return torch.sigmoid(pred[:, 0])

    def new_meter(self, protocol: str = "edgemtl", **_: Any) -> Any:
        from edgemtl.metrics import SaliencyMeter
        from edgemtl.metrics.saliency import peer_thresholds

        if protocol == "edgemtl":
            return SaliencyMeter()
        # ASTMT / MTL-PyTorch eval_sal: 15 thresholds in [0.2, 0.9], F1, their empty-image rules
        return SaliencyMeter(peer_thresholds(), beta2=1.0, peer=True)

    def protocol_note(self, protocol: Any) -> str:
        return ", β²=0.3"

    def primary(self, protocol: str = "edgemtl") -> str:
        # The peers' Δm (MTL-PyTorch calculate_multi_task_performance, ASTMT's tables) uses max-mIoU.
        return self.primary_metric if protocol == "edgemtl" else "max_mIoU"
