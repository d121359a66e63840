"""Evaluation of a model on a dataset split under an explicit, printed protocol."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from edgemtl.tasks import Task


@dataclass
class Protocol:
    """Everything that changes a reported number; printed with every result."""

    split: str = "test"
    depth_image_wise: bool = False  # ASTMT averages per-image RMSE; MTL-PyTorch is pixel-wise
    edge_thresholds: int = 25
    edge_max_dist: float | None = None  # fraction of the diagonal; None -> the dataset's

    def describe(self, tasks: dict[str, Task]) -> str:
        parts = [f"split={self.split}"]
        for name, t in tasks.items():
            arrow = "↑" if t.higher_is_better else "↓"
            extra = ""
            if name == "depth":
                extra = f", {'image' if self.depth_image_wise else 'pixel'}-wise"
            elif name == "edges":
                extra = f", maxDist={getattr(t, 'max_dist', 0):.4g}·diag, {self.edge_thresholds} thresholds"
            elif name == "saliency":
                extra = ", β²=0.3"
            parts.append(f"{name}: {t.primary_metric}{arrow}{extra}")
        return "protocol: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate(model, loader, tasks: dict[str, Task], protocol: Protocol | None = None,
             device: str | torch.device = "cpu", progress: bool = False) -> dict[str, dict[str, float]]:
    protocol = protocol or Protocol()
    meters = {n: t.new_meter(image_wise=protocol.depth_image_wise, edge_thresholds=protocol.edge_thresholds)
              for n, t in tasks.items()}
    model.eval().to(device)
    names = list(tasks)
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", unit="batch", leave=False)
    for batch in it:
        outs = model.forward_tasks(batch["image"].to(device), names)
        for n in names:
            tasks[n].update_meter(meters[n], outs[n].float().cpu(), batch[n])
    return {n: m.compute() for n, m in meters.items()}


def primary_metrics(results: dict[str, dict[str, float]], tasks: dict[str, Task]) -> dict[str, float]:
    return {n: results[n][tasks[n].primary_metric] for n in tasks}
