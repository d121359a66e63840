"""Fixed loss weights (ASTMT's grid: edges 50, semseg 1, parts 2, normals 10, saliency 5, depth 1)."""

from __future__ import annotations

from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, Balancer


@BALANCERS.register("fixed")
class Fixed(Balancer):
    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__(tasks, fixed_weights)
        self.w = {t: float((weights or {}).get(t, self.fixed_weights[t])) for t in self.tasks}

    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        return dict(self.w)
