"""Dynamic Weight Average (Liu et al., "End-to-End Multi-Task Learning with Attention", CVPR 2019).

``w_t(e) = T · exp(r_t / τ) / Σ_k exp(r_k / τ)`` with ``r_t = L_t(e−1) / L_t(e−2)`` the ratio of the
last two epochs' mean training losses; weights are 1 until two epochs have ended.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, Balancer
from edgemtl.errors import EdgeMTLError


@BALANCERS.register("dwa")
class DWA(Balancer):
    def __init__(
        self, tasks: list[str], fixed_weights: dict[str, float] | None = None, temperature: float = 2.0
    ) -> None:
        super().__init__(tasks, fixed_weights)
        if not temperature > 0:
            raise EdgeMTLError(f"dwa: temperature must be > 0 (got {temperature})")
        self.temperature = float(temperature)
        self.history: list[dict[str, float]] = []  # the last two epochs' mean losses
        self.w = {t: 1.0 for t in self.tasks}

    def epoch_end(self, epoch: int, mean_losses: dict[str, float]) -> None:
        missing = [t for t in self.tasks if t not in mean_losses]
        if missing:
            raise EdgeMTLError(f"dwa: epoch_end got no mean loss for task(s) {', '.join(missing)}")
        self.history = (self.history + [{t: float(mean_losses[t]) for t in self.tasks}])[-2:]
        if len(self.history) == 2:
            prev, last = self.history
            r = [last[t] / max(prev[t], 1e-12) for t in self.tasks]
            top = max(r)  # shift before exp: same softmax, no overflow
            e = [math.exp((x - top) / self.temperature) for x in r]
            self.w = {t: len(self.tasks) * v / sum(e) for t, v in zip(self.tasks, e)}

    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        return dict(self.w)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [dict(h) for h in self.history], "w": dict(self.w)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [dict(h) for h in state["history"]]
        self.w = dict(state["w"])
