"""IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021), gradient balancing.

Finds ``α`` (Σ α_t = 1) such that ``g = Σ_t α_t g_t`` has equal projections onto every unit task
gradient ``u_t = g_t / ||g_t||``. Closed form, with ``D = [g_1 − g_t]ᵀ`` and ``U = [u_1 − u_t]ᵀ``
(t = 2..T): ``α_{2:T} = g_1 Uᵀ (D Uᵀ)⁻¹``, ``α_1 = 1 − Σ α_{2:T}``. Computed on the shared parameters'
gradients (AMTL's release uses the last shared layer only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, GradientBalancer


def imtl_g_weights(grads: Tensor) -> Tensor:
    """The IMTL-G ``α`` for a ``[T, P]`` gradient matrix (float64, on the CPU)."""
    g = grads.detach().double()
    if g.shape[0] == 1:
        return torch.ones(1, dtype=torch.float64)
    u = g / g.norm(dim=1, keepdim=True).clamp_min(1e-20)
    D, U = g[:1] - g[1:], u[:1] - u[1:]
    # pinv: parallel task gradients make D Uᵀ singular; any solution then satisfies the condition.
    rest = (g[:1] @ U.T) @ torch.linalg.pinv(D @ U.T)
    return torch.cat([1 - rest.sum(1), rest[0]]).cpu()


@BALANCERS.register("imtl_g")
class IMTLG(GradientBalancer):
    def combine_grads(self, grads: Tensor, losses: dict[str, Tensor],
                      ctx: BalanceContext) -> tuple[Tensor, dict[str, float]]:
        alpha = imtl_g_weights(grads)
        combined = (alpha.to(grads.device, grads.dtype)[:, None] * grads).sum(0)
        return combined, {t: float(a) for t, a in zip(self.tasks, alpha)}
