"""Synchronised BatchNorm for any device.

torch's ``SyncBatchNorm`` is CUDA-only (DDP rejects it on CPU), so CPU/gloo runs use this: batch
sums, sums of squares and counts are all-reduced by a differentiable all-reduce, so gradients
flow through the global statistics exactly as with single-process BN on the concatenated batch.
The forward of each BN *instance* is replaced, leaving module paths and state_dict keys unchanged.
"""

from __future__ import annotations

import types

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


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


def _synced_forward(self: nn.BatchNorm2d, x: Tensor) -> Tensor:
    if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        y = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            self.momentum or 0.1,
            self.eps,
        )
    else:
        c = x.shape[1]
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        packed = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        n = packed[-1]
        mean = packed[:c] / n
        var = packed[c : 2 * c] / n - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * (var.detach() * n / (n - 1)))
                self.num_batches_tracked.add_(1)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
    # timm's BatchNormAct2d folds dropout and activation into the BN module.
    if hasattr(self, "drop"):
        y = self.drop(y)
    if hasattr(self, "act"):
        y = self.act(y)
    return y


def sync_batchnorm(model: nn.Module) -> int:
    """Make every BatchNorm2d of ``model`` synchronise its batch statistics; returns the count."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.forward = types.MethodType(_synced_forward, m)
            n += 1
    return n
