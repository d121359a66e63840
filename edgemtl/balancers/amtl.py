"""Achievement-based multi-task loss (Yun & Cho, ICCV 2023), as released (Samsung/Achievement-based-MTL).

With potentials ``p_t`` (single-task accuracies), margin m and smoothed validation KPI ``ā_t``:
``p̂_t = p_t (1 + m)``, achievement ``a_t = clamp(ā_t / p̂_t, 0, 1)``, focal weight
``w̃_t = (1 − a_t)^γ``, ``w = softmax(w̃)`` (``norm='softmax'``, the release's default) or
``w̃ / Σ w̃`` (``'sum'``). Weights are 1/T until the first KPI. The loss is the weighted geometric
mean ``Π_t L_t^{w_t} = exp(Σ_t w_t log L_t)`` (``combine='geometric'``, AMTL) or ``Σ_t w_t L_t``
(``'arithmetic'``, AMTL-A). The clamp is ours: above its potential the release's base turns
negative and the weight grows again (or becomes complex for non-integer γ).
"""

from __future__ import annotations

from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers._kpi import KPIBalancer, normalise
from edgemtl.balancers.gls import weighted_geometric_mean
from edgemtl.errors import EdgeMTLError


@BALANCERS.register("amtl")
class AMTL(KPIBalancer):
    name = "amtl"

    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        potentials: dict[str, float] | None = None,
        margin: float = 0.05,
        focusing_factor: float = 2.0,
        norm: str = "softmax",
        combine: str = "geometric",
        momentum: float = 0.1,
    ) -> None:
        potentials = potentials or {}
        for t in tasks:
            if t not in potentials:
                raise EdgeMTLError(
                    f"amtl: no potential for task '{t}'. Give balancer_params.potentials = "
                    f"{{task: single-task accuracy in (0, 1]}} for every task ({', '.join(tasks)})"
                )
            if not 0 < float(potentials[t]) <= 1:
                raise EdgeMTLError(
                    f"amtl: the potential of task '{t}' must be an accuracy in (0, 1] (got {potentials[t]})"
                )
        if margin < 0:
            raise EdgeMTLError(f"amtl: margin must be >= 0 (got {margin})")
        if focusing_factor < 0:
            raise EdgeMTLError(f"amtl: focusing_factor must be >= 0 (got {focusing_factor})")
        if norm not in ("softmax", "sum"):
            raise EdgeMTLError(f"amtl: norm must be 'softmax' or 'sum' (got '{norm}')")
        if combine not in ("geometric", "arithmetic"):
            raise EdgeMTLError(f"amtl: combine must be 'geometric' or 'arithmetic' (got '{combine}')")
        self.target = {t: float(potentials[t]) * (1 + margin) for t in tasks}  # p̂
        self.gamma, self.norm, self.combine_mode = float(focusing_factor), norm, combine
        super().__init__(tasks, fixed_weights, momentum)

    def initial_weights(self) -> dict[str, float]:
        return {t: 1.0 / len(self.tasks) for t in self.tasks}

    def achievements(self, kpi: dict[str, float]) -> dict[str, float]:
        return {t: min(max(kpi[t] / self.target[t], 0.0), 1.0) for t in self.tasks}

    def compute_weights(self, kpi: dict[str, float]) -> dict[str, float]:
        raw = {t: (1 - a) ** self.gamma for t, a in self.achievements(kpi).items()}
        return normalise(raw, self.norm)

    def combine(self, losses: dict[str, Tensor], weights: dict[str, Tensor | float]) -> Tensor:
        if self.combine_mode == "geometric":
            return weighted_geometric_mean(losses, weights, self.tasks)
        return super().combine(losses, weights)
