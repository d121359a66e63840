"""Read the generic layout (see :mod:`edgemtl.data.layout`) as a torch Dataset.

Each item is a dict of tensors: ``image`` float32 [3,H,W] in [0,1], ``id`` str, and per task
semseg/parts int64 [H,W] (255 ignore), edges/saliency float32 [1,H,W] (0/1, 255 ignore),
depth float32 [1,H,W] metres (0 invalid), normals float32 [3,H,W] (all-zero invalid), detection
float32 [N,6] (box as fractions of the image, class id, difficult flag).

Files are checked lazily per item (cheap checks only); :func:`edgemtl.data.validate.validate_dataset`
scans everything up-front. Augmentation randomness is derived from (seed, epoch, index), so a
run is reproducible regardless of worker count or which worker loads which item.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgemtl.data.layout import (
    DATASET_JSON,
    FORMAT_VERSION,
    IGNORE_INDEX,
    IMAGE_EXTS,
    label_ext,
)
from edgemtl.errors import EdgeMTLError, unknown_choice
from edgemtl.tasks import TASKS
from edgemtl.tasks.labels import fail as _fail

Sample = dict[str, Any]
Transform = Callable[[Sample, np.random.Generator], Sample]


def load_meta(root: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``DIR/dataset.json``; raises EdgeMTLError naming the file and key."""
    path = Path(root) / DATASET_JSON
    if not path.is_file():
        raise EdgeMTLError(
            f"{path} not found: '{root}' is not an edgemtl dataset. Make one with `edgemtl data synth "
            "--out DIR` or `edgemtl data convert nyud|pascal|voc SRC --out DIR` (docs/data.md)."
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"not valid JSON ({e}).") from None
    if not isinstance(meta, dict):
        raise _fail(path, "must hold a JSON object.")
    for key in ("format_version", "name", "tasks"):
        if key not in meta:
            raise _fail(path, f"missing key '{key}'.")
    if meta["format_version"] != FORMAT_VERSION:
        raise _fail(
            path,
            f"format_version {meta['format_version']!r} is not supported "
            f"(this edgemtl reads version {FORMAT_VERSION}).",
        )
    tasks = meta["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise _fail(path, "key 'tasks' must be a non-empty list of task names.")
    for t in tasks:
        if t not in TASKS:
            err = unknown_choice("task", str(t), TASKS.names())
            raise _fail(path, f"key 'tasks': {err}")
    if len(set(tasks)) != len(tasks):
        raise _fail(path, "key 'tasks' lists a task twice.")
    if meta.setdefault("ignore_index", IGNORE_INDEX) != IGNORE_INDEX:
        raise _fail(path, f"key 'ignore_index' must be {IGNORE_INDEX} (the value the label files use).")
    for t in tasks:  # what each task needs from dataset.json (class names, depth range, ...)
        problem = TASKS.get(t).check_meta(meta)
        if problem:
            raise _fail(path, problem)
    if not isinstance(meta.get("partial_labels", False), bool):
        raise _fail(path, "key 'partial_labels' must be true or false.")
    emd = meta.get("edge_max_dist")
    if emd is not None and not (isinstance(emd, (int, float)) and 0 < emd < 1):
        raise _fail(
            path,
            "key 'edge_max_dist' must be a fraction of the image diagonal in (0, 1), "
            "e.g. 0.0075 (PASCAL) or 0.011 (NYUD).",
        )
    return meta


def read_split(root: str | os.PathLike, split: str) -> list[str]:
    """Ids of ``splits/<split>.txt``; errors if the file is missing, empty or repeats an id."""
    path = Path(root) / "splits" / f"{split}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in (Path(root) / "splits").glob("*.txt"))
        raise EdgeMTLError(f"split file {path} not found. Available splits: {', '.join(have) or 'none'}.")
    ids = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not ids:
        raise _fail(path, "split file is empty; list one sample id per line.")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise _fail(path, f"id '{i}' is listed twice.")
        seen.add(i)
    return ids


def index_images(root: str | os.PathLike) -> dict[str, Path]:
    """Map id -> image path for every ``images/<id>.<png|jpg|jpeg>``."""
    folder = Path(root) / "images"
    if not folder.is_dir():
        raise EdgeMTLError(f"{folder} not found: the dataset has no images folder.")
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS}


def load_image(path: Path) -> np.ndarray:
    """RGB uint8 HxWx3; EdgeMTLError naming the file if it cannot be decoded."""
    from edgemtl.data.layout import read_rgb

    if not Path(path).is_file():
        raise _fail(path, "image file not found.")
    # The stored pixel order, not turned by an EXIF orientation tag: the label maps are aligned with
    # the stored pixels (docs/data.md).
    return read_rgb(path, apply_orientation=False)


def label_path(root: str | os.PathLike, task: str, sample_id: str) -> Path:
    return Path(root) / task / f"{sample_id}{label_ext(task)}"


def load_label(task: str, path: Path, hw: tuple[int, int], num_classes: int | None = None) -> np.ndarray:
    """Read one label file and check it (existence, dtype, shape, value range) against ``hw``: the
    task's own reader (``Task.read_label``)."""
    return TASKS.get(task).read_label(path, hw, num_classes)


def to_tensor(task: str, arr: np.ndarray) -> torch.Tensor:
    """Numpy label -> the item tensor layout documented in the module docstring (``Task.label_tensor``)."""
    return TASKS.get(task).label_tensor(arr)


def num_classes_of(meta: dict[str, Any], task: str) -> int | None:
    """How many classes ``classes.<task>`` of dataset.json lists (None for a task without classes)."""
    names = (meta.get("classes") or {}).get(task)
    return len(names) if isinstance(names, list) else None


def is_class_task(task: str) -> bool:
    return TASKS.get(task).kind == "classes"


class MultiTaskDataset(Dataset):
    """Samples of one split of a generic-layout dataset (see module docstring for the items)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        tasks: Sequence[str] | None = None,
        transform: Transform | None = None,
        derive_edges: bool = False,
        seed: int = 0,
        input_size: tuple[int, int] | None = None,
        cache_gib: float = 0.0,
        require_labels: Sequence[str] | None = None,
    ) -> None:
        """``input_size`` (H, W): evaluation items. The image is prepared exactly as an exported artifact
        prepares it (:func:`edgemtl.artifact.processing.preprocess`: the whole image resized to
        ``input_size``) while the labels stay at their native resolution; metrics are computed there
        (docs/metrics.md, "Input scale"). It excludes ``transform``.

        ``cache_gib``: keep up to this many GiB of decoded images and labels in memory, so epochs after
        the first do not decode PNG/JPEG/.npy files again. Arrays are kept exactly as decoded (uint8
        images and PNG labels, float32 depth and normals), so cached items are bit-identical;
        augmentation still runs per item. Items past the budget are decoded every time.

        ``require_labels`` (partially-labelled data): keep only the ids labelled for at least one of
        these tasks (their label file exists); e.g. a single-task baseline's training images."""
        if input_size is not None and transform is not None:
            raise ValueError(
                "MultiTaskDataset: input_size (evaluation) and transform (training) exclude each other"
            )
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.root = Path(root)
        self._meta = load_meta(self.root)
        have = list(self._meta["tasks"])
        self._derived: set[str] = set()
        if derive_edges and "edges" not in have and "semseg" not in have:
            raise EdgeMTLError(
                f"derive_edges=True needs a 'semseg' task, but dataset {self.root} has: {', '.join(have)}."
            )
        if tasks is None:
            tasks = have + (["edges"] if derive_edges and "edges" not in have and "semseg" in have else [])
        for t in tasks:
            if t not in TASKS:
                raise unknown_choice("task", t, TASKS.names())
            if t in have:
                continue
            if t == "edges" and derive_edges and "semseg" in have:
                self._derived.add("edges")
                continue
            hint = " (derive_edges=True needs a 'semseg' task)" if t == "edges" and derive_edges else ""
            raise EdgeMTLError(f"dataset {self.root} has no '{t}' task{hint}; it has: {', '.join(have)}.")
        self._tasks = list(dict.fromkeys(tasks))
        self.split = split
        self.ids = read_split(self.root, split)
        self.partial = bool(self._meta.get("partial_labels"))
        if require_labels and self.partial:
            self.ids = [i for i in self.ids if any(self._label_file(t, i).is_file() for t in require_labels)]
            if not self.ids:
                raise EdgeMTLError(
                    f"{self.root}: no image of split '{split}' is labelled for {', '.join(require_labels)}"
                )
        images = index_images(self.root)
        missing = [i for i in self.ids if i not in images]
        if missing:
            raise EdgeMTLError(
                f"{self.root / 'splits' / f'{split}.txt'}: id(s) {missing[:5]} have no image "
                f"{self.root / 'images' / (missing[0] + '.png|.jpg')}."
            )
        self._images = [images[i] for i in self.ids]
        if not self.partial:  # found here, not when a batch (or the test after training) reaches it
            for t in self._tasks:
                absent = [i for i in self.ids if not self._label_file(t, i).is_file()]
                if absent:
                    raise EdgeMTLError(
                        f"{self._label_file(t, absent[0])}: missing {t} label file ({len(absent)} of the "
                        f"{len(self.ids)} '{split}' images lack one); add them, or remove those ids from "
                        f"{self.root / 'splits' / f'{split}.txt'} (`edgemtl data validate {self.root}` "
                        "lists them)"
                    )
        self.transform = transform
        self.seed = int(seed)
        # Shared so that persistent DataLoader workers see set_epoch() from the main process.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        if cache_gib < 0:
            raise EdgeMTLError(f"cache_gib must be >= 0 (got {cache_gib})")
        self._cache_budget = int(cache_gib * 2**30)
        self._cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray], dict[str, bool]]] = {}
        self._cache_bytes = 0
        # Partially-labelled data (dataset.json "partial_labels": true): an id may lack a task's label
        # file; the item then holds the task's empty label and ``item["labelled"][task]`` is False.

    @property
    def meta(self) -> dict[str, Any]:
        return self._meta

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def class_names(self, task: str) -> list[str]:
        if not is_class_task(task):
            raise EdgeMTLError(f"task '{task}' has no classes (it is not a per-pixel classification task).")
        if task not in self._meta["tasks"]:
            raise EdgeMTLError(f"dataset {self.root} has no '{task}' task.")
        return list(self._meta["classes"][task])

    def num_classes(self, task: str) -> int:
        return len(self.class_names(task))

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream; call before iterating the DataLoader each epoch."""
        self._epoch.fill_(int(epoch))

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator used to augment item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, int(self._epoch), int(index)])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self.ids):
            raise IndexError(index)
        sid = self.ids[index]
        rgb, labels, labelled = self._decoded(index)
        if self.input_size is not None:
            from edgemtl.artifact.processing import preprocess

            image = torch.from_numpy(preprocess(rgb, self.input_size)[0])
        else:
            image = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).div_(255.0)
        item: Sample = {"id": sid, "image": image}
        for task in self._tasks:
            item[task] = to_tensor(task, labels[task])
        if self.partial:
            item["labelled"] = dict(labelled)
        if self.transform is not None:
            item = self.transform(item, self.rng_for(index))
        return item

    def _decoded(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, bool]]:
        """The image (RGB uint8), each task's label array and whether the image is labelled for it,
        from the cache or decoded and checked."""
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        sid = self.ids[index]
        rgb = load_image(self._images[index])
        hw = rgb.shape[:2]
        labels: dict[str, np.ndarray] = {}
        labelled: dict[str, bool] = {}
        for task in self._tasks:
            labelled[task] = not self.partial or self._label_file(task, sid).is_file()
            if not labelled[task]:
                labels[task] = TASKS.get(task).empty_label(hw)
            elif task in self._derived:
                from edgemtl.data.derive import edges_from_segmentation

                seg = load_label("semseg", label_path(self.root, "semseg", sid), hw, self._ncls("semseg"))
                labels[task] = edges_from_segmentation(seg)
            else:
                labels[task] = load_label(task, label_path(self.root, task, sid), hw, self._ncls(task))
        size = rgb.nbytes + sum(a.nbytes for a in labels.values())
        if self._cache_bytes + size <= self._cache_budget:
            for a in (rgb, *labels.values()):
                a.setflags(write=False)  # to_tensor/transforms copy; a cached array must never change
            self._cache[index] = (rgb, labels, labelled)
            self._cache_bytes += size
        return rgb, labels, labelled

    def preload(self) -> int:
        """Decode every item into the cache now (as far as the budget allows); returns how many are
        cached. Called before DataLoader workers fork, so that they share one copy of the cache."""
        if self._cache_budget:
            for i in range(len(self.ids)):
                if i not in self._cache:
                    self._decoded(i)
                    if self._cache_bytes >= self._cache_budget:
                        break
        return len(self._cache)

    def _label_file(self, task: str, sid: str) -> Path:
        """The file ``task``'s label of ``sid`` comes from (derived edges: the semseg map)."""
        return label_path(self.root, "semseg" if task in self._derived else task, sid)

    def _ncls(self, task: str) -> int | None:
        return num_classes_of(self._meta, task)


def labelled_rows(batch: Sample, task: str) -> list[int] | None:
    """Rows of ``batch`` labelled for ``task`` (partially-labelled data, ``item["labelled"]``); None
    when every row is."""
    flags = batch.get("labelled")
    if flags is None:
        return None
    rows = [i for i, f in enumerate(flags) if f.get(task, True)]
    return None if len(rows) == len(flags) else rows


def take_rows(target: torch.Tensor | list, rows: list[int]) -> torch.Tensor | list:
    """Those rows of a batch entry (a stacked tensor or a list of per-item tensors)."""
    return target[rows] if isinstance(target, torch.Tensor) else [target[i] for i in rows]


def collate(items: list[Sample]) -> Sample:
    """Batch items: tensors of one shape are stacked; otherwise (labels of images of different sizes,
    kept at their native resolution for evaluation) the key holds a list of per-item tensors."""
    out: Sample = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if isinstance(vals[0], torch.Tensor) and all(v.shape == vals[0].shape for v in vals):
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out
