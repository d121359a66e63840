"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021).

``max_d min_t ⟨g_t, d⟩`` s.t. ``||d − g0|| ≤ c ||g0||``, ``g0`` the mean gradient. Its dual over the
simplex, ``min_w  g_wᵀ g0 + c ||g0|| ||g_w||`` (``g_w = Σ w_t g_t``), is solved with SLSQP on the
Gram matrix; then ``d = g0 + (c ||g0|| / ||g_w||) g_w``, divided by ``1 + c²`` (rescale=1),
``1 + c`` (rescale=2) or left as is (rescale=0). The scale is that of the *mean* gradient, as in the
authors' code and LibMTL (c=0 gives plain averaging). Defaults c=0.5, rescale=1 (AMTL's setting).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers._simplex import project_simplex
from edgemtl.balancers.base import BalanceContext, GradientBalancer
from edgemtl.errors import EdgeMTLError


def cagrad_dual(gram: np.ndarray, c: float) -> np.ndarray:
    """Dual weights ``w ∈ Δ`` minimising ``wᵀ G 1/T + c ||g0|| sqrt(wᵀ G w)``."""
    T = gram.shape[0]
    A = gram / max(float(np.abs(np.diag(gram)).max()), 1e-300)  # scale-free: same argmin
    b = np.full(T, 1.0 / T)
    k = c * np.sqrt(max(b @ A @ b, 0.0))

    def f(x: np.ndarray) -> float:
        return float(x @ A @ b + k * np.sqrt(x @ A @ x + 1e-12))

    def jac(x: np.ndarray) -> np.ndarray:
        return A @ b + k * (A @ x) / np.sqrt(x @ A @ x + 1e-12)

    res = minimize(
        f,
        b,
        jac=jac,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * T,
        constraints=({"type": "eq", "fun": lambda x: x.sum() - 1.0},),
        options={"ftol": 1e-12, "maxiter": 500},
    )
    return project_simplex(torch.from_numpy(res.x)).numpy()


@BALANCERS.register("cagrad")
class CAGrad(GradientBalancer):
    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        c: float = 0.5,
        rescale: int = 1,
    ) -> None:
        super().__init__(tasks, fixed_weights)
        if c < 0:
            raise EdgeMTLError(f"cagrad: c must be >= 0 (got {c})")
        if rescale not in (0, 1, 2):
            raise EdgeMTLError(f"cagrad: rescale must be 0, 1 or 2 (got {rescale})")
        self.c, self.rescale = float(c), int(rescale)

    def combine_grads(
        self, grads: Tensor, losses: dict[str, Tensor], ctx: BalanceContext
    ) -> tuple[Tensor, dict[str, float]]:
        T = grads.shape[0]
        g = grads.detach().double()
        gram = (g @ g.T).cpu().numpy()
        coef = np.full(T, 1.0 / T)  # d = Σ coef_t g_t
        if self.c > 0:
            w = cagrad_dual(gram, self.c)
            gw_norm = np.sqrt(max(w @ gram @ w, 0.0))
            g0_norm = np.sqrt(max(coef @ gram @ coef, 0.0))
            # gw = 0 (the dual put its weight on a task whose gradient is zero, e.g. a batch without
            # its labels): the correction adds nothing to the update, and must not report ~1e12 weights.
            if gw_norm > 1e-12 * max(g0_norm, 1e-12):
                coef = coef + self.c * g0_norm / gw_norm * w
        coef = coef / {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        combined = (torch.from_numpy(coef).to(grads.device, grads.dtype)[:, None] * grads).sum(0)
        return combined, {t: float(a) for t, a in zip(self.tasks, coef)}
