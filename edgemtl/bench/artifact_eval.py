"""Evaluate an exported artifact with the same code as a PyTorch model: a thin module whose
``forward_tasks`` runs the artifact's own runtime (ONNX Runtime / ExecuTorch) image by image."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgemtl.errors import EdgeMTLError


class RuntimeModel(nn.Module):
    def __init__(self, rt) -> None:
        super().__init__()
        self.rt = rt
        self.task_names = list(rt.tasks)

    def forward_tasks(self, image: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        h, w = self.rt.input_size
        if tuple(image.shape[2:]) != (h, w):  # the evaluation dataset prepares images at input_size
            raise EdgeMTLError(
                f"artifact {self.rt.path.name} takes {h}x{w} inputs, got a batch of "
                f"{image.shape[2]}x{image.shape[3]}: build the dataset with input_size={h, w}"
            )
        x = image.detach().cpu().numpy().astype(np.float32)
        out: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for i in range(x.shape[0]):
            xi = np.ascontiguousarray(x[i : i + 1])
            for n in names:
                out[n].append(self.rt.run(xi, n))
        return {n: torch.from_numpy(np.concatenate(v)) for n, v in out.items()}
