"""MTI-Net: multi-scale task interaction networks (Vandenhende, Georgoulis, Van Gool, ECCV 2020).

Initial task predictions at four scales (coarse to fine, each fed the upsampled FPM output of the
coarser scale), multi-modal distillation per scale, and per-task aggregation of all scales. All
tasks run in one pass; auxiliary tasks join the interaction and deep supervision only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgemtl.models import ARCHITECTURES
from edgemtl.models.base import MultiTaskModel
from edgemtl.models.config import ModelConfig
from edgemtl.models.decoders import _level
from edgemtl.models.interaction import FPM, Distillation, InitialPrediction
from edgemtl.models.layers import ConvBNAct, upsample_to


@ARCHITECTURES.register("mtinet")
class MTINet(MultiTaskModel):
    default_se = "none"
    one_pass_all_tasks = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.backbone = self._build_shared_backbone()
        ch, red = self.backbone.channels, self.backbone.reductions
        self.levels = [_level(red, 4), _level(red, 8), _level(red, 16), len(ch) - 1]
        width = cfg.mti_channels
        heads = self.head_channels()
        self.all_tasks = list(heads)
        self.reduce = nn.ModuleList(ConvBNAct(ch[lvl], width, 1) for lvl in self.levels)
        self.initial = nn.ModuleList(
            InitialPrediction(width if s == 3 else 2 * width, width, heads) for s in range(4)
        )
        self.fpm = nn.ModuleDict({str(s): FPM(self.all_tasks, width) for s in (1, 2, 3)})
        self.distill = nn.ModuleList(Distillation(self.task_names, self.all_tasks, width) for _ in range(4))
        self.aggregate = nn.ModuleDict(
            {
                t: nn.Sequential(
                    ConvBNAct(4 * width, 4 * width, 1), nn.Conv2d(4 * width, self.out_channels[t], 1)
                )
                for t in self.task_names
            }
        )

    def forward(self, image: Tensor, return_aux: bool = False):
        feats = self.backbone(self.normalize(image))
        x = [r(feats[lvl]) for r, lvl in zip(self.reduce, self.levels)]
        initial: dict[str, dict[str, Tensor]] = {}
        distilled: list[dict[str, Tensor]] = [{}] * 4
        prev: dict[str, Tensor] | None = None
        for s in (3, 2, 1, 0):
            inp = (
                x[s]
                if prev is None
                else {t: torch.cat([x[s], upsample_to(prev[t], x[s])], 1) for t in self.all_tasks}
            )
            task_feats, initial[f"scale_{s}"] = self.initial[s](inp)
            if s > 0:
                prev = self.fpm[str(s)](task_feats)
            distilled[s] = self.distill[s](task_feats)
        out = {}
        for t in self.task_names:
            ref = distilled[0][t]
            agg = torch.cat([ref] + [upsample_to(distilled[s][t], ref) for s in (1, 2, 3)], 1)
            out[t] = upsample_to(self.aggregate[t](agg), image)
        if return_aux:
            return out, {
                k: {t: upsample_to(v, image) for t, v in preds.items()} for k, preds in initial.items()
            }
        return out
