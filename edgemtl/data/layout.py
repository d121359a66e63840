"""The generic on-disk dataset layout: edgemtl's interchange format.

::

    DIR/dataset.json                 tasks present, class names, ignore index, depth range, ...
    DIR/images/<id>.png|jpg          RGB images
    DIR/<task>/<id>.png              class maps (semseg, parts) and binary maps (edges, saliency):
                                     uint8, 255 = ignore; binary maps hold 0/1
    DIR/<task>/<id>.npy              depth: float32 HxW metres, 0 = invalid
                                     normals: float32 HxWx3 unit vectors in the camera frame
                                     (x right, y up, z towards the camera), all-zero = invalid
    DIR/detection/<id>.json          boxes: {"objects": [{"box": [x1, y1, x2, y2], "class": k,
                                     "difficult": false}, ...]}, pixels, continuous corners
    DIR/splits/{train,val,test}.txt  one id per line

Every writer here is atomic (temp file + rename) so an interrupted run never leaves a
half-written label that a later run would read as valid.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

IGNORE_INDEX = 255
SPLITS = ("train", "val", "test")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
DATASET_JSON = "dataset.json"
FORMAT_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide shipped artifacts


def json_text(obj: Any, indent: int | None = None, default: Any = None) -> str:
    """``json.dumps`` whose output every JSON parser reads: Python writes NaN and +-Infinity (e.g. the
    SQNR of a bit-exact output), which JSON lacks and a browser's ``JSON.parse`` rejects; they are
    written as null, as JavaScript's ``JSON.stringify`` does."""

    def finite(x: Any) -> Any:
        if isinstance(x, float):
            return x if np.isfinite(x) else None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list):
            return [finite(v) for v in x]
        return x

    plain = json.loads(json.dumps(obj, default=default))  # numpy, tuples, ... -> plain JSON values
    return json.dumps(finite(plain), indent=indent, allow_nan=False)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and a rename: readers see the old file or the new one,
    never half of one. An unwritable folder or a full disk is an EdgeMTLError naming ``path``, and leaves
    the previous file as it was."""
    from edgemtl.errors import EdgeMTLError

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), _FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise EdgeMTLError(
            f"cannot write {path}: {e.strerror or e} (check that the folder is writable and the "
            "disk has space; nothing was changed)"
        ) from None
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """The values stored in a label PNG, as the reference loaders read them (``np.array(PIL.Image.open)``).

    A palette ("P") PNG, as VOC-style masks usually are, gives its class indices, not the palette's
    colours (OpenCV would expand it to BGR); grayscale gives its values; RGB gives HxWx3 RGB.
    Raises ValueError if the file is not a decodable PNG.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise ValueError(f"a {img.format or 'non-PNG'} file, not a PNG")
            if img.mode in ("P", "L", "I;16", "I;16B", "I", "RGB"):
                arr = np.array(img)
            elif img.mode == "1":
                arr = np.array(img, dtype=np.uint8)
            else:
                arr = np.array(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise ValueError(str(e) or type(e).__name__) from None
    return arr


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 HxW or HxWx3 (RGB) array."""
    import cv2

    if array.dtype != np.uint8:
        raise ValueError(f"PNG labels must be uint8, got {array.dtype}")
    img = array[..., ::-1] if array.ndim == 3 else array  # cv2 wants BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


def encode_npy(array: np.ndarray) -> bytes:
    import io

    bio = io.BytesIO()
    np.save(bio, np.ascontiguousarray(array.astype(np.float32, copy=False)))
    return bio.getvalue()


def write_image(root: str | os.PathLike, sample_id: str, rgb: np.ndarray) -> None:
    atomic_write_bytes(Path(root) / "images" / f"{sample_id}.png", encode_png(rgb))


def label_ext(task: str) -> str:
    """The file type that holds ``task``'s labels, as the task declares it (``Task.label_ext``)."""
    from edgemtl.tasks import TASKS

    return TASKS.get(task).label_ext


def write_label(root: str | os.PathLike, task: str, sample_id: str, label: np.ndarray) -> None:
    ext = label_ext(task)
    if ext == ".json":  # boxes, [N, 6] in pixels (edgemtl.tasks.detection)
        from edgemtl.tasks.detection import write_boxes_json

        data = write_boxes_json(label)
    else:
        data = encode_png(label) if ext == ".png" else encode_npy(label)
    atomic_write_bytes(Path(root) / task / f"{sample_id}{ext}", data)


def write_splits(root: str | os.PathLike, splits: dict[str, list[str]]) -> None:
    for name, ids in splits.items():
        atomic_write_bytes(Path(root) / "splits" / f"{name}.txt", ("\n".join(ids) + "\n").encode())


def write_meta(root: str | os.PathLike, meta: dict[str, Any]) -> None:
    meta = {"format_version": FORMAT_VERSION, "ignore_index": IGNORE_INDEX, **meta}
    atomic_write_bytes(Path(root) / DATASET_JSON, (json.dumps(meta, indent=2) + "\n").encode())
