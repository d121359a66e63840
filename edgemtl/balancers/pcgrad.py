"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

For each task i, in a random order of the other tasks j: if ``g_i' · g_j < 0``,
``g_i' ← g_i' − (g_i' · g_j / ||g_j||²) g_j`` (projection onto the normal plane of the *original*
``g_j``). The shared parameters get ``Σ_i g_i'`` (a sum, as in the paper's code and LibMTL).
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, GradientBalancer


@BALANCERS.register("pcgrad")
class PCGrad(GradientBalancer):
    def combine_grads(
        self, grads: Tensor, losses: dict[str, Tensor], ctx: BalanceContext
    ) -> tuple[Tensor, dict[str, float]]:
        g = grads.detach()
        sq = (g * g).sum(1).clamp_min(1e-20)
        projected = g.clone()
        T = g.shape[0]
        for i in range(T):
            # One permutation per task, drawn from the trainer's generator: a seeded run replays.
            gen = ctx.generator
            order = torch.randperm(T, generator=gen, device=gen.device if gen is not None else "cpu").tolist()
            for j in order:
                if j == i:
                    continue
                dot = projected[i] @ g[j]
                if dot < 0:
                    projected[i] -= dot / sq[j] * g[j]
        return projected.sum(0), {t: 1.0 for t in self.tasks}
