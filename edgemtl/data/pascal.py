"""Convert the PASCAL-Context multi-task release (``PASCAL_MT``, as read by ASTMT / MTL-PyTorch)
to the generic layout. Assumptions and what was verified: docs/data.md.

Tree (task folders are optional; a task is converted when its folder exists)::

    PASCAL_MT/JPEGImages/<id>.jpg
    PASCAL_MT/ImageSets/Context/{train,val}.txt
    PASCAL_MT/semseg/VOC12/<id>.png  or  semseg/pascal-context/<id>.png   0 = background
    PASCAL_MT/human_parts/<id>.mat    PASCAL-Part 'anno' struct  (or parts/<id>.png, 0..6/255)
    PASCAL_MT/sal_distill/<id>.png    0..255, > 127 = salient
    PASCAL_MT/normals_distill/<id>.png   (n+1)/2*255
    PASCAL_MT/pascal-context/trainval/<id>.mat   'LabelMap' (459 classes): edges, normals mask
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data.convert import (
    copy_image,
    find_file,
    find_tree,
    fit,
    imread_label,
    loadmat_key,
    normals_from_image,
    prepare_output,
    read_splits,
)
from edgemtl.data.layout import IGNORE_INDEX, write_label, write_meta, write_splits
from edgemtl.errors import EdgeMTLError, unknown_choice

VOC21_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
# 59 PASCAL-Context classes + background, in the common (mmsegmentation) order. Unverified
# against PASCAL_MT, whose semseg maps are 21-class (MTL-PyTorch: NUM_OUTPUT semseg = 21).
CONTEXT60_CLASSES = [
    "background",
    "aeroplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "pottedplant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "tvmonitor",
    "wall",
    "water",
    "window",
    "wood",
]
SEMSEG_SETS = {"voc21": VOC21_CLASSES, "context60": CONTEXT60_CLASSES}
PARTS_CLASSES = ["background", "head", "torso", "upper_arm", "lower_arm", "upper_leg", "lower_leg"]
# PASCAL-Part person part names -> the 6 merged parts ASTMT/MTL-PyTorch train on (num_human_parts=6).
_HUMAN_PART_6 = {
    "hair": 1,
    "head": 1,
    "lear": 1,
    "lebrow": 1,
    "leye": 1,
    "mouth": 1,
    "nose": 1,
    "rear": 1,
    "rebrow": 1,
    "reye": 1,
    "neck": 2,
    "torso": 2,
    "luarm": 3,
    "ruarm": 3,
    "lhand": 4,
    "llarm": 4,
    "rhand": 4,
    "rlarm": 4,
    "luleg": 5,
    "ruleg": 5,
    "lfoot": 6,
    "llleg": 6,
    "rfoot": 6,
    "rlleg": 6,
}
_PERSON = 15  # PASCAL VOC class index of 'person' in the PASCAL-Part annotations
# PASCAL-Context (459-class LabelMap) ids whose distilled normals are kept: classes whose name
# also appears among the NYUD class names (except 'unknown'), plus tvmonitor (427) - the rule of
# the reference loader, computed once from its nyu_classes.json / context_classes.json.
NORMALS_VALID_CONTEXT_IDS = frozenset(
    (
        3,
        4,
        6,
        9,
        10,
        11,
        13,
        15,
        17,
        18,
        22,
        23,
        29,
        30,
        33,
        34,
        36,
        37,
        38,
        39,
        41,
        43,
        46,
        49,
        50,
        51,
        53,
        55,
        56,
        59,
        61,
        62,
        65,
        66,
        68,
        69,
        72,
        73,
        78,
        83,
        84,
        85,
        87,
        88,
        95,
        96,
        101,
        104,
        105,
        107,
        111,
        113,
        115,
        122,
        124,
        135,
        141,
        142,
        143,
        146,
        150,
        154,
        157,
        158,
        159,
        165,
        172,
        174,
        181,
        183,
        184,
        191,
        193,
        195,
        197,
        199,
        202,
        213,
        215,
        216,
        219,
        220,
        223,
        225,
        228,
        230,
        232,
        233,
        238,
        239,
        242,
        243,
        246,
        250,
        251,
        252,
        255,
        260,
        261,
        263,
        269,
        272,
        273,
        275,
        281,
        283,
        284,
        285,
        286,
        287,
        288,
        290,
        291,
        292,
        293,
        295,
        304,
        307,
        309,
        310,
        314,
        315,
        319,
        323,
        329,
        330,
        331,
        336,
        342,
        345,
        349,
        350,
        351,
        352,
        355,
        357,
        368,
        370,
        371,
        374,
        379,
        380,
        383,
        384,
        397,
        401,
        403,
        405,
        407,
        408,
        411,
        412,
        413,
        414,
        417,
        419,
        421,
        423,
        427,
        429,
        430,
        432,
        440,
        441,
        442,
        443,
        444,
        446,
        454,
        457,
    )
)
PASCAL_EDGE_MAX_DIST = 0.0075
_LAYOUT = __doc__.split("::", 1)[1].rstrip()


def edges_from_labelmap(label_map: np.ndarray) -> np.ndarray:
    """ASTMT's PASCAL edge ground truth: non-zero Laplacian of the label map, thinned to 1 px."""
    import cv2
    from skimage.morphology import thin

    lap = cv2.Laplacian(np.asarray(label_map, dtype=np.float64), cv2.CV_64F)
    return thin(np.abs(lap) > 0).astype(np.uint8)


def parts_from_mat(path: Path) -> np.ndarray | None:
    """6-part person map (0 = background) from a PASCAL-Part .mat; None if it has no person parts.

    Indexes the ``anno`` struct by position exactly as the reference loader does:
    anno.objects[i] = (class, class_ind, mask, parts), parts[j] = (part_name, mask).
    """
    try:
        objects = loadmat_key(path, "anno")[0][0][1][0]
        target = None
        for obj in objects:
            if int(np.asarray(obj[1]).ravel()[0]) != _PERSON or len(obj[3]) == 0:
                continue
            if target is None:
                target = np.zeros(np.asarray(obj[2]).shape, dtype=np.uint8)
            for part in obj[3][0]:
                name = str(np.asarray(part[0]).ravel()[0])
                if name not in _HUMAN_PART_6:
                    raise EdgeMTLError(f"{path}: unknown person part name '{name}'.")
                target[np.asarray(part[1]).astype(bool)] = _HUMAN_PART_6[name]
    except (IndexError, TypeError, ValueError) as e:
        raise EdgeMTLError(f"{path}: not a PASCAL-Part 'anno' struct ({e}).") from None
    return target


def convert_pascal(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    semseg_classes: str = "voc21",
    normals_y_down: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert a PASCAL_MT tree to the generic layout in ``out``; returns ``out``.

    ``semseg_classes``: "voc21" (what ASTMT/MTL-PyTorch train on) or "context60".
    ``normals_y_down``: set it only for a copy whose normals point y down; the PASCAL_MT release's
    distilled normals are x right, y up, z towards the camera, edgemtl's frame (docs/data.md).
    """
    if semseg_classes not in SEMSEG_SETS:
        raise unknown_choice("semseg class set", semseg_classes, SEMSEG_SETS)
    root = find_tree(src, "PASCAL_MT", ["JPEGImages", "ImageSets/Context"], _LAYOUT)
    out = prepare_output(out, overwrite)
    splits = read_splits(root / "ImageSets" / "Context", {"train": "train", "val": "val", "test": "test"})
    ctx = root / "pascal-context" / "trainval"
    present = {
        "semseg": (root / "semseg").is_dir(),
        "parts": (root / "human_parts").is_dir() or (root / "parts").is_dir(),
        "saliency": (root / "sal_distill").is_dir(),
        "normals": (root / "normals_distill").is_dir(),
        "edges": ctx.is_dir(),
    }
    tasks = [t for t, ok in present.items() if ok]
    if not tasks:
        raise EdgeMTLError(f"{root}: no label folders found. Expected layout:{_LAYOUT}")
    classes = SEMSEG_SETS[semseg_classes]
    sizes = set()
    for sid in dict.fromkeys(i for ids in splits.values() for i in ids):
        img = find_file(root / "JPEGImages", sid, (".jpg", ".png", ".jpeg"))
        if img is None:
            raise EdgeMTLError(
                f"{root / 'JPEGImages' / (sid + '.jpg')}: image listed in ImageSets/Context not found."
            )
        hw = copy_image(img, out, sid)
        sizes.add(hw)
        label_map = None
        if "edges" in tasks or "normals" in tasks:
            lm_path = ctx / f"{sid}.mat"
            if lm_path.is_file():
                label_map = fit(np.asarray(loadmat_key(lm_path, "LabelMap")).astype(np.int32), hw)
            elif "edges" in tasks:
                raise EdgeMTLError(f"{lm_path}: missing PASCAL-Context label map for id '{sid}' (edges).")
        for task in tasks:
            write_label(out, task, sid, _read_task(task, root, sid, hw, label_map, classes, normals_y_down))
    write_splits(out, splits)
    meta: dict[str, Any] = {
        "name": "pascal_context",
        "tasks": tasks,
        "classes": {k: v for k, v in (("semseg", classes), ("parts", PARTS_CLASSES)) if k in tasks},
        "edge_max_dist": PASCAL_EDGE_MAX_DIST,
        "source": {
            "dataset": "PASCAL-Context multi-task (PASCAL_MT)",
            "converted_from": str(root),
            "edges": "Laplacian of pascal-context LabelMap, thinned (ASTMT)",
            "normals": (
                "distilled; kept on NYUD-like classes only; "
                + ("source y-down, negated to y-up" if normals_y_down else "source y-up, kept")
            ),
            "parts": "6 person parts + background; images without person parts are all 255",
        },
    }
    if len(sizes) == 1:
        meta["image_size"] = list(next(iter(sizes)))
    write_meta(out, meta)  # last: a dataset.json means the conversion finished
    return out


def saliency_from_png(path: Path) -> np.ndarray:
    """0/1 saliency from a stored map, as the reference loader reads it: the PNG's values
    (``np.array(PIL.Image.open)``, palette indices for a "P" PNG, never brightness) / 255 > 0.5.
    A map that only holds 0/1 values is already binary and kept as is (the reference would turn it
    into all background)."""
    v = imread_label(path)
    if v.ndim == 3:  # RGB: the reference would fail; a grey-as-RGB map has equal channels
        if not (v == v[..., :1]).all():
            raise EdgeMTLError(
                f"{path}: saliency must be a single-channel map (grayscale or palette), got a colour image."
            )
        v = v[..., 0]
    if v.max(initial=0) <= 1:
        return v.astype(np.uint8)
    return (v.astype(np.float32) / 255.0 > 0.5).astype(np.uint8)


def _read_task(
    task: str,
    root: Path,
    sid: str,
    hw: tuple[int, int],
    label_map: np.ndarray | None,
    classes: list[str],
    y_down: bool,
) -> np.ndarray:
    import cv2

    if task == "semseg":
        path = find_file(root / "semseg" / "VOC12", sid, (".png",)) or find_file(
            root / "semseg" / "pascal-context", sid, (".png",)
        )
        if path is None:
            raise EdgeMTLError(
                f"{root / 'semseg' / 'pascal-context' / (sid + '.png')}: missing semseg "
                f"label for id '{sid}' (also looked in semseg/VOC12)."
            )
        lab = imread_label(path)
        bad = (lab >= len(classes)) & (lab != IGNORE_INDEX)
        if lab.ndim != 2 or bad.any():
            hint = " (for 60-class maps use semseg_classes='context60')" if len(classes) == 21 else ""
            raise EdgeMTLError(
                f"{path}: expected a single-channel map with class ids "
                f"0..{len(classes) - 1} or {IGNORE_INDEX}{hint}."
            )
        return fit(lab.astype(np.uint8), hw)
    if task == "parts":
        png = find_file(root / "parts", sid, (".png",))
        if png is not None:
            lab = imread_label(png)
            if lab.ndim != 2 or ((lab >= len(PARTS_CLASSES)) & (lab != IGNORE_INDEX)).any():
                raise EdgeMTLError(f"{png}: expected part ids 0..{len(PARTS_CLASSES) - 1} or {IGNORE_INDEX}.")
            return fit(lab.astype(np.uint8), hw)
        mat = find_file(root / "human_parts", sid, (".mat",))
        lab = parts_from_mat(mat) if mat is not None else None
        if lab is None or not lab.any():  # no annotated person: nothing to learn from -> ignore
            return np.full(hw, IGNORE_INDEX, dtype=np.uint8)
        return fit(lab, hw)
    if task == "saliency":
        path = root / "sal_distill" / f"{sid}.png"
        if not path.is_file():
            raise EdgeMTLError(f"{path}: missing saliency label for id '{sid}'.")
        return fit(saliency_from_png(path), hw)
    if task == "normals":
        path = root / "normals_distill" / f"{sid}.png"
        if not path.is_file():
            raise EdgeMTLError(f"{path}: missing normals label for id '{sid}'.")
        n = fit(normals_from_image(imread_label(path, cv2.IMREAD_COLOR), y_down), hw)
        if label_map is not None:
            n[~np.isin(label_map, list(NORMALS_VALID_CONTEXT_IDS))] = 0.0
        return n
    assert label_map is not None
    return edges_from_labelmap(label_map)
