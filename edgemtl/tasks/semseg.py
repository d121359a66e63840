"""Semantic segmentation: per-pixel class, CE loss (ignore 255), mIoU."""

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import ClassMapTask


@TASKS.register("semseg")
class SemSeg(ClassMapTask):
    name = "semseg"
    loss_weight = 1.0
