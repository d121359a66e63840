"""MGDA (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

The shared parameters get ``Σ_t α_t g_t`` with ``α = argmin_{α ∈ Δ} ||Σ_t α_t ĝ_t||²`` — the min-norm
point of the convex hull of the (normalised) task gradients ``ĝ_t = g_t / n_t``. As in the authors'
code, α is found on the normalised gradients and applied to the raw ones (LibMTL applies α to the
normalised gradients instead; with ``normalization='none'`` the two agree). The gradients are those
of all shared parameters (AMTL's MGDA), not MGDA-UB's shared representation.

``normalization``: 'none' (n=1), 'l2' (n=||g||), 'loss' (n=L), 'loss+' (n=L·||g||).
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgemtl.balancers import BALANCERS
from edgemtl.balancers._simplex import min_norm_weights
from edgemtl.balancers.base import BalanceContext, GradientBalancer
from edgemtl.errors import EdgeMTLError

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@BALANCERS.register("mgda")
class MGDA(GradientBalancer):
    def __init__(
        self, tasks: list[str], fixed_weights: dict[str, float] | None = None, normalization: str = "none"
    ) -> None:
        super().__init__(tasks, fixed_weights)
        if normalization not in NORMALIZATIONS:
            raise EdgeMTLError(
                f"mgda: normalization must be one of {', '.join(NORMALIZATIONS)} (got '{normalization}')"
            )
        self.normalization = normalization

    def _normalizers(self, grads: Tensor, losses: dict[str, Tensor]) -> Tensor:
        n = torch.ones(grads.shape[0], dtype=torch.float64)
        if self.normalization in ("l2", "loss+"):
            n = n * grads.detach().double().norm(dim=1).cpu()
        if self.normalization in ("loss", "loss+"):
            n = n * torch.stack([losses[t].detach().double().cpu() for t in self.tasks])
        return n.clamp_min(1e-12)

    def combine_grads(
        self, grads: Tensor, losses: dict[str, Tensor], ctx: BalanceContext
    ) -> tuple[Tensor, dict[str, float]]:
        n = self._normalizers(grads, losses)
        g = grads.detach().double()
        gram = (g @ g.T).cpu() / torch.outer(n, n)
        alpha = min_norm_weights(gram)
        combined = (alpha.to(grads.device, grads.dtype)[:, None] * grads).sum(0)
        return combined, {t: float(a) for t, a in zip(self.tasks, alpha)}
