"""The task interface and helpers shared by the task files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from edgemtl.artifact import decoding
from edgemtl.errors import EdgeMTLError

IGNORE = 255


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; exactly 0 (still differentiable) when nothing is valid.

    A batch may legitimately hold no valid pixel for a task (e.g. no image with human parts);
    a plain mean would then be NaN and poison the whole step.
    """
    mask = mask.to(values.dtype)
    denom = mask.sum()
    if denom == 0:
        return (values * 0).sum()
    return (values * mask).sum() / denom


def binary_bce(pred: Tensor, target: Tensor, pos_weight: float | None = None) -> Tensor:
    """BCE on logits against a 0/1 map with 255 = ignore; ``pos_weight`` w weighs positives by w
    and negatives by 1 - w (ASTMT's class-balanced BCE)."""
    valid = target != IGNORE
    y = torch.where(valid, target, torch.zeros_like(target))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, y, reduction="none")
    if pos_weight is not None:
        bce = (pos_weight * y + (1 - pos_weight) * (1 - y)) * bce
    return masked_mean(bce, valid)


class Task:
    """Base class. Subclasses set the class attributes and implement loss/decode/meter/visualize."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "classes" | "depth" | "normals" | "binary"
    # Data: how labels are stored, read and augmented; edgemtl.data asks the task, it has no tables.
    label_ext: ClassVar[str]  # on-disk label format: ".png" (uint8 map), ".npy" (float array), ".json"
    # Labels are pixel maps (resized with the output, moved pixel by pixel by augmentation); False for
    # a task whose labels are objects (detection's boxes: ``warp_label`` moves them).
    dense: ClassVar[bool] = True
    interp: ClassVar[str] = "nearest"  # resampling of the label map by augmentation
    fill: ClassVar[float] = float(IGNORE)  # value of pixels that come from outside the source image
    primary_metric: ClassVar[str]  # the metric Δm uses
    higher_is_better: ClassVar[bool]  # direction of the primary metric
    kpi_metric: ClassVar[str]  # accuracy-type metric in [0,100] for the AMTL balancer
    # Acc_MTL's sub-metrics (edgemtl.metrics.deltam.acc_mtl): (metric, higher is better, factor to the
    # release's unit); None = the KPI alone, as a fraction.
    acc_mtl_metrics: ClassVar[tuple[tuple[str, bool, float], ...] | None] = None
    loss_weight: ClassVar[float]  # ASTMT's fixed loss multiplier (PASCAL grid)
    decoding: ClassVar[str]  # how raw outputs become predictions (edgemtl.artifact.decoding.DECODINGS)
    unit: ClassVar[str]
    # how predictions are drawn (edgemtl.artifact.decoding.visualize): travels in the manifest, so
    # the runtime and the apps colour a task as the task says, without a table of their own
    visual: ClassVar[dict[str, Any]]

    def __init__(self, num_classes: int | None = None, class_names: list[str] | None = None) -> None:
        self.class_names = list(class_names) if class_names else None
        self.num_classes = num_classes

    @classmethod
    def from_meta(cls, meta: dict[str, Any], **options: Any) -> Task:
        return cls(**options)

    @property
    def out_channels(self) -> int:
        raise NotImplementedError

    # ---- data (class methods: the dataset needs no task instance) ----
    @classmethod
    def check_meta(cls, meta: dict[str, Any]) -> str | None:
        """What ``dataset.json`` lacks for this task, as a sentence (None when complete)."""
        return None

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        """Read one label file and check it against its image's ``hw`` (edgemtl.tasks.labels)."""
        raise NotImplementedError

    @classmethod
    def empty_label(cls, hw: tuple[int, int]) -> np.ndarray:
        """The label of an image not labelled for this task (partially-labelled data), as ``read_label``
        returns labels: every pixel ``fill`` (ignore / invalid), so no loss or metric counts it."""
        return np.full(tuple(hw), cls.fill, np.uint8 if cls.label_ext == ".png" else np.float32)

    @classmethod
    def label_tensor(cls, arr: np.ndarray) -> Tensor:
        """Numpy label -> the dataset item tensor (default float32 [1, H, W])."""
        return torch.from_numpy(arr.astype(np.float32))[None]

    @classmethod
    def flip_label(cls, label: Tensor) -> Tensor:
        """After a left-right mirror of the map: fix values that have a direction (default none)."""
        return label

    @classmethod
    def rotate_label(cls, label: np.ndarray, cos: float, sin: float) -> np.ndarray:
        """Before an in-plane rotation of the HxW(xC) map: rotate values that have a direction."""
        return label

    def protocol_note(self, protocol: Any) -> str:
        """What of the evaluation protocol concerns this task, for the printed protocol line."""
        return ""

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, pred: Tensor) -> Tensor:
        """Raw network output [B,C,H,W] -> prediction in label layout ([B,H,W] or [B,H,W,3])."""
        raise NotImplementedError

    def target_to_label(self, target: Tensor) -> Tensor:
        """Dataset target tensor -> label layout expected by the meter."""
        return target[:, 0] if target.dim() == 4 else target

    def valid_mask(self, target: Tensor) -> Tensor:
        """``[B, H, W]`` bool: pixels that carry ground truth."""
        t = target[:, 0] if target.dim() == 4 else target
        return t != IGNORE

    def new_meter(self, **protocol: Any) -> Any:
        """The task's meter under ``protocol`` ("edgemtl", "mtl-pytorch" or "astmt", see
        edgemtl.evaluate.PROTOCOLS), with ``image_wise`` / ``edge_thresholds`` options."""
        raise NotImplementedError

    def primary(self, protocol: str = "edgemtl") -> str:
        """The metric Δm uses under ``protocol`` (a peer may use another key, e.g. saliency max-mIoU)."""
        return self.primary_metric

    def update_meter(self, meter: Any, pred: Tensor, target: Tensor) -> None:
        meter.update(self.decode(pred.detach()).cpu().numpy(), self.target_to_label(target).cpu().numpy())

    def visualize(self, label: np.ndarray) -> np.ndarray:
        """A prediction or label in label layout ([H,W] or [H,W,3]) -> uint8 RGB image [H,W,3]."""
        return decoding.visualize(label, self.describe())

    def describe(self) -> dict[str, Any]:
        """Everything a consumer of an exported artifact needs to decode this task's output."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "out_channels": self.out_channels,
            "decoding": self.decoding,
            "unit": self.unit,
            "visual": dict(self.visual),
        }
        if self.class_names:
            d["class_names"] = self.class_names
        return d

    def acc_mtl_terms(self) -> tuple[tuple[str, bool, float], ...]:
        return self.acc_mtl_metrics or ((self.kpi_metric, True, 0.01),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(out_channels={self.out_channels})"


class ClassMapTask(Task):
    """Per-pixel classification (semseg, parts): CE loss with ignore index, mIoU."""

    @classmethod
    def check_meta(cls, meta: dict[str, Any]) -> str | None:
        classes = meta.get("classes")
        names = classes.get(cls.name) if isinstance(classes, dict) else None
        if not isinstance(names, list) or not names or len(names) > IGNORE:
            return f"key 'classes.{cls.name}' must list 1..255 class names for task '{cls.name}'."
        return None

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        from edgemtl.tasks.labels import read_class_png

        return read_class_png(path, hw, cls.name, num_classes)

    @classmethod
    def label_tensor(cls, arr: np.ndarray) -> Tensor:
        return torch.from_numpy(arr.astype(np.int64))

    kind = "classes"
    label_ext = ".png"
    primary_metric = "mIoU"
    higher_is_better = True
    kpi_metric = "mIoU"
    decoding = "argmax"
    unit = "class id"
    visual = {"style": "palette"}

    def __init__(self, num_classes: int | None = None, class_names: list[str] | None = None) -> None:
        if num_classes is None and class_names:
            num_classes = len(class_names)
        if num_classes is None or num_classes < 2:
            raise EdgeMTLError(
                f"task '{self.name}' needs at least 2 classes: list them under "
                f"classes.{self.name} in dataset.json (got {num_classes})"
            )
        if class_names and len(class_names) != num_classes:
            raise EdgeMTLError(
                f"task '{self.name}': {len(class_names)} class names for {num_classes} classes"
            )
        super().__init__(num_classes, class_names or [f"class_{i}" for i in range(num_classes)])

    @classmethod
    def from_meta(cls, meta: dict[str, Any], **options: Any) -> Task:
        names = (meta.get("classes") or {}).get(cls.name)
        if names is None and "num_classes" not in options:
            raise EdgeMTLError(
                f"dataset.json has no classes.{cls.name}: task '{cls.name}' needs its class names"
            )
        return cls(class_names=names, **options)

    @property
    def out_channels(self) -> int:
        return int(self.num_classes)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        ce = torch.nn.functional.cross_entropy(pred, target, ignore_index=IGNORE, reduction="none")
        return masked_mean(ce, target != IGNORE)

    def decode(self, pred: Tensor) -> Tensor:
        return pred.argmax(1)

    # Peers' parts rule: images whose gt is all background or all ignore are left out of mIoU.
    peer_skips_uniform_images: ClassVar[bool] = False

    def new_meter(self, protocol: str = "edgemtl", **_: Any) -> Any:
        from edgemtl.metrics import ConfusionMeter

        if protocol == "edgemtl":
            return ConfusionMeter(self.out_channels, ignore_index=IGNORE)
        # ASTMT / MTL-PyTorch: mean over every class, a class never annotated nor predicted scores 0
        return ConfusionMeter(
            self.out_channels,
            ignore_index=IGNORE,
            absent="zero",
            skip_uniform_images=self.peer_skips_uniform_images,
        )
