"""A task added in one file, as a user would add one: a per-pixel heat map (degrees Celsius, 0 = no
reading) stored as float ``.npy``, trained with L1, evaluated by RMSE, drawn with a colour scale.

Importing this module registers it; nothing else in edgemtl names it. tests/test_tasks.py runs it
through dataset -> augmentation -> training -> evaluation -> export -> runtime -> visualisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import Task, masked_mean
from edgemtl.tasks.labels import read_float_npy


@TASKS.register("heat")
class Heat(Task):
    name = "heat"
    kind = "scalar"
    label_ext = ".npy"
    fill = 0.0  # outside the image: no reading
    primary_metric = "rmse"
    higher_is_better = False
    kpi_metric = "delta1"
    loss_weight = 1.0
    decoding = "identity"
    unit = "degrees Celsius"
    visual = {"style": "colormap", "range": [0.0, 40.0], "mask_nonpositive": True}

    @property
    def out_channels(self) -> int:
        return 1

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        return read_float_npy(path, hw, cls.name, channels=1, nonnegative=True)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        valid = target > 0
        return masked_mean((pred - target).abs(), valid)

    def valid_mask(self, target: Tensor) -> Tensor:
        return target[:, 0] > 0

    def decode(self, pred: Tensor) -> Tensor:
        return pred[:, 0]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "clamp_min": None}

    def new_meter(self, **_: Any) -> Any:
        from edgemtl.metrics import DepthMeter  # RMSE over valid (> 0) pixels is what heat needs too

        return DepthMeter()


def heat_label(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A smooth warm blob on a cool background, some pixels without a reading."""
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * hw[0], rng.uniform(0.3, 0.7) * hw[1]
    heat = 15 + 20 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.1 * hw[0] * hw[1]))
    heat[rng.random(hw) < 0.05] = 0
    return heat.astype(np.float32)
