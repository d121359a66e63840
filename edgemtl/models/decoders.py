"""Decoders: DeepLab-v3+ "lite" (ASTMT's MobileNet decoder) and UberNet-style light heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgemtl.models.layers import ConvBNAct, SepConv, TaskConv2d, bn_factory, conv_factory, upsample_to
from edgemtl.models.modulation import SE, TaskSE, per_task
from edgemtl.models.task_input import TaskContext


def _level(reductions: list[int], stride: int) -> int:
    return max(i for i, r in enumerate(reductions) if r <= stride)


class ASPPLite(nn.Module):
    """ASPP with depthwise-separable atrous branches and an image-pooling branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...], norm, conv) -> None:
        super().__init__()
        self.b0 = ConvBNAct(cin, cout, 1, norm, conv)
        self.atrous = nn.ModuleList(SepConv(cin, cout, r, norm, conv) for r in rates)
        # Pool branch: no BN (batch 1 at export would make BN meaningless on a 1x1 map).
        self.pool = nn.Sequential(conv(cin, cout, 1), nn.ReLU6())
        self.project = ConvBNAct(cout * (2 + len(rates)), cout, 1, norm, conv)

    def forward(self, x: Tensor) -> Tensor:
        # adaptive_avg_pool2d(1) keeps dims, which XNNPACK delegates (a plain mean would not). The 1x1
        # map is spread by a broadcast add onto a zero map of the input's size: not .expand() (LiteRT's
        # converter emits BROADCAST_TO with an NCHW shape on NHWC tensors for it, which fails to run),
        # not a nearest resize (XNNPACK has none, so it split the ExecuTorch graph). Exact values.
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1)) + x[:, :1] * 0.0
        return self.project(torch.cat([self.b0(x), *(a(x) for a in self.atrous), pooled], 1))


class DeepLabV3PlusLite(nn.Module):
    """ASPP on the deepest features, fused with stride-4 features, two SepConv+SE blocks.

    Returns stride-4 decoder features ``[B, D, H/4, W/4]``; prediction layers are separate.
    """

    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        width: int = 64,
        low_width: int = 32,
        rates: tuple[int, ...] = (6, 12, 18),
        output_stride: int = 16,
        se: str = "none",
        se_reduction: int = 4,
        ctx: TaskContext | None = None,
        per_task_bn: bool = False,
        per_task_aspp: bool = False,
    ) -> None:
        super().__init__()
        norm = bn_factory(ctx, per_task_bn)
        # Rates are given for output stride 16; at 8 the receptive field doubles them (DeepLab).
        scale = 16 // output_stride if output_stride <= 16 else 1
        rates = tuple(r * scale for r in rates)
        self.low_idx = _level(reductions, 4)
        aspp_norm = bn_factory(ctx, per_task_bn or per_task_aspp)
        self.aspp = ASPPLite(channels[-1], width, rates, aspp_norm, conv_factory(ctx, per_task_aspp))
        self.low = ConvBNAct(channels[self.low_idx], low_width, 1, norm)
        self.blocks = nn.ModuleList()
        for cin in (width + low_width, width):
            mods: list[nn.Module] = [SepConv(cin, width, 1, norm)]
            if se != "none":
                mods.append(_modulation(width, se, se_reduction, ctx))
            self.blocks.append(nn.Sequential(*mods))
        self.out_channels = width

    def forward(self, feats: list[Tensor]) -> Tensor:
        low = self.low(feats[self.low_idx])
        x = upsample_to(self.aspp(feats[-1]), low)
        x = torch.cat([x, low], 1)
        for block in self.blocks:
            x = block(x)
        return x


class LightHeads(nn.Module):
    """UberNet-style light heads: per task, a 1x1 conv on each of the stride 4/8/deepest levels,
    upsampled to stride 4 and summed. No shared decoder; the cheap alternative to ASPP."""

    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        out_channels: list[int],
        ctx: TaskContext | None = None,
    ) -> None:
        super().__init__()
        self.levels = sorted({_level(reductions, 4), _level(reductions, 8), len(channels) - 1})
        self.conditional = ctx is not None
        cmax = max(out_channels)
        self.heads = nn.ModuleList()
        for lvl in self.levels:
            if self.conditional:
                conv = TaskConv2d(nn.Conv2d(channels[lvl], cmax, 1), ctx)
                mask = torch.zeros(len(out_channels), cmax, 1, 1, 1)
                for t, c in enumerate(out_channels):
                    mask[t, :c] = 1
                with torch.no_grad():
                    conv.weight.mul_(mask)
                    conv.bias.mul_(mask[:, :, 0, 0, 0])
                self.heads.append(conv)
            else:
                self.heads.append(nn.ModuleList(nn.Conv2d(channels[lvl], c, 1) for c in out_channels))

    def forward(self, feats: list[Tensor], task_idx: int | None = None) -> Tensor:
        ref = feats[self.levels[0]]
        out = None
        for lvl, head in zip(self.levels, self.heads):
            h = head(feats[lvl]) if self.conditional else head[task_idx](feats[lvl])
            h = upsample_to(h, ref) if h.shape[-2:] != ref.shape[-2:] else h
            out = h if out is None else out + h
        return out


def _modulation(width: int, se: str, se_reduction: int, ctx: TaskContext | None) -> nn.Module:
    """The SE a decoder block ends with: per task ("task"), shared ("shared") or none."""
    if se == "task":
        return TaskSE(width, ctx.num_tasks, ctx, se_reduction)
    if se == "shared":
        return SE(width, se_reduction)
    return nn.Identity()


class _Fuse(nn.Module):
    """EfficientDet's fast normalised fusion: sum_i relu(w_i) x_i / (sum_i relu(w_i) + eps), then a
    separable conv (+ SE / task SE)."""

    def __init__(self, n: int, width: int, norm, se: nn.Module) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(n))
        self.conv = SepConv(width, width, 1, norm)
        self.se = se

    def forward(self, xs: list[Tensor]) -> Tensor:
        w = F.relu(self.w)
        w = w / (w.sum() + 1e-4)
        return self.se(self.conv(sum(w[i] * x for i, x in enumerate(xs))))


class BiFPN(nn.Module):
    """A BiFPN neck (EfficientDet, Tan et al., CVPR 2020) as AMTL's VOC+NYU model uses it.

    Feature levels at the reductions ``levels`` (default 1/16, 1/32, 1/64): a backbone level where
    the backbone has that reduction, else made from the next finer one by a stride-2 max-pool (as
    EfficientDet makes P6/P7); each projected to ``width`` channels. ``repeats`` rounds of top-down then
    bottom-up weighted fusion. The output, like DeepLab-v3+'s, is one map for the pixel heads: every
    level resized to the finest and concatenated, fused by a 1x1 conv, at the finest level's stride.
    With ``se="task"`` (ASTMT) every fusion node and the output carry task SE (and per-task BN where
    asked), so the neck is modulated per task as the decoder is.
    """

    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        width: int = 64,
        levels: tuple[int, ...] = (16, 32, 64),
        repeats: int = 2,
        se: str = "none",
        se_reduction: int = 4,
        ctx: TaskContext | None = None,
        per_task_bn: bool = False,
    ) -> None:
        super().__init__()
        norm = bn_factory(ctx, per_task_bn)
        levels = tuple(sorted(int(v) for v in levels))
        if len(levels) < 2 or any(b != 2 * a for a, b in zip(levels, levels[1:])):
            raise ValueError(
                f"model.bifpn_levels must be >= 2 reductions, each twice the last (got {levels})"
            )
        self.src: list[int | None] = []  # backbone index feeding a level, None = pooled from the level before
        self.lateral = nn.ModuleList()
        for r in levels:
            idx = [i for i, red in enumerate(reductions) if red == r]
            # a dilated backbone repeats its last reduction: take the deepest features at it
            self.src.append(idx[-1] if idx else None)
            cin = channels[idx[-1]] if idx else width
            self.lateral.append(
                ConvBNAct(cin, width, 1, norm) if idx or len(self.src) == 1 else nn.Identity()
            )
        if self.src[0] is None:
            raise ValueError(f"the backbone has no features at 1/{levels[0]} for the finest BiFPN level")
        n = len(levels)

        def fuse(k: int) -> _Fuse:
            return _Fuse(k, width, norm, _modulation(width, se, se_reduction, ctx))

        self.down = nn.ModuleList(nn.ModuleList(fuse(2) for _ in range(n - 1)) for _ in range(repeats))
        self.up = nn.ModuleList(
            nn.ModuleList(fuse(3 if 0 < i < n - 1 else 2) for i in range(1, n)) for _ in range(repeats)
        )
        self.out = nn.Sequential(
            ConvBNAct(width * n, width, 1, norm), _modulation(width, se, se_reduction, ctx)
        )
        self.out_channels = width

    def levels(self, feats: list[Tensor]) -> list[Tensor]:
        ps: list[Tensor] = []
        for src, lat in zip(self.src, self.lateral):
            if src is None:
                # from the previous level (already projected to width): max-pool, as EfficientDet
                ps.append(F.max_pool2d(ps[-1], 3, 2, 1))
            else:
                ps.append(lat(feats[src]))
        for down, up in zip(self.down, self.up):
            n = len(ps)
            td = list(ps)
            for i in range(n - 2, -1, -1):  # top-down: coarse to fine
                td[i] = down[i]([ps[i], upsample_to(td[i + 1], ps[i])])
            out = [td[0]]
            for i in range(1, n):  # bottom-up: fine to coarse, with the top-down node where there is one
                coarse = F.max_pool2d(out[-1], 3, 2, 1)
                coarse = upsample_to(coarse, ps[i]) if coarse.shape[-2:] != ps[i].shape[-2:] else coarse
                inputs = [ps[i], td[i], coarse] if i < n - 1 else [ps[i], coarse]
                out.append(up[i - 1](inputs))
            ps = out
        return ps

    def forward(self, feats: list[Tensor]) -> Tensor:
        ps = self.levels(feats)
        return self.out(torch.cat([ps[0], *(upsample_to(p, ps[0]) for p in ps[1:])], 1))


__all__ = ["ASPPLite", "BiFPN", "DeepLabV3PlusLite", "LightHeads", "per_task"]
