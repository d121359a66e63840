"""Multi-task loss with focal weights (FMTL; ``MTLwFW`` in the AMTL release, Yun & Cho, ICCV 2023).

``w_t ∝ (1 − κ̄_t)^γ`` on the smoothed validation KPI, sum-normalised (``norm='softmax'`` optional);
weights are 1/T until the first KPI. It is AMTL without the potentials.
"""

from __future__ import annotations

from edgemtl.balancers import BALANCERS
from edgemtl.balancers._kpi import KPIBalancer, normalise
from edgemtl.errors import EdgeMTLError


@BALANCERS.register("fmtl")
class FMTL(KPIBalancer):
    name = "fmtl"

    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        focusing_factor: float = 2.0,
        norm: str = "sum",
        momentum: float = 0.1,
    ) -> None:
        if focusing_factor < 0:
            raise EdgeMTLError(f"fmtl: focusing_factor must be >= 0 (got {focusing_factor})")
        if norm not in ("softmax", "sum"):
            raise EdgeMTLError(f"fmtl: norm must be 'softmax' or 'sum' (got '{norm}')")
        self.gamma, self.norm = float(focusing_factor), norm
        super().__init__(tasks, fixed_weights, momentum)

    def initial_weights(self) -> dict[str, float]:
        return {t: 1.0 / len(self.tasks) for t in self.tasks}

    def compute_weights(self, kpi: dict[str, float]) -> dict[str, float]:
        return normalise({t: (1 - k) ** self.gamma for t, k in kpi.items()}, self.norm)
