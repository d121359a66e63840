"""PAD-Net (Xu, Ouyang, Wang, Sebe, CVPR 2018), as the single-scale baseline of MTI-Net.

Initial per-task predictions on fused stride-8 features (deep supervision), multi-modal
distillation, then a per-task head. Simplification vs the paper: basic blocks instead of
bottlenecks, at ``mti_channels * 2`` width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgemtl.models import ARCHITECTURES
from edgemtl.models.base import MultiTaskModel
from edgemtl.models.config import ModelConfig
from edgemtl.models.decoders import _level
from edgemtl.models.interaction import BasicBlock, Distillation, InitialPrediction
from edgemtl.models.layers import ConvBNAct, upsample_to


@ARCHITECTURES.register("padnet")
class PADNet(MultiTaskModel):
    default_se = "none"
    one_pass_all_tasks = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.backbone = self._build_shared_backbone()
        ch, red = self.backbone.channels, self.backbone.reductions
        self.mid, width = _level(red, 8), 2 * cfg.mti_channels
        heads = self.head_channels()
        self.fuse = ConvBNAct(ch[self.mid] + ch[-1], width, 1)
        self.initial = InitialPrediction(width, width, heads)
        self.distill = Distillation(self.task_names, list(heads), width)
        self.heads = nn.ModuleDict(
            {
                t: nn.Sequential(
                    BasicBlock(width, width),
                    BasicBlock(width, width),
                    nn.Conv2d(width, self.out_channels[t], 1),
                )
                for t in self.task_names
            }
        )

    def forward(self, image: Tensor, return_aux: bool = False):
        feats = self.backbone(self.normalize(image))
        mid = feats[self.mid]
        x = self.fuse(torch.cat([mid, upsample_to(feats[-1], mid)], 1))
        task_feats, initial = self.initial(x)
        distilled = self.distill(task_feats)
        out = {t: upsample_to(self.heads[t](distilled[t]), image) for t in self.task_names}
        if return_aux:
            return out, {"initial": {t: upsample_to(v, image) for t, v in initial.items()}}
        return out
