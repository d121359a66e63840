"""Optimizer parameter groups and learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgemtl.models.ownership import param_owners
from edgemtl.train.config import TrainConfig


def param_groups(
    model: nn.Module, cfg: TrainConfig, single_tasking: bool, extra: list[dict] | None = None
) -> list[dict]:
    """Shared parameters get lr / T in the single-tasking loop: they take T steps per batch
    (one per task), task-specific ones take one (ASTMT's ``lr_tsk`` multiplier)."""
    owners = param_owners(model)
    shared, specific = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (shared if owners[name] is None else specific).append(p)
    t = len(model.task_names) if single_tasking else 1
    groups = [
        {"params": shared, "lr": cfg.lr / t, "name": "shared"},
        {"params": specific, "lr": cfg.lr, "name": "task_specific"},
    ]
    return [g for g in groups + (extra or []) if g["params"]]


def make_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = max(cfg.epochs * steps_per_epoch, 1)
    warm = cfg.warmup_epochs * steps_per_epoch

    def factor(it: int) -> float:
        if it < warm:
            return (it + 1) / warm
        p = min((it - warm) / max(total - warm, 1), 1.0)
        if cfg.schedule == "poly":
            return (1 - p) ** cfg.poly_power
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * p))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class MaskedStep:
    """Optimizer step that changes only the selected task's rows of stacked per-task tensors.

    In the single-tasking loop a step for task t must not move other tasks' parameters: their
    gradient is zero, but momentum and weight decay would still change them. We restore their
    rows (and the optimizer's per-element state) after the step. Scalar state such as Adam's step
    count is shared by the tensor, so Adam's bias correction for a task's rows sees every task's
    steps (SGD, ASTMT's optimizer, is exact).
    """

    def __init__(self, model: nn.Module) -> None:
        self.stacked = [p for p in model.parameters() if getattr(p, "_edgemtl_per_task", False)]

    def step(self, opt: torch.optim.Optimizer, task_idx: int, step_fn=None) -> None:
        """``step_fn(opt)`` replaces ``opt.step()`` (the fp16 scaler's step, which may skip it)."""
        saved = []
        for p in self.stacked:
            keep = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
            keep[task_idx] = False
            st = opt.state.get(p, {})
            tensors = {k: v[keep].clone() for k, v in st.items() if torch.is_tensor(v) and v.shape == p.shape}
            saved.append((p, keep, p.detach()[keep].clone(), tensors))
        step_fn(opt) if step_fn is not None else opt.step()
        with torch.no_grad():
            for p, keep, data, tensors in saved:
                p[keep] = data
                for k, v in tensors.items():
                    opt.state[p][k][keep] = v
