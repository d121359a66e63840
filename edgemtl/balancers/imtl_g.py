"""IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021), gradient balancing.

Finds ``α`` (Σ α_t = 1) such that ``g = Σ_t α_t g_t`` has equal projections onto every unit task
gradient ``u_t = g_t / ||g_t||``. The paper's closed form, with ``D = [g_1 − g_t]ᵀ`` and
``U = [u_1 − u_t]ᵀ`` (t = 2..T), is ``α_{2:T} = g_1 Uᵀ (D Uᵀ)⁻¹``, ``α_1 = 1 − Σ α_{2:T}``. The condition
``u_tᵀ Gᵀ α = c`` for all t is ``G Gᵀ α = c ||g||`` (``||g||`` the vector of gradient norms), so
edgemtl solves the equivalent ``α ∝ pinv(G Gᵀ) ||g||``, normalised to sum 1: the same α to 1e-12 on
generic inputs, and well defined where the paper's form degenerates to a zero update: exactly
parallel task gradients, or a task whose shared gradient is zero (a batch without its labels), which
then gets α_t = 0 while the others are balanced among themselves. Computed on the shared parameters'
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
    T = g.shape[0]
    if T == 1:
        return torch.ones(1, dtype=torch.float64)
    norms = g.norm(dim=1)
    w = torch.linalg.pinv(g @ g.T, hermitian=True) @ norms
    total = w.sum()
    if not torch.isfinite(total) or total.abs() <= 1e-12 * w.abs().sum().clamp_min(1e-300):
        # No α with equal projections and Σα = 1 (e.g. two equal and opposite gradients, or all zero):
        # fall back to the plain mean rather than a zero or exploding update.
        return torch.full((T,), 1.0 / T, dtype=torch.float64)
    return (w / total).cpu()


@BALANCERS.register("imtl_g")
class IMTLG(GradientBalancer):
    def combine_grads(
        self, grads: Tensor, losses: dict[str, Tensor], ctx: BalanceContext
    ) -> tuple[Tensor, dict[str, float]]:
        alpha = imtl_g_weights(grads)
        combined = (alpha.to(grads.device, grads.dtype)[:, None] * grads).sum(0)
        return combined, {t: float(a) for t, a in zip(self.tasks, alpha)}
