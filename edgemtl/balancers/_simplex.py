"""Small quadratic problems over the probability simplex, solved on the T×T Gram matrix."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor


def min_norm_weights(gram: Tensor) -> Tensor:
    """``argmin_{α ∈ Δ} αᵀ G α``: the weights of the min-norm point of the gradients' convex hull.

    Closed form for T ≤ 2; SLSQP on the (rescaled) Gram matrix above that.
    """
    G = gram.detach().double().cpu()
    T = G.shape[0]
    if T == 1:
        return torch.ones(1, dtype=torch.float64)
    if T == 2:
        # min over a segment: α = (g2 − g1)·g2 / ||g1 − g2||², clipped to [0, 1].
        denom = G[0, 0] - 2 * G[0, 1] + G[1, 1]
        a = 0.5 if denom <= 1e-30 else float(((G[1, 1] - G[0, 1]) / denom).clamp(0.0, 1.0))
        return torch.tensor([a, 1.0 - a], dtype=torch.float64)
    A = G.numpy()
    A = A / max(float(np.abs(np.diag(A)).max()), 1e-300)  # same argmin; keeps SLSQP's tolerance meaningful
    res = minimize(
        lambda x: x @ A @ x,
        np.full(T, 1.0 / T),
        jac=lambda x: 2 * A @ x,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * T,
        constraints=({"type": "eq", "fun": lambda x: x.sum() - 1.0},),
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return project_simplex(torch.from_numpy(res.x))


def project_simplex(x: Tensor) -> Tensor:
    """Euclidean projection onto the simplex (clean up a solver's tiny constraint violations)."""
    u, _ = torch.sort(x, descending=True)
    css = torch.cumsum(u, 0) - 1
    k = torch.arange(1, len(x) + 1, dtype=x.dtype)
    rho = int(torch.nonzero(u - css / k > 0)[-1])
    return (x - css[rho] / (rho + 1)).clamp_min(0)
