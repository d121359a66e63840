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

from edgemtl.data.layout import (
    IGNORE_INDEX,
    atomic_write_bytes,
    write_label,
    write_meta,
    write_splits,
)
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

# ----------------------------------------------------------------------------------------------
# Converter helpers shared with pascal.py


def find_tree(src: str | os.PathLike, name: str, required: list[str], layout: str) -> Path:
    """``src`` itself or ``src/<name>``, whichever holds every ``required`` folder."""
    src = Path(src)
    for cand in (src, src / name):
        if all((cand / r).is_dir() for r in required):
            return cand
    base = src / name if (src / name).is_dir() else src
    if not base.is_dir():
        raise EdgeMTLError(f"{src}: folder not found. Expected a {name} tree:{layout}")
    missing = [r for r in required if not (base / r).is_dir()]
    raise EdgeMTLError(
        f"{base} is not a {name} tree: missing folder(s) {', '.join(missing)}. Expected layout:{layout}"
    )


def prepare_output(out: str | os.PathLike, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise EdgeMTLError(f"{out} is not empty; choose a new folder or pass overwrite=True.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_id_list(path: Path) -> list[str]:
    ids = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not ids:
        raise EdgeMTLError(f"{path}: split file is empty.")
    return ids


def find_file(folder: Path, sid: str, exts: tuple[str, ...]) -> Path | None:
    for ext in exts:
        p = folder / f"{sid}{ext}"
        if p.is_file():
            return p
    return None


def copy_image(path: Path, out: Path, sid: str) -> tuple[int, int]:
    """Copy the image bytes unchanged (no JPEG re-encoding loss); returns its (H, W)."""
    import cv2

    data = path.read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EdgeMTLError(f"{path}: unreadable or corrupt image.")
    atomic_write_bytes(out / "images" / f"{sid}{path.suffix.lower()}", data)
    return img.shape[0], img.shape[1]


def imread_label(path: Path, flags: int | None = None) -> np.ndarray:
    """A label image. Without ``flags``: the stored values as the reference loaders read them
    (``np.array(PIL.Image.open(path))``: a palette PNG gives class indices, not colours; RGB stays RGB).
    With OpenCV ``flags`` (e.g. IMREAD_COLOR for normals images): OpenCV's decoding (BGR)."""
    import cv2

    if flags is None and path.suffix.lower() == ".png":
        from edgemtl.data.layout import read_label_png

        try:
            return read_label_png(path)
        except ValueError as e:
            raise EdgeMTLError(f"{path}: unreadable or corrupt PNG ({e}).") from None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if flags is None else flags)
    if img is None:
        raise EdgeMTLError(f"{path}: unreadable or corrupt image file.")
    return img


def loadmat_key(path: Path, key: str) -> Any:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))[key]
    except KeyError:
        raise EdgeMTLError(f"{path}: .mat file has no '{key}' variable.") from None
    except Exception as e:  # scipy raises several types for corrupt files
        raise EdgeMTLError(f"{path}: unreadable .mat file ({e}).") from None


def fit(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-resize a label to the image size, as the reference loaders do on mismatch."""
    import cv2

    if arr.shape[:2] == tuple(hw):
        return arr
    out = cv2.resize(arr, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    return out[..., None] if arr.ndim == 3 and out.ndim == 2 else out


def normals_from_vectors(vec: np.ndarray, flip_y: bool) -> np.ndarray:
    """Unit HxWx3 float32; vectors shorter than 0.5 (zeros, mid-grey) become invalid (0)."""
    vec = vec.astype(np.float32)
    norm = np.linalg.norm(vec, axis=2, keepdims=True)
    valid = norm > 0.5
    out = np.where(valid, vec / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
    if flip_y:
        out[..., 1] *= -1.0
    return out


def normals_from_image(bgr: np.ndarray, flip_y: bool) -> np.ndarray:
    """Decode an (n+1)/2*255 RGB normals image; all-zero pixels are invalid."""
    rgb = bgr[..., ::-1].astype(np.float32)
    vec = 2.0 * rgb / 255.0 - 1.0
    vec[(bgr == 0).all(axis=2)] = 0.0
    return normals_from_vectors(vec, flip_y)


def depth_range(lo: float, hi: float) -> list[float]:
    """[min, max] of the valid depths seen, rounded outwards to cm ([0, 10] if none were seen)."""
    if not math.isfinite(hi):
        return [0.0, 10.0]
    lo, hi = math.floor(lo * 100) / 100, math.ceil(hi * 100) / 100
    return [lo, hi] if lo < hi else [0.0, max(hi, 0.01)]


def read_splits(folder: Path, split_names: dict[str, str]) -> dict[str, list[str]]:
    """Read ``folder/<source name>.txt`` for each (our split -> source name) that exists."""
    splits = {
        ours: read_id_list(folder / f"{theirs}.txt")
        for ours, theirs in split_names.items()
        if (folder / f"{theirs}.txt").is_file()
    }
    if not splits:
        raise EdgeMTLError(f"{folder}: no split files (expected {', '.join(split_names.values())}.txt).")
    return splits


# ----------------------------------------------------------------------------------------------


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
