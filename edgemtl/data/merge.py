"""Several datasets as one partially-labelled dataset (``data.sources`` in a recipe).

Why merge on disk instead of concatenating datasets in memory: the result is an ordinary generic-layout
folder, so training, evaluation, the bench's fingerprints and baselines, and ``edgemtl data validate``
all work on it unchanged. Files are linked (symlinks), not copied.

The merged folder: every source's ids prefixed with ``s<k>-``, its images and its tasks' label files
linked under the new ids, the splits concatenated, ``tasks`` the union, ``partial_labels: true`` (an
image has the labels its source has), and ``sources`` listing each source's root, tasks, id prefix and
sampling ``ratio``. A task two sources share must have the same classes in both (an error names the
two files otherwise); depth ranges are merged to cover both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data import layout
from edgemtl.data.dataset import index_images, label_path, load_meta, read_split
from edgemtl.errors import EdgeMTLError


def merged_name(sources: list[tuple[Path, float]]) -> str:
    """A folder name that changes with the sources' content (dataset.json + splits) and ratios (each
    checked: a number > 0)."""
    from edgemtl.train.data import dataset_fingerprint

    for root, ratio in sources:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
            raise EdgeMTLError(f"data.sources: ratio of {root} must be a number > 0 (got {ratio!r})")
    h = hashlib.sha256()
    for root, ratio in sources:
        h.update(f"{dataset_fingerprint(root)}:{float(ratio)!r};".encode())
    return f"merged-{h.hexdigest()[:12]}"


def union_meta(metas: list[dict[str, Any]], where: list[str]) -> dict[str, Any]:
    """What datasets mixed as one have: the union of their tasks (first seen first), their classes (a
    task two of them share must have the same list: an error names both ``where``), a depth range that
    covers every one, the first edge_max_dist. The merge writes it; a recipe sizes its heads from it."""
    tasks: list[str] = []
    classes: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    lo, hi = np.inf, -np.inf
    for meta, here in zip(metas, where):
        tasks += [t for t in meta["tasks"] if t not in tasks]
        for t, names in (meta.get("classes") or {}).items():
            if t in classes and classes[t] != names:
                raise EdgeMTLError(
                    f"data.sources: task '{t}' has different classes in {owner[t]} and {here}; map both "
                    "to one class list first"
                )
            classes.setdefault(t, list(names))
            owner.setdefault(t, here)
        if "depth_range" in meta:
            lo, hi = min(lo, meta["depth_range"][0]), max(hi, meta["depth_range"][1])
    out: dict[str, Any] = {"name": "+".join(m["name"] for m in metas), "tasks": tasks, "classes": classes}
    if np.isfinite(lo):
        out["depth_range"] = [float(lo), float(hi)]
    dists = [m["edge_max_dist"] for m in metas if "edge_max_dist" in m]
    if dists:
        out["edge_max_dist"] = dists[0]
    return out


def merge_datasets(sources: list[tuple[Path, float]], out: str | os.PathLike) -> dict[str, Any]:
    """Link ``sources`` ((root, ratio) pairs) into ``out`` (module docstring); returns its dataset.json.
    Re-running into an existing merge of the same sources is a no-op."""
    if len(sources) < 2:
        raise EdgeMTLError("data.sources: list at least two datasets to mix (one dataset: use data.root)")
    out = Path(out)
    key = merged_name(sources)
    if (out / layout.DATASET_JSON).is_file():
        meta = load_meta(out)
        if meta.get("merge_key") != key:
            raise EdgeMTLError(
                f"{out} holds a merge of other sources or ratios (or is not a merge): delete it, or "
                "choose another data.root for this data.sources"
            )
        return meta
    metas = [load_meta(root) for root, _ in sources]
    merged = union_meta(metas, [str(Path(root) / layout.DATASET_JSON) for root, _ in sources])
    splits: dict[str, list[str]] = {}
    labelled: dict[str, set[str]] = {}  # per split, the tasks some image of it is labelled for
    entries = []
    for k, ((root, ratio), meta) in enumerate(zip(sources, metas)):
        prefix = f"s{k}-"
        images = index_images(root)
        for split in layout.SPLITS:
            if not (root / "splits" / f"{split}.txt").is_file():
                continue
            for sid in read_split(root, split):
                new = prefix + sid
                _link(images[sid], out / "images" / f"{new}{images[sid].suffix.lower()}")
                for t in meta["tasks"]:
                    src = label_path(root, t, sid)
                    if src.exists():  # a partially-labelled source may lack some
                        _link(src, label_path(out, t, new))
                        labelled.setdefault(split, set()).add(t)
                splits.setdefault(split, []).append(new)
        entries.append(
            {
                "root": str(Path(root).resolve()),
                "tasks": list(meta["tasks"]),
                "prefix": prefix,
                "ratio": float(ratio),
            }
        )
    for split in splits:  # a split without a task's labels cannot evaluate that task
        for t in merged["tasks"]:
            if t not in labelled.get(split, set()):
                raise EdgeMTLError(
                    f"data.sources: no image of the merged '{split}' split is labelled for '{t}'; give "
                    f"the source with '{t}' labels a {split} split (splits/{split}.txt)"
                )
    layout.write_splits(out, splits)
    layout.write_meta(out, {"merge_key": key, **merged, "partial_labels": True, "sources": entries})
    return load_meta(out)  # dataset.json last: a folder without it is an unfinished merge


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(Path(src).resolve(), dst)


def source_of(meta: dict[str, Any], sample_id: str) -> int:
    """Index of the source ``sample_id`` of a merged dataset comes from."""
    for k, s in enumerate(meta["sources"]):
        if sample_id.startswith(s["prefix"]):
            return k
    raise EdgeMTLError(f"id '{sample_id}' belongs to none of the sources listed in dataset.json")


def mix_indices(groups: list[list[int]], ratios: list[float], n: int, rng: np.random.Generator) -> list[int]:
    """``n`` item indices drawn so that source ``k`` supplies a share ``ratio_k / sum(ratios)`` of them
    (largest remainder), cycling through a fresh permutation of its items (a source smaller than its
    share is repeated, a larger one is subsampled), in a random order."""
    # a source with no item here (e.g. a single-task run keeps one source's images) takes no share:
    # the others' ratios are renormalised, so the epoch still has n items
    ratios = [r if items else 0.0 for items, r in zip(groups, ratios)]
    if not any(items for items in groups) or n == 0:
        return []
    p = np.asarray(ratios, np.float64) / float(np.sum(ratios))
    exact = p * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    out: list[int] = []
    for items, c in zip(groups, counts):
        if not items or not c:
            continue
        reps = -(-int(c) // len(items))
        order = np.concatenate([rng.permutation(len(items)) for _ in range(reps)])[: int(c)]
        out += [items[j] for j in order]
    return [out[j] for j in rng.permutation(len(out))]


__all__ = ["merge_datasets", "merged_name", "mix_indices", "source_of", "union_meta"]
