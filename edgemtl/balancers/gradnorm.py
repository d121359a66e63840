"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing", ICML 2018).

Learnable weights ``w_t`` (start at 1). Each step, with ``W`` the last shared layer's weight
(``ctx.last_shared``), ``G_t = w_t ||∇_W L_t||``, inverse training rate
``r_t = (L_t / L_t(0)) / mean_k(L_k / L_k(0))`` and target ``Ḡ · r_t^α`` (held constant), the weights
take one step of their own optimizer on ``Σ_t |G_t − Ḡ r_t^α|`` and are renormalised to sum to T.
The network is updated with the weights *before* that step (Algorithm 1 of the paper).
``L_t(0)`` is the loss at the first step.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import BalanceContext, Balancer
from edgemtl.errors import EdgeMTLError

MIN_WEIGHT = 1e-3  # a large step could push a weight to or below zero


@BALANCERS.register("gradnorm")
class GradNorm(Balancer):
    def __init__(
        self,
        tasks: list[str],
        fixed_weights: dict[str, float] | None = None,
        alpha: float = 1.5,
        lr: float = 0.025,
        optimizer: str = "adam",
    ) -> None:
        super().__init__(tasks, fixed_weights)
        if alpha < 0:
            raise EdgeMTLError(f"gradnorm: alpha must be >= 0 (got {alpha})")
        if not lr > 0:
            raise EdgeMTLError(f"gradnorm: lr must be > 0 (got {lr})")
        if optimizer not in ("adam", "sgd"):
            raise EdgeMTLError(f"gradnorm: optimizer must be 'adam' or 'sgd' (got '{optimizer}')")
        self.alpha = float(alpha)
        # The weights live on the CPU (T scalars) and are not in parameters(): their own optimizer
        # steps them, the trainer's must not.
        self.w = nn.Parameter(torch.ones(len(self.tasks)))
        self.opt: torch.optim.Optimizer = (
            torch.optim.Adam([self.w], lr=lr)
            if optimizer == "adam"
            else torch.optim.SGD([self.w], lr=lr, momentum=0.1)  # AMTL release's setting
        )
        self.initial: Tensor | None = None

    def _last_shared(self, ctx: BalanceContext) -> nn.Parameter:
        if ctx.last_shared is not None:
            return ctx.last_shared
        shared = [p for p in ctx.shared_params if p.requires_grad]
        if not shared:
            raise EdgeMTLError("gradnorm needs shared parameters (ctx.last_shared or ctx.shared_params)")
        return shared[-1]

    def backward(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        W = self._last_shared(ctx)
        # ``self.tasks`` may be the tasks present in this batch (Balancer.step): rows by position
        idx = torch.tensor([self.positions[t] for t in self.tasks])
        L = torch.stack([losses[t].detach().float().cpu() for t in self.tasks])
        if self.initial is None:
            self.initial = torch.full((len(self.positions),), float("nan"))
        first = torch.isnan(self.initial[idx])
        self.initial[idx[first]] = L[first]  # a task's first loss, whenever it first has labels
        norms = []
        for t in self.tasks:
            (g,) = torch.autograd.grad(losses[t], W, retain_graph=True, allow_unused=True)
            norms.append(g.detach().float().norm().cpu() if g is not None else torch.zeros(()))
        used = self.w.detach().clone()

        G = self.w[idx] * torch.stack(norms)
        rate = L / self.initial[idx].clamp_min(1e-12)
        rate = rate / rate.mean().clamp_min(1e-12)
        target = (G.mean() * rate**self.alpha).detach()
        self.opt.zero_grad(set_to_none=True)
        (G - target).abs().sum().backward(inputs=[self.w])
        absent = torch.ones(len(self.positions), dtype=torch.bool)
        absent[idx] = False
        held = self.w.detach()[absent].clone()
        self.opt.step()
        with torch.no_grad():  # an absent task's weight stays; the present ones share what is left of T
            self.w[absent] = held
            self.w.clamp_(min=MIN_WEIGHT)
            rest = len(self.positions) - float(self.w[absent].sum())
            self.w[idx] *= rest / self.w[idx].sum()

        device = losses[self.tasks[0]].device
        sum(used[self.positions[t]].to(device) * losses[t] for t in self.tasks).backward()
        self.last_weights = {t: float(used[self.positions[t]]) for t in self.tasks}
        return self.last_weights

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "w": self.w.detach().clone(),
            "initial": None if self.initial is None else self.initial.clone(),
            "optimizer": copy.deepcopy(self.opt.state_dict()),
        }  # no aliasing of live state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.initial = None if state["initial"] is None else state["initial"].clone()
        self.opt.load_state_dict(state["optimizer"])
