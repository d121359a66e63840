"""Resolve a recipe's data (a folder, or synthetic scenes rendered once into a cache) and loaders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.recipes import synth_size


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEMTL_CACHE", Path.home() / ".cache" / "edgemtl"))


def resolve_data_root(data: dict[str, Any], progress: bool = True) -> Path:
    """``data.root`` if it holds a dataset; otherwise render ``data.synth`` there (or in the cache)."""
    root = data.get("root")
    if root and (Path(root) / "dataset.json").is_file():
        return Path(root)
    synth = data.get("synth")
    if synth is None:
        raise EdgeMTLError(f"data.root {root} has no dataset.json and the recipe has no data.synth to render one"
                           if root else "the recipe needs data.root (a dataset folder) or data.synth")
    params = {"preset": synth.get("preset", "nyud"), "num": int(synth.get("num", 1000)),
              "size": synth_size(synth.get("size", (128, 128)), "data.synth"), "seed": int(synth.get("seed", 0))}
    sizes = params["size"]
    if not root:
        tag = "+".join(f"{h}x{w}" for h, w in sizes)
        root = cache_dir() / "data" / f"synth-{params['preset']}-n{params['num']}-{tag}-s{params['seed']}"
    root = Path(root)
    if not (root / "dataset.json").is_file():
        from edgemtl.data.synth import generate

        # generate() resumes an interrupted render with the same parameters and refuses anything else.
        generate(root, params["num"], sizes[0] if len(sizes) == 1 else sizes, seed=params["seed"],
                 preset=params["preset"], progress=progress)
    return root


def dataset_fingerprint(root: Path) -> str:
    """Content hash of dataset.json and the split lists: keys baselines to the exact data."""
    h = hashlib.sha256((root / "dataset.json").read_bytes())
    for split in sorted((root / "splits").glob("*.txt")):
        h.update(split.name.encode())
        h.update(split.read_bytes())
    return h.hexdigest()[:12]


def make_loader(ds, batch_size: int, shuffle: bool, seed: int, epoch: int, num_workers: int,
                distributed: bool = False, drop_last: bool = False):
    """A loader whose order depends only on (seed, epoch): resuming at an epoch replays it exactly."""
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
    elif shuffle:
        sampler = torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    else:
        sampler = torch.utils.data.SequentialSampler(ds)
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    from edgemtl.data.dataset import collate

    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       drop_last=drop_last, persistent_workers=False, collate_fn=collate)


def eval_split(root: Path) -> str:
    """The split test numbers come from: ``test`` when the dataset has one, else ``val``."""
    return "test" if (Path(root) / "splits" / "test.txt").is_file() else "val"


def describe(root: Path) -> dict[str, Any]:
    return json.loads((root / "dataset.json").read_text())
