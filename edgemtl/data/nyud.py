"""Convert the NYUD-v2 multi-task release (``NYUD_MT``, as read by ASTMT / MTL-PyTorch) to the
generic layout, so everything downstream reads one format. Assumptions: docs/data.md.

Both known variants of the tree are accepted, per file, by extension::

    NYUD_MT/images/<id>.jpg
    NYUD_MT/segmentation/<id>.png | .mat ('segmentation')   ids 0..40, 0 = unlabeled
    NYUD_MT/depth/<id>.npy | .mat ('depth')                  metres, 0 = invalid
    NYUD_MT/normals/<id>.npy | .png | .jpg                   float vectors | (n+1)/2*255
    NYUD_MT/edge/<id>.npy | .png                             0/1 | 0/255
    NYUD_MT/gt_sets/{train,val}.txt
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data.convert import (
    copy_image,
    depth_range,
    find_file,
    find_tree,
    fit,
    imread_label,
    loadmat_key,
    normals_from_image,
    normals_from_vectors,
    prepare_output,
    read_splits,
)
from edgemtl.data.layout import IGNORE_INDEX, write_label, write_meta, write_splits
from edgemtl.errors import EdgeMTLError

# Gupta et al. 40-class NYUD-v2 labels (ids 1..40 in the source files).
NYUD40_CLASSES = [
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "refridgerator",
    "television",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
    "otherstructure",
    "otherfurniture",
    "otherprop",
]
NYUD_EDGE_MAX_DIST = 0.011
_LAYOUT = __doc__.split("::", 1)[1].rstrip()


def convert_nyud(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    keep_unlabeled_as_class: bool = False,
    normals_y_down: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert an NYUD_MT tree to the generic layout in ``out``; returns ``out``.

    Semseg: by default ids 1..40 -> 0..39 and 0 (unlabeled) -> 255, as MTL-PyTorch does
    (40-way); ``keep_unlabeled_as_class`` keeps 0..40 as 41 classes, as ASTMT's experiments did.
    ``normals_y_down``: set it only for a copy whose normals point y down; the NYUD_MT release
    stores x right, y up, z towards the camera, edgemtl's frame (docs/data.md), and is kept as is.
    """
    root = find_tree(src, "NYUD_MT", ["images", "gt_sets"], _LAYOUT)
    out = prepare_output(out, overwrite)
    splits = read_splits(root / "gt_sets", {"train": "train", "val": "val", "test": "test"})
    folders = {"semseg": "segmentation", "depth": "depth", "normals": "normals", "edges": "edge"}
    tasks = [t for t, f in folders.items() if (root / f).is_dir()]
    if not tasks:
        raise EdgeMTLError(
            f"{root}: no label folders found (segmentation, depth, normals, edge). Expected layout:{_LAYOUT}"
        )
    exts = {
        "semseg": (".png", ".mat"),
        "depth": (".npy", ".mat"),
        "normals": (".npy", ".png", ".jpg"),
        "edges": (".npy", ".png"),
    }
    lo, hi, sizes = math.inf, -math.inf, set()
    for sid in dict.fromkeys(i for ids in splits.values() for i in ids):
        img = find_file(root / "images", sid, (".jpg", ".png", ".jpeg"))
        if img is None:
            raise EdgeMTLError(f"{root / 'images' / (sid + '.jpg')}: image listed in gt_sets not found.")
        hw = copy_image(img, out, sid)
        sizes.add(hw)
        for task in tasks:
            path = find_file(root / folders[task], sid, exts[task])
            if path is None:
                raise EdgeMTLError(
                    f"{root / folders[task] / sid}{'|'.join(exts[task])}: "
                    f"missing {task} label for id '{sid}'."
                )
            lab = _read_nyud(task, path, hw, keep_unlabeled_as_class, normals_y_down)
            if task == "depth" and (lab > 0).any():
                lo, hi = min(lo, float(lab[lab > 0].min())), max(hi, float(lab.max()))
            write_label(out, task, sid, lab)
    write_splits(out, splits)
    classes = (["unlabeled"] if keep_unlabeled_as_class else []) + NYUD40_CLASSES
    meta: dict[str, Any] = {
        "name": "nyud",
        "tasks": tasks,
        "edge_max_dist": NYUD_EDGE_MAX_DIST,
        "source": {
            "dataset": "NYUD-v2 multi-task (NYUD_MT)",
            "converted_from": str(root),
            "semseg": "41 classes, 0 = unlabeled"
            if keep_unlabeled_as_class
            else "40 classes: source ids 1..40 -> 0..39, 0 (unlabeled) -> 255",
            "normals": "source y-down, negated to y-up" if normals_y_down else "source y-up, kept",
        },
    }
    if "semseg" in tasks:
        meta["classes"] = {"semseg": classes}
    if "depth" in tasks:
        meta["depth_range"] = depth_range(lo, hi)
    if len(sizes) == 1:
        meta["image_size"] = list(next(iter(sizes)))
    write_meta(out, meta)  # last: a dataset.json means the conversion finished
    return out


def _read_nyud(task: str, path: Path, hw: tuple[int, int], keep0: bool, y_down: bool) -> np.ndarray:
    import cv2

    ext = path.suffix
    if task == "semseg":
        raw = loadmat_key(path, "segmentation") if ext == ".mat" else imread_label(path)
        raw = np.asarray(raw)
        if raw.ndim != 2 or (raw > 40).any() or (raw < 0).any():
            raise EdgeMTLError(f"{path}: expected a single-channel NYUD-40 label map with ids 0..40.")
        raw = raw.astype(np.int64)
        lab = raw if keep0 else np.where(raw == 0, IGNORE_INDEX, raw - 1)
        return fit(lab.astype(np.uint8), hw)
    if task == "depth":
        d = np.asarray(loadmat_key(path, "depth") if ext == ".mat" else np.load(path, allow_pickle=False))
        if d.ndim != 2:
            raise EdgeMTLError(f"{path}: depth must be HxW, got shape {d.shape}.")
        d = d.astype(np.float32)
        d[~np.isfinite(d) | (d < 0)] = 0.0
        return fit(d, hw)
    if task == "normals":
        if ext == ".npy":
            v = np.load(path, allow_pickle=False)
            if v.ndim != 3 or v.shape[2] != 3:
                raise EdgeMTLError(f"{path}: normals must be HxWx3, got shape {v.shape}.")
            n = normals_from_vectors(np.nan_to_num(v.astype(np.float32)), y_down)
        else:
            bgr = imread_label(path, cv2.IMREAD_COLOR)
            if bgr.ndim != 3 or bgr.shape[2] != 3:
                raise EdgeMTLError(f"{path}: normals image must have 3 channels.")
            n = normals_from_image(bgr, y_down)
        return fit(n, hw)
    # edges
    e = np.load(path, allow_pickle=False).astype(np.float32) if ext == ".npy" else imread_label(path) / 255.0
    if e.ndim != 2:
        raise EdgeMTLError(f"{path}: edge map must be single-channel, got shape {e.shape}.")
    return fit((e > 0.5).astype(np.uint8), hw)
