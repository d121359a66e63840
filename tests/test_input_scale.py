"""One input scale from training to the phone, on datasets unlike the embedded scenes: images larger
and smaller than the model's input, and sizes that vary within a split (some of them JPEG photos).

The model always sees an image as the exported artifact prepares it (the whole image resized to the
model's input size); metrics are computed at each label's own resolution (docs/metrics.md, "Input
scale"). ``edgemtl eval`` of a checkpoint and of its fp32 ONNX / ExecuTorch artifacts must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import MIXED_SIZES, TINY_MODEL, as_jpeg_photos

from edgemtl.cli import main

SIZES = {"larger": (72, 96), "smaller": (32, 40), "mixed": MIXED_SIZES}
TASKS = ["semseg", "depth", "normals", "edges"]
FIXTURE = Path(__file__).parent / "fixtures" / "grace_hopper_96x72.png"


def _dataset(tmp: Path, kind: str) -> Path:
    from edgemtl.data.synth import generate

    root = tmp / kind
    generate(
        root, 16, SIZES[kind], seed=7, preset="pascal", workers=1, progress=False, splits=(0.5, 0.25, 0.25)
    )
    if kind == "mixed":
        as_jpeg_photos(root)
    return root


def _recipe(tmp: Path, root: Path) -> Path:
    recipe = {
        "model": {"arch": "astmt", "se": "decoder", **TINY_MODEL},
        "tasks": TASKS,
        "data": {"root": str(root)},
        "train": {"epochs": 1, "batch_size": 4, "edge_thresholds": 3, "max_steps_per_epoch": 2},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _eval(model: Path, root: Path, out: Path, capsys) -> dict:
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(model),
                "--data",
                str(root),
                "--edge-thresholds",
                "3",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "whole image resized to 48x48" in capsys.readouterr().out, (
        "the protocol is printed with the result"
    )
    return json.loads(out.read_text())


def _independent_semseg(ckpt: Path, root: Path) -> tuple[float, float]:
    """Pixel accuracy and mIoU (classes with a non-empty union) written out here from scratch: resize
    each image to the model input, run the model, upsample its logits to the label with torch's bilinear
    interpolation, argmax, and count pixels at the label's resolution."""
    from PIL import Image

    from edgemtl.checkpoint import load_checkpoint

    model, _ = load_checkpoint(ckpt)
    model.eval()
    ids = (root / "splits" / "test.txt").read_text().split()
    ncls = model.out_channels["semseg"]
    conf = np.zeros((ncls, ncls), np.int64)
    for sid in ids:
        img_path = next(p for p in (root / "images").iterdir() if p.stem == sid)
        rgb = cv2.imread(str(img_path))[..., ::-1]
        h, w = rgb.shape[:2]
        shrink = 48 < h and 48 < w
        x = cv2.resize(rgb, (48, 48), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        x = torch.from_numpy(x.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            logits = model.forward_tasks(x, ["semseg"])["semseg"]
        pred = torch.nn.functional.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        pred = pred.argmax(1)[0].numpy()
        label = np.array(Image.open(root / "semseg" / f"{sid}.png"))
        assert label.shape == (h, w)
        valid = label != 255
        np.add.at(conf, (label[valid], pred[valid]), 1)
    inter = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    return 100 * inter.sum() / conf.sum(), 100 * float(np.mean(inter[union > 0] / union[union > 0]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SIZES))
def test_train_eval_export_predict_on_images_of_other_sizes(kind, tmp_path, capsys):
    root = _dataset(tmp_path, kind)
    run = tmp_path / "run"
    assert main(["train", str(_recipe(tmp_path, root)), "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert "whole image resized to 48x48" in summary["protocol"]
    capsys.readouterr()
    ckpt = run / "best.pt"
    ev = _eval(ckpt, root, tmp_path / "ckpt.json", capsys)
    # The trainer's test evaluation and `edgemtl eval` are one protocol.
    for t in TASKS:
        assert ev["metrics"][t] == pytest.approx(summary["metrics"][t], abs=1e-6), t
    acc, miou = _independent_semseg(ckpt, root)
    assert ev["metrics"]["semseg"]["pixel_acc"] == pytest.approx(acc, abs=0.2)
    assert ev["metrics"]["semseg"]["mIoU"] == pytest.approx(miou, abs=0.2)

    targets = [("onnx", "m.onnx")] + ([("executorch", "m.pte")] if kind == "mixed" else [])
    for target, name in targets:
        art = tmp_path / name
        assert (
            main(
                [
                    "export",
                    "--checkpoint",
                    str(ckpt),
                    "--target",
                    target,
                    "--out",
                    str(art),
                    "--images",
                    str(root / "images"),
                ]
            )
            == 0
        )
        capsys.readouterr()
        got = _eval(art, root, tmp_path / f"{name}.eval.json", capsys)
        for t in TASKS:
            for metric, value in ev["metrics"][t].items():
                assert got["metrics"][t][metric] == pytest.approx(value, abs=1e-3), (target, t, metric)

    # A JPEG photo of yet another size through the artifact: the prediction comes back at its size.
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.resize(cv2.imread(str(FIXTURE)), (70, 50)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "m.onnx"),
                "--image",
                str(photo),
                "--task",
                "semseg",
                "--out",
                str(tmp_path / "p.png"),
            ]
        )
        == 0
    )
    assert cv2.imread(str(tmp_path / "p.png")).shape[:2] == (50, 70)


def test_training_crops_come_from_the_model_input_size_not_the_dataset(tmp_path):
    """dataset.json says 72x96; the model input is 48x48: training items are 48x48 views of the whole
    image (the deployed view at scale 1), validation items keep their labels at 72x96."""
    from edgemtl.recipes import load_recipe
    from edgemtl.train.trainer import Trainer

    root = _dataset(tmp_path, "larger")
    assert json.loads((root / "dataset.json").read_text())["image_size"] == [72, 96]
    trainer = Trainer(load_recipe(str(_recipe(tmp_path, root))), tmp_path / "run", progress=False)
    assert trainer.crop == (48, 48)
    item = trainer.train_ds[0]
    assert item["image"].shape == (3, 48, 48) and item["semseg"].shape == (48, 48)
    val = trainer.val_ds[0]
    assert val["image"].shape == (3, 48, 48) and val["semseg"].shape == (72, 96)


def test_eval_items_are_prepared_exactly_as_the_runtime_prepares_them(mixed_data):
    from edgemtl.artifact.processing import preprocess
    from edgemtl.data.dataset import MultiTaskDataset, load_image
    from edgemtl.train.data import make_loader

    ds = MultiTaskDataset(mixed_data, "test", tasks=["semseg", "depth"], input_size=(48, 48))
    batch = next(iter(make_loader(ds, 6, False, 0, 0, 0)))
    assert batch["image"].shape == (6, 3, 48, 48)
    sizes = {tuple(t.shape) for t in batch["semseg"]}
    assert len(sizes) > 1 and sizes <= set(MIXED_SIZES), "labels stay at their native, varying sizes"
    for i, sid in enumerate(batch["id"]):
        rgb = load_image(next(p for p in (mixed_data / "images").iterdir() if p.stem == sid))
        assert torch.equal(batch["image"][i], torch.from_numpy(preprocess(rgb, (48, 48))[0]))
        assert tuple(batch["depth"][i].shape[1:]) == rgb.shape[:2]
    with pytest.raises(ValueError, match="exclude each other"):
        MultiTaskDataset(mixed_data, "test", input_size=(48, 48), transform=lambda s, r: s)


def test_synth_renders_mixed_sizes(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "d"),
                "--num",
                "6",
                "--size",
                "40x56,56x40",
                "--preset",
                "nyud",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "40x56, 56x40" in capsys.readouterr().out
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert "image_size" not in meta and meta["generator"]["size"] == [[40, 56], [56, 40]]
    shapes = [cv2.imread(str(p)).shape[:2] for p in sorted((tmp_path / "d" / "images").glob("*.png"))]
    assert shapes == [(40, 56), (56, 40)] * 3
    for p in sorted((tmp_path / "d" / "depth").glob("*.npy")):
        assert np.load(p).shape == shapes[int(p.stem)]
