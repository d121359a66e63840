"""Up-front check of a whole generic-layout dataset (``edgemtl data validate DIR``).

Unlike the lazy per-item checks of :class:`~edgemtl.data.dataset.MultiTaskDataset`, this reads
every file of every split and collects *all* problems instead of stopping at the first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgemtl.data.dataset import (
    index_images,
    label_path,
    load_image,
    load_label,
    load_meta,
    num_classes_of,
    read_split,
)
from edgemtl.data.layout import SPLITS
from edgemtl.errors import EdgeMTLError

_NORM_TOL = 1e-2  # normals are stored as float32 unit vectors; allow quantisation slack
_MAX_REPORTED = 200  # keep reports readable on badly broken datasets


def validate_dataset(
    root: str | os.PathLike, splits: Sequence[str] | None = None, tasks: Sequence[str] | None = None
) -> list[str]:
    """Return every problem found (empty list = dataset is fine).

    ``splits=None`` checks whichever of train/val/test exist (at least one must); naming splits
    explicitly makes a missing split file a problem. ``tasks=None`` checks all dataset tasks.
    """
    root = Path(root)
    try:
        meta = load_meta(root)
    except EdgeMTLError as e:
        return [str(e)]
    problems: list[str] = []
    if tasks is None:
        tasks = list(meta["tasks"])
    else:
        for t in tasks:
            if t not in meta["tasks"]:
                problems.append(f"dataset has no '{t}' task; it has: {', '.join(meta['tasks'])}.")
        tasks = [t for t in tasks if t in meta["tasks"]]
    if splits is None:
        splits = [s for s in SPLITS if (root / "splits" / f"{s}.txt").is_file()]
        if not splits:
            return problems + [f"{root / 'splits'}: no split files (expected train.txt, val.txt, test.txt)."]
    try:
        images = index_images(root)
    except EdgeMTLError as e:
        return problems + [str(e)]

    members: dict[str, list[str]] = {}
    for split in splits:
        try:
            members[split] = read_split(root, split)
        except EdgeMTLError as e:
            problems.append(str(e))
    problems += _overlaps(root, members)

    checked: set[str] = set()  # an id in several splits is read once
    lo, hi = meta.get("depth_range", [0.0, float("inf")])
    for split, ids in members.items():
        for sid in ids:
            if sid in checked:
                continue
            checked.add(sid)
            problems += _check_sample(root, meta, tasks, images, split, sid, lo, hi)
    if len(problems) > _MAX_REPORTED:
        extra = len(problems) - _MAX_REPORTED
        problems = problems[:_MAX_REPORTED] + [f"... and {extra} more problems."]
    return problems


def _overlaps(root: Path, members: dict[str, list[str]]) -> list[str]:
    out = []
    names = list(members)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = sorted(set(members[a]) & set(members[b]))
            if both:
                out.append(
                    f"{root / 'splits'}: {len(both)} id(s) are in both '{a}' and '{b}' "
                    f"(e.g. {both[:3]}); splits must not overlap."
                )
    return out


def _check_sample(
    root: Path,
    meta: dict,
    tasks: Sequence[str],
    images: dict[str, Path],
    split: str,
    sid: str,
    depth_lo: float,
    depth_hi: float,
) -> list[str]:
    if sid not in images:
        return [f"{root / 'splits' / f'{split}.txt'}: id '{sid}' has no image in {root / 'images'}."]
    try:
        hw = load_image(images[sid]).shape[:2]
    except EdgeMTLError as e:
        return [str(e)]
    out = []
    for task in tasks:
        path = label_path(root, task, sid)
        if meta.get("partial_labels") and not path.exists():
            continue  # partially-labelled data: this image has no label for the task
        ncls = num_classes_of(meta, task)
        try:
            arr = load_label(task, path, hw, ncls)
        except EdgeMTLError as e:
            out.append(str(e))
            continue
        if task == "depth":
            valid = arr[arr > 0]
            if valid.size and (valid.min() < depth_lo or valid.max() > depth_hi):
                out.append(
                    f"{path}: depth values [{valid.min():.3g}, {valid.max():.3g}] m fall outside "
                    f"depth_range [{depth_lo}, {depth_hi}] of dataset.json."
                )
        elif task == "normals":
            norm = np.linalg.norm(arr, axis=2)
            bad = (norm > 0) & (np.abs(norm - 1) > _NORM_TOL)
            if bad.any():
                out.append(
                    f"{path}: {int(bad.sum())} normal(s) are neither unit length nor all-zero "
                    "(invalid); normalise them or zero them out."
                )
    return out
