"""Object detection: single-level FCOS read at the output resolution, COCO mAP and VOC mAP@0.5.

Why FCOS (anchor-free, per pixel): its raw output is one dense map like every other task's, so it
shares the architectures, the task input and every export target unchanged; a bilinear resize of it
is exact inside boxes (distances are linear in the position); and decoding needs no anchors.
The output layout and decoding are in :mod:`edgemtl.artifact.boxes`.

Labels (docs/data.md): ``detection/<id>.json`` = ``{"objects": [{"box": [x1, y1, x2, y2], "class":
k, "difficult": false}, ...]}`` in pixels of the image (continuous corners, ``0 <= x1 < x2 <= W``),
``k`` an index of ``classes.detection``. A dataset item holds them as float32 ``[N, 6]``: the box as
fractions of the image size, the class id, 1.0 for a difficult box (ignored by the metrics; its pixels
are neither positives nor negatives in training).

The class logits carry a fixed offset (edgemtl.artifact.boxes.CLASS_LOGIT_OFFSET, a 1 % prior, as
FCOS initialises its bias) so that the focal loss starts small without a special head initialisation.

Training targets, per output pixel (centre ``p``): it is a positive of box ``b`` when ``p`` is inside
``b`` and within the box's central region (half its width and height around its centre, at least
one pixel either side); a pixel that could take several boxes takes the smallest. Loss = sigmoid
focal loss (alpha 0.25, gamma 2) on the classes over all pixels / number of positives + (1 - GIoU)
weighted by the centre-ness target, plus L1 on the distances (keeps a gradient where a predicted
distance is negative) + BCE on centre-ness over positives.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edgemtl.artifact import boxes as box_ops
from edgemtl.errors import EdgeMTLError
from edgemtl.tasks import TASKS
from edgemtl.tasks.base import Task

CENTER = 0.25  # positives lie within +-CENTER of the box size around its centre
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
LAYOUT = (
    "[C class logits, 4 distances (left, top, right, bottom) from the pixel centre as fractions of the "
    "image width/height, 1 centre-ness logit] per pixel; see edgemtl.artifact.boxes"
)


@TASKS.register("detection")
class Detection(Task):
    name = "detection"
    kind = "boxes"
    dense: ClassVar[bool] = False
    label_ext = ".json"
    primary_metric = "mAP"
    higher_is_better = True
    kpi_metric = "mAP"
    loss_weight = 1.0
    decoding = "boxes"
    unit = "box"
    visual = {"style": "boxes"}
    min_box_size: ClassVar[float] = 2.0  # pixels: augmentation drops boxes left narrower or lower

    def __init__(self, num_classes: int | None = None, class_names: list[str] | None = None) -> None:
        if num_classes is None and class_names:
            num_classes = len(class_names)
        if num_classes is None or num_classes < 1:
            raise EdgeMTLError(
                "task 'detection' needs its object classes: list them under classes.detection in "
                f"dataset.json (got {num_classes})"
            )
        if class_names and len(class_names) != num_classes:
            raise EdgeMTLError(f"task 'detection': {len(class_names)} class names for {num_classes} classes")
        super().__init__(int(num_classes), class_names or [f"class_{i}" for i in range(num_classes)])

    @classmethod
    def from_meta(cls, meta: dict[str, Any], **options: Any) -> Task:
        names = (meta.get("classes") or {}).get(cls.name)
        if names is None and "num_classes" not in options:
            raise EdgeMTLError(
                "dataset.json has no classes.detection: task 'detection' needs its class names"
            )
        return cls(class_names=names, **options)

    @property
    def out_channels(self) -> int:
        return int(self.num_classes) + 5

    # ---- data ----
    @classmethod
    def check_meta(cls, meta: dict[str, Any]) -> str | None:
        names = (meta.get("classes") or {}).get(cls.name)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            return "key 'classes.detection' must list the object class names for task 'detection'."
        return None

    @classmethod
    def read_label(cls, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
        return read_boxes_json(path, hw, num_classes)

    @classmethod
    def empty_label(cls, hw: tuple[int, int]) -> np.ndarray:
        return np.zeros((0, 6), np.float32)  # the image is left out of the loss and the meter anyway

    @classmethod
    def label_tensor(cls, arr: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(arr, dtype=np.float32).reshape(-1, 6).copy())

    @classmethod
    def warp_label(
        cls, label: Tensor, matrix: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int]
    ) -> Tensor:
        """Boxes under the pixel-corner affine map ``matrix`` (2x3) from an ``in_hw`` to an ``out_hw``
        image: the box enclosing the four moved corners, clipped to the image; boxes left narrower or
        lower than ``min_box_size`` pixels are dropped."""
        b = label.numpy().astype(np.float64).reshape(-1, 6)
        if not len(b):
            return label.clone()
        (H, W), (h, w) = in_hw, out_hw
        xs, ys = b[:, [0, 2, 0, 2]] * W, b[:, [1, 1, 3, 3]] * H
        M = np.asarray(matrix, np.float64)
        nx = M[0, 0] * xs + M[0, 1] * ys + M[0, 2]
        ny = M[1, 0] * xs + M[1, 1] * ys + M[1, 2]
        x1, x2 = nx.min(1).clip(0, w), nx.max(1).clip(0, w)
        y1, y2 = ny.min(1).clip(0, h), ny.max(1).clip(0, h)
        keep = (x2 - x1 >= cls.min_box_size) & (y2 - y1 >= cls.min_box_size)
        out = np.stack([x1 / w, y1 / h, x2 / w, y2 / h, b[:, 4], b[:, 5]], 1)[keep]
        return torch.from_numpy(out.astype(np.float32))

    # ---- training ----
    def valid_mask(self, target: Tensor | list) -> Tensor:
        # every pixel of a labelled image carries supervision (positive, negative or ignored region)
        return torch.ones(len(target), 1, 1, dtype=torch.bool)

    def loss(self, pred: Tensor, target: Tensor | list) -> Tensor:
        B, _, H, W = pred.shape
        C = int(self.num_classes)
        pred = pred.float()
        cls_t, valid, reg_t, pos = self.targets(target, B, H, W, pred.device)
        n_pos = max(int(pos.sum()), 1)
        focal = _sigmoid_focal(pred[:, :C] + box_ops.CLASS_LOGIT_OFFSET, cls_t) * valid[:, None]
        loss = focal.sum() / n_pos
        if pos.any():
            d = pred[:, C : C + 4].permute(0, 2, 3, 1)[pos]  # [P, 4]
            t = reg_t.permute(0, 2, 3, 1)[pos]
            ctr_t = _centerness(t)
            giou = _giou_ltrb(d.clamp(min=0), t)
            loss = loss + (ctr_t * (1 - giou)).sum() / ctr_t.sum().clamp(min=1e-6)
            loss = loss + (d - t).abs().sum(1).mean()
            loss = loss + F.binary_cross_entropy_with_logits(pred[:, C + 4][pos], ctr_t)
        else:
            loss = loss + pred[:, C:].sum() * 0  # keeps every output in the graph
        return loss

    @torch.no_grad()
    def targets(self, target: Tensor | list, B: int, H: int, W: int, device: Any):
        """Per-pixel training targets at ``H x W``: class map [B, C, H, W], valid [B, H, W] (False in a
        difficult box's region), distances [B, 4, H, W] and positives [B, H, W] (module docstring)."""
        C = int(self.num_classes)
        cls_t = torch.zeros(B, C, H, W, device=device)
        valid = torch.ones(B, H, W, dtype=torch.bool, device=device)
        reg_t = torch.zeros(B, 4, H, W, device=device)
        pos = torch.zeros(B, H, W, dtype=torch.bool, device=device)
        px = ((torch.arange(W, device=device) + 0.5) / W).view(1, 1, W)
        py = ((torch.arange(H, device=device) + 0.5) / H).view(1, H, 1)
        for i in range(B):
            b = target[i].to(device=device, dtype=torch.float32).reshape(-1, 6)
            if not len(b):
                continue
            x1, y1, x2, y2 = (b[:, k].view(-1, 1, 1) for k in range(4))
            ltrb = torch.stack(torch.broadcast_tensors(px - x1, py - y1, x2 - px, y2 - py), 1)  # [N,4,H,W]
            inside = ltrb.min(1).values > 0
            rx = torch.maximum(CENTER * (x2 - x1), torch.full_like(x1, 1.0 / W))
            ry = torch.maximum(CENTER * (y2 - y1), torch.full_like(y1, 1.0 / H))
            central = inside & ((px - (x1 + x2) / 2).abs() <= rx) & ((py - (y1 + y2) / 2).abs() <= ry)
            hard = b[:, 5] > 0
            area = ((x2 - x1) * (y2 - y1)).expand_as(central)
            cost = torch.where(central & ~hard.view(-1, 1, 1), area, torch.full_like(area, math.inf))
            best, idx = cost.min(0)
            pos[i] = torch.isfinite(best)
            valid[i] = pos[i] | ~(inside & hard.view(-1, 1, 1)).any(0)
            cls_id = b[:, 4].long()[idx]
            cls_t[i].scatter_(0, cls_id[None], pos[i][None].float())
            reg_t[i] = ltrb.gather(0, idx[None, None].expand(1, 4, H, W))[0]
        return cls_t, valid, reg_t, pos

    # ---- evaluation ----
    def decode(self, pred: Tensor) -> list[dict[str, np.ndarray]]:
        """Raw ``[B, C+5, H, W]`` -> per image ``{"boxes", "scores", "labels"}``, boxes as fractions."""
        raw = pred.detach().float().cpu().numpy()
        p = box_ops.params(self.describe())
        return [box_ops.decode(r, int(self.num_classes), **p) for r in raw]

    def update_meter(self, meter: Any, pred: Tensor, target: Tensor | list) -> None:
        # Boxes stay fractions of the image on both sides: IoU, hence AP, does not change under
        # scaling x and y, so the result equals the one in pixels.
        gts = []
        for t in target:
            g = t.detach().cpu().numpy().reshape(-1, 6)
            gts.append({"boxes": g[:, :4], "labels": g[:, 4].astype(np.int64), "ignore": g[:, 5] > 0})
        meter.update(self.decode(pred), gts)

    def new_meter(self, protocol: str = "edgemtl", **_: Any) -> Any:
        from edgemtl.metrics import DetectionMeter

        return DetectionMeter(int(self.num_classes), box_ops.DEFAULTS["max_dets"])

    def protocol_note(self, protocol: Any) -> str:
        return " (COCO @[.5:.95]; VOC_mAP50 too)"

    def visualize(self, label: Any) -> np.ndarray:
        raise EdgeMTLError("detection predictions are drawn on an image: edgemtl.artifact.boxes.draw")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["boxes"] = {
            **box_ops.DEFAULTS,
            "layout": LAYOUT,
            "coordinates": "fractions of the image",
            # Not in the graph for any target: one decoder (numpy, mirrored by the web app) gives the
            # same boxes from every runtime, and the graph keeps one fixed-shape output per task.
            "postprocess": "runtime: edgemtl.artifact.boxes.decode (apps/web/js/tasks.js decodeBoxes)",
        }
        return d


def _sigmoid_focal(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha = FOCAL_ALPHA * target + (1 - FOCAL_ALPHA) * (1 - target)
    return alpha * ce * (1 - p_t) ** FOCAL_GAMMA


def _centerness(t: Tensor) -> Tensor:
    lr, tb = t[:, [0, 2]], t[:, [1, 3]]
    c = (lr.min(1).values / lr.max(1).values.clamp(min=1e-12)) * (
        tb.min(1).values / tb.max(1).values.clamp(min=1e-12)
    )
    return c.clamp(min=0).sqrt()


def _giou_ltrb(d: Tensor, t: Tensor) -> Tensor:
    """GIoU of boxes given as distances from a common point (x and y in their own units: GIoU is
    unchanged by scaling either axis)."""
    area_d = (d[:, 0] + d[:, 2]) * (d[:, 1] + d[:, 3])
    area_t = (t[:, 0] + t[:, 2]) * (t[:, 1] + t[:, 3])
    iw = torch.minimum(d[:, 0], t[:, 0]) + torch.minimum(d[:, 2], t[:, 2])
    ih = torch.minimum(d[:, 1], t[:, 1]) + torch.minimum(d[:, 3], t[:, 3])
    inter = iw * ih
    union = area_d + area_t - inter
    iou = inter / union.clamp(min=1e-12)
    ew = torch.maximum(d[:, 0], t[:, 0]) + torch.maximum(d[:, 2], t[:, 2])
    eh = torch.maximum(d[:, 1], t[:, 1]) + torch.maximum(d[:, 3], t[:, 3])
    enclose = (ew * eh).clamp(min=1e-12)
    return iou - (enclose - union) / enclose


def read_boxes_json(path: Path, hw: tuple[int, int], num_classes: int | None) -> np.ndarray:
    """``detection/<id>.json`` -> float32 [N, 6] (boxes as fractions of the image, class, difficult);
    every problem is one error naming the file, the object and the fix."""
    from edgemtl.tasks.labels import fail

    if not path.is_file():
        raise fail(
            path,
            'missing detection label file (every id of a split needs one; {"objects": []} '
            "for an image without objects).",
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise fail(path, f"not valid JSON ({e}).") from None
    objs = doc.get("objects") if isinstance(doc, dict) else None
    if not isinstance(objs, list):
        raise fail(path, 'must hold {"objects": [{"box": [x1, y1, x2, y2], "class": k}, ...]}.')
    H, W = hw
    out = np.zeros((len(objs), 6), np.float32)
    for i, o in enumerate(objs):
        box = o.get("box") if isinstance(o, dict) else None
        ok = (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        )
        if not ok:
            raise fail(
                path, f"object {i}: 'box' must be [x1, y1, x2, y2], four finite numbers (got {box!r})."
            )
        x1, y1, x2, y2 = (float(v) for v in box)
        if not (x1 < x2 and y1 < y2):
            raise fail(path, f"object {i}: box {box} is empty or inverted; need x1 < x2 and y1 < y2.")
        if x1 < 0 or y1 < 0 or x2 > W or y2 > H:
            raise fail(
                path,
                f"object {i}: box {box} reaches outside the {W}x{H} image; clip it to "
                f"0 <= x <= {W}, 0 <= y <= {H} (pixels, continuous corners).",
            )
        k = o.get("class")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < (num_classes or 0):
            raise fail(
                path,
                f"object {i}: 'class' must be a class id 0..{(num_classes or 1) - 1} "
                f"(an index of classes.detection), got {k!r}.",
            )
        diff = o.get("difficult", False)
        if not isinstance(diff, bool):
            raise fail(path, f"object {i}: 'difficult' must be true or false, got {diff!r}.")
        out[i] = (x1 / W, y1 / H, x2 / W, y2 / H, k, float(diff))
    return out


def write_boxes_json(objects: np.ndarray) -> bytes:
    """float [N, 6] in pixels (x1, y1, x2, y2, class, difficult) -> the label file's bytes."""
    items = [
        {"box": [float(v) for v in o[:4]], "class": int(o[4]), "difficult": bool(o[5] > 0)}
        for o in np.asarray(objects, np.float64).reshape(-1, 6)
    ]
    return (json.dumps({"objects": items}) + "\n").encode()
