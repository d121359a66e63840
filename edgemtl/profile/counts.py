"""Parameters (total / shared / per task) and MACs (per task, all tasks).

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2). It counts conv and
matmul-type ops only (not BN, activations or interpolation), which is the convention of the
MobileNet/ASTMT papers' GMAC figures. It sees functional weights (the task-selected SE and
head weights), which hook-based counters such as thop miss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgemtl.models.base import MultiTaskModel
from edgemtl.models.ownership import AUX, STACKED, param_owners


@dataclass
class Counts:
    params_total: int
    params_shared: int
    params_per_task: dict[str, int]
    params_aux: int
    macs_per_task: dict[str, int]
    macs_all_tasks: int
    input_size: tuple[int, int]
    encoder_once_for_all_tasks: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


def param_breakdown(model: MultiTaskModel) -> tuple[int, int, dict[str, int], int]:
    tasks = list(model.task_names)
    owners = param_owners(model)
    per = {t: 0 for t in tasks}
    shared = aux_n = total = 0
    for name, p in model.named_parameters():
        n, owner = p.numel(), owners[name]
        total += n
        if owner == STACKED:  # [T, ...]: each task owns one slice
            for t in tasks:
                per[t] += n // len(tasks)
        elif owner is None:
            shared += n
        elif owner == AUX:
            aux_n += n
        else:
            per[owner] += n
    return total, shared, per, aux_n


def count_macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fn(*args)
    return int(counter.get_total_flops() // 2)


def profile_counts(model: MultiTaskModel, input_size: tuple[int, int] | None = None) -> Counts:
    model = model.eval()
    h, w = input_size or model.config.image_size
    image = torch.rand(1, 3, h, w)
    total, shared, per, aux_n = param_breakdown(model)
    notes = []
    if model.conditional:
        macs = {t: count_macs(model.forward_task, image, t) for t in model.task_names}
    elif model.one_pass_all_tasks:
        all_macs = count_macs(model.forward, image)
        macs = {t: all_macs for t in model.task_names}
        notes.append("all tasks are computed in one pass: per-task MACs equal all-task MACs")
    else:
        macs = {t: count_macs(model.forward_tasks, image, [t]) for t in model.task_names}
    all_macs = count_macs(model.forward_all, image)
    return Counts(total, shared, per, aux_n, macs, all_macs, (h, w), bool(model.encoder_shared), notes)
