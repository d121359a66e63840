"""PASCAL VOC (2007 / 2012) detection, and segmentation where it exists, to the generic layout.

Source tree (the ``VOC<year>`` folder of VOCdevkit, or VOCdevkit itself when it holds one year)::

    Annotations/<id>.xml            boxes: <object><name>, <difficult>, <bndbox> xmin ymin xmax ymax
    JPEGImages/<id>.jpg
    ImageSets/Main/{train,val,test}.txt
    SegmentationClass/<id>.png      optional: palette PNG, class index per pixel, 255 = void
    ImageSets/Segmentation/{train,val}.txt

Box coordinates: VOC's are 1-based pixel indices, both ends inclusive (the devkit's width is
``xmax - xmin + 1``). In edgemtl's continuous corners a pixel ``j`` (0-based) spans ``[j, j+1]``, so
the box is ``[xmin - 1, ymin - 1, xmax, ymax]``: same pixels, same area. Boxes are checked against
the image's real size (read from the JPEG, not trusted from ``<size>``).

``segmentation=True`` keeps only the images with a ``SegmentationClass`` mask (VOC segments a subset)
and writes ``semseg`` beside ``detection``; its classes are background + the 20 object classes, as
the masks number them. Splits: each of train / val / test whose ``ImageSets`` list exists (VOC2012's
test has no annotations and is skipped; its val is the usual test split, ``val_as_test=True``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data import layout
from edgemtl.data.convert import copy_image, find_tree, imread_label, prepare_output, read_id_list
from edgemtl.errors import EdgeMTLError

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
LAYOUT = """
    VOC<year>/Annotations/<id>.xml
    VOC<year>/JPEGImages/<id>.jpg
    VOC<year>/ImageSets/Main/{train,val,test}.txt
    VOC<year>/SegmentationClass/<id>.png  (optional)"""


def read_annotation(path: Path, hw: tuple[int, int], classes: tuple[str, ...] = CLASSES) -> np.ndarray:
    """One VOC XML -> float32 [N, 6] in pixels, continuous corners (x1, y1, x2, y2, class, difficult)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise EdgeMTLError(f"{path}: not a readable VOC annotation XML ({e}).") from None
    H, W = hw
    rows = []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            raise EdgeMTLError(
                f"{path}: object {i} has class {name!r}, not a VOC class ({', '.join(classes)})."
            )
        box = obj.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise EdgeMTLError(
                f"{path}: object {i} ({name}) needs <bndbox> with numeric xmin, ymin, xmax, ymax."
            ) from None
        x1, y1, x2, y2 = xmin - 1, ymin - 1, xmax, ymax  # 1-based inclusive -> continuous corners
        if not (x1 < x2 and y1 < y2):
            raise EdgeMTLError(
                f"{path}: object {i} ({name}) has an empty or inverted box {xmin, ymin, xmax, ymax}."
            )
        if x1 < 0 or y1 < 0 or x2 > W or y2 > H:
            raise EdgeMTLError(
                f"{path}: object {i} ({name}) box {xmin, ymin, xmax, ymax} (1-based) lies outside the "
                f"{W}x{H} image; fix the annotation."
            )
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        rows.append((x1, y1, x2, y2, classes.index(name), float(difficult)))
    return np.asarray(rows, np.float32).reshape(-1, 6)


def convert_voc(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    segmentation: bool = False,
    val_as_test: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert a VOC tree (module docstring) into the generic layout at ``out``; returns dataset.json."""
    src = Path(src)
    years = sorted(p for p in src.glob("VOC20*") if p.is_dir()) if src.is_dir() else []
    name = years[0].name if len(years) == 1 and not (src / "Annotations").is_dir() else src.name
    root = find_tree(src, name, ["Annotations", "JPEGImages", "ImageSets/Main"], LAYOUT)
    out = prepare_output(out, overwrite)
    names = {"train": "train", "val": "val", "test": "test"}
    splits = {k: read_id_list(root / "ImageSets/Main" / f"{v}.txt") for k, v in names.items()
              if (root / "ImageSets/Main" / f"{v}.txt").is_file()}  # fmt: skip
    splits = {
        k: [i for i in ids if (root / "Annotations" / f"{i}.xml").is_file()] for k, ids in splits.items()
    }
    splits = {k: ids for k, ids in splits.items() if ids}  # VOC2012 test: no annotations
    if val_as_test:
        if "val" not in splits:
            raise EdgeMTLError(f"{root}: val_as_test needs ImageSets/Main/val.txt.")
        splits["test"] = splits.pop("val")
    if segmentation:
        seg_dir = root / "SegmentationClass"
        if not seg_dir.is_dir():
            raise EdgeMTLError(
                f"{seg_dir}: not found; segmentation=True needs VOC's SegmentationClass masks."
            )
        splits = {k: [i for i in ids if (seg_dir / f"{i}.png").is_file()] for k, ids in splits.items()}
        splits = {k: ids for k, ids in splits.items() if ids}
    if not splits:
        raise EdgeMTLError(f"{root}: no annotated images in ImageSets/Main/{{train,val,test}}.txt.")
    seen: set[str] = set()
    for ids in splits.values():
        for sid in ids:
            if sid in seen:
                continue
            seen.add(sid)
            img = root / "JPEGImages" / f"{sid}.jpg"
            if not img.is_file():
                raise EdgeMTLError(f"{img}: image of annotated id '{sid}' not found.")
            hw = copy_image(img, out, sid)
            boxes = read_annotation(root / "Annotations" / f"{sid}.xml", hw)
            layout.write_label(out, "detection", sid, boxes)
            if segmentation:
                lab = imread_label(root / "SegmentationClass" / f"{sid}.png")
                if lab.ndim != 2 or lab.shape != tuple(hw):
                    raise EdgeMTLError(
                        f"{root / 'SegmentationClass' / f'{sid}.png'}: expected a palette PNG of the "
                        f"image's size {hw[0]}x{hw[1]}, got shape {lab.shape}."
                    )
                layout.write_label(out, "semseg", sid, lab.astype(np.uint8))
    layout.write_splits(out, splits)
    meta: dict[str, Any] = {
        "name": f"voc-{root.name.lower()}",
        "tasks": ["detection", *(["semseg"] if segmentation else [])],
        "classes": {
            "detection": list(CLASSES),
            **({"semseg": ["background", *CLASSES]} if segmentation else {}),
        },
        "source": {"format": "pascal-voc", "root": str(root), "val_as_test": bool(val_as_test)},
    }
    layout.write_meta(out, meta)  # last: a folder without dataset.json is an unfinished conversion
    from edgemtl.data.dataset import load_meta

    return load_meta(out)
