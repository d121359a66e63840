"""Evaluation of a model on a dataset split under an explicit, printed protocol.

Input scale (docs/metrics.md): the model sees every image as the exported artifact prepares it (the
whole image resized to the model's input size, :func:`edgemtl.artifact.processing.preprocess`); its raw
outputs are resized back to each label's native resolution (:func:`edgemtl.artifact.processing.resize_output`,
bilinear, before decoding) and the metrics are computed there. PyTorch models and artifacts run by
their runtimes go through the same two functions, so their metrics agree to the runtime's numerics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from edgemtl.data.dataset import labelled_rows, take_rows
from edgemtl.tasks import Task

# Bumped whenever what a training run or an evaluation computes changes (input scale, metrics):
# bench runs and single-task baselines are keyed by it, so results made another way are never reused.
EVAL_PROTOCOL = "input-scale-1"


# Metric conventions a result can be computed under (docs/metrics.md, "How peers differ"): edgemtl's
# own, or those of a peer's evaluation code, so that numbers compare with a paper's.
PROTOCOLS = {
    "edgemtl": "edgemtl's definitions",
    "mtl-pytorch": (
        "Multi-Task-Learning-PyTorch evaluation/: mIoU over all classes (absent = 0), parts skip "
        "background-only images; saliency 15 thresholds in [0.2, 0.9], F1, Δm on max-mIoU; depth "
        "pixel-wise with predictions <= 0 -> 1e-9; edges SEISM as its reader calls it (99 thresholds, "
        "prob >= t, P = 1 without predictions, odsF = best threshold)"
    ),
    "astmt": (
        "ASTMT fblib/evaluation/: mIoU over all classes (absent = 0), parts skip background-only images; "
        "saliency as MTL-PyTorch; depth per-image RMSE averaged with invalid pixels counted (its order of "
        "operations) and median log-RMSE; edges SEISM with HED's 101 thresholds and prob > t (its edge "
        "NMS is not reproduced)"
    ),
}


@dataclass
class Protocol:
    """Everything that changes a reported number; printed with every result."""

    split: str = "test"
    depth_image_wise: bool = False  # ASTMT averages per-image RMSE; MTL-PyTorch is pixel-wise
    edge_thresholds: int = 25
    edge_max_dist: float | None = None  # fraction of the diagonal; None -> the dataset's
    input_size: tuple[int, int] | None = None  # what the model sees (H, W); None: the images as stored
    name: str = "edgemtl"  # metric conventions: a key of PROTOCOLS

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            from edgemtl.errors import unknown_choice

            raise unknown_choice("--protocol", self.name, PROTOCOLS)

    def new_meter(self, task: Task):
        return task.new_meter(
            protocol=self.name, image_wise=self.depth_image_wise, edge_thresholds=self.edge_thresholds
        )

    def describe(self, tasks: dict[str, Task]) -> str:
        if self.name != "edgemtl":
            arrows = ", ".join(
                f"{n}: {t.primary(self.name)}{'↑' if t.higher_is_better else '↓'}" for n, t in tasks.items()
            )
            size = (
                (
                    f"; input: whole image resized to {self.input_size[0]}x{self.input_size[1]} as deployed, "
                    "outputs resized back, metrics at label resolution"
                )
                if self.input_size
                else ""
            )
            return f"protocol {self.name} (split={self.split}{size}; {arrows}): {PROTOCOLS[self.name]}"
        parts = [f"split={self.split}"]
        if self.input_size is not None:
            h, w = self.input_size
            parts.append(
                f"input: whole image resized to {h}x{w} as deployed, outputs resized back, "
                "metrics at label resolution"
            )
        for name, t in tasks.items():
            arrow = "↑" if t.higher_is_better else "↓"
            parts.append(f"{name}: {t.primary_metric}{arrow}{t.protocol_note(self)}")
        return "protocol: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate(
    model,
    loader,
    tasks: dict[str, Task],
    protocol: Protocol | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    image_states: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of ``model`` over ``loader``. ``image_states``, a dict, receives each task's per-image
    additive meter states [N, K] (and ``"_ids"``, the image ids in order) for the paired bootstrap
    (:mod:`edgemtl.metrics.bootstrap`); the dataset metrics are then the merge of the per-image meters,
    identical to a single pass."""
    protocol = protocol or Protocol()

    new_meter = protocol.new_meter
    meters = {n: new_meter(t) for n, t in tasks.items()}
    per_image: dict[str, list] | None = {n: [] for n in tasks} if image_states is not None else None
    ids: list[str] = []
    inflight: list = []
    model.eval().to(device)
    names = list(tasks)
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", unit="batch", leave=False)
    for batch in it:
        outs = model.forward_tasks(batch["image"].to(device), names)
        ids.extend(batch.get("id", []))
        for n in names:
            out = outs[n].float().cpu()
            rows = labelled_rows(batch, n)  # partially-labelled data: images without n's label
            if per_image is None:
                if rows is None:
                    update_at_label_resolution(tasks[n], meters[n], out, batch[n])
                elif rows:
                    update_at_label_resolution(tasks[n], meters[n], out[rows], take_rows(batch[n], rows))
                continue
            for i, (o, t) in enumerate(at_label_resolution(out, batch[n], tasks[n])):
                m = new_meter(tasks[n])
                if rows is None or i in rows:  # an unlabelled image keeps an empty (zero) state
                    tasks[n].update_meter(m, o, t[None])
                per_image[n].append(m)
                if getattr(m, "_pending", None):  # parallel edge work: bound what is in flight (memory)
                    inflight.append(m)
                    while len(inflight) > 32:
                        inflight.pop(0)._drain()
    if per_image is not None:
        from edgemtl.metrics.bootstrap import state_vector

        for n, ms in per_image.items():
            states = [state_vector(m) for m in ms]  # (drains any parallel work first)
            for m in ms:
                meters[n].merge(m)
            image_states[n] = np.stack(states) if states else np.zeros((0, 0))
        image_states["_ids"] = list(ids)
    return {n: m.compute() for n, m in meters.items()}


def at_label_resolution(out: torch.Tensor, target: torch.Tensor | list, task: Task | None = None):
    """Yield (output [1,C,h,w], target) per image, the output resized to its label's size with the
    runtime's own post-processing (so PyTorch and artifact evaluation match). A task whose labels are
    not maps (detection: boxes as fractions of the image) reads the output as it is."""
    from edgemtl.artifact.processing import resize_output

    dense = getattr(task, "dense", True)
    for i, t in enumerate(target):
        o = out[i : i + 1]
        if dense and tuple(o.shape[-2:]) != tuple(t.shape[-2:]):
            o = torch.from_numpy(resize_output(np.ascontiguousarray(o.numpy()), tuple(t.shape[-2:])))
        yield o, t


def update_at_label_resolution(task: Task, meter, out: torch.Tensor, target: torch.Tensor | list) -> None:
    """Feed a batch to ``meter``, outputs resized to their labels' sizes where they differ."""
    if not getattr(task, "dense", True) or (
        not isinstance(target, list) and tuple(out.shape[-2:]) == tuple(target.shape[-2:])
    ):
        task.update_meter(meter, out, target)
        return
    for o, t in at_label_resolution(out, target, task):
        task.update_meter(meter, o, t[None])


def primary_metrics(
    results: dict[str, dict[str, float]], tasks: dict[str, Task], protocol: str = "edgemtl"
) -> dict[str, float]:
    return {n: results[n][tasks[n].primary(protocol)] for n in tasks}
