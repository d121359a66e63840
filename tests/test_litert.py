"""The LiteRT target end to end, with the real converter (litert-torch), quantizer (ai-edge-quantizer)
and interpreter (ai-edge-litert). Optional: skipped unless ``pip install 'edgemtl[litert]'``.

The target is one file (edgemtl/export/targets/litert.py); nothing below names it except to ask
for it, and every other path (runtime, eval, profile, bench row) reaches it through the registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.export import TARGETS, export, runnable_targets, support_table

pytestmark = pytest.mark.skipif(
    not TARGETS.get("litert").available(), reason="optional target: pip install 'edgemtl[litert]'"
)

TINY = {
    "backbone": "mobilenetv2_tiny",
    "image_size": (32, 32),
    "decoder_channels": 16,
    "low_level_channels": 8,
    "mti_channels": 8,
}
FIXTURES = Path(__file__).parent / "fixtures"


def tiny_astmt():
    from edgemtl.models import create_model

    torch.manual_seed(0)
    tasks = {"semseg": {"out_channels": 5}, "depth": {"out_channels": 1}, "normals": {"out_channels": 3}}
    return create_model(arch="astmt", se="decoder", tasks=tasks, **TINY).eval()


@pytest.fixture(scope="module")
def photo():
    from edgemtl.export.verify import sample_images

    return sample_images(FIXTURES, n=1)  # a real JPEG-like photo, 96x72, not the model size


def test_litert_is_registered_and_runnable():
    row = {r["target"]: r for r in support_table()}["litert"]
    assert row["suffix"] == ".tflite" and row["runs_here"] and "litert" in runnable_targets()


@pytest.mark.parametrize("scheme,precision", [("onehot", "fp32"), ("per-task", "int8")])
def test_litert_export_parity_and_runtime(scheme, precision, photo, tmp_path):
    from edgemtl import runtime
    from edgemtl.artifact.processing import preprocess, resize_output

    model = tiny_astmt()
    res = export(model, "litert", tmp_path / "m.tflite", precision=precision, task_input=scheme, images=photo)
    meta = json.loads(res.manifest.read_text())
    ver = meta["verification"]
    assert ver["passed"] and set(ver["numeric"]["tasks"]) == set(model.task_names)
    assert meta["target"] == "litert" and meta["task_input"]["scheme"] == scheme
    sigs = ver["structure"]["signatures"]
    assert set(sigs) == ({"forward"} if scheme == "onehot" else set(model.task_names))
    if precision == "int8":
        assert ver["structure"]["tensors_by_dtype"].get("int8", 0) > 10
        assert all(t["sqnr_db"] > 15 for t in ver["numeric"]["tasks"].values())
        fp32 = export(model, "litert", tmp_path / "f.tflite", task_input=scheme, images=photo)
        # int8 weights; the tiny model's smallest layers stay float (below the quantizer's size threshold)
        assert res.size_bytes < 0.8 * fp32.size_bytes
    rt = runtime.load(res.path, threads=1)
    name, image = photo[0]
    for task in model.task_names:
        pred = rt.predict(image, task)
        assert pred["prediction"].shape[:2] == image.shape[:2]
        with torch.no_grad():
            ref = model.forward_task(torch.from_numpy(preprocess(image, (32, 32))), task)[0].numpy()
        got = pred["raw"]
        if precision == "fp32":
            np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)
        else:
            assert 10 * np.log10((ref**2).sum() / max(((got - ref) ** 2).sum(), 1e-20)) > 15, task
        assert rt.visualize(pred).shape == (*image.shape[:2], 3)
        assert resize_output(got[None], image.shape[:2]).shape[2:] == image.shape[:2]


def test_litert_refuses_what_it_does_not_support(tmp_path):
    from edgemtl.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="int64"):
        export(tiny_astmt(), "litert", tmp_path / "m.tflite", task_input="index")
    with pytest.raises(UnsupportedError, match="fp16"):
        export(tiny_astmt(), "litert", tmp_path / "m.tflite", precision="fp16")


def test_litert_through_the_cli_profile_and_a_bench_row(photo, tmp_path, capsys):
    from edgemtl.bench.runner import export_row
    from edgemtl.checkpoint import save_checkpoint
    from edgemtl.cli import main

    model = tiny_astmt()
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", model, {"classes": {"semseg": [f"c{i}" for i in range(5)]}})
    out = tmp_path / "m.tflite"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(run / "best.pt"),
                "--target",
                "litert",
                "--out",
                str(out),
                "--images",
                str(FIXTURES),
                "--num-images",
                "1",
            ]
        )
        == 0
    )
    prof = tmp_path / "p.json"
    assert (
        main(["profile", str(out), "--threads", "1", "--runs", "2", "--warmup", "1", "--json", str(prof)])
        == 0
    )
    lat = json.loads(prof.read_text())["latency"]["runtimes"]["litert"]
    assert set(lat["per_task"]) == set(model.task_names) and lat["bytes"] == out.stat().st_size
    capsys.readouterr()
    row = export_row(
        "astmt", {"target": "litert", "precision": "fp32"}, run, None, tmp_path / "bench", FIXTURES
    )
    assert row["status"] == "ok" and row["artifact"].endswith(".tflite"), row
