"""ASTMT's adversarial training on task gradients (Maninis et al., CVPR 2019, sec. 3.3).

The gradient of each task's loss w.r.t. the features at the shared/task-specific interface is
computed with ``create_graph=True`` (double back-propagation), L2-normalised over channels and
fed through a gradient-reversal layer to a fully convolutional discriminator that predicts
which task produced it. Reversed, the discriminator's loss pushes the shared network to make
task gradients statistically indistinguishable, i.e. to stop tasks from fighting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.alpha * grad, None


def grad_reverse(x: Tensor, alpha: float) -> Tensor:
    return _Reverse.apply(x, alpha)


def ganin_alpha(epoch: int, epochs: int) -> float:
    """Ganin & Lempitsky's schedule, as ASTMT: 2 / (1 + exp(-10 p)) - 1 with p = (epoch+1)/epochs."""
    p = (epoch + 1) / max(epochs, 1)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


class TaskDiscriminator(nn.Module):
    """Fully convolutional: two 1x1 convs predicting the task id per pixel."""

    def __init__(self, channels: int, num_tasks: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, num_tasks, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def discriminator_loss(
    loss: Tensor, features: Tensor, task_idx: int, valid: Tensor, disc: TaskDiscriminator, alpha: float
) -> Tensor:
    """``valid`` ([B, H, W] bool) marks pixels with ground truth: only those are classified."""
    """CE of the discriminator on the reversed, normalised task gradient at ``features``."""
    (g,) = torch.autograd.grad(loss, features, create_graph=True)
    g = F.normalize(g, dim=1)
    logits = disc(grad_reverse(g, alpha))
    mask = valid.float()[:, None]
    mask = F.interpolate(mask, size=logits.shape[-2:], mode="nearest")[:, 0] > 0
    labels = torch.full(logits.shape[:1] + logits.shape[2:], 255, dtype=torch.long, device=logits.device)
    labels[mask] = task_idx
    if not mask.any():
        return logits.sum() * 0
    return F.cross_entropy(logits, labels, ignore_index=255)
