"""Semantic/instance boundaries: class-balanced BCE (positive weight 0.95), odsF/oisF/AP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import IGNORE, Task, binary_bce


@TASKS.register("edges")
class Edges(Task):
    name = "edges"
    kind = "binary"
    label_ext = ".png"
    primary_metric = "odsF"
    higher_is_better = True
    kpi_metric = "odsF"
    loss_weight = 50.0
    decoding = "sigmoid"
    unit = "probability"
    visual = {"style": "inverted_gray", "ignore": IGNORE, "legend": "dark = boundary"}

    def __init__(self, pos_weight: float = 0.95, max_dist: float = 0.0075) -> None:
        super().__init__()
        # Edge pixels are ~5 % of an image; weighting positives by 0.95 (negatives by 0.05)
        # keeps the net from predicting "no edge" everywhere (ASTMT's balanced BCE).
        self.pos_weight = float(pos_weight)
        self.max_dist = float(max_dist)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], **options: Any) -> Task:
        if "edge_max_dist" in meta and "max_dist" not in options:
            options["max_dist"] = float(meta["edge_max_dist"])
        return cls(**options)

    @property
    def out_channels(self) -> int:
        return 1

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        from edgemtl.tasks.labels import read_binary_png

        return read_binary_png(path, hw, cls.name)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return binary_bce(pred, target, self.pos_weight)

    def decode(self, pred: Tensor) -> Tensor:
        return torch.sigmoid(pred[:, 0])

    def protocol_note(self, protocol: Any) -> str:
        return f", maxDist={self.max_dist:.4g}·diag, {protocol.edge_thresholds} thresholds"

    def new_meter(self, edge_thresholds: int = 25, protocol: str = "edgemtl", **_: Any) -> Any:
        from edgemtl.metrics import EdgeMeter

        if protocol == "mtl-pytorch":  # its SEISM reader: 99 thresholds 0.01..0.99, prob >= t
            return EdgeMeter(self.max_dist, np.round(np.arange(1, 100) * 0.01, 2), seism=True, inclusive=True)
        if (
            protocol == "astmt"
        ):  # SEISM's HED parameters: 0.001, 0.01..0.99, 0.999, prob > t (NMS not reproduced)
            th = np.concatenate([[0.001], np.round(np.arange(1, 100) * 0.01, 2), [0.999]])
            return EdgeMeter(self.max_dist, th, seism=True)
        return EdgeMeter(max_dist=self.max_dist, thresholds=edge_thresholds)
