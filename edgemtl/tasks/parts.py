"""Human/object parts: per-pixel part class, CE loss, mIoU.

Images without any part-annotated object carry an all-255 label, so they contribute nothing to
the loss or the metric (PASCAL-Context's human parts are defined only on images with people).
"""

from edgemtl.tasks import TASKS
from edgemtl.tasks.base import ClassMapTask


@TASKS.register("parts")
class Parts(ClassMapTask):
    name = "parts"
    loss_weight = 2.0
    peer_skips_uniform_images = True
