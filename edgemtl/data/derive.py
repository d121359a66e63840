"""Derive edge targets from segmentation maps.

Rule (documented in docs/data.md): a pixel is an edge pixel when its right or its down
neighbour holds a *different valid* class id. Looking only right/down puts the boundary on
one side of every class change, so edges are exactly 1 pixel thick (a symmetric rule marks
both sides and gives 2-pixel-thick edges). Pixels outside the image count as "same class".

Ignore handling: an ignored pixel is undefined (255). A valid pixel whose right/down
neighbour is ignored and that has no differing valid neighbour is also undefined, because
whether a boundary runs there is unknown; it must not be trained as "no edge".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgemtl.data.layout import (
    DATASET_JSON,
    IGNORE_INDEX,
    atomic_write_bytes,
    encode_png,
    read_label_png,
    write_meta,
)
from edgemtl.errors import EdgeMTLError


def edges_from_segmentation(label: np.ndarray, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Return a uint8 HxW map: 1 = boundary, 0 = interior, 255 = undefined (see module doc)."""
    if label.ndim != 2:
        raise ValueError(f"expected an HxW label map, got shape {label.shape}")
    lab = np.asarray(label)
    valid = lab != ignore_index
    diff = np.zeros(lab.shape, dtype=bool)
    touches_ignore = np.zeros(lab.shape, dtype=bool)
    # right neighbour
    both = valid[:, :-1] & valid[:, 1:]
    diff[:, :-1] |= both & (lab[:, :-1] != lab[:, 1:])
    touches_ignore[:, :-1] |= ~valid[:, 1:]
    # down neighbour
    both = valid[:-1, :] & valid[1:, :]
    diff[:-1, :] |= both & (lab[:-1, :] != lab[1:, :])
    touches_ignore[:-1, :] |= ~valid[1:, :]

    out = np.zeros(lab.shape, dtype=np.uint8)
    out[touches_ignore] = IGNORE_INDEX
    out[diff] = 1  # a known class change wins over an unknown neighbour
    out[~valid] = IGNORE_INDEX
    return out


def derive_edges_on_disk(root: str | os.PathLike, overwrite: bool = False) -> int:
    """Write ``edges/<id>.png`` for every ``semseg/<id>.png`` and add "edges" to dataset.json.

    Labels are written before dataset.json, so an interrupted run leaves a dataset that still
    does not claim edges (rerun to finish). Returns the number of edge maps written.
    """
    from edgemtl.data.dataset import load_meta

    root = Path(root)
    meta = load_meta(root)
    if "semseg" not in meta["tasks"]:
        raise EdgeMTLError(
            f"{root / DATASET_JSON}: cannot derive edges, the dataset has no 'semseg' task "
            f"(tasks: {', '.join(meta['tasks'])})."
        )
    if "edges" in meta["tasks"] and not overwrite:
        raise EdgeMTLError(
            f"{root / DATASET_JSON} already lists 'edges'; pass overwrite=True to re-derive them."
        )
    files = sorted((root / "semseg").glob("*.png"))
    if not files:
        raise EdgeMTLError(f"{root / 'semseg'}: no .png label maps to derive edges from.")
    for path in files:
        try:
            lab = read_label_png(path)  # class indices, also for palette PNGs
        except ValueError as e:
            raise EdgeMTLError(f"{path}: unreadable label map ({e}).") from None
        if lab.ndim != 2:
            raise EdgeMTLError(f"{path}: not a single-channel label map (grayscale or palette PNG).")
        edges = edges_from_segmentation(lab, meta.get("ignore_index", IGNORE_INDEX))
        atomic_write_bytes(root / "edges" / path.name, encode_png(edges))

    raw = dict(meta)  # as read and validated above (dataset.json is only ever read by load_meta)
    if "edges" not in raw["tasks"]:
        raw["tasks"] = list(raw["tasks"]) + ["edges"]
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    source["edges"] = "derived from semseg boundaries (edgemtl.data.derive, right/down rule)"
    raw["source"] = source
    write_meta(root, raw)
    return len(files)
