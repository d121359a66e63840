"""ConfusionMeter / miou against torchmetrics and a brute-force pixel loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import ConfusionMeter, miou


def _brute_force(pred: np.ndarray, gt: np.ndarray, c: int, ignore: int = 255) -> tuple[float, float, list]:
    """Literal definition: per-class sets of pixel indices, dataset-level union, skip empty unions."""
    gt_sets = {k: set() for k in range(c)}
    pred_sets = {k: set() for k in range(c)}
    correct = total = 0
    for idx, (p, g) in enumerate(zip(pred.ravel().tolist(), gt.ravel().tolist())):
        if g == ignore:
            continue
        total += 1
        gt_sets[g].add(idx)
        if p != ignore:
            pred_sets[p].add(idx)
        correct += p == g
    ious = []
    for k in range(c):
        union = gt_sets[k] | pred_sets[k]
        ious.append(100.0 * len(gt_sets[k] & pred_sets[k]) / len(union) if union else None)
    present = [v for v in ious if v is not None]
    return sum(present) / len(present), 100.0 * correct / total, ious


@pytest.fixture(scope="module")
def tm_classes():
    from edgemtl._compat import ensure_torchvision_importable

    ensure_torchvision_importable()  # torchmetrics imports torchvision
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    return MulticlassJaccardIndex, MulticlassAccuracy


def test_matches_torchmetrics_when_all_classes_present(tm_classes) -> None:
    jaccard_cls, acc_cls = tm_classes
    rng = np.random.default_rng(0)
    c = 5
    gt = rng.integers(0, c, (4, 24, 24))
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, c, gt.shape))
    gt[rng.random(gt.shape) < 0.1] = 255
    assert all((gt == k).any() and (pred == k).any() for k in range(c))
    out = miou(pred, gt, c)
    jac = jaccard_cls(num_classes=c, average="macro", ignore_index=255)
    acc = acc_cls(num_classes=c, average="micro", ignore_index=255)
    ref_iou = 100 * float(jac(torch.from_numpy(pred), torch.from_numpy(gt)))
    ref_acc = 100 * float(acc(torch.from_numpy(pred), torch.from_numpy(gt)))
    assert out["mIoU"] == pytest.approx(ref_iou, abs=1e-4)
    assert out["pixel_acc"] == pytest.approx(ref_acc, abs=1e-4)


def test_absent_class_rule_brute_force() -> None:
    rng = np.random.default_rng(1)
    c = 6  # class 4: never in gt nor pred (skipped); class 5: predicted only (IoU 0, counted)
    gt = rng.integers(0, 4, (3, 10, 12))
    pred = np.where(rng.random(gt.shape) < 0.5, gt, rng.integers(0, 4, gt.shape))
    pred[0, :2, :3] = 5
    pred[1, 3, :] = 255  # a prediction of "ignore" is a miss for the true class
    gt[2, :4] = 255
    ref_miou, ref_acc, ref_ious = _brute_force(pred, gt, c)
    m = ConfusionMeter(c)
    m.update(pred, gt)
    out = m.compute()
    assert out["mIoU"] == pytest.approx(ref_miou, abs=1e-9)
    assert out["pixel_acc"] == pytest.approx(ref_acc, abs=1e-9)
    per = m.per_class_iou()
    assert np.isnan(per[4]) and ref_ious[4] is None
    assert per[5] == 0.0 and ref_ious[5] == 0.0
    np.testing.assert_allclose(per[:4], ref_ious[:4], atol=1e-9)


def test_streaming_merge_and_torch_input() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 3, (6, 9, 9))
    pred = rng.integers(0, 3, (6, 9, 9))
    one = miou(pred, gt, 3)
    a, b = ConfusionMeter(3), ConfusionMeter(3)
    for i in range(3):
        a.update(torch.from_numpy(pred[i]), torch.from_numpy(gt[i]))  # single [H,W] maps
    b.update(pred[3:], gt[3:])
    assert a.merge(b).compute() == pytest.approx(one)
    a.reset()
    with pytest.raises(EdgeMTLError, match="no valid"):
        a.compute()
    assert set(one) == set(ConfusionMeter.higher_is_better)


def test_hand_computed() -> None:
    gt = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 0]])
    # class 0: TP1 FP0 FN1 -> 1/2 ; class 1: TP1 FP1 FN0 -> 1/2 ; acc 2/3
    out = miou(pred, gt, 2)
    assert out["mIoU"] == pytest.approx(50.0)
    assert out["pixel_acc"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((2, 3), int), np.zeros((3, 2), int), r"\(2, 3\).*\(3, 2\)"),
        (np.zeros((2, 2), int), np.array([[0, 7], [0, 0]]), r"gt holds class id\(s\) \[7\]"),
        (np.array([[0, -1], [0, 0]]), np.zeros((2, 2), int), r"pred holds class id\(s\) \[-1\]"),
        (np.array([[0, 9]]), np.array([[0, 255]]), r"pred holds class id\(s\) \[9\]"),  # even where ignored
        (np.array([[0.0, np.nan]]), np.zeros((1, 2), int), "NaN"),
        (np.array([[0.0, 0.5]]), np.zeros((1, 2), int), "integer class ids"),
    ],
)
def test_errors(pred, gt, match) -> None:
    with pytest.raises(EdgeMTLError, match=match):
        miou(pred, gt, 3)


def test_bad_construction_and_merge() -> None:
    with pytest.raises(EdgeMTLError):
        ConfusionMeter(0)
    with pytest.raises(EdgeMTLError, match="collides"):
        ConfusionMeter(4, ignore_index=2)
    with pytest.raises(EdgeMTLError, match="num_classes"):
        ConfusionMeter(3).merge(ConfusionMeter(4))
