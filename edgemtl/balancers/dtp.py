"""Dynamic Task Prioritization (Guo et al., ECCV 2018), in AMTL's formulation.

``w_t = −(1 − κ̄_t)^γ log κ̄_t`` on the smoothed validation KPI ``κ̄_t`` (see :class:`KPIBalancer`),
not normalised; all weights are 1 until the first KPI arrives. γ defaults to 0.5 (AMTL's advice).
"""

from __future__ import annotations

import math

from edgemtl.balancers import BALANCERS
from edgemtl.balancers._kpi import KPIBalancer
from edgemtl.errors import EdgeMTLError

KPI_FLOOR = 1e-20  # log(0); AMTL adds the same constant


@BALANCERS.register("dtp")
class DTP(KPIBalancer):
    name = "dtp"

    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        focusing_factor: float = 0.5,
        momentum: float = 0.1,
    ) -> None:
        if focusing_factor < 0:
            raise EdgeMTLError(f"dtp: focusing_factor must be >= 0 (got {focusing_factor})")
        self.gamma = float(focusing_factor)
        super().__init__(tasks, fixed_weights, momentum)

    def compute_weights(self, kpi: dict[str, float]) -> dict[str, float]:
        return {t: -((1 - k) ** self.gamma) * math.log(max(k, KPI_FLOOR)) for t, k in kpi.items()}
