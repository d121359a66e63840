"""ASTMT: Attentive Single-Tasking of Multiple Tasks (Maninis, Radosavovic, Kokkinos, CVPR 2019).

One network executes one task per forward pass; per-task SE (and optionally per-task BN and
residual adapters) re-weight shared features for the selected task.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgemtl.models import ARCHITECTURES
from edgemtl.models.backbones import Backbone
from edgemtl.models.base import MultiTaskModel
from edgemtl.models.config import ModelConfig
from edgemtl.models.decoders import BiFPN, DeepLabV3PlusLite, LightHeads
from edgemtl.models.layers import InvertedResidual, TaskHead, bn_factory, conv_factory, upsample_to
from edgemtl.models.modulation import TaskSE
from edgemtl.models.task_input import TaskContext, check_task_tensor


@ARCHITECTURES.register("astmt")
class ASTMT(MultiTaskModel):
    conditional = True
    default_se = "encoder_decoder"
    supported_se = ("none", "shared", "decoder", "encoder_decoder")

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.ctx = TaskContext(len(self.task_names))
        enc_se = {"none": "none", "shared": "shared", "decoder": "shared", "encoder_decoder": "task"}[cfg.se]
        dec_se = {"none": "none", "shared": "shared", "decoder": "task", "encoder_decoder": "task"}[cfg.se]
        enc_bn = cfg.per_task_bn and (cfg.se == "encoder_decoder" or cfg.adapters)
        self.backbone = Backbone(
            cfg.backbone,
            cfg.output_stride,
            cfg.pad_type,
            cfg.pretrained,
            enc_se,
            cfg.se_reduction,
            enc_bn,
            cfg.adapters,
            self.ctx,
        )
        self._set_normalization(self.backbone.pretrained_cfg)
        ch, red = self.backbone.channels, self.backbone.reductions
        outs = [self.out_channels[n] for n in self.task_names]
        if cfg.decoder == "light":
            self.decoder = LightHeads(ch, red, outs, self.ctx)
            self.head = None
        elif cfg.decoder == "bifpn":  # task SE (and per-task BN) in every fusion node of the neck
            self.decoder = BiFPN(
                ch,
                red,
                cfg.decoder_channels,
                cfg.bifpn_levels,
                cfg.bifpn_repeats,
                dec_se,
                cfg.se_reduction,
                self.ctx,
                cfg.per_task_bn,
            )
            self.head = TaskHead(self.decoder.out_channels, outs, self.ctx)
        else:
            self.decoder = DeepLabV3PlusLite(
                ch,
                red,
                cfg.decoder_channels,
                cfg.low_level_channels,
                cfg.aspp_rates,
                cfg.output_stride,
                dec_se,
                cfg.se_reduction,
                self.ctx,
                cfg.per_task_bn,
                cfg.aspp == "per_task",
            )
            self.head = TaskHead(self.decoder.out_channels, outs, self.ctx)
        if cfg.head_blocks:  # per-task heads: every conv and BN has one set of weights per task
            norm, conv = bn_factory(self.ctx, True), conv_factory(self.ctx, True)
            width = self.decoder.out_channels
            blocks: list[nn.Module] = []
            for _ in range(cfg.head_blocks):
                blocks.append(InvertedResidual(width, 4, norm, conv))
                if dec_se == "task":  # task SE in the heads as in the neck
                    blocks.append(TaskSE(width, self.ctx.num_tasks, self.ctx, cfg.se_reduction))
            self.head_blocks = nn.Sequential(*blocks)

    @property
    def encoder_shared(self) -> bool:
        cfg = self.config
        return cfg.se != "encoder_decoder" and not cfg.adapters

    def _decode(self, feats: list[Tensor], image: Tensor, return_features: bool = False):
        x = self.decoder(feats)
        h = self.head_blocks(x) if hasattr(self, "head_blocks") else x
        y = upsample_to(self.head(h) if self.head is not None else h, image)
        if return_features:
            self.interface = x  # see BaseModel.interface: DDP returns a copy the loss does not depend on
        return (y, x) if return_features else y

    def forward(self, image: Tensor, task: Tensor, return_features: bool = False):
        """``return_features`` also returns the decoder output before the prediction layer: the
        shared/task-specific interface where ASTMT's adversarial discriminator looks."""
        if not torch.compiler.is_compiling() and not _tracing():
            check_task_tensor(task, len(self.task_names), image.shape[0])
        self.ctx.set(task)
        try:
            return self._decode(self.backbone(self.normalize(image)), image, return_features)
        finally:
            self.ctx.clear()

    def forward_tasks(self, image: Tensor, names: list[str]) -> dict[str, Tensor]:
        if not self.encoder_shared:
            return super().forward_tasks(image, names)
        # Decoder-only modulation: the encoder is task-independent, so run it once.
        feats = self.backbone(self.normalize(image))
        out = {}
        for n in names:
            idx = torch.full((image.shape[0],), self.task_names.index(n), dtype=torch.long)
            self.ctx.set(idx)
            try:
                out[n] = self._decode(feats, image)[:, : self.out_channels[n]]
            finally:
                self.ctx.clear()
        return out


def _tracing() -> bool:
    # Under torch.export/jit/fx the task tensor is symbolic: value checks would break tracing.
    return torch.compiler.is_exporting() or torch.jit.is_tracing() or _fake_mode_active()


def _fake_mode_active() -> bool:
    from torch._guards import detect_fake_mode

    return detect_fake_mode() is not None
