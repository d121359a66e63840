"""Random Loss Weighting (Lin et al., "Reasonable Effectiveness of Random Weighting", TMLR 2022).

Each step draws ``w = softmax(z)``, ``z ~ N(0, I_T)``, so the weights sum to 1 (the convention of
the paper, LibMTL, TorchJD and AMTL's release).
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, Balancer


@BALANCERS.register("rlw")
class RLW(Balancer):
    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        g = ctx.generator
        # Drawn from the trainer's generator (on its own device) so a seeded run replays exactly.
        z = torch.randn(len(self.tasks), generator=g, device=g.device if g is not None else "cpu")
        w = torch.softmax(z.double(), dim=0).tolist()
        return dict(zip(self.tasks, w))
