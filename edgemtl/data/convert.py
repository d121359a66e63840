"""What the dataset converters (nyud.py, pascal.py) share: finding the source tree, reading its
id lists, labels and .mat files, copying images unchanged, and decoding normals.

Every failure is an EdgeMTLError naming the file and what was expected.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data.layout import atomic_write_bytes
from edgemtl.errors import EdgeMTLError


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
    from edgemtl.data.layout import read_rgb

    img = read_rgb(path, apply_orientation=False)  # a truncated JPEG is refused here, not trained on
    data = path.read_bytes()
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
