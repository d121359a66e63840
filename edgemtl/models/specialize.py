"""Bake one task into a task-conditional model: every per-task module becomes the plain module
of that task (TaskBN -> BatchNorm2d, TaskSE -> SE with 1x1 convs, TaskConv2d/TaskHead -> Conv2d,
1x1 adapters folded into their conv).

The result computes exactly what ``model.forward_task(image, task)`` computes, but its graph has
only static weights: runtimes fold BN into the preceding conv, XNNPACK delegates the whole graph,
and PT2E quantizes every layer per channel. Export uses it for ``--task-input per-task``; the
price is that weights which per-task BN folds into differ per task (``.pte`` methods then share
only the unmodulated weights).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from edgemtl.errors import EdgeMTLError


class _StridedSum(nn.Module):
    """``conv(x) + adapter(x[::s, ::s])`` for an adapter beside a conv it cannot be folded into."""

    def __init__(self, conv: nn.Module, adapter: nn.Conv2d, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv, self.adapter, self.stride = conv, adapter, stride

    def forward(self, x: Tensor) -> Tensor:
        xs = x[:, :, :: self.stride[0], :: self.stride[1]] if self.stride != (1, 1) else x
        return self.conv(x) + self.adapter(xs)


def _conv1x1(weight: Tensor, bias: Tensor | None) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=bias is not None)
    conv.weight.data.copy_(weight[:, :, None, None])
    if bias is not None:
        conv.bias.data.copy_(bias)
    return conv


def _replacement(mod: nn.Module, t: int, channels: int | None) -> nn.Module | None:
    from edgemtl.models.layers import TaskConv2d, TaskHead
    from edgemtl.models.modulation import SE, TaskAdapter, TaskBatchNorm, TaskSE

    if isinstance(mod, TaskSE):
        se = SE(mod.w1.shape[2])
        se.fc1 = _conv1x1(mod.w1[t].detach(), mod.b1[t].detach())
        se.fc2 = _conv1x1(mod.w2[t].detach(), mod.b2[t].detach())
        return se
    if isinstance(mod, TaskBatchNorm):
        bn = nn.BatchNorm2d(mod.weight.shape[1], eps=mod.eps)
        bn.weight.data.copy_(mod.weight[t])
        bn.bias.data.copy_(mod.bias[t])
        bn.running_mean.copy_(mod.running_mean[t])
        bn.running_var.copy_(mod.running_var[t])
        return nn.Sequential(bn, mod.drop, mod.act).eval()
    if isinstance(mod, TaskConv2d):
        w = mod.weight[t].detach()
        conv = nn.Conv2d(
            w.shape[1] * mod.groups,
            w.shape[0],
            w.shape[2:],
            mod.stride,
            mod.padding,
            mod.dilation,
            mod.groups,
            bias=mod.bias is not None,
        )
        conv.weight.data.copy_(w)
        if mod.bias is not None:
            conv.bias.data.copy_(mod.bias[t])
        return conv
    if isinstance(mod, TaskHead):
        c = channels if channels is not None else mod.weight.shape[1]
        return _conv1x1(mod.weight[t, :c].detach(), mod.bias[t, :c].detach())
    if isinstance(mod, TaskAdapter):
        a = mod.weight[t].detach()
        conv = _specialize_children(copy.deepcopy(mod.conv), t, None)
        plain = (
            isinstance(conv, nn.Conv2d)
            and conv.kernel_size == (1, 1)
            and conv.groups == 1
            and conv.padding == (0, 0)
        )
        if plain and conv.dilation == (1, 1):
            # A 1x1 conv with stride s reads x[::s, ::s]: the adapter adds to the same weights.
            conv.weight.data.add_(a[:, :, None, None])
            return conv
        return _StridedSum(conv, _conv1x1(a, None), tuple(mod.stride))
    return None


def _specialize_children(module: nn.Module, t: int, channels: int | None) -> nn.Module:
    rep = _replacement(module, t, channels)
    if rep is not None:
        return rep
    for name, child in list(module.named_children()):
        setattr(module, name, _specialize_children(child, t, channels))
    return module


def specialize(model: nn.Module, task: str) -> nn.Module:
    """A copy of ``model`` (eval) with ``task`` baked in; call it as ``model(image, task)`` (the
    task input is then ignored) and read the task's channels, which come first as before."""
    if not getattr(model, "conditional", False):
        raise EdgeMTLError(f"specialize: arch '{model.config.arch}' is not task-conditional")
    if getattr(model, "stage", None) is not None:
        raise EdgeMTLError(
            "specialize: quantize after specializing (a quantized graph has no task modules left)"
        )
    if task not in model.task_names:
        from edgemtl.errors import unknown_choice

        raise unknown_choice("task", task, model.task_names)
    t = model.task_names.index(task)
    out = copy.deepcopy(model).eval()
    # The head keeps C_max channels so callers see the same layout ([:C_t] is the task).
    with torch.no_grad():
        _specialize_children(out, t, None)
    out.specialized_task = task
    return out
