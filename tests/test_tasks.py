"""Every registered task through the whole path, and a task added in one file (tests/plugins/heat_task.py)
through the same path: label file -> dataset item -> augmentation -> loss/step -> decode -> meter ->
manifest decode/colour -> export -> runtime -> visualisation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.data import layout
from edgemtl.data.dataset import MultiTaskDataset, load_label
from edgemtl.data.transforms import Compose, RandomHorizontalFlip, RandomRotate, RandomScaleCrop
from edgemtl.tasks import TASKS, build_tasks

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
import heat_task  # noqa: E402  (registers the 'heat' task: the one file a new task needs)

META = {
    "classes": {"semseg": ["bg", "a", "b"], "parts": ["bg", "head"], "detection": ["a", "b"]},
    "depth_range": [0.5, 8.0],
}
HW = (30, 38)


def example_label(name: str, rng: np.random.Generator) -> np.ndarray:
    """A valid label of each registered task, in its stored format."""
    task = TASKS.get(name)
    if name == "heat":
        return heat_task.heat_label(rng, HW)
    if task.kind == "boxes":  # pixels; one large box survives any crop below, one difficult
        return np.array([[3, 2, 35, 28, 1, 0], [5, 5, 9, 8, 0, 1]], np.float32)
    if task.kind == "classes":
        return rng.integers(0, len(META["classes"][name]), HW).astype(np.uint8)
    if task.kind == "binary":
        return (rng.random(HW) < 0.2).astype(np.uint8)
    if task.kind == "depth":
        return rng.uniform(0.5, 8, HW).astype(np.float32)
    v = rng.normal(size=(*HW, 3)).astype(np.float32)
    return v / np.linalg.norm(v, axis=2, keepdims=True)


def write_dataset(root: Path, tasks: list[str], n: int = 12) -> Path:
    rng = np.random.default_rng(0)
    ids = [f"s{i:03d}" for i in range(n)]
    for sid in ids:
        layout.write_image(root, sid, rng.integers(0, 256, (*HW, 3), dtype=np.uint8))
        for t in tasks:
            layout.write_label(root, t, sid, example_label(t, rng))
    layout.write_splits(root, {"train": ids[:8], "val": ids[8:10], "test": ids[10:]})
    meta = {
        "format_version": layout.FORMAT_VERSION,
        "name": "tasks-test",
        "tasks": tasks,
        "classes": {t: META["classes"][t] for t in tasks if t in META["classes"]},
    }
    if "depth" in tasks:
        meta["depth_range"] = META["depth_range"]
    layout.write_meta(root, meta)
    return root


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_from_label_file_to_colours(name, tmp_path):
    rng = np.random.default_rng(1)
    task = build_tasks([name], META)[name]
    label = example_label(name, rng)
    layout.write_label(tmp_path, name, "x", label)
    path = tmp_path / name / f"x{task.label_ext}"
    back = load_label(name, path, HW, len(META["classes"].get(name, [])) or None)
    if task.dense:
        np.testing.assert_array_equal(back, label)
    else:  # boxes are stored in pixels and read as fractions of the image
        np.testing.assert_allclose(back * [HW[1], HW[0], HW[1], HW[0], 1, 1], label, rtol=1e-6)
    item = {"image": torch.rand(3, *HW), name: type(task).label_tensor(back)}
    aug = Compose([RandomHorizontalFlip(1.0), RandomScaleCrop((0.8, 1.2), (24, 24)), RandomRotate(15)])
    out = aug(item, np.random.default_rng(2))
    assert out[name].dtype == item[name].dtype
    assert out[name].shape[-2:] == (24, 24) if task.dense else out[name].shape[1] == 6
    pred = torch.randn(2, task.out_channels, 24, 24, requires_grad=True)
    target = torch.stack([out[name], out[name]]) if task.dense else [out[name], out[name]]
    loss = task.loss(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and pred.grad is not None and torch.isfinite(pred.grad).all()
    meter = task.new_meter()
    task.update_meter(meter, pred.detach(), target)
    metrics = meter.compute()
    assert task.primary_metric in metrics and np.isfinite(metrics[task.primary_metric])
    from edgemtl.artifact import decoding

    info = json.loads(json.dumps(task.describe()))
    decoded = decoding.decode(pred.detach()[:1].numpy(), info)
    assert decoding.visualize(decoded, info, image=np.zeros((24, 24, 3), np.uint8)).shape == (24, 24, 3)


def test_a_wrong_label_file_is_one_line_naming_it(tmp_path):
    from edgemtl.errors import EdgeMTLError

    layout.write_label(tmp_path, "heat", "x", -np.ones(HW, np.float32))
    with pytest.raises(EdgeMTLError, match=r"heat/x.npy: heat holds negative values"):
        load_label("heat", tmp_path / "heat" / "x.npy", HW)


@pytest.mark.slow
def test_a_task_added_in_one_file_trains_evaluates_exports_and_runs(tmp_path):
    """'heat' lives in tests/plugins/heat_task.py only: dataset.json, the loader, augmentation, the
    trainer, the test evaluation, the ONNX export with its manifest and the runtime all take it."""
    import yaml

    from edgemtl import runtime
    from edgemtl.export import export
    from edgemtl.recipes import load_recipe
    from edgemtl.train.trainer import Trainer

    root = write_dataset(tmp_path / "data", ["semseg", "heat"])
    ds = MultiTaskDataset(root, "train", transform=Compose([RandomHorizontalFlip(1.0)]))
    assert ds[0]["heat"].shape == (1, *HW)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "arch": "hard_sharing",
                    "backbone": "mobilenetv2_tiny",
                    "image_size": [32, 32],
                    "decoder_channels": 16,
                    "low_level_channels": 8,
                },
                "tasks": ["semseg", "heat"],
                "data": {"root": str(root)},
                "train": {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 2, "edge_thresholds": 3},
            }
        )
    )
    trainer = Trainer(
        load_recipe(str(recipe)),
        tmp_path / "run",
        progress=False,
        baselines_path=str(tmp_path / "baselines.json"),
    )
    summary = trainer.fit()
    assert np.isfinite(summary["metrics"]["heat"]["rmse"])
    res = export(str(tmp_path / "run" / "best.pt"), "onnx", tmp_path / "m.onnx", num_images=1)
    assert res.metadata["verification"]["passed"]
    info = res.metadata["task_info"]["heat"]
    assert info["unit"] == "degrees Celsius" and info["visual"]["range"] == [0.0, 40.0]
    rt = runtime.load(res.path, threads=1)
    image = np.random.default_rng(5).integers(0, 256, (50, 44, 3), dtype=np.uint8)
    pred = rt.predict(image, "heat")
    assert pred["prediction"].shape == (50, 44) and pred["unit"] == "degrees Celsius"
    rgb = rt.visualize(pred)
    assert rgb.shape == (50, 44, 3) and rgb.dtype == np.uint8
