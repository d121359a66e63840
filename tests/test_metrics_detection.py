"""Detection AP (edgemtl.metrics.detection) against pycocotools' COCOeval on the same boxes, and VOC's
all-point AP against hand-worked cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics.detection import DetectionMeter, box_iou


def fixture_set(seed: int, n_images: int = 24, n_classes: int = 4):
    """Random scenes: ground truth (some crowd / ignored regions, one class never present, some empty
    images) and detections (jittered true boxes, duplicates, misses, false positives, tied scores)."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for i in range(n_images):
        m = 0 if i % 7 == 3 else int(rng.integers(1, 7))
        xy = rng.uniform(0, 200, (m, 2))
        wh = rng.uniform(4, 80, (m, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, n_classes - 1, m)  # the last class never has ground truth
        ignore = rng.random(m) < 0.12
        gts.append({"boxes": boxes, "labels": labels, "ignore": ignore})
        keep = rng.random(m) > 0.2
        det = boxes[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        dup = det[: int(rng.integers(0, 2))] + 2.0
        k = int(rng.integers(0, 4))
        fxy = rng.uniform(0, 220, (k, 2))
        fp = np.concatenate([fxy, fxy + rng.uniform(5, 60, (k, 2))], 1)
        dboxes = np.concatenate([det, dup, fp])
        dlabels = np.concatenate(
            [labels[keep], labels[keep][: len(dup)], rng.integers(0, n_classes, k)]
        ).astype(np.int64)
        scores = np.round(rng.random(len(dboxes)), 2)  # rounded: ties happen
        preds.append({"boxes": dboxes, "scores": scores, "labels": dlabels})
    return preds, gts


def cocoeval_stats(preds, gts, n_classes: int) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        images.append({"id": i + 1, "width": 300, "height": 300})
        for b, c, ign in zip(g["boxes"], g["labels"], g["ignore"]):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), float(w), float(h)],
                    "area": float(w * h),
                    "iscrowd": int(ign),
                }
            )
        for b, c, s in zip(p["boxes"], p["labels"], p["scores"]):
            bbox = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
            dets.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": bbox, "score": float(s)})
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(n_classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_equals_pycocotools(seed):
    preds, gts = fixture_set(seed)
    meter = DetectionMeter(num_classes=4)
    meter.update(preds, gts)
    got = meter.compute()
    want = cocoeval_stats(preds, gts, 4)
    assert 0 < want[0] < want[1] < 1  # the fixtures exercise the metric (neither trivial nor perfect)
    for key, i in (("mAP", 0), ("AP50", 1), ("AP75", 2)):
        assert abs(got[key] / 100 - want[i]) < 1e-4, (key, got[key], want[i])


def test_streaming_and_merge_equal_one_pass():
    preds, gts = fixture_set(3)
    whole = DetectionMeter(4)
    whole.update(preds, gts)
    a, b = DetectionMeter(4), DetectionMeter(4)
    for p, g in zip(preds[:10], gts[:10]):
        a.update(p, g)
    b.update(preds[10:], gts[10:])
    assert a.merge(b).compute() == whole.compute()
    assert set(whole.compute()) == set(DetectionMeter.higher_is_better)


def test_voc_all_point_ap_by_hand():
    """One class, 3 ground-truth boxes (one difficult), 5 detections in score order:
    TP, FP (duplicate of the first), on the difficult box (ignored), TP, FP (IoU < 0.5).
    Points (recall, precision): (1/2, 1), (1/2, 1/2), (1, 2/3), (1, 1/2); made non-increasing:
    precision 1 up to recall 1/2, 2/3 up to recall 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6."""
    gt = {
        "boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]],
        "labels": [0, 0, 0],
        "ignore": [False, True, False],
    }
    pred = {
        "boxes": [[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [50, 50, 60, 61], [50, 50, 60, 80]],
        "scores": [0.9, 0.8, 0.7, 0.6, 0.5],
        "labels": [0, 0, 0, 0, 0],
    }
    m = DetectionMeter(1)
    m.update(pred, gt)
    assert abs(m.compute()["VOC_mAP50"] - 100 * 5 / 6) < 1e-9
    # The same without the difficult flag: the third detection becomes a TP at recall 2/3.
    # Points: (1/3, 1), (1/3, 1/2), (2/3, 2/3), (1, 3/4), (1, 3/5) -> 1/3 * 1 + 2/3 * 3/4 = 5/6.
    m = DetectionMeter(1)
    m.update(pred, {**gt, "ignore": [False, False, False]})
    assert abs(m.compute()["VOC_mAP50"] - 100 * 5 / 6) < 1e-9


def test_a_bad_image_leaves_the_meter_unchanged():
    preds, gts = fixture_set(5, n_images=3)
    m = DetectionMeter(4)
    bad = {**preds[2], "labels": np.full(len(preds[2]["labels"]), 9)}
    with pytest.raises(EdgeMTLError, match="class id 9"):
        m.update([preds[0], preds[1], bad], gts)
    assert m.preds == [] and m.gts == []


def test_max_dets_cut_equals_pycocotools():
    """More than 100 detections in an image: both keep the 100 highest scores per image and class."""
    rng = np.random.default_rng(6)
    preds, gts = fixture_set(6, n_images=4, n_classes=2)
    for p, g in zip(preds, gts):
        k = 130
        centre = g["boxes"][rng.integers(0, len(g["boxes"]), k)] if len(g["boxes"]) else np.zeros((k, 4))
        extra = centre + rng.normal(0, 8, (k, 4))
        extra[:, 2:] = np.maximum(extra[:, 2:], extra[:, :2] + 1)
        p["boxes"] = np.concatenate([p["boxes"], extra])
        p["scores"] = np.concatenate([p["scores"], rng.random(k)])
        p["labels"] = np.concatenate([p["labels"], np.zeros(k, np.int64)])
    m = DetectionMeter(2)
    m.update(preds, gts)
    got, want = m.compute(), cocoeval_stats(preds, gts, 2)
    for key, i in (("mAP", 0), ("AP50", 1), ("AP75", 2)):
        assert abs(got[key] / 100 - want[i]) < 1e-4, (key, got[key], want[i])


def test_perfect_and_empty_detections():
    preds, gts = fixture_set(4)
    perfect = [{"boxes": g["boxes"], "scores": np.ones(len(g["boxes"])), "labels": g["labels"]} for g in gts]
    m = DetectionMeter(4)
    m.update(perfect, gts)
    r = m.compute()
    assert r["mAP"] == pytest.approx(100) and r["VOC_mAP50"] == pytest.approx(100)
    none = [{"boxes": np.zeros((0, 4)), "scores": [], "labels": []} for _ in gts]
    m = DetectionMeter(4)
    m.update(none, gts)
    assert m.compute() == {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0, "VOC_mAP50": 0.0}


def test_box_iou_independent():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 25]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 101, 101]])
    want = np.array([[50 / 150, 1, 0], [50 / (200 + 100 - 50), 25 / (200 + 100 - 25), 0]])
    assert np.allclose(box_iou(a, b), want)
    crowd = box_iou(a, b, crowd=np.array([True, False, False]))
    assert np.allclose(crowd[:, 0], [50 / 100, 50 / 200])  # intersection / detection area


@pytest.mark.parametrize(
    "pred, gt, match",
    [
        ({"boxes": [[0, 0, 1]], "scores": [1], "labels": [0]}, {"boxes": [], "labels": []}, r"\[N, 4\]"),
        (
            {"boxes": [[5, 0, 1, 1]], "scores": [1], "labels": [0]},
            {"boxes": [], "labels": []},
            r"box 0 is \[5.0, 0.0, 1.0, 1.0\]",
        ),
        ({"boxes": [[0, 0, 1, 1]], "labels": [0]}, {"boxes": [], "labels": []}, "needs scores"),
        (
            {"boxes": [[0, 0, 1, 1]], "scores": [1], "labels": [-1]},
            {"boxes": [], "labels": []},
            "id -1 is outside 0..2",
        ),
        (
            {"boxes": [[0, 0, 1, 1]], "scores": [np.nan], "labels": [0]},
            {"boxes": [], "labels": []},
            "score 0 is nan",
        ),
        (
            {"boxes": [[0, 0, 1, 1]], "scores": [1, 2], "labels": [0]},
            {"boxes": [], "labels": []},
            "2 entries",
        ),
    ],
)
def test_bad_input_is_one_line(pred, gt, match):
    with pytest.raises(EdgeMTLError, match=match):
        DetectionMeter(3).update(pred, gt)
