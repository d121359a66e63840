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
        blocker = file_in_the_way(path.parent)
        if blocker is not None:  # mkdir's "File exists" would not say which file, or what to do
            raise EdgeMTLError(
                f"cannot write {path}: {blocker} is a file, not a folder; choose another path"
            ) from None
        raise EdgeMTLError(
            f"cannot write {path}: {e.strerror or e} (check that the folder is writable and the "
            "disk has space; nothing was changed)"
        ) from None
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The first of ``folder`` and its parents that exists as something other than a folder (a file
    where a folder has to be made), else None."""
    for p in [Path(folder), *Path(folder).parents]:
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


# OpenCV's own decoder limit (CV_IO_MAX_IMAGE_PIXELS): larger headers are refused before decoding.
MAX_IMAGE_PIXELS = 1 << 30


def read_rgb(path: str | os.PathLike, apply_orientation: bool = True, what: str = "") -> np.ndarray:
    """An image file as RGB uint8 HxWx3, or an EdgeMTLError naming the file and what is wrong.

    A truncated JPEG is an error: libjpeg decodes what it has and fills the rest with grey, which
    OpenCV returns as a valid image (so it is decoded once more by Pillow, at 1/8 scale, which
    raises on the missing data). ``apply_orientation``: turn the pixels as the EXIF orientation tag
    says, as a photo viewer shows them (``predict`` on a user's photo); datasets keep the stored
    pixel order, which their label maps are aligned with (as PIL-based reference loaders read
    them). ``what`` prefixes the message (e.g. the flag that named the file)."""
    import cv2

    from edgemtl.errors import EdgeMTLError

    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if path.is_dir():
        raise EdgeMTLError(f"{name}: is a folder, not an image file")
    if not path.is_file():
        raise EdgeMTLError(f"{name}: image file not found")
    _check_header(path, name)
    flags = cv2.IMREAD_COLOR | (0 if apply_orientation else cv2.IMREAD_IGNORE_ORIENTATION)
    try:
        bgr = cv2.imread(str(path), flags)
    except cv2.error as e:  # e.g. a header over OpenCV's pixel limit (CV_IO_MAX_IMAGE_PIXELS)
        why = (
            f"the image is larger than {MAX_IMAGE_PIXELS} pixels; resize it first"
            if "MAX_IMAGE_PIXELS" in str(e)
            else "unreadable or corrupt image; re-export it as PNG/JPEG"
        )
        raise EdgeMTLError(f"{name}: {why}") from None
    if bgr is None:
        raise EdgeMTLError(
            f"{name}: unreadable or corrupt image (truncated, or not an image file); re-export it as PNG/JPEG"
        )
    return np.ascontiguousarray(bgr[..., ::-1])


def _check_header(path: Path, name: str) -> None:
    """Refuse, before OpenCV decodes it, an image whose header is over the pixel limit and a JPEG
    whose data ends early (Pillow, at 1/8 scale: every scan byte is read, little IDCT work)."""
    from PIL import Image, UnidentifiedImageError

    from edgemtl.errors import EdgeMTLError

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the size check is ours (OpenCV's)
    fmt = "image"
    try:
        with Image.open(path) as im:
            fmt, (w, h) = im.format or fmt, im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise EdgeMTLError(f"{name}: {w}x{h} is more than {MAX_IMAGE_PIXELS} pixels; resize it first")
            if fmt == "JPEG":
                im.draft("RGB", (max(w // 8, 1), max(h // 8, 1)))
                im.load()
    except EdgeMTLError:
        raise
    except UnidentifiedImageError:
        return  # not a format Pillow knows (or not an image): OpenCV decides
    except Exception as e:  # noqa: BLE001 (Pillow raises OSError, SyntaxError, ValueError, ...)
        raise EdgeMTLError(
            f"{name}: truncated or corrupt {fmt} ({e}); re-download or re-export the file"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


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
