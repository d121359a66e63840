"""Evaluation of a model on a dataset split under an explicit, printed protocol.

Input scale (docs/metrics.md): the model sees every image as the exported artifact prepares it (the
whole image resized to the model's input size, :func:`edgemtl.runtime.processing.preprocess`); its raw
outputs are resized back to each label's native resolution (:func:`edgemtl.runtime.processing.resize_output`,
bilinear, before decoding) and the metrics are computed there. PyTorch models and artifacts run by
their runtimes go through the same two functions, so their metrics agree to the runtime's numerics.
"""

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
    input_size: tuple[int, int] | None = None  # what the model sees (H, W); None: the images as stored

    def describe(self, tasks: dict[str, Task]) -> str:
        parts = [f"split={self.split}"]
        if self.input_size is not None:
            h, w = self.input_size
            parts.append(f"input: whole image resized to {h}x{w} as deployed, outputs resized back, "
                         "metrics at label resolution")
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
            update_at_label_resolution(tasks[n], meters[n], outs[n].float().cpu(), batch[n])
    return {n: m.compute() for n, m in meters.items()}


def update_at_label_resolution(task: Task, meter, out: torch.Tensor, target: torch.Tensor | list) -> None:
    """Feed a batch to ``meter``; outputs whose size differs from their label's are first resized to it
    with the runtime's own post-processing (so PyTorch and artifact evaluation match)."""
    import numpy as np

    from edgemtl.runtime.processing import resize_output

    targets = target if isinstance(target, list) else None
    if targets is None and tuple(out.shape[-2:]) == tuple(target.shape[-2:]):
        task.update_meter(meter, out, target)
        return
    for i, t in enumerate(targets if targets is not None else target):
        o = out[i:i + 1]
        if tuple(o.shape[-2:]) != tuple(t.shape[-2:]):
            o = torch.from_numpy(resize_output(np.ascontiguousarray(o.numpy()), tuple(t.shape[-2:])))
        task.update_meter(meter, o, t[None])


def primary_metrics(results: dict[str, dict[str, float]], tasks: dict[str, Task]) -> dict[str, float]:
    return {n: results[n][tasks[n].primary_metric] for n in tasks}
