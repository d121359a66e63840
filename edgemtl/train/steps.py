"""One optimisation step of the single-tasking loop (ASTMT) and of the joint loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from edgemtl.balancers import BalanceContext, Balancer
from edgemtl.data.dataset import labelled_rows, take_rows
from edgemtl.errors import EdgeMTLError
from edgemtl.tasks import Task
from edgemtl.train.adversarial import TaskDiscriminator, discriminator_loss
from edgemtl.train.config import TrainConfig
from edgemtl.train.dist import any_process, average_gradients
from edgemtl.train.optim import MaskedStep
from edgemtl.train.speed import Amp

# Balancers whose weight for a task does not need the other tasks' losses of the same step,
# so they can drive the single-tasking loop (one task per optimizer step).
SINGLE_TASKING_BALANCERS = {"fixed", "uniform", "dwa", "dtp", "rlw", "fmtl"}


@dataclass
class StepContext:
    net: nn.Module  # the model, or its DDP wrapper (forward goes through it so gradients sync)
    model: nn.Module  # the bare model
    tasks: dict[str, Task]
    aux_tasks: dict[str, Task]
    balancer: Balancer
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    masked: MaskedStep
    balance_ctx: BalanceContext
    disc: TaskDiscriminator | None = None
    amp: Amp = field(default_factory=lambda: Amp("fp32", "cpu"))
    alpha: float = 0.0
    last_losses: dict[str, float] = field(default_factory=dict)
    # Trained parameters outside the DDP-wrapped model (the discriminator, learnable balancer
    # weights): their gradients are averaged over the processes here, as DDP does for the model's.
    extra_params: list[Tensor] = field(default_factory=list)


class NonFiniteLoss(EdgeMTLError):
    """A NaN/inf loss; the trainer adds which checkpoint (if any) holds the last good state."""


def _check(loss: Tensor, task: str, where: str) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLoss(
            f"non-finite {task} loss ({loss.item()}) at {where}: training stopped. Lower train.lr, enable "
            f"train.grad_clip, or check the {task} labels"
        )


def _forward(s: StepContext, image: Tensor, names: list[str], features: bool, aux: bool):
    """Outputs (and interface features / deep-supervision predictions) for ``names``."""
    m = s.model
    if m.conditional:
        outs, feats = {}, {}
        for n in names:
            idx = torch.full((image.shape[0],), m.task_names.index(n), dtype=torch.long, device=image.device)
            r = s.net(image, idx, return_features=features)
            y, f = r if features else (r, None)
            outs[n], feats[n] = y[:, : m.out_channels[n]], _interface(m, f) if features else None
        return outs, feats, None
    if aux:
        outs, initial = s.net(image, return_aux=True)
        return outs, None, initial
    if features:
        outs, feats = s.net(image, return_features=True)
        return outs, _interface(m, feats), None
    return s.net(image), None, None


def _interface(model: nn.Module, returned: Any) -> Any:
    """The features the predictions were computed from (``MultiTaskModel.interface``), not the
    copies a DDP wrapper returns: the adversarial step differentiates the loss with respect to them."""
    own = getattr(model, "interface", None)
    if own is None:
        return returned
    model.interface = None
    return own


def task_loss(task: Task, pred: Tensor, target: Any, rows: list[int] | None) -> Tensor | None:
    """``task``'s loss over the labelled rows only (None when no row is labelled): an unlabelled
    image is not a negative example (detection) and does not dilute the mean (dense tasks)."""
    if rows is None:
        return task.loss(pred, target)
    if not rows:
        return None
    return task.loss(pred[rows], take_rows(target, rows))


def _valid(s: StepContext, n: str, batch: dict[str, Any], rows: list[int] | None) -> Tensor:
    """Pixels with ground truth for the discriminator: none in an image unlabelled for ``n``."""
    mask = s.tasks[n].valid_mask(batch[n])
    if rows is not None:
        keep = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
        keep[rows] = True
        mask = mask & keep.view(-1, *([1] * (mask.dim() - 1)))
    return mask


def _aux_loss(s: StepContext, initial: dict[str, dict[str, Tensor]], batch: dict[str, Any]) -> Tensor:
    """Deep supervision of the initial predictions (MTI-Net / PAD-Net), fixed task weights."""
    every = {**s.tasks, **s.aux_tasks}
    total = 0.0
    for preds in initial.values():
        for n, y in preds.items():
            if n in batch:
                loss = task_loss(every[n], y, batch[n], labelled_rows(batch, n))
                if loss is not None:
                    total = total + every[n].loss_weight * loss
    return s.cfg.aux_weight * total


def _clip(s: StepContext) -> None:
    """Gradients ready for the step: those of parameters DDP does not own averaged over the
    processes, unscaled (fp16), clipped."""
    average_gradients(s.extra_params)
    s.amp.unscale(s.optimizer)  # fp16: clip (and step) on the true gradients
    if s.cfg.grad_clip:
        params = [p for g in s.optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, s.cfg.grad_clip)


def _idle_step(s: StepContext, image: Tensor, n: str, use_aux: bool, batch: dict[str, Any]) -> None:
    """Task ``n``'s step on a DDP process whose batch has no image labelled for ``n`` while another
    process's has: it must still run the forward (synchronised BN) and the backward (gradient
    all-reduce), or every process waits forever. A zero loss contributes zero gradients; DDP
    averages, so every process then takes the same step."""
    with s.amp.autocast():
        outs, _, initial = _forward(s, image, [n], False, use_aux)
        total = outs[n].sum() * 0.0
        if initial is not None:
            total = total + _aux_loss(s, {k: {n: v[n]} for k, v in initial.items()}, batch)
    s.amp.scale(total).backward()
    _clip(s)
    s.masked.step(s.optimizer, s.model.task_names.index(n), s.amp.step)
    s.amp.update()


def single_tasking_step(s: StepContext, batch: dict[str, Any], where: str) -> dict[str, float]:
    """For each task: forward that task, backward, step only the parameters it uses."""
    image = batch["image"]
    use_aux = s.model.one_pass_all_tasks
    out_losses = {}
    for n in s.tasks:
        rows = labelled_rows(batch, n)
        here = rows is None or bool(rows)
        # Items carry "labelled" only in partially-labelled datasets, on every process alike: only
        # then can the processes disagree, so only then is the flag all-reduced (a sync per task).
        if not (any_process(here, image.device) if "labelled" in batch else here):
            continue  # no image of this batch (on any process) is labelled for n: no step for it
        s.optimizer.zero_grad(set_to_none=True)
        if not here:
            _idle_step(s, image, n, use_aux, batch)
            continue
        with s.amp.autocast():
            outs, feats, initial = _forward(s, image, [n], s.disc is not None, use_aux)
            loss = task_loss(s.tasks[n], outs[n], batch[n], rows)
        _check(loss, n, where)
        s.last_losses[n] = loss.item()
        live = {t: torch.tensor(s.last_losses.get(t, 1.0)) for t in s.tasks}
        live[n] = loss
        w = s.balancer.weights(live, s.balance_ctx)[n]
        total = w * loss
        with s.amp.autocast():
            if initial is not None:
                total = total + _aux_loss(s, {k: {n: v[n]} for k, v in initial.items()}, batch)
            if s.disc is not None:
                d = discriminator_loss(
                    loss,
                    feats[n],
                    s.model.task_names.index(n),
                    _valid(s, n, batch, rows),
                    s.disc,
                    s.alpha,
                )
                total = (1 - s.cfg.adv_weight) * total + s.cfg.adv_weight * d
        s.amp.scale(total).backward()
        _clip(s)
        s.masked.step(s.optimizer, s.model.task_names.index(n), s.amp.step)
        s.amp.update()
        s.balancer.last_weights[n] = float(w)
        out_losses[n] = loss.item()
    return out_losses


def joint_step(s: StepContext, batch: dict[str, Any], where: str) -> dict[str, float]:
    """One forward of all tasks, balanced losses, one optimizer step."""
    image = batch["image"]
    use_aux = s.model.one_pass_all_tasks
    s.optimizer.zero_grad(set_to_none=True)
    names = list(s.tasks)
    rows = {n: labelled_rows(batch, n) for n in names}
    with s.amp.autocast():
        outs, feats, initial = _forward(s, image, names, s.disc is not None, use_aux)
        losses = {}
        for n in names:
            loss = task_loss(s.tasks[n], outs[n], batch[n], rows[n])
            if loss is not None:  # a task with no labelled image in the batch sits this step out
                losses[n] = loss
    for n in losses:
        _check(losses[n], n, where)
    reported = {n: v.item() for n, v in losses.items()}
    extra = None
    with s.amp.autocast():
        if initial is not None:
            extra = _aux_loss(s, initial, batch)
        if s.disc is not None:
            d = sum(
                discriminator_loss(
                    losses[n],
                    feats[n],
                    s.model.task_names.index(n),
                    _valid(s, n, batch, rows[n]),
                    s.disc,
                    s.alpha,
                )
                for n in losses
            )
            extra = (extra or 0) + s.cfg.adv_weight * d
            losses = {n: (1 - s.cfg.adv_weight) * v for n, v in losses.items()}
    saved = None
    if extra is not None:
        s.amp.scale(extra).backward(retain_graph=True)
        if s.balancer.kind == "gradient":
            # Gradient balancers overwrite the shared gradients; add the extra terms back after.
            saved = [(p, p.grad) for p in s.balance_ctx.shared_params]
            for p in s.balance_ctx.shared_params:
                p.grad = None
    s.balance_ctx.scale_loss = s.amp.scale if s.amp.scaler is not None else None  # fp16 loss scaling
    s.balancer.step(losses, s.balance_ctx)
    if saved:
        for p, g in saved:
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
    _clip(s)
    s.amp.step(s.optimizer)
    s.amp.update()
    s.balancer.restore_absent()
    return reported
