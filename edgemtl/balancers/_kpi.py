"""Shared part of the accuracy-driven balancers (AMTL, DTP, FMTL): a smoothed KPI per task."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from edgemtl.balancers.base import BalanceContext, Balancer
from edgemtl.errors import EdgeMTLError


class KPIBalancer(Balancer):
    """Keeps ``ā_t``: set by the first KPI, then ``ā ← m·k + (1 − m)·ā`` (m = 0.1 in AMTL's code)."""

    def __init__(
        self, tasks: list[str], fixed_weights: dict[str, float] | None = None, momentum: float = 0.1
    ) -> None:
        super().__init__(tasks, fixed_weights)
        if not 0 < momentum <= 1:
            raise EdgeMTLError(f"{self.name}: momentum must be in (0, 1] (got {momentum})")
        self.momentum = float(momentum)
        self.kpi: dict[str, float] | None = None
        self.w: dict[str, float] = self.initial_weights()
        self.last_weights = dict(self.w)

    def initial_weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}

    def compute_weights(self, kpi: dict[str, float]) -> dict[str, float]:
        raise NotImplementedError

    def update_kpi(self, kpi: dict[str, float]) -> None:
        missing = [t for t in self.tasks if t not in kpi]
        if missing:
            raise EdgeMTLError(f"{self.name}: update_kpi got no KPI for task(s) {', '.join(missing)}")
        for t in self.tasks:
            k = float(kpi[t])
            if not (math.isfinite(k) and 0.0 <= k <= 1.0):
                raise EdgeMTLError(
                    f"{self.name}: the KPI of task '{t}' must be an accuracy in [0, 1] (got {k})"
                )
        new = {t: float(kpi[t]) for t in self.tasks}
        if self.kpi is not None:
            new = {t: self.momentum * new[t] + (1 - self.momentum) * self.kpi[t] for t in self.tasks}
        self.kpi = new
        self.w = self.compute_weights(new)

    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        if len(self.tasks) == len(self.w):
            return dict(self.w)
        # narrowed to the tasks present in the batch (Balancer.step): the same total over them
        present = sum(self.w[t] for t in self.tasks)
        total = sum(self.w.values())
        return {t: self.w[t] * total / present if present > 0 else self.w[t] for t in self.tasks}

    def state_dict(self) -> dict[str, Any]:
        kpi = None if self.kpi is None else dict(self.kpi)
        return {**super().state_dict(), "kpi": kpi, "w": dict(self.w)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.kpi = None if state["kpi"] is None else dict(state["kpi"])
        self.w = dict(state["w"])


def normalise(raw: dict[str, float], norm: str) -> dict[str, float]:
    """'softmax' or 'sum' normalisation; an all-zero 'sum' (every task achieved) falls back to uniform."""
    if norm == "softmax":
        top = max(raw.values())
        e = {t: math.exp(v - top) for t, v in raw.items()}
        return {t: v / sum(e.values()) for t, v in e.items()}
    total = sum(raw.values())
    if total <= 0:
        return {t: 1.0 / len(raw) for t in raw}
    return {t: v / total for t, v in raw.items()}
