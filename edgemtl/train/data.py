"""Resolve a recipe's data (a folder, or synthetic scenes rendered once into a cache) and loaders."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from edgemtl.data.dataset import load_meta
from edgemtl.errors import EdgeMTLError
from edgemtl.recipes import synth_size


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEMTL_CACHE", Path.home() / ".cache" / "edgemtl"))


def resolve_data_root(data: dict[str, Any], progress: bool = True) -> Path:
    """``data.root`` if it holds a dataset; otherwise render ``data.synth`` there (or in the cache).
    ``data.sources`` (a list of such data entries, each with an optional sampling ``ratio``): each is
    resolved, and they are merged into one partially-labelled dataset in the cache
    (:mod:`edgemtl.data.merge`)."""
    if data.get("sources") is not None:
        srcs = data["sources"]
        if not isinstance(srcs, list) or not all(isinstance(s, dict) for s in srcs):
            raise EdgeMTLError("data.sources: expected a list like [{root: A, ratio: 1}, {synth: {...}}]")
        for s in srcs:
            bad = set(s) - {"root", "synth", "ratio"}
            if bad:
                raise EdgeMTLError(f"data.sources: unknown key(s) {sorted(bad)}; valid: root, synth, ratio")
        from edgemtl.data.merge import merge_datasets, merged_name

        pairs = [
            (resolve_data_root({k: v for k, v in s.items() if k != "ratio"}, progress), s.get("ratio", 1.0))
            for s in srcs
        ]
        out = Path(data["root"]) if data.get("root") else cache_dir() / "data" / merged_name(pairs)
        merge_datasets(pairs, out)
        return out
    root = data.get("root")
    if root and (Path(root) / "dataset.json").is_file():
        return Path(root)
    synth = data.get("synth")
    if synth is None:
        raise EdgeMTLError(
            f"data.root {root} has no dataset.json and the recipe has no data.synth to render one"
            if root
            else "the recipe needs data.root (a dataset folder) or data.synth"
        )
    unknown = set(synth) - {"preset", "num", "size", "seed", "splits", "tasks"}
    if unknown:
        raise EdgeMTLError(
            f"data.synth: unknown key(s) {sorted(unknown)}; valid: preset, num, size, seed, splits, tasks"
        )
    params = {
        "preset": synth.get("preset", "nyud"),
        "num": int(synth.get("num", 1000)),
        "size": synth_size(synth.get("size", (128, 128)), "data.synth"),
        "seed": int(synth.get("seed", 0)),
    }
    splits = synth.get("splits")  # [train, val, test] fractions; default 0.8/0.1/0.1
    from edgemtl.data.synth.driver import TASKS as DENSE
    from edgemtl.data.synth.driver import check_tasks

    tasks = check_tasks(synth.get("tasks"))
    sizes = params["size"]
    if not root:
        tag = "+".join(f"{h}x{w}" for h, w in sizes)
        split_tag = "" if splits is None else "-" + "-".join(str(f) for f in splits)
        split_tag += "" if tasks == DENSE else "-" + "+".join(tasks)
        root = (
            cache_dir()
            / "data"
            / f"synth-{params['preset']}-n{params['num']}-{tag}-s{params['seed']}{split_tag}"
        )
    elif progress:
        # A mistyped path to a real dataset would otherwise train on synthetic scenes without a word.
        from edgemtl.log import get_logger

        get_logger(__name__).warning(
            f"data.root {root} holds no dataset (no dataset.json): rendering the recipe's data.synth "
            f"({params['num']} {params['preset']} scenes) there. To use your own data, point data.root "
            "at a folder with dataset.json (docs/data.md)."
        )
    root = Path(root)
    if not (root / "dataset.json").is_file():
        from edgemtl.data.synth import generate

        # generate() resumes an interrupted render with the same parameters and refuses anything else.
        generate(
            root,
            params["num"],
            sizes[0] if len(sizes) == 1 else sizes,
            seed=params["seed"],
            preset=params["preset"],
            progress=progress,
            tasks=tasks,
            **({"splits": tuple(splits)} if splits is not None else {}),
        )
    return root


def dataset_fingerprint(root: Path) -> str:
    """Content hash of dataset.json and the split lists: keys baselines to the exact data."""
    h = hashlib.sha256((root / "dataset.json").read_bytes())
    for split in sorted((root / "splits").glob("*.txt")):
        h.update(split.name.encode())
        h.update(split.read_bytes())
    return h.hexdigest()[:12]


class SourceMixSampler(torch.utils.data.Sampler):
    """The training order of a merged dataset (``data.sources``): each epoch, ``len(ds)`` items of
    which source ``k`` supplies the share ``ratio_k / sum(ratios)``; depends only on (seed, epoch)."""

    def __init__(self, ids: list[str], meta: dict[str, Any], seed: int) -> None:
        from edgemtl.data.merge import source_of

        self.groups: list[list[int]] = [[] for _ in meta["sources"]]
        for i, sid in enumerate(ids):
            self.groups[source_of(meta, sid)].append(i)
        self.ratios = [float(s.get("ratio", 1.0)) for s in meta["sources"]]
        self.n, self.seed, self.epoch = len(ids), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import numpy as np

        from edgemtl.data.merge import mix_indices

        rng = np.random.default_rng([self.seed, self.epoch, 0x50C])
        return iter(mix_indices(self.groups, self.ratios, self.n, rng))

    def __len__(self) -> int:
        return self.n


class EpochRandomSampler(torch.utils.data.Sampler):
    """A random permutation that depends only on (seed, epoch), like DistributedSampler's set_epoch:
    one loader (and its persistent workers) serves every epoch, and resuming replays an epoch exactly."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(
            torch.randperm(
                self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            ).tolist()
        )

    def __len__(self) -> int:
        return self.n


def make_loader(
    ds,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    num_workers: int,
    distributed: bool = False,
    drop_last: bool = False,
    pin_memory: bool = False,
):
    """A loader whose order depends only on (seed, epoch): resuming at an epoch replays it exactly.
    Its workers persist; call :func:`set_loader_epoch` to reuse it for another epoch."""
    sources = (getattr(ds, "meta", None) or {}).get("sources")
    if distributed and shuffle and sources and len({float(x.get("ratio", 1.0)) for x in sources}) > 1:
        raise EdgeMTLError(
            "data.sources with different ratios is not supported under DDP (the distributed sampler "
            "draws uniformly); use equal ratios or one process"
        )
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(
            ds, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    elif shuffle and sources:
        sampler = SourceMixSampler(list(ds.ids), ds.meta, seed)
    elif shuffle:
        sampler = EpochRandomSampler(len(ds), seed)
    else:
        sampler = torch.utils.data.SequentialSampler(ds)
    from edgemtl.data.dataset import collate

    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        collate_fn=collate,
    )
    set_loader_epoch(loader, epoch)
    return loader


def set_loader_epoch(loader, epoch: int) -> None:
    """Select the epoch's order (sampler) and augmentation stream (dataset); before iterating."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)


def eval_split(root: Path) -> str:
    """The split test numbers come from: ``test`` when the dataset has one, else ``val``."""
    return "test" if (Path(root) / "splits" / "test.txt").is_file() else "val"


def describe(root: Path) -> dict[str, Any]:
    return load_meta(root)
