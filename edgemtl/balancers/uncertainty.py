"""Homoscedastic uncertainty weighting (Kendall et al., CVPR 2018).

Learnable log-variances ``s_t = log σ_t²``: ``L = Σ_t exp(−s_t) L_t + s_t`` (``half=True``:
``Σ_t ½ exp(−s_t) L_t + ½ s_t``, the regression form that LibMTL applies to every task). Both are
minimised over ``s_t`` at ``s_t = log L_t``. The ``s_t`` are returned by ``parameters()`` for the
trainer's optimizer; the reported weights are the multipliers ``exp(−s_t)`` (or ``½ exp(−s_t)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, Balancer


@BALANCERS.register("uncertainty")
class Uncertainty(Balancer):
    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        init: float = 0.0,
        half: bool = False,
    ) -> None:
        super().__init__(tasks, fixed_weights)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))
        self.scale = 0.5 if half else 1.0

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_vars]

    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, Tensor]:
        device = losses[self.tasks[0]].device
        if self.log_vars.device != device:
            self.to(device)  # fallback when the trainer did not call to(); see Balancer.to
        w = self.scale * torch.exp(-self.log_vars)
        return {t: w[self.positions[t]] for t in self.tasks}

    def combine(self, losses: dict[str, Tensor], weights: dict[str, Tensor | float]) -> Tensor:
        regulariser = self.scale * sum(self.log_vars[self.positions[t]] for t in self.tasks)
        return sum(weights[t] * losses[t] for t in self.tasks) + regulariser

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_vars": self.log_vars.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():  # in place: the optimizer keeps holding the same Parameter
            self.log_vars.copy_(state["log_vars"])
