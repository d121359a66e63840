"""MultiTaskModel: the interface every architecture implements."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from edgemtl.models.config import ModelConfig
from edgemtl.models.task_input import task_tensor


class MultiTaskModel(nn.Module):
    """Base class.

    ``forward`` takes an RGB image in [0, 1] (normalisation is part of the model, so exported
    artifacts need no separate pre-processing constants).

    - Task-conditional models (``conditional = True``): ``forward(image, task)`` with ``task`` a
      one-hot ``[B, T]`` float or an index ``[B]`` int64 tensor returns ``[B, C_max, H, W]``; the
      selected task's prediction is in its first ``C_t`` channels, the rest is zero.
    - Multi-output models: ``forward(image)`` returns ``{task: [B, C_t, H, W]}``.

    ``forward_task`` / ``forward_all`` give every architecture the same dict-of-tasks API.
    """

    conditional: ClassVar[bool] = False
    default_se: ClassVar[str] = "shared"
    supported_se: ClassVar[tuple[str, ...]] = ("none", "shared")
    # Task-interaction nets (MTI-Net, PAD-Net) compute every task in one pass and expose
    # initial predictions for deep supervision through ``forward(image, return_aux=True)``.
    one_pass_all_tasks: ClassVar[bool] = False
    # The interface features of the last ``return_features`` forward, as the predictions were
    # computed from them. DDP passes every output through an identity autograd node, so the
    # features it returns are copies no loss depends on (the adversarial step differentiates the
    # loss with respect to these); the training step takes them and clears the reference.
    interface: Any = None

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.task_names: list[str] = cfg.task_names
        self.out_channels: dict[str, int] = {n: int(i["out_channels"]) for n, i in cfg.tasks.items()}
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1), persistent=True)
        self.register_buffer("std", torch.ones(1, 3, 1, 1), persistent=True)

    def _build_shared_backbone(self):
        """A task-independent backbone (no per-task modules); sets the input normalisation."""
        from edgemtl.models.backbones import Backbone

        cfg = self.config
        backbone = Backbone(
            cfg.backbone, cfg.output_stride, cfg.pad_type, cfg.pretrained, cfg.se, cfg.se_reduction
        )
        self._set_normalization(backbone.pretrained_cfg)
        return backbone

    def head_channels(self) -> dict[str, int]:
        """Output channels of every task with a prediction layer: final tasks, then auxiliary ones."""
        aux = {t: int(i["out_channels"]) for t, i in self.config.aux_tasks.items()}
        return {**{t: self.out_channels[t] for t in self.task_names}, **aux}

    def _set_normalization(self, pretrained_cfg: dict) -> None:
        cfg = self.config
        mean = cfg.mean or tuple(pretrained_cfg.get("mean", (0.485, 0.456, 0.406)))
        std = cfg.std or tuple(pretrained_cfg.get("std", (0.229, 0.224, 0.225)))
        # The model keeps a resolved copy: the caller's config is never changed after construction.
        self.config = cfg.replace(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))
        self.mean.copy_(torch.tensor(self.config.mean).view(1, 3, 1, 1))
        self.std.copy_(torch.tensor(self.config.std).view(1, 3, 1, 1))

    def normalize(self, image: Tensor) -> Tensor:
        return (image - self.mean) / self.std

    @property
    def encoder_shared(self) -> bool:
        """True when the encoder does not depend on the task (it runs once for all tasks)."""
        return True

    def forward_task(self, image: Tensor, name: str) -> Tensor:
        if self.conditional:
            out = self(image, task_tensor(self.task_names, name, image.shape[0]))
            return out[:, : self.out_channels[name]]
        return self.forward_tasks(image, [name])[name]

    def forward_tasks(self, image: Tensor, names: list[str]) -> dict[str, Tensor]:
        if self.conditional:
            return {n: self.forward_task(image, n) for n in names}
        out = self(image)
        return {n: out[n] for n in names}

    def forward_all(self, image: Tensor) -> dict[str, Tensor]:
        return self.forward_tasks(image, self.task_names)

    def example_inputs(self, batch: int = 1, task_mode: str = "onehot") -> tuple[Tensor, ...]:
        h, w = self.config.image_size
        image = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
        if self.conditional:
            return image, task_tensor(self.task_names, 0, batch, task_mode)
        return (image,)
