"""The balancer interface.

A balancer turns per-task losses into gradients. Two kinds:

- ``kind = "loss"``: it weighs the losses (``weights``) and combines them (``combine``, a
  weighted sum unless overridden, e.g. a geometric mean); one backward pass.
- ``kind = "gradient"``: it reads each task's gradient of the *shared* parameters and sets
  their ``.grad`` to a combination (MGDA, PCGrad, CAGrad, IMTL-G, ...). Task-specific
  parameters keep their own task's gradient.

The trainer calls, per step, ``weights_used = balancer.backward(losses, ctx)``; per epoch
``epoch_end(epoch, mean_losses)``; after each validation ``update_kpi(kpi)`` with
accuracy-type KPIs in [0, 1] (AMTL, DTP). ``parameters()`` are learnable balancer parameters
the trainer adds to its optimizer (e.g. uncertainty log-variances). ``state_dict`` makes
resuming exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


@dataclass
class BalanceContext:
    shared_params: list[nn.Parameter]  # parameters every task uses (the encoder, shared decoder)
    step: int = 0
    epoch: int = 0
    last_shared: nn.Parameter | None = None  # the last shared layer's weight (GradNorm)
    generator: torch.Generator | None = None  # for stochastic balancers (RLW), seeded by the trainer
    # fp16 training: the GradScaler's scaling of the combined loss (loss-kind balancers only)
    scale_loss: Callable[[Tensor], Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Balancer:
    name: ClassVar[str]
    kind: ClassVar[str] = "loss"

    def __init__(self, tasks: list[str], fixed_weights: dict[str, float] | None = None) -> None:
        self.tasks = list(tasks)
        # Each task's row in per-task parameters/state: fixed, while ``self.tasks`` is narrowed to the
        # tasks present in a batch (``step``), so a balancer indexes its vectors by position.
        self.positions = {t: i for i, t in enumerate(self.tasks)}
        self.fixed_weights = {t: float((fixed_weights or {}).get(t, 1.0)) for t in self.tasks}
        self.last_weights: dict[str, float] = {t: 1.0 for t in self.tasks}

    def step(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        """What the trainer calls: ``backward`` over the tasks in ``losses``. With partially-labelled
        data a batch may have no label for a task; the balancer then runs over the tasks present,
        exactly as if the model had only those (weights, combination, gradient geometry), so an
        absent task neither produces a NaN nor drags the others' update to zero (MGDA would pick the
        zero gradient). Its weight stays as last used."""
        present = [t for t in self.tasks if t in losses]
        if not present:
            return dict(self.last_weights)
        if len(present) == len(self.tasks):
            return self.backward(losses, ctx)
        full, before = self.tasks, dict(self.last_weights)
        absent = [self.positions[t] for t in full if t not in losses]
        # per-task rows of learnable parameters (uncertainty, imtl): the trainer's optimizer would still
        # move an absent task's row (momentum, weight decay); restore_absent() puts it back after it
        self._held = [
            (p, absent, p.detach()[absent].clone())
            for p in self.parameters()
            if p.dim() >= 1 and p.shape[0] == len(full)
        ]
        self.tasks = present
        try:
            used = self.backward({t: losses[t] for t in present}, ctx)
        finally:
            self.tasks = full
        self.last_weights = {**before, **used}
        return dict(self.last_weights)

    def restore_absent(self) -> None:
        """After the optimizer step of a narrowed ``step``: absent tasks' parameter rows as they were."""
        with torch.no_grad():
            for p, rows, values in getattr(self, "_held", []):
                p[rows] = values.to(p.device)
        self._held = []

    # ---- loss-based balancers override these two ----
    def weights(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, Tensor | float]:
        return {t: 1.0 for t in self.tasks}

    def combine(self, losses: dict[str, Tensor], weights: dict[str, Tensor | float]) -> Tensor:
        return sum(weights[t] * losses[t] for t in self.tasks)

    # ---- gradient-based balancers override this ----
    def backward(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        w = self.weights(losses, ctx)
        total = self.combine(losses, w)
        (ctx.scale_loss(total) if ctx.scale_loss is not None else total).backward()
        # detach: learnable weights (uncertainty) would warn on float() of a graph tensor
        self.last_weights = {
            t: float(w[t].detach() if isinstance(w[t], Tensor) else w[t]) for t in self.tasks
        }
        return self.last_weights

    # ---- hooks ----
    def epoch_end(self, epoch: int, mean_losses: dict[str, float]) -> None:
        pass

    def update_kpi(self, kpi: dict[str, float]) -> None:
        pass

    def parameters(self) -> list[nn.Parameter]:
        return []

    def to(self, device: torch.device | str) -> Balancer:
        """Move learnable state to ``device`` in place.

        Only ``.data`` is swapped, so the Parameter objects an optimizer already holds stay valid;
        call it before building the optimizer (or loading its state) so both live on one device.
        """
        for p in self.parameters():
            p.data = p.data.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"last_weights": dict(self.last_weights)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_weights = dict(state.get("last_weights", self.last_weights))


def task_gradients(losses: dict[str, Tensor], tasks: list[str], params: list[nn.Parameter]) -> Tensor:
    """Per-task gradients of ``params`` flattened into a ``[T, P]`` matrix (graph retained)."""
    rows = []
    for t in tasks:
        grads = torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
            )
        )
    return torch.stack(rows)


def set_shared_grad(params: list[nn.Parameter], flat: Tensor) -> None:
    """Write a flat combined gradient into ``params``' ``.grad``."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


class GradientBalancer(Balancer):
    """Base for gradient-manipulation methods: subclasses implement ``combine_grads``."""

    kind = "gradient"

    def combine_grads(
        self, grads: Tensor, losses: dict[str, Tensor], ctx: BalanceContext
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def backward(self, losses: dict[str, Tensor], ctx: BalanceContext) -> dict[str, float]:
        shared = [p for p in ctx.shared_params if p.requires_grad]
        grads = task_gradients(losses, self.tasks, shared)
        combined, weights = self.combine_grads(grads, losses, ctx)
        # Task-specific parameters: each only sees its own task's loss, so the plain sum gives
        # exactly their task gradient; the shared ones are then overwritten.
        sum(losses[t] for t in self.tasks).backward()
        set_shared_grad(shared, combined)
        self.last_weights = {t: float(weights.get(t, 1.0)) for t in self.tasks}
        return self.last_weights
