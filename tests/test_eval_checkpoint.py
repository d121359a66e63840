"""Checkpoints (atomic, weights_only) and `edgemtl eval` on real synthetic data."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_MODEL

from edgemtl.checkpoint import load_checkpoint, save_checkpoint
from edgemtl.cli import main
from edgemtl.data.dataset import MultiTaskDataset, load_meta
from edgemtl.errors import EdgeMTLError
from edgemtl.evaluate import Protocol, evaluate
from edgemtl.models import create_model
from edgemtl.tasks import build_tasks


@pytest.fixture
def tiny_ckpt(tmp_path, tiny_data):
    meta = load_meta(tiny_data)
    tasks = build_tasks(["semseg", "depth", "normals", "saliency"], meta)
    torch.manual_seed(0)
    model = create_model(arch="astmt", tasks={n: t.describe() for n, t in tasks.items()}, **TINY_MODEL)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, meta)
    return path, model, tasks


def test_checkpoint_roundtrip_is_exact(tiny_ckpt):
    path, model, _ = tiny_ckpt
    loaded, ckpt = load_checkpoint(path)
    x = torch.rand(1, 3, 48, 48)
    for t in range(4):
        assert torch.equal(loaded(x, torch.tensor([t])), model.eval()(x, torch.tensor([t])))
    assert ckpt["model_config"]["tasks"]["semseg"]["class_names"][2] == "person"
    assert ckpt["dataset"]["edge_max_dist"] == 0.0075


def test_bad_checkpoints_are_clear_errors(tiny_ckpt, tmp_path):
    path, _, _ = tiny_ckpt
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(EdgeMTLError, match="truncated, or not a file torch.save wrote"):
        load_checkpoint(trunc)
    png = tmp_path / "photo.pt"  # not a zip at all: must not be called "pickled Python objects"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(EdgeMTLError, match="truncated, or not a file torch.save wrote") as e:
        load_checkpoint(png)
    assert "pickled" not in str(e.value)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(EdgeMTLError, match="not an edgemtl checkpoint"):
        load_checkpoint(other)


def test_eval_cli_matches_the_library_and_reports_delta_m(tiny_ckpt, tiny_data, tmp_path, capsys):
    path, model, tasks = tiny_ckpt
    base = tmp_path / "base.json"
    base.write_text(
        json.dumps(
            {
                "semseg": {"mIoU": 10.0},
                "depth": {"rmse": 5.0},
                "normals": {"mean": 40.0},
                "saliency": {"maxF": 50.0},
            }
        )
    )
    out = tmp_path / "res.json"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(path),
                "--data",
                str(tiny_data),
                "--split",
                "val",
                "--json",
                str(out),
                "--baselines",
                str(base),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "protocol: split=val" in printed and "depth: rmse↓, pixel-wise" in printed and "Δm =" in printed
    report = json.loads(out.read_text())
    ds = MultiTaskDataset(tiny_data, "val", tasks=list(tasks))
    direct = evaluate(model, torch.utils.data.DataLoader(ds, batch_size=3), tasks, Protocol("val"))
    for n in tasks:
        for k, v in direct[n].items():
            assert report["metrics"][n][k] == pytest.approx(v, rel=1e-5, abs=1e-6)
    p = report["primary"]
    expect = (
        100
        / 4
        * (
            (p["semseg"] - 10) / 10
            - (p["depth"] - 5) / 5
            - (p["normals"] - 40) / 40
            + (p["saliency"] - 50) / 50
        )
    )
    assert report["delta_m"] == pytest.approx(expect, rel=1e-6)


def test_eval_rejects_mismatched_dataset(tiny_data, tmp_path):
    meta = load_meta(tiny_data)
    tasks = build_tasks(["semseg"], meta)
    desc = {n: {**t.describe(), "out_channels": 3} for n, t in tasks.items()}
    model = create_model(arch="single_task", tasks=desc, **TINY_MODEL)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, meta)
    assert main(["eval", "--checkpoint", str(path), "--data", str(tiny_data), "--split", "val"]) == 2
