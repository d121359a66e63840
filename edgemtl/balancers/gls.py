"""Geometric Loss Strategy (Chennupati et al., "MultiNet++", CVPR Workshops 2019).

``L = (Π_t L_t)^{1/T}``. Its gradient is ``L · (1/T) Σ_t ∇L_t / L_t``: each task's gradient is
divided by its own loss, which removes loss-scale dominance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, Balancer

LOSS_FLOOR = 1e-12  # log(0) = -inf would turn the whole step into NaN


def weighted_geometric_mean(
    losses: dict[str, Tensor], weights: dict[str, Tensor | float], tasks: list[str]
) -> Tensor:
    """``Π_t L_t^{w_t}`` computed as ``exp(Σ_t w_t log L_t)`` (no under/overflow of the product)."""
    return torch.exp(sum(weights[t] * torch.log(losses[t].clamp_min(LOSS_FLOOR)) for t in tasks))


@BALANCERS.register("gls")
class GLS(Balancer):
    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        return {t: 1.0 / len(self.tasks) for t in self.tasks}  # exponents, not multipliers

    def combine(self, losses: dict[str, Tensor], weights: dict[str, Tensor | float]) -> Tensor:
        return weighted_geometric_mean(losses, weights, self.tasks)
