"""Synchronised BatchNorm for any device.

torch's ``SyncBatchNorm`` is CUDA-only (DDP rejects it on CPU), so CPU/gloo runs use this: batch
sums, sums of squares and counts are all-reduced by a differentiable all-reduce, so gradients
flow through the global statistics exactly as with single-process BN on the concatenated batch.
The forward of each BN *instance* is replaced, leaving module paths and state_dict keys unchanged.
Per-task BNs (ASTMT) use it on every device, CUDA included: torch's SyncBatchNorm knows nothing
of their stacked per-task statistics, and unsynchronised each process would keep its own.
"""

from __future__ import annotations

import types

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from edgemtl.train.dist import distributed


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes. The gradient of the global loss (a sum of every process's loss) w.r.t.
    one process's input is the sum of all processes' output gradients: another all-reduce."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


def synced_batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float,
    eps: float,
) -> Tensor:
    """Training-mode BN on the statistics of every process's batch together; the running
    statistics (when given) are updated in place with them, as F.batch_norm does."""
    if not distributed():
        return F.batch_norm(x, running_mean, running_var, weight, bias, True, momentum, eps)
    c = x.shape[1]
    count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
    packed = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
    n = packed[-1]
    mean = packed[:c] / n
    var = packed[c : 2 * c] / n - mean * mean
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            running_var.mul_(1 - momentum).add_(momentum * (var.detach() * n / (n - 1)))
    y = (x - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + eps)
    if weight is not None:
        y = y * weight[None, :, None, None] + bias[None, :, None, None]
    return y


def _synced_forward(self: nn.BatchNorm2d, x: Tensor) -> Tensor:
    m = self.momentum if self.momentum is not None else 0.1
    if not (self.training and distributed()):
        y = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            m,
            self.eps,
        )
    else:
        track = self.track_running_stats
        y = synced_batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight if self.affine else None,
            self.bias if self.affine else None,
            m,
            self.eps,
        )
        if track:
            self.num_batches_tracked.add_(1)
    # timm's BatchNormAct2d folds dropout and activation into the BN module.
    if hasattr(self, "drop"):
        y = self.drop(y)
    if hasattr(self, "act"):
        y = self.act(y)
    return y


def sync_batchnorm(model: nn.Module, plain: bool = True) -> int:
    """Make the BatchNorms of ``model`` synchronise their batch statistics; returns the count.

    Per-task BNs (ASTMT) always: their training forward calls a replaceable ``batch_norm``,
    pointed here at :func:`synced_batch_norm` (the task's rows are updated from the global
    statistics). Plain ``nn.BatchNorm2d`` too when ``plain`` (CUDA uses torch's SyncBatchNorm)."""
    from edgemtl.models.modulation import TaskBatchNorm

    n = 0
    for m in model.modules():
        if isinstance(m, TaskBatchNorm):
            m.batch_norm = synced_batch_norm
            n += 1
        elif plain and isinstance(m, nn.BatchNorm2d):
            m.forward = types.MethodType(_synced_forward, m)
            n += 1
    return n
