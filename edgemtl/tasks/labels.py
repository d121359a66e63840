"""Readers for the label formats tasks store (docs/data.md), shared by the task files: each task
picks one in its ``read_label`` and adds its own value rules. Every problem is one EdgeMTLError that
names the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemtl.errors import EdgeMTLError

IGNORE = 255


def fail(path: Path, what: str) -> EdgeMTLError:
    return EdgeMTLError(f"{path}: {what}")


def check_hw(path: Path, shape: tuple[int, ...], hw: tuple[int, int]) -> None:
    if tuple(shape[:2]) != tuple(hw):
        raise fail(path, f"label size {shape[0]}x{shape[1]} does not match its image ({hw[0]}x{hw[1]}).")


def read_png_map(path: Path, hw: tuple[int, int], task: str) -> np.ndarray:
    """A single-channel uint8 PNG (grayscale or palette: class indices, as the reference loaders read it)."""
    from edgemtl.data.layout import read_label_png

    if not path.is_file():
        raise fail(path, f"missing {task} label file (every id of a split needs one per task).")
    try:
        lab = read_label_png(path)
    except ValueError as e:
        raise fail(path, f"unreadable or corrupt {task} PNG ({e}).") from None
    if lab.ndim != 2 or lab.dtype != np.uint8:
        raise fail(
            path,
            f"{task} labels must be a single-channel uint8 PNG (grayscale or palette), got shape "
            f"{lab.shape} dtype {lab.dtype}.",
        )
    check_hw(path, lab.shape, hw)
    return lab


def read_class_png(path: Path, hw: tuple[int, int], task: str, num_classes: int | None) -> np.ndarray:
    """Class ids 0..num_classes-1, 255 = ignore."""
    lab = read_png_map(path, hw, task)
    bad = (lab >= (num_classes or 0)) & (lab != IGNORE)
    if bad.any():
        ids = np.unique(lab[bad])[:5].tolist()
        raise fail(
            path,
            f"class id(s) {ids} out of range: {task} has {num_classes} classes "
            f"(0..{(num_classes or 1) - 1}, {IGNORE} = ignore).",
        )
    return lab


def read_binary_png(path: Path, hw: tuple[int, int], task: str) -> np.ndarray:
    """0 / 1 maps, 255 = ignore."""
    lab = read_png_map(path, hw, task)
    bad = (lab > 1) & (lab != IGNORE)
    if bad.any():
        vals = np.unique(lab[bad])[:5].tolist()
        raise fail(path, f"{task} map holds value(s) {vals}; only 0, 1 and {IGNORE} (ignore) are allowed.")
    return lab


def read_float_npy(
    path: Path, hw: tuple[int, int], task: str, channels: int, nonnegative: bool = False
) -> np.ndarray:
    """A float ``.npy``: HxW (``channels`` 1) or HxWxC, finite; 0 marks invalid pixels."""
    if not path.is_file():
        raise fail(path, f"missing {task} label file (every id of a split needs one per task).")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise fail(path, f"unreadable or corrupt .npy ({e}).") from None
    want = "HxW" if channels == 1 else f"HxWx{channels}"
    ok_shape = arr.ndim == 2 if channels == 1 else (arr.ndim == 3 and arr.shape[2] == channels)
    if not ok_shape or arr.dtype.kind != "f":
        raise fail(path, f"{task} must be a float {want} array, got shape {arr.shape} dtype {arr.dtype}.")
    check_hw(path, arr.shape[:2], hw)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise fail(path, f"{task} holds NaN/inf; store invalid pixels as 0.")
    if nonnegative and (arr < 0).any():
        raise fail(path, f"{task} holds negative values; store invalid pixels as 0.")
    return arr
