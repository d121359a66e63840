"""The detection task: label files, exact synthetic boxes, box-consistent augmentation, FCOS targets,
loss and decoding, the bootstrap of AP, and a trained model exported and run on photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgemtl.artifact import boxes as box_ops
from edgemtl.data.transforms import (
    Compose,
    PadToMultiple,
    RandomHorizontalFlip,
    RandomRotate,
    RandomScaleCrop,
    Resize,
)
from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import DetectionMeter
from edgemtl.tasks import build_task, task_from_description
from edgemtl.tasks.detection import read_boxes_json

DET = ["semseg", "depth", "normals", "edges", "saliency", "parts", "detection"]


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    """18 pascal-style scenes of mixed sizes (none the 48x48 model input) with boxes; half JPEG."""
    from conftest import as_jpeg_photos

    from edgemtl.data.synth import generate

    root = tmp_path_factory.mktemp("det") / "synth"
    generate(
        root, 18, [(64, 80), (56, 40)], seed=2, preset="pascal", workers=1, progress=False,
        splits=(0.6, 0.1, 0.3), tasks=DET,
    )  # fmt: skip
    as_jpeg_photos(root)
    return root


# ---------------------------------------------------------------- labels and data


def _write(tmp_path, doc) -> object:
    p = tmp_path / "a.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "doc, says",
    [
        ("{not json", "not valid JSON"),
        ({"boxes": []}, '{"objects"'),
        ({"objects": [{"box": [1, 2, 3], "class": 0}]}, "object 0: 'box' must be"),
        ({"objects": [{"box": [5, 2, 3, 8], "class": 0}]}, "empty or inverted"),
        ({"objects": [{"box": [0, 0, 41, 8], "class": 0}]}, "reaches outside the 40x30 image"),
        ({"objects": [{"box": [0, 0, 4, 8], "class": 3}]}, "'class' must be a class id 0..2"),
        ({"objects": [{"box": [0, 0, 4, 8], "class": 1, "difficult": "yes"}]}, "'difficult' must be"),
        ({"objects": [{"box": [0, 0, 4, float("nan")], "class": 1}]}, "four finite numbers"),
    ],
)
def test_bad_label_files_get_one_line_errors_naming_the_file(tmp_path, doc, says):
    p = _write(tmp_path, doc)
    with pytest.raises(EdgeMTLError) as e:
        read_boxes_json(p, (30, 40), 3)
    assert str(p) in str(e.value) and says in str(e.value) and "\n" not in str(e.value)


def test_label_file_reads_as_fractions_of_the_image(tmp_path):
    p = _write(
        tmp_path,
        {
            "objects": [
                {"box": [4, 3, 40, 30], "class": 2, "difficult": True},
                {"box": [0, 0, 1, 1.5], "class": 0},
            ]
        },
    )
    got = read_boxes_json(p, (30, 40), 3)
    np.testing.assert_allclose(got, [[0.1, 0.1, 1.0, 1.0, 2, 1], [0, 0, 1 / 40, 0.05, 0, 0]], rtol=1e-6)
    assert read_boxes_json(_write(tmp_path, {"objects": []}), (30, 40), 3).shape == (0, 6)
    with pytest.raises(EdgeMTLError, match="missing detection label file"):
        read_boxes_json(tmp_path / "none.json", (30, 40), 3)


def test_synthetic_boxes_are_the_visible_extent_of_each_object():
    """Independent of boxes_from_instances: each object's visible pixels, from the rendered instance map."""
    from edgemtl.data.synth import render_scene
    from edgemtl.data.synth.renderer import DIFFICULT_PIXELS, detection_classes

    names = detection_classes("pascal")
    from edgemtl.data.synth.presets import get_preset

    classes = get_preset("pascal").classes
    for seed in range(4):
        out = render_scene(seed, (72, 96), "pascal", aux=True)
        inst, seg, boxes = out["instances"], out["semseg"], out["detection"]
        expect = []
        for i in np.unique(inst):
            m = inst == i
            cls = classes[int(seg[m][0])]
            if cls not in names:
                continue
            ys, xs = np.nonzero(m)
            expect.append(
                [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, names.index(cls), m.sum() < DIFFICULT_PIXELS]
            )
        np.testing.assert_array_equal(boxes, np.asarray(expect, np.float32).reshape(-1, 6))
        assert len(boxes) > 0


def test_dataset_items_validate_and_collate_variable_box_counts(det_data):
    from edgemtl.data.dataset import MultiTaskDataset, collate
    from edgemtl.data.validate import validate_dataset

    assert validate_dataset(det_data) == []
    ds = MultiTaskDataset(det_data, "train", tasks=["semseg", "detection"], input_size=(48, 48))
    items = [ds[i] for i in range(len(ds))]
    assert all(it["detection"].shape[1] == 6 and it["detection"].dtype == torch.float32 for it in items)
    assert len({len(it["detection"]) for it in items}) > 1
    batch = collate(items[:4])
    assert isinstance(batch["detection"], list) or batch["detection"].dim() == 3
    # a broken label file is reported by validate, with its path
    bad = det_data / "detection" / f"{ds.ids[0]}.json"
    keep = bad.read_text()
    try:
        bad.write_text('{"objects": [{"box": [0, 0, 999, 4], "class": 0}]}')
        problems = validate_dataset(det_data)
        assert len(problems) == 1 and str(bad) in problems[0] and "reaches outside" in problems[0]
    finally:
        bad.write_text(keep)


# ---------------------------------------------------------------- augmentation


def _rect_sample(h=40, w=52):
    """Two rectangles drawn in a saliency map and given as boxes: a transform must move both alike."""
    rects = [(5, 7, 21, 30), (30, 2, 49, 13)]  # x1, y1, x2, y2 (pixel corners)
    sal = torch.zeros(1, h, w)
    for x1, y1, x2, y2 in rects:
        sal[0, y1:y2, x1:x2] = 1
    det = torch.tensor([[x1 / w, y1 / h, x2 / w, y2 / h, k, 0] for k, (x1, y1, x2, y2) in enumerate(rects)])
    return {"image": sal.repeat(3, 1, 1), "saliency": sal, "detection": det}


def _boxes_of_map(sal: torch.Tensor, det: torch.Tensor) -> np.ndarray:
    """Pixel box around the foreground of the map inside each transformed box (its own rectangle)."""
    h, w = sal.shape[-2:]
    m = (sal[0] == 1).numpy()
    out = []
    for b in det.numpy():
        x1, y1, x2, y2 = b[0] * w, b[1] * h, b[2] * w, b[3] * h
        sub = np.zeros_like(m)
        sub[int(max(y1 - 2, 0)) : int(y2 + 2), int(max(x1 - 2, 0)) : int(x2 + 2)] = True
        ys, xs = np.nonzero(m & sub)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(out, np.float64)


@pytest.mark.parametrize(
    "t, tol",
    [
        (RandomHorizontalFlip(1.0), 1e-4),
        (Resize((31, 77)), 1.0),
        (PadToMultiple(32), 1e-4),
        (RandomScaleCrop((1.3, 1.3), (32, 32)), 1.0),
        (RandomScaleCrop((0.6, 0.6), (48, 64)), 1.0),
        (Compose([RandomHorizontalFlip(1.0), RandomScaleCrop((0.8, 1.2), (36, 36))]), 1.0),
    ],
)
def test_boxes_move_with_the_pixels(t, tol):
    for seed in range(5):
        s = _rect_sample()
        out = t(s, np.random.default_rng(seed))
        h, w = out["saliency"].shape[-2:]
        det = out["detection"]
        assert det.shape[1] == 6 and (det[:, :4] >= 0).all() and (det[:, :4] <= 1).all()
        got = det[:, :4].numpy().astype(np.float64) * [w, h, w, h]
        np.testing.assert_allclose(got, _boxes_of_map(out["saliency"], det), atol=tol)
        # class ids travel with their box
        assert set(det[:, 4].tolist()) <= {0.0, 1.0}


def test_rotation_gives_the_box_around_the_rotated_object():
    s = _rect_sample()
    for seed in range(4):
        out = RandomRotate(25)(s, np.random.default_rng(seed))
        h, w = out["saliency"].shape[-2:]
        got = out["detection"][:, :4].numpy().astype(np.float64) * [w, h, w, h]
        np.testing.assert_allclose(got, _boxes_of_map(out["saliency"], out["detection"]), atol=1.5)


def test_crop_clips_boxes_and_drops_the_ones_left_too_small():
    s = _rect_sample()
    # zoom 2x into the top-left: the second rectangle (x >= 30 of 52) leaves the 20x20 crop
    out = RandomScaleCrop((2.0, 2.0), (20, 20), base=(40, 52))({**s}, np.random.default_rng(0))
    det = out["detection"]
    assert (det[:, :4] >= 0).all() and (det[:, :4] <= 1).all()
    w_px = (det[:, 2] - det[:, 0]) * 20
    h_px = (det[:, 3] - det[:, 1]) * 20
    assert (w_px >= 2).all() and (h_px >= 2).all()
    # a box cut to a sliver is gone
    tiny = {**s, "detection": torch.tensor([[0.0, 0.0, 0.02, 0.5, 0, 0]])}
    assert len(Resize((40, 26))(tiny)["detection"]) == 0  # 0.52 px wide


# ---------------------------------------------------------------- task: targets, loss, decoding


def _task(n=3):
    return build_task("detection", {"classes": {"detection": [f"c{i}" for i in range(n)]}})


def test_task_description_round_trips_and_sizes_the_head():
    t = _task()
    d = t.describe()
    assert d["out_channels"] == 8 and d["decoding"] == "boxes" and d["boxes"]["nms_iou"] == 0.6
    assert task_from_description("detection", d).class_names == ["c0", "c1", "c2"]
    assert task_from_description("detection", {**d, "class_names": None}).num_classes == 3


def test_targets_take_the_smallest_box_and_ignore_difficult_regions():
    t = _task()
    big = [0.0, 0.0, 1.0, 1.0, 0, 0]
    small = [0.375, 0.375, 0.625, 0.625, 2, 0]
    hard = [0.0, 0.75, 0.25, 1.0, 1, 1]
    cls_t, valid, reg_t, pos = t.targets([torch.tensor([big, small, hard])], 1, 16, 16, "cpu")
    # the centre pixels are positives of the small box (class 2), distances to its sides
    assert pos[0, 8, 8] and cls_t[0, 2, 8, 8] == 1 and cls_t[0, 0, 8, 8] == 0
    np.testing.assert_allclose(
        reg_t[0, :, 8, 8].numpy(),
        [8.5 / 16 - 0.375, 8.5 / 16 - 0.375, 0.625 - 8.5 / 16, 0.625 - 8.5 / 16],
        atol=1e-6,
    )
    # the difficult box's region is neither positive nor negative
    assert not valid[0, 14, 1] and not pos[0, 14, 1]
    assert valid[0, 1, 14]
    # every class map row is one-hot or empty; positives lie inside their box's central half
    assert (cls_t.sum(1) <= 1).all() and int(pos.sum()) == int(cls_t.sum())


def test_loss_is_finite_without_boxes_and_trains_every_output():
    t = _task()
    pred = torch.randn(2, 8, 12, 12, requires_grad=True)
    empty = [torch.zeros(0, 6), torch.zeros(0, 6)]
    loss = t.loss(pred, empty)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    pred.grad = None
    loss = t.loss(pred, [torch.tensor([[0.1, 0.1, 0.6, 0.5, 1, 0]]), torch.zeros(0, 6)])
    loss.backward()
    assert torch.isfinite(loss) and pred.grad[:, 3:].abs().sum() > 0  # distances and centre-ness learn


def _raw_for(boxes_px, labels, C, H, W, logit=6.0):
    """A raw output that encodes the given boxes perfectly (as a trained head would)."""
    raw = np.full((C + 5, H, W), -8.0, np.float32)
    for (x1, y1, x2, y2), c in zip(boxes_px, labels):
        for y in range(int(y1), int(y2)):
            for x in range(int(x1), int(x2)):
                px, py = x + 0.5, y + 0.5
                raw[:C, y, x] = -8.0
                d = [(px - x1) / W, (py - y1) / H, (x2 - px) / W, (y2 - py) / H]
                ctr = np.sqrt(min(d[0], d[2]) / max(d[0], d[2]) * min(d[1], d[3]) / max(d[1], d[3]))
                raw[c, y, x] = logit * ctr - box_ops.CLASS_LOGIT_OFFSET
                raw[C : C + 4, y, x] = d
                raw[C + 4, y, x] = logit * ctr
    return raw


def test_decoding_recovers_boxes_and_suppresses_duplicates():
    C, H, W = 3, 24, 32
    gt = [(2, 3, 14, 20), (18, 4, 30, 12)]
    raw = _raw_for(gt, [1, 2], C, H, W)
    det = box_ops.decode(raw, C)
    px = box_ops.to_pixels(det, (H, W))
    assert len(px["boxes"]) == 2  # one box per object after peak picking and NMS
    order = np.argsort(px["labels"])
    np.testing.assert_allclose(px["boxes"][order], np.asarray(gt, np.float32), atol=1e-4)
    assert (px["scores"] > 0.9).all()
    # greedy NMS per class: an overlapping box of the same class goes, another class's stays
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10]], np.float64)
    keep = box_ops.nms(b, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.6)
    assert keep.tolist() == [0, 2]


def test_task_meter_scores_a_perfect_output_100():
    t = _task()
    H, W = 24, 32
    gt = [(2, 3, 14, 20), (18, 4, 30, 12)]
    raw = torch.from_numpy(_raw_for(gt, [1, 2], 3, H, W))[None]
    target = [
        torch.tensor([[x1 / W, y1 / H, x2 / W, y2 / H, c, 0] for (x1, y1, x2, y2), c in zip(gt, [1, 2])])
    ]
    m = t.new_meter()
    t.update_meter(m, raw, target)
    r = m.compute()
    assert r["mAP"] == pytest.approx(100.0) and r["VOC_mAP50"] == pytest.approx(100.0)


# ---------------------------------------------------------------- bootstrap of AP


def test_bootstrap_of_ap_equals_repeating_the_images():
    from edgemtl.metrics.bootstrap import resample_weights, resampled_metric, state_vector

    rng = np.random.default_rng(0)
    C = 3

    def image():
        n = int(rng.integers(0, 6))
        g = rng.uniform(0, 50, (n, 2))
        gb = np.c_[g, g + rng.uniform(5, 30, (n, 2))]
        gl = rng.integers(0, C, n)
        m = int(rng.integers(0, 12))
        j = rng.integers(0, max(n, 1), m)
        pb = (gb[j] if n else rng.uniform(0, 50, (m, 4))) + rng.normal(0, 3, (m, 4))
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pl = np.where(rng.random(m) < 0.8, gl[j] if n else 0, rng.integers(0, C, m))
        pred = {"boxes": pb, "scores": rng.random(m).round(2), "labels": pl}  # rounded: ties happen
        return pred, {"boxes": gb, "labels": gl, "ignore": rng.random(n) < 0.2}

    images = [image() for _ in range(25)]
    metres = []
    for p, g in images:
        m = DetectionMeter(C)
        m.update(p, g)
        metres.append(m)
    states = np.stack([state_vector(m) for m in metres])
    full = DetectionMeter(C)
    full.update([p for p, _ in images], [g for _, g in images])
    point = full.compute()
    w = np.vstack([np.ones(25), resample_weights(25, 4)])
    for key in point:
        got = resampled_metric(metres[0], states, key, w)
        assert got[0] == pytest.approx(point[key], abs=1e-9)
        for r in range(1, len(w)):
            rep = DetectionMeter(C)
            for i, k in enumerate(w[r].astype(int)):
                for _ in range(k):
                    rep.update(*images[i])
            assert got[r] == pytest.approx(rep.compute()[key], abs=1e-9), (key, r)


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_train_export_and_predict_boxes_on_photos(det_data, tmp_path):
    """A joint semseg + detection model trains through the recipe path, evaluates with per-image
    states, exports to ONNX and returns boxes in the photo's pixels through the runtime, equal to
    PyTorch's decoding of the same output."""
    import cv2
    import yaml
    from conftest import TINY_MODEL

    from edgemtl.checkpoint import load_checkpoint
    from edgemtl.cli import main as cli
    from edgemtl.runtime import load

    recipe = tmp_path / "det.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {**TINY_MODEL, "arch": "hard_sharing"},
                "tasks": ["semseg", "detection"],
                "data": {"root": str(det_data)},
                "train": {"epochs": 2, "batch_size": 4, "edge_thresholds": 3},
            }
        )
    )
    run = tmp_path / "run"
    assert cli(["train", str(recipe), "--out", str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["metrics"]["detection"]) == {"mAP", "AP50", "AP75", "VOC_mAP50"}
    states = np.load(run / "test_states.npz")
    assert states["task_detection"].shape[0] == len(states["_ids"])
    out = tmp_path / "m.onnx"
    assert cli(["export", "--checkpoint", str(run / "best.pt"), "--out", str(out), "--target", "onnx",
                "--images", str(det_data / "images"), "--num-images", "2"]) == 0  # fmt: skip
    rt = load(out)
    img = cv2.imread(str(sorted((det_data / "images").glob("*.jpg"))[0]))[..., ::-1].copy()
    pred = rt.predict(img, "detection")
    det = pred["prediction"]
    h, w = img.shape[:2]
    assert (
        det["boxes"].shape[1] == 4
        and (det["boxes"][:, [0, 2]] <= w).all()
        and (det["boxes"][:, [1, 3]] <= h).all()
    )
    model, _ = load_checkpoint(run / "best.pt")
    from edgemtl.artifact.processing import preprocess

    with torch.no_grad():
        raw = model.forward_task(torch.from_numpy(preprocess(img, (48, 48))), "detection")
    ref = box_ops.to_pixels(
        box_ops.decode(raw.numpy(), len(rt.task_info("detection")["class_names"])), (h, w)
    )
    # an untrained head ties many scores: compare as matched sets (the cut at max_dets may differ)
    assert box_ops.matched_fraction(det, ref, iou=0.99) >= 0.95
    drawn = rt.visualize(pred, image=img)
    assert drawn.shape == img.shape and drawn.dtype == np.uint8
    # the CLI draws the boxes on the photo and writes them, in its pixels, as JSON
    photo = sorted((det_data / "images").glob("*.jpg"))[0]
    png, js = tmp_path / "det.png", tmp_path / "det.json"
    assert cli(["predict", "--model", str(out), "--image", str(photo), "--task", "detection",
                "--out", str(png), "--raw-out", str(js)]) == 0  # fmt: skip
    objs = json.loads(js.read_text())["objects"]
    assert len(objs) == len(det["boxes"]) and objs[0]["name"] in rt.task_info("detection")["class_names"]
    np.testing.assert_allclose([o["box"] for o in objs], det["boxes"], atol=0.01)
    assert cv2.imread(str(png)).shape == img.shape


def test_matched_fraction_ignores_order_but_not_boxes_or_classes():
    a = {
        "boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float),
        "scores": np.array([0.5, 0.5]),
        "labels": np.array([0, 1]),
    }
    swapped = {k: v[::-1].copy() for k, v in a.items()}
    assert box_ops.matched_fraction(a, swapped) == 1.0
    moved = {**a, "boxes": a["boxes"] + [[0, 0, 0, 0], [5, 5, 5, 5]]}
    assert box_ops.matched_fraction(a, moved) == 0.5
    relabelled = {**a, "labels": np.array([1, 1])}
    assert box_ops.matched_fraction(a, relabelled) == 0.5


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, suffix, arch, scheme",
    [("coreml", ".mlpackage", "astmt", "onehot"), ("executorch", ".pte", "hard_sharing", "all")],
)
def test_task_input_artifacts_carry_detection(tmp_path, target, suffix, arch, scheme):
    """Detection beside semseg exports to CoreML with the one-hot task input (numbers checked on the
    converted program in ONNX Runtime) and to ExecuTorch (one output per task: the one-hot ASTMT
    export takes ~50 s here): the manifest describes the boxes output, and decoded boxes agree with
    PyTorch's. (ONNX with the one-hot input: the web app test's 7-task model.)"""
    from conftest import TINY_MODEL

    from edgemtl.export import export
    from edgemtl.models import create_model

    meta = {"classes": {"semseg": ["bg", "a", "b"], "detection": ["a", "b"]}}
    from edgemtl.tasks import build_tasks

    tasks = {n: t.describe() for n, t in build_tasks(["semseg", "detection"], meta).items()}
    torch.manual_seed(0)
    small = {**TINY_MODEL, "backbone": "mobilenetv2_tiny", "image_size": [32, 32]}  # export time
    extra = {"se": "decoder"} if arch == "astmt" else {}
    model = create_model(arch=arch, tasks=tasks, **extra, **small).eval()
    res = export(model, target, tmp_path / f"m{suffix}", images=None, num_images=2)
    meta = res.metadata
    assert meta["verification"]["passed"] and meta["task_input"]["scheme"] == scheme
    info = meta["task_info"]["detection"]
    assert info["decoding"] == "boxes" and info["out_channels"] == 7 and "postprocess" in info["boxes"]
    # an untrained head ties scores, so float rounding may reorder a few at the cut: >= 95 %
    assert meta["verification"]["numeric"]["tasks"]["detection"]["boxes_matched"] >= 0.95
