"""Task-interaction modules of PAD-Net (Xu et al., CVPR 2018) and MTI-Net (Vandenhende et al.,
ECCV 2020), following Multi-Task-Learning-PyTorch's ``models/layers.py`` and ``mti_net.py``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgemtl.models.modulation import SE


class BasicBlock(nn.Module):
    """ResNet basic block with a 1x1+BN projection when the width changes."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class InitialPrediction(nn.Module):
    """Per task: two basic blocks -> task features, and a 1x1 conv -> initial prediction."""

    def __init__(self, cin: int, width: int, out_channels: dict[str, int]) -> None:
        super().__init__()
        self.features = nn.ModuleDict(
            {t: nn.Sequential(BasicBlock(cin, width), BasicBlock(width, width)) for t in out_channels}
        )
        self.predict = nn.ModuleDict({t: nn.Conv2d(width, c, 1) for t, c in out_channels.items()})

    def forward(self, x: Tensor | dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        feats = {t: f(x[t] if isinstance(x, dict) else x) for t, f in self.features.items()}
        return feats, {t: self.predict[t](f) for t, f in feats.items()}


class SABlock(nn.Module):
    """Spatial attention message: conv(x) * sigmoid(conv'(x)), both 3x3 and bias-free."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.att = nn.Conv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.sigmoid(self.att(x))


class Distillation(nn.Module):
    """Multi-modal distillation: out_t = f_t + sum_{a != t} SA_{t<-a}(f_a) for the final tasks."""

    def __init__(self, tasks: list[str], sources: list[str], width: int) -> None:
        super().__init__()
        self.tasks, self.sources = tasks, sources
        self.sa = nn.ModuleDict(
            {f"{a}_to_{t}": SABlock(width, width) for t in tasks for a in sources if a != t}
        )

    def forward(self, feats: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for t in self.tasks:
            msgs = [self.sa[f"{a}_to_{t}"](feats[a]) for a in self.sources if a != t]
            out[t] = feats[t] + torch.stack(msgs).sum(0) if msgs else feats[t]
        return out


class FPM(nn.Module):
    """MTI-Net feature propagation module.

    The mask softmax runs over ``view(B, C, N, H, W)`` of the task-major concatenation, i.e. over
    groups of N adjacent channels, exactly as the official code does (not across tasks per
    channel); kept for parity with the published numbers.
    """

    def __init__(self, tasks: list[str], width: int) -> None:
        super().__init__()
        n = len(tasks)
        self.tasks, self.width = tasks, width
        hidden = max(n * width // 4, 1)
        self.non_linear = nn.Sequential(
            BasicBlock(n * width, hidden), BasicBlock(hidden, hidden), nn.Conv2d(hidden, n * width, 1)
        )
        self.reduce = BasicBlock(n * width, width)
        self.se = nn.ModuleDict({t: SE(width, 16) for t in tasks})

    def forward(self, feats: dict[str, Tensor]) -> dict[str, Tensor]:
        concat = torch.cat([feats[t] for t in self.tasks], 1)
        b, c, h, w = concat.shape
        n = len(self.tasks)
        mask = torch.softmax(self.non_linear(concat).view(b, c // n, n, h, w), dim=2)
        shared = self.reduce((mask * concat.view(b, c // n, n, h, w)).view(b, c, h, w))
        return {t: self.se[t](shared) + feats[t] for t in self.tasks}
