"""Hard-parameter-sharing MTL: one shared encoder (and decoder), one pass, all task heads.

With ``aspp: per_task`` each task gets its own decoder (shared encoder only), as the MTL
baseline of Vandenhende et al. (TPAMI 2021).
"""

from __future__ import annotations

from torch import Tensor, nn

from edgemtl.models import ARCHITECTURES
from edgemtl.models.base import MultiTaskModel
from edgemtl.models.config import ModelConfig
from edgemtl.models.decoders import BiFPN, DeepLabV3PlusLite, LightHeads
from edgemtl.models.layers import InvertedResidual, upsample_to


@ARCHITECTURES.register("hard_sharing")
class HardSharing(MultiTaskModel):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.backbone = self._build_shared_backbone()
        ch, red = self.backbone.channels, self.backbone.reductions
        outs = [self.out_channels[n] for n in self.task_names]

        def decoder() -> nn.Module:
            if cfg.decoder == "bifpn":
                return BiFPN(
                    ch,
                    red,
                    cfg.decoder_channels,
                    cfg.bifpn_levels,
                    cfg.bifpn_repeats,
                    cfg.se,
                    cfg.se_reduction,
                )
            return DeepLabV3PlusLite(
                ch,
                red,
                cfg.decoder_channels,
                cfg.low_level_channels,
                cfg.aspp_rates,
                cfg.output_stride,
                cfg.se,
                cfg.se_reduction,
            )

        self.light = cfg.decoder == "light"
        if self.light:
            self.decoders = LightHeads(ch, red, outs)
        elif cfg.aspp == "per_task":
            self.decoders = nn.ModuleDict({n: decoder() for n in self.task_names})
        else:
            self.decoder = decoder()
        if not self.light:
            width = cfg.decoder_channels
            self.heads = nn.ModuleDict(
                {
                    n: nn.Sequential(
                        *(InvertedResidual(width) for _ in range(cfg.head_blocks)),
                        nn.Conv2d(width, self.out_channels[n], 1),
                    )
                    if cfg.head_blocks
                    else nn.Conv2d(width, self.out_channels[n], 1)
                    for n in self.task_names
                }
            )

    def forward_tasks(self, image: Tensor, names: list[str], return_features: bool = False):
        feats = self.backbone(self.normalize(image))
        if self.light:
            out = {n: upsample_to(self.decoders(feats, self.task_names.index(n)), image) for n in names}
            if return_features:
                self.interface = {n: feats[-1] for n in names}
            return (out, self.interface) if return_features else out
        shared = self.decoder(feats) if hasattr(self, "decoder") else None
        out, inter = {}, {}
        for n in names:
            inter[n] = shared if shared is not None else self.decoders[n](feats)
            out[n] = upsample_to(self.heads[n](inter[n]), image)
        if return_features:
            self.interface = inter  # see BaseModel.interface
        return (out, inter) if return_features else out

    def forward(self, image: Tensor, return_features: bool = False):
        """``return_features`` also returns, per task, the input of its prediction layer."""
        return self.forward_tasks(image, self.task_names, return_features)
