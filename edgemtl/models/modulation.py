"""Per-task modulation modules (ASTMT, Maninis et al., CVPR 2019).

- :class:`TaskSE`: squeeze-and-excitation whose two FC layers are stacked per task
  ``[T, ...]`` and selected by the task input.
- :class:`TaskBatchNorm`: per-task BN statistics and affine parameters.
- :class:`TaskAdapter`: a per-task 1x1 convolution in parallel to an existing one,
  zero-initialised so training starts from the shared network (residual adapters).

Stacked per-task parameters carry ``_edgemtl_per_task = True`` so the profiler can split
parameter counts into shared and per-task parts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgemtl.models.task_input import TaskContext


def per_task(p: nn.Parameter) -> nn.Parameter:
    p._edgemtl_per_task = True  # type: ignore[attr-defined]
    return p


class SE(nn.Module):
    """Plain (task-shared) SE block, the baseline; pooling keeps dims so XNNPACK delegates it."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu6(self.fc1(s))))


class TaskSE(nn.Module):
    """SE with one FC->ReLU6->FC->sigmoid per task (ASTMT ``SEMobileMultiTaskDict``)."""

    def __init__(self, channels: int, num_tasks: int, ctx: TaskContext, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.ctx = [ctx]  # a list so nn.Module does not register the context as a submodule
        w1 = torch.empty(num_tasks, hidden, channels)
        w2 = torch.empty(num_tasks, channels, hidden)
        for t in range(num_tasks):  # same init as nn.Linear, per task
            nn.init.kaiming_uniform_(w1[t], a=5**0.5)
            nn.init.kaiming_uniform_(w2[t], a=5**0.5)
        self.w1 = per_task(nn.Parameter(w1))
        self.b1 = per_task(nn.Parameter(torch.zeros(num_tasks, hidden)))
        self.w2 = per_task(nn.Parameter(w2))
        # Start near identity gating (sigmoid(2)~0.88) so freshly added tasks do not silence
        # pretrained features.
        self.b2 = per_task(nn.Parameter(torch.full((num_tasks, channels), 2.0)))

    def forward(self, x: Tensor) -> Tensor:
        ctx = self.ctx[0]
        b, c = x.shape[:2]
        s = F.adaptive_avg_pool2d(x, 1).reshape(b, c, 1)  # [B, C, 1]
        w1, b1, w2, b2 = (ctx.select(p) for p in (self.w1, self.b1, self.w2, self.b2))
        # reshape, not (un)squeeze: XNNPACK delegates static reshapes, not squeeze_copy
        h = F.relu6(torch.bmm(w1, s).reshape(b, -1) + b1)
        g = torch.sigmoid(torch.bmm(w2, h.reshape(b, -1, 1)).reshape(b, c) + b2)
        return x * g.reshape(b, c, 1, 1)


def batch_norm_train(
    x: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    weight: Tensor,
    bias: Tensor,
    momentum: float,
    eps: float,
) -> Tensor:
    """Training-mode BN with batch statistics, updating the running statistics in place. DDP
    replaces it per module with the synchronised version (edgemtl.train.syncbn)."""
    return F.batch_norm(x, running_mean, running_var, weight, bias, True, momentum, eps)


class TaskBatchNorm(nn.Module):
    """Per-task BatchNorm (+ the wrapped module's activation), initialised from a shared BN.

    Training batches must be single-task (the single-tasking loop guarantees it): batch
    statistics are shared by the batch, affine parameters and running statistics belong to the
    task of sample 0. Training runs torch's fused BN on that task's rows (the same arithmetic as
    nn.BatchNorm2d; the composite mean/var/scale it replaced took 7 % of an ASTMT training step
    on a CPU); inference is tensor arithmetic on the selected statistics so the module exports
    with the task as a run-time input.
    """

    def __init__(self, bn: nn.BatchNorm2d, num_tasks: int, ctx: TaskContext) -> None:
        super().__init__()
        self.ctx = [ctx]
        c = bn.num_features
        self.eps, self.momentum = bn.eps, (bn.momentum if bn.momentum is not None else 0.1)
        w = bn.weight.detach() if bn.weight is not None else torch.ones(c)
        b = bn.bias.detach() if bn.bias is not None else torch.zeros(c)
        self.weight = per_task(nn.Parameter(w.repeat(num_tasks, 1).clone()))
        self.bias = per_task(nn.Parameter(b.repeat(num_tasks, 1).clone()))
        rm = bn.running_mean if bn.running_mean is not None else torch.zeros(c)
        rv = bn.running_var if bn.running_var is not None else torch.ones(c)
        self.register_buffer("running_mean", rm.detach().repeat(num_tasks, 1).clone())
        self.register_buffer("running_var", rv.detach().repeat(num_tasks, 1).clone())
        # timm's BatchNormAct2d folds drop + activation into the BN module; keep them.
        self.drop = getattr(bn, "drop", nn.Identity())
        self.act = getattr(bn, "act", nn.Identity())
        self.batch_norm = batch_norm_train

    def forward(self, x: Tensor) -> Tensor:
        ctx = self.ctx[0]
        if self.training:
            t = ctx.first()
            rm, rv = self.running_mean.index_select(0, t)[0], self.running_var.index_select(0, t)[0]
            w, b = self.weight.index_select(0, t)[0], self.bias.index_select(0, t)[0]
            y = self.batch_norm(x, rm, rv, w, b, self.momentum, self.eps)  # updates rm, rv (copies)
            with torch.no_grad():
                self.running_mean.index_copy_(0, t, rm[None])
                self.running_var.index_copy_(0, t, rv[None])
        else:
            gamma, beta = ctx.select(self.weight), ctx.select(self.bias)  # [B, C]
            mean, var = ctx.select(self.running_mean), ctx.select(self.running_var)
            scale = gamma * torch.rsqrt(var + self.eps)
            shift = beta - mean * scale
            y = x * scale[:, :, None, None] + shift[:, :, None, None]
        return self.act(self.drop(y))


class TaskAdapter(nn.Module):
    """``conv(x) + adapter_task(x)``: a per-task 1x1 conv beside an existing (1x1) conv."""

    def __init__(self, conv: nn.Conv2d, num_tasks: int, ctx: TaskContext) -> None:
        super().__init__()
        self.conv = conv
        self.ctx = [ctx]
        self.stride = conv.stride
        self.weight = per_task(nn.Parameter(torch.zeros(num_tasks, conv.out_channels, conv.in_channels)))

    def forward(self, x: Tensor) -> Tensor:
        w = self.ctx[0].select(self.weight)  # [B, O, I]
        xs = x[:, :, :: self.stride[0], :: self.stride[1]] if self.stride != (1, 1) else x
        return self.conv(x) + torch.einsum("boi,bihw->bohw", w, xs)


class Modulated(nn.Sequential):
    """A block's final projection BN followed by SE (applied before the residual add)."""
