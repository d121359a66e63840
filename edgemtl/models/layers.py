"""Small building blocks shared by decoders and heads."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgemtl.models.modulation import TaskBatchNorm, per_task
from edgemtl.models.task_input import TaskContext

NormFactory = Callable[[int], nn.Module]


def bn_factory(ctx: TaskContext | None = None, per_task_bn: bool = False) -> NormFactory:
    """BN + ReLU6, per task when asked (ASTMT's ``norm_per_task``)."""

    def make(c: int) -> nn.Module:
        bn = nn.BatchNorm2d(c)
        if per_task_bn and ctx is not None:
            m = TaskBatchNorm(bn, ctx.num_tasks, ctx)
            m.act = nn.ReLU6()
            return m
        return nn.Sequential(bn, nn.ReLU6())

    return make


class TaskConv2d(nn.Module):
    """A conv with one weight per task, selected for the batch's task (batches are single-task)."""

    def __init__(self, conv: nn.Conv2d, ctx: TaskContext) -> None:
        super().__init__()
        t = ctx.num_tasks
        self.ctx = [ctx]
        self.stride, self.padding, self.dilation, self.groups = (
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
        )
        self.weight = per_task(nn.Parameter(conv.weight.detach().repeat(t, 1, 1, 1, 1).clone()))
        self.bias = (
            per_task(nn.Parameter(conv.bias.detach().repeat(t, 1).clone())) if conv.bias is not None else None
        )
        self.out_channels = conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        ctx = self.ctx[0]
        w = ctx.select_first(self.weight)
        b = ctx.select_first(self.bias) if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def conv_factory(ctx: TaskContext | None = None, per_task_conv: bool = False) -> Callable[..., nn.Module]:
    def make(*args, **kwargs) -> nn.Module:
        conv = nn.Conv2d(*args, **kwargs)
        return TaskConv2d(conv, ctx) if per_task_conv and ctx is not None else conv

    return make


class SepConv(nn.Sequential):
    """Depthwise-separable 3x3 (dilated) conv: dw -> BN+ReLU6 -> pw -> BN+ReLU6."""

    def __init__(
        self,
        cin: int,
        cout: int,
        dilation: int = 1,
        norm: NormFactory | None = None,
        conv: Callable[..., nn.Module] = nn.Conv2d,
    ) -> None:
        norm = norm or bn_factory()
        super().__init__(
            conv(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            norm(cin),
            conv(cin, cout, 1, bias=False),
            norm(cout),
        )


class ConvBNAct(nn.Sequential):
    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 1,
        norm: NormFactory | None = None,
        conv: Callable[..., nn.Module] = nn.Conv2d,
    ) -> None:
        norm = norm or bn_factory()
        super().__init__(conv(cin, cout, k, padding=k // 2, bias=False), norm(cout))


class InvertedResidual(nn.Module):
    """MobileNet-v2's block at constant width: 1x1 expand -> 3x3 depthwise -> 1x1 project, plus the
    input. ``norm`` / ``conv`` factories make it per task (ASTMT heads: per-task conv and BN)."""

    def __init__(
        self,
        width: int,
        expand: int = 4,
        norm: NormFactory | None = None,
        conv: Callable[..., nn.Module] = nn.Conv2d,
    ) -> None:
        super().__init__()
        norm = norm or bn_factory()
        hidden = width * expand
        self.body = nn.Sequential(
            conv(width, hidden, 1, bias=False),
            norm(hidden),
            conv(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            norm(hidden),
            conv(hidden, width, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TaskHead(nn.Module):
    """Per-task 1x1 prediction layers stacked and zero-padded to the widest task.

    The output is ``[B, C_max, H, W]``; channels beyond the selected task's count are exactly 0,
    so one fixed-shape output serves every task of an exported artifact.
    """

    def __init__(self, cin: int, out_channels: list[int], ctx: TaskContext) -> None:
        super().__init__()
        self.ctx = [ctx]
        cmax = max(out_channels)
        w = torch.zeros(len(out_channels), cmax, cin)
        b = torch.zeros(len(out_channels), cmax)
        for t, c in enumerate(out_channels):
            ref = nn.Conv2d(cin, c, 1)
            w[t, :c] = ref.weight.detach()[:, :, 0, 0]
            b[t, :c] = ref.bias.detach()
        self.weight = per_task(nn.Parameter(w))
        self.bias = per_task(nn.Parameter(b))
        mask = torch.zeros(len(out_channels), cmax)
        for t, c in enumerate(out_channels):
            mask[t, :c] = 1
        # The mask keeps padded channels at exactly zero even if an optimizer's weight decay or
        # momentum would otherwise touch them.
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        ctx = self.ctx[0]
        w = ctx.select(self.weight * self.mask[:, :, None])
        b = ctx.select(self.bias * self.mask)
        return torch.einsum("boc,bchw->bohw", w, x) + b[:, :, None, None]


def upsample_to(x: Tensor, ref: Tensor) -> Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
