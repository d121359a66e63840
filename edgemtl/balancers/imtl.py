"""IMTL (Liu et al., ICLR 2021): IMTL-G gradient balancing on IMTL-L scaled losses.

IMTL-L learns a scale ``s_t`` per task and trains on ``L̃_t = e^{s_t} L_t − s_t``, whose minimum over
``s_t`` is at ``e^{s_t} L_t = 1`` (every task's scaled loss is driven to the same level). Shared
parameters get the IMTL-G combination of the ``∇L̃_t``; task-specific parameters and ``s_t`` get
their own ``∇L̃_t``. ``s_t`` (start 0) are returned by ``parameters()`` for the trainer's optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext
from edgemtl.balancers.imtl_g import IMTLG

MAX_SCALE = 60.0  # e^60 is still finite in float32 (overflow starts near 88)


@BALANCERS.register("imtl")
class IMTL(IMTLG):
    def __init__(self, tasks: list[str], fixed_weights: dict[str, float] | None = None) -> None:
        super().__init__(tasks, fixed_weights)
        self.scales = nn.Parameter(torch.zeros(len(self.tasks)))

    def parameters(self) -> list[nn.Parameter]:
        return [self.scales]

    def scaled_losses(self, losses: dict[str, Tensor]) -> dict[str, Tensor]:
        device = losses[self.tasks[0]].device
        if self.scales.device != device:
            self.to(device)  # fallback when the trainer did not call to(); see Balancer.to
        s = self.scales.clamp(max=MAX_SCALE)
        return {t: torch.exp(s[self.positions[t]]) * losses[t] - s[self.positions[t]] for t in self.tasks}

    def backward(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        return super().backward(self.scaled_losses(losses), ctx)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "scales": self.scales.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():  # in place: the optimizer keeps holding the same Parameter
            self.scales.copy_(state["scales"])
