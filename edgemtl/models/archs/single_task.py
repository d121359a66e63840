"""Single-task baseline: the same backbone and decoder as the multi-task models, one task."""

from __future__ import annotations

from edgemtl.errors import EdgeMTLError
from edgemtl.models import ARCHITECTURES
from edgemtl.models.archs.hard_sharing import HardSharing
from edgemtl.models.config import ModelConfig


@ARCHITECTURES.register("single_task")
class SingleTask(HardSharing):
    def __init__(self, cfg: ModelConfig) -> None:
        if len(cfg.tasks) != 1:
            raise EdgeMTLError(
                f"arch single_task takes exactly one task (got {len(cfg.tasks)}: {', '.join(cfg.tasks)}); "
                "train one model per task"
            )
        super().__init__(cfg)
