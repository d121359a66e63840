"""Partially-labelled data: images labelled for only some tasks (dataset.json "partial_labels": true).
Losses and metrics count only the labelled images; the trainer and every loop run on such data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from edgemtl.data.dataset import MultiTaskDataset, collate
from edgemtl.errors import EdgeMTLError

TASKS = ["semseg", "depth", "detection"]


@pytest.fixture(scope="module")
def partial_data(tmp_path_factory):
    """16 scenes; even ids keep semseg + detection only, odd ids semseg + depth only (as VOC + NYU)."""
    from edgemtl.data.synth import generate

    root = tmp_path_factory.mktemp("partial") / "d"
    generate(root, 16, (48, 64), seed=4, preset="pascal", workers=1, progress=False, splits=(0.5, 0.25, 0.25),
             tasks=["semseg", "depth", "normals", "edges", "saliency", "parts", "detection"])  # fmt: skip
    for i in range(16):
        sid = f"{i:06d}"
        (
            root / ("depth" if i % 2 == 0 else "detection") / f"{sid}{'.npy' if i % 2 == 0 else '.json'}"
        ).unlink()
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "partial_labels": True}))
    return root


def test_items_say_which_tasks_they_are_labelled_for(partial_data):
    ds = MultiTaskDataset(partial_data, "train", tasks=TASKS)
    for i in range(len(ds)):
        item = ds[i]
        even = int(item["id"]) % 2 == 0
        assert item["labelled"] == {"semseg": True, "depth": not even, "detection": even}
        if even:
            assert (item["depth"] == 0).all()  # the empty label: every pixel invalid
        else:
            assert item["detection"].shape == (0, 6)
    batch = collate([ds[i] for i in range(4)])
    assert [f["depth"] for f in batch["labelled"]] == [int(i) % 2 == 1 for i in batch["id"]]


def test_a_missing_label_file_is_an_error_unless_the_data_is_partial(partial_data, tmp_path):
    from edgemtl.data.validate import validate_dataset

    assert validate_dataset(partial_data) == []
    strict = tmp_path / "strict"
    shutil.copytree(partial_data, strict)
    meta = json.loads((strict / "dataset.json").read_text())
    del meta["partial_labels"]
    (strict / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(EdgeMTLError, match="missing depth label file"):
        MultiTaskDataset(strict, "train", tasks=TASKS)[0]
    assert any("missing depth label file" in p for p in validate_dataset(strict))
    meta["partial_labels"] = "yes"
    (strict / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(EdgeMTLError, match="'partial_labels' must be true or false"):
        MultiTaskDataset(strict, "train")


def test_losses_and_metrics_count_only_labelled_images(partial_data):
    """The step's loss of a task is the loss over its labelled rows; evaluation equals evaluating the
    labelled images alone, and per-image states of unlabelled images are empty."""
    from edgemtl.evaluate import Protocol, evaluate
    from edgemtl.models import create_model
    from edgemtl.tasks import build_tasks
    from edgemtl.train.steps import labelled_rows, task_loss

    ds = MultiTaskDataset(partial_data, "test", tasks=TASKS, input_size=(48, 48))
    tasks = build_tasks(TASKS, ds.meta)
    torch.manual_seed(0)
    model = create_model(arch="hard_sharing", backbone="mobilenetv2_tiny", image_size=(48, 48),
                         decoder_channels=16, low_level_channels=8,
                         tasks={n: t.describe() for n, t in tasks.items()}).eval()  # fmt: skip
    from edgemtl.data.transforms import Compose, Resize

    train_view = MultiTaskDataset(partial_data, "test", tasks=TASKS, transform=Compose([Resize((48, 48))]))
    batch = collate([train_view[i] for i in range(len(ds))])
    with torch.no_grad():
        out = model(batch["image"])
    for n in ("depth", "detection"):
        rows = labelled_rows(batch, n)
        assert rows and len(rows) < len(ds)
        got = task_loss(tasks[n], out[n], batch[n], rows)
        sub = [batch[n][i] for i in rows]
        ref = tasks[n].loss(out[n][rows], torch.stack(sub) if tasks[n].dense else sub)
        assert torch.allclose(got, ref)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, collate_fn=collate)  # same numerics
    states: dict = {}
    res = evaluate(model, loader, tasks, Protocol(input_size=(48, 48)), image_states=states)
    for n in ("depth", "detection"):
        keep = [i for i in range(len(ds)) if ds[i]["labelled"][n]]
        only = torch.utils.data.Subset(ds, keep)
        ref = evaluate(model, torch.utils.data.DataLoader(only, batch_size=1, collate_fn=collate),
                       {n: tasks[n]}, Protocol(input_size=(48, 48)))  # fmt: skip
        assert res[n] == pytest.approx(ref[n], nan_ok=True)
        assert states[n].shape[0] == len(ds)
    # batches mixing labelled and unlabelled images, without per-image states: the same numbers
    mixed = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate)
    a = evaluate(model, mixed, tasks, Protocol(input_size=(48, 48)))
    b = evaluate(model, mixed, tasks, Protocol(input_size=(48, 48)), image_states={})
    for n in tasks:
        assert a[n] == pytest.approx(b[n], nan_ok=True)
    empty = [i for i in range(len(ds)) if not ds[i]["labelled"]["depth"]]
    assert np.all(states["depth"][empty] == 0)


@pytest.mark.parametrize(
    "loop, balancer", [("joint", "mgda"), ("joint", "gradnorm"), ("single_tasking", "uniform")]
)
def test_training_on_partially_labelled_data(partial_data, tmp_path, loop, balancer):
    import yaml
    from conftest import TINY_MODEL

    from edgemtl.cli import main as cli

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {**TINY_MODEL, "arch": "hard_sharing" if loop == "joint" else "astmt"},
        "tasks": TASKS,
        "data": {"root": str(partial_data)},
        "train": {"epochs": 1, "batch_size": 4, "loop": loop, "balancer": balancer, "edge_thresholds": 3},
    }))  # fmt: skip
    assert cli(["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["metrics"]) == set(TASKS)
    log = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v) for rec in log for v in (rec.get("train_loss") or {}).values())


# ---------------------------------------------------------------- mixing datasets (data.sources)


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    from edgemtl.data.synth import generate

    base = tmp_path_factory.mktemp("sources")
    a, b = base / "boxes", base / "depth"
    generate(a, 12, (48, 64), seed=1, preset="nyud", workers=1, progress=False, tasks=["semseg", "detection"])
    generate(b, 6, (56, 48), seed=2, preset="nyud", workers=1, progress=False, tasks=["semseg", "depth"])
    return a, b


def test_sources_merge_into_one_partially_labelled_dataset(two_sources, tmp_path):
    from edgemtl.data.merge import merge_datasets
    from edgemtl.data.validate import validate_dataset

    a, b = two_sources
    meta = merge_datasets([(a, 2.0), (b, 1.0)], tmp_path / "m")
    assert meta["tasks"] == ["semseg", "detection", "depth"] and meta["partial_labels"] is True
    assert [s["ratio"] for s in meta["sources"]] == [2.0, 1.0]
    assert validate_dataset(tmp_path / "m") == []
    ds = MultiTaskDataset(tmp_path / "m", "train")
    for i in range(len(ds)):
        item = ds[i]
        from_a = item["id"].startswith("s0-")
        assert item["labelled"] == {"semseg": True, "detection": from_a, "depth": not from_a}
    # the same merge again is a no-op; different classes for a shared task are refused
    assert merge_datasets([(a, 2.0), (b, 1.0)], tmp_path / "m") == meta
    c = tmp_path / "c"
    shutil.copytree(b, c)
    m = json.loads((c / "dataset.json").read_text())
    m["classes"]["semseg"] = m["classes"]["semseg"][::-1]
    (c / "dataset.json").write_text(json.dumps(m))
    with pytest.raises(EdgeMTLError, match="task 'semseg' has different classes"):
        merge_datasets([(a, 1.0), (c, 1.0)], tmp_path / "bad")


def test_mixing_follows_the_ratios_and_the_seed(two_sources, tmp_path):
    from edgemtl.data.merge import merge_datasets, source_of
    from edgemtl.train.data import SourceMixSampler

    a, b = two_sources
    meta = merge_datasets([(a, 1.0), (b, 3.0)], tmp_path / "m")
    ds = MultiTaskDataset(tmp_path / "m", "train")
    s = SourceMixSampler(list(ds.ids), meta, seed=0)
    epoch0 = list(s)
    assert len(epoch0) == len(ds)
    share = np.mean([source_of(meta, ds.ids[i]) == 1 for i in epoch0])
    assert share == pytest.approx(0.75, abs=1 / len(ds))  # 3:1, though source 1 is the smaller
    assert list(SourceMixSampler(list(ds.ids), meta, seed=0)) == epoch0
    s.set_epoch(1)
    assert list(s) != epoch0


def test_a_recipe_trains_on_mixed_sources(two_sources, tmp_path):
    import yaml
    from conftest import TINY_MODEL

    from edgemtl.cli import main as cli

    a, b = two_sources
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {**TINY_MODEL, "arch": "hard_sharing"},
        "tasks": ["semseg", "depth", "detection"],
        "data": {"sources": [{"root": str(a), "ratio": 1}, {"root": str(b), "ratio": 1}],
                 "root": str(tmp_path / "mixed")},
        "train": {"epochs": 1, "batch_size": 4, "balancer": "amtl", "edge_thresholds": 3,
                  "balancer_params": {"potentials": {"semseg": 0.5, "depth": 0.5, "detection": 0.5}}},
    }))  # fmt: skip
    assert cli(["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "mixed" / "dataset.json").is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"semseg", "depth", "detection"}


def test_a_single_task_run_trains_on_the_images_with_its_labels(partial_data):
    ds = MultiTaskDataset(partial_data, "train", tasks=["depth"], require_labels=["depth"])
    assert ds.ids and all(int(i) % 2 == 1 for i in ds.ids)
    both = MultiTaskDataset(partial_data, "train", tasks=TASKS, require_labels=["depth", "detection"])
    assert len(both) == len(MultiTaskDataset(partial_data, "train"))


def test_mixing_renormalises_over_sources_with_items():
    from edgemtl.data.merge import mix_indices

    rng = np.random.default_rng(0)
    got = mix_indices([[], list(range(10))], [1.0, 1.0], 10, rng)
    assert sorted(got) == list(range(10))  # a single-task run on one source: a full epoch of it


def test_a_merge_refuses_splits_without_a_tasks_labels_and_stale_folders(two_sources, tmp_path):
    from edgemtl.data.merge import merge_datasets

    a, b = two_sources
    merge_datasets([(a, 1.0), (b, 1.0)], tmp_path / "m")
    with pytest.raises(EdgeMTLError, match="merge of other sources or ratios"):
        merge_datasets([(a, 1.0), (b, 2.0)], tmp_path / "m")
    c = tmp_path / "c"
    shutil.copytree(b, c)
    (c / "splits" / "test.txt").unlink()  # the depth source has no test split
    with pytest.raises(EdgeMTLError, match="no image of the merged 'test' split is labelled for 'depth'"):
        merge_datasets([(a, 1.0), (c, 1.0)], tmp_path / "bad")
