"""Write a synthetic dataset in the generic layout (the driver behind ``edgemtl data synth``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data import layout
from edgemtl.data.synth.presets import get_preset
from edgemtl.data.synth.renderer import OPTIONAL_TASKS, TASKS, check_size, detection_classes, render
from edgemtl.data.synth.scene import sample_scene
from edgemtl.errors import EdgeMTLError

# Bump whenever the output for a given (seed, index, size, preset) changes.
VERSION = "1.0"
MARKER = ".synth.json"  # written first; dataset.json is written last, when everything is on disk
_SPLIT_KEY = 0x5EED5  # entropy word that separates the split permutation from the image streams


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of a dataset made with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def sample_id(index: int, num: int) -> str:
    return f"{index:0{max(6, len(str(num - 1)))}d}"


def size_of(index: int, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The size image ``index`` is rendered at: the sizes are dealt round-robin (mixed-size datasets)."""
    return sizes[index % len(sizes)]


def render_index(seed: int, index: int, size, preset: str) -> dict[str, np.ndarray]:
    """Exactly what :func:`generate` writes for image ``index`` (``size``: one (H, W) or a list)."""
    sizes = check_sizes(size)
    return render(sample_scene(image_rng(seed, index), preset), size_of(index, sizes))


def check_sizes(size) -> list[tuple[int, int]]:
    """One (H, W) or a non-empty list of them -> a list of checked sizes."""
    if isinstance(size, (list, tuple)) and size and all(isinstance(v, (list, tuple)) for v in size):
        return [check_size(v) for v in size]
    return [check_size(size)]


def split_ids(ids: list[str], seed: int, fractions) -> dict[str, list[str]]:
    """Deterministic (by seed) partition of ``ids`` into train/val/test with the given fractions.

    Every split with a positive fraction gets at least one id when there are enough ids; splits
    that end up empty are left out (an empty split file is not valid in the layout).
    """
    n = len(ids)
    fr = np.asarray(fractions, dtype=np.float64)
    exact = fr / fr.sum() * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in range(3):  # borrow from the largest split for a positive-fraction split left empty
        if fr[i] > 0 and counts[i] == 0 and counts.max() > 1:
            counts[int(np.argmax(counts))] -= 1
            counts[i] += 1
    perm = np.random.default_rng(np.random.SeedSequence([_SPLIT_KEY, seed])).permutation(n)
    out, a = {}, 0
    for name, c in zip(layout.SPLITS, counts):
        if c > 0:
            out[name] = sorted(ids[j] for j in perm[a : a + c])
        a += c
    return out


def _check_args(num, size, seed, preset, workers, splits) -> tuple[list[tuple[int, int]], int]:
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise EdgeMTLError(f"--num: expected a whole number of images >= 1, got {num!r}.")
    sizes = check_sizes(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EdgeMTLError(f"--seed: expected a whole number >= 0, got {seed!r}.")
    get_preset(preset)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise EdgeMTLError(
            f"--workers: expected a whole number >= 1 (or leave it out for all cores), got {workers!r}."
        )
    try:
        fr = [float(v) for v in splits]
    except (TypeError, ValueError):
        fr = []
    if len(fr) != 3 or min(fr) < 0 or not abs(sum(fr) - 1.0) < 1e-6:
        raise EdgeMTLError(
            f"splits: expected three fractions (train, val, test) >= 0 summing to 1, got {splits!r}."
        )
    return sizes, int(workers)


def check_tasks(tasks) -> tuple[str, ...]:
    """The tasks to write: the six dense ones, plus any of OPTIONAL_TASKS asked for."""
    if tasks is None:
        return TASKS
    known = TASKS + OPTIONAL_TASKS
    if isinstance(tasks, str) or not isinstance(tasks, (list, tuple)):
        raise EdgeMTLError(
            f"synth tasks: expected a list of task names, e.g. [semseg, detection] (got {tasks!r})."
        )
    bad = [t for t in tasks if t not in known]
    if bad:
        raise EdgeMTLError(
            f"synth tasks: the synthetic scenes have no task {bad[0]!r}; they have {', '.join(known)}."
        )
    return tuple(t for t in known if t in tasks)


def _files(root: Path, sid: str, tasks: tuple[str, ...]) -> list[Path]:
    return [root / "images" / f"{sid}.png"] + [root / t / f"{sid}{layout.label_ext(t)}" for t in tasks]


def _write(root: Path, sid: str, out: dict[str, np.ndarray], tasks: tuple[str, ...]) -> None:
    layout.write_image(root, sid, out["image"])
    for t in tasks:
        layout.write_label(root, t, sid, out[t])


def _work(job: tuple) -> int:
    root, seed, sizes, preset, num, indices, tasks = job
    root = Path(root)
    for i in indices:
        _write(root, sample_id(i, num), render_index(seed, i, sizes, preset), tasks)
    return len(indices)


def _init_worker() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover - cv2 is a hard dependency of the writers
        pass


def _prepare_out(root: Path, params: dict[str, Any]) -> bool:
    """Check/prepare the output folder; True when resuming a run with identical parameters."""
    if root.exists() and not root.is_dir():
        raise EdgeMTLError(f"--out: '{root}' exists and is not a folder; choose a new or empty folder.")
    if root.is_dir() and any(root.iterdir()):
        marker = root / MARKER
        try:
            previous = json.loads(marker.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != params:
            why = (
                "it holds a synth dataset made with different parameters"
                if previous is not None
                else "it is not empty"
            )
            raise EdgeMTLError(
                f"--out: '{root}' cannot be used: {why}. Synth writes into a new or empty folder, or "
                "re-runs into the folder of an earlier (possibly interrupted) run with the same --num, "
                "--size, --seed and --preset. Choose another --out or delete the folder."
            )
        return True
    root.mkdir(parents=True, exist_ok=True)
    layout.atomic_write_bytes(root / MARKER, (json.dumps(params, indent=2) + "\n").encode())
    return False


def generate(
    out: str | os.PathLike,
    num: int,
    size=(128, 128),
    seed: int = 0,
    preset: str = "nyud",
    workers: int | None = None,
    splits=(0.8, 0.1, 0.1),
    progress: bool = True,
    tasks=None,
) -> dict[str, Any]:
    """Render ``num`` scenes into ``out`` in the generic layout and return the dataset meta.

    ``size`` is one (H, W), or a list of them for a mixed-size dataset (image ``i`` gets
    ``size[i % len(size)]``, like real collections whose photos each have their own size).
    Image ``i`` (id ``f"{i:06d}"``) is drawn from ``image_rng(seed, i)`` alone, so the output is
    bit-identical for any ``workers``. ``out`` must be new or empty, or hold an earlier run with
    the same parameters (then finished images are kept and missing ones rendered). ``tasks``: the
    dense tasks (default) or a list that may add ``detection`` (boxes from the visible instances).
    """
    sizes, workers = _check_args(num, size, seed, preset, workers, splits)
    tasks = check_tasks(tasks)
    P = get_preset(preset)
    root = Path(out)
    size_rec = list(sizes[0]) if len(sizes) == 1 else [list(v) for v in sizes]
    params = {
        "generator": "edgemtl.data.synth",
        "version": VERSION,
        "num": int(num),
        "size": size_rec,
        "seed": int(seed),
        "preset": P.name,
        "splits": [float(v) for v in splits],
    }
    if tasks != TASKS:  # recorded only when not the default, so earlier datasets still resume
        params["tasks"] = list(tasks)
    resume = _prepare_out(root, params)
    num, seed = int(num), int(seed)
    ids = [sample_id(i, num) for i in range(num)]
    todo = [i for i in range(num) if not (resume and all(p.is_file() for p in _files(root, ids[i], tasks)))]
    for t in ("images", *tasks):
        (root / t).mkdir(exist_ok=True)

    workers = max(1, min(workers, len(todo)))
    chunk = max(1, min(16, len(todo) // (workers * 8) if todo else 1))
    jobs = [
        (str(root), seed, sizes, P.name, num, todo[a : a + chunk], tasks) for a in range(0, len(todo), chunk)
    ]
    bar = _progress(len(todo), progress)
    try:
        if workers == 1:
            _init_worker()
            for job in jobs:
                bar(_work(job))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for done in pool.imap_unordered(_work, jobs):
                    bar(done)
    finally:
        bar(None)

    layout.write_splits(root, split_ids(ids, seed, splits))
    meta = preset_meta(P.name, sizes[0] if len(sizes) == 1 else None, tasks)
    meta.update(
        num_samples=num,
        generator={
            "name": "edgemtl.data.synth",
            "seed": seed,
            "num": num,
            "version": VERSION,
            "preset": P.name,
            "size": size_rec,
            "splits": [float(v) for v in splits],
            **({"tasks": list(tasks)} if tasks != TASKS else {}),
        },
    )
    layout.write_meta(root, meta)
    from edgemtl.data.dataset import load_meta

    return load_meta(root)  # what a reader will see, validated


def preset_meta(preset: str, size: tuple[int, int] | None = (128, 128), tasks=None) -> dict[str, Any]:
    """The dataset.json content a preset produces (minus generation details), without rendering:
    recipes use it to size task heads before any data exists. ``image_size`` is recorded only when
    every image has it (``size`` None: mixed sizes)."""
    P = get_preset(preset)
    tasks = check_tasks(tasks)
    classes = {"semseg": list(P.classes), "parts": list(P.parts)}
    if "detection" in tasks:
        classes["detection"] = detection_classes(P.name)
    meta = {
        "name": f"synth-{P.name}",
        "preset": P.name,
        "tasks": list(tasks),
        "classes": classes,
        "depth_range": [float(v) for v in P.depth_range],
        "edge_max_dist": P.edge_max_dist,
        "part_classes": sorted(P.part_classes),
        "saliency_classes": [c for c in P.classes if c not in P.room_classes],
    }
    if size is not None:
        meta["image_size"] = [int(v) for v in size]
    return meta


def _progress(total: int, enabled: bool):
    """A callable ``bar(n_done)``; ``bar(None)`` closes it."""
    if not enabled or total == 0:
        return lambda n: None
    try:
        from tqdm import tqdm

        t = tqdm(total=total, unit="img", desc="synth", file=sys.stderr, dynamic_ncols=True)

        def bar(n):
            t.close() if n is None else t.update(n)

        return bar
    except ImportError:  # pragma: no cover
        state = {"done": 0, "next": 0.1}

        def bar(n):
            if n is None:
                return
            state["done"] += n
            if state["done"] / total >= state["next"] or state["done"] == total:
                from edgemtl.log import get_logger

                get_logger(__name__).info(f"synth: {state['done']}/{total}")
                state["next"] += 0.1

        return bar
