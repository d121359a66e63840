"""The peers' metric conventions (``--protocol mtl-pytorch | astmt``), each checked against the peer's
rule written out independently here from its evaluation code (Multi-Task-Learning-PyTorch
``evaluation/``, ASTMT ``fblib/evaluation/``; docs/metrics.md, "How peers differ")."""

from __future__ import annotations

import numpy as np
import pytest

from edgemtl.evaluate import Protocol
from edgemtl.tasks import build_task

RNG = np.random.default_rng(5)


def _meter(task: str, protocol: str, **meta):
    t = build_task(task, {"classes": {task: [f"c{i}" for i in range(5)]}, "depth_range": [0, 10], **meta})
    return t, Protocol(name=protocol).new_meter(t)


def test_miou_over_all_classes_absent_scores_zero():
    gt = RNG.integers(0, 3, (4, 16, 16))  # classes 3 and 4 never occur, nor are predicted
    gt[:, 0] = 255
    pred = np.where(RNG.random(gt.shape) < 0.7, gt % 3, RNG.integers(0, 3, gt.shape))
    # eval_semseg: tp/fp/fn per class over valid pixels, IoU = tp / max(tp+fp+fn, 1e-8), mean over all classes
    valid = gt != 255
    ious = []
    for c in range(5):
        tp = np.sum((gt == c) & (pred == c) & valid)
        fp = np.sum((gt != c) & (pred == c) & valid)
        fn = np.sum((gt == c) & (pred != c) & valid)
        ious.append(tp / max(tp + fp + fn, 1e-8))
    for protocol in ("mtl-pytorch", "astmt"):
        _, m = _meter("semseg", protocol)
        m.update(pred, gt)
        assert m.compute()["mIoU"] == pytest.approx(100 * np.mean(ious), abs=1e-9)
    _, ours = _meter("semseg", "edgemtl")
    ours.update(pred, gt)
    assert ours.compute()["mIoU"] == pytest.approx(100 * np.mean(ious[:3]), abs=1e-9)  # present classes only


def test_parts_skip_background_only_images():
    with_parts = RNG.integers(0, 5, (16, 16))
    only_bg, only_ignore = np.zeros((16, 16), int), np.full((16, 16), 255)
    pred = RNG.integers(0, 5, (3, 16, 16))
    _, m = _meter("parts", "mtl-pytorch")
    m.update(pred, np.stack([with_parts, only_bg, only_ignore]))
    _, ref = _meter("parts", "mtl-pytorch")
    ref.update(pred[:1], with_parts[None])
    assert np.array_equal(m.cm, ref.cm)


def _peer_saliency(probs, gts):
    """eval_sal: thresholds linspace(0.2, 0.9, 15), pred > t, gt (255 counts as foreground), per-image
    jaccard (both empty = 1) and precision/recall with 1e-12, image means, F1 of the means."""
    th = np.linspace(0.2, 0.9, 15)
    P, R, J = [], [], []
    for p, g in zip(probs, gts):
        g = (g > 0).astype(bool)
        pr, rc, jc = [], [], []
        for t in th:
            m = p > t
            tp = np.sum(m & g)
            pr.append(tp / (np.sum(m) + 1e-12))
            rc.append(tp / (np.sum(g) + 1e-12))
            union = np.sum(m | g)
            jc.append(1.0 if union == 0 else tp / union)
        P.append(pr), R.append(rc), J.append(jc)
    mp, mr = np.mean(P, 0), np.mean(R, 0)
    f = 2 * mp * mr / (mp + mr + 1e-12)
    return 100 * f.max(), 100 * np.mean(J, 0).max()


def test_saliency_peer_rules():
    gts = (RNG.random((5, 12, 12)) < 0.3).astype(np.uint8)
    gts[1] = 0  # an image without foreground: kept, P = R = 0
    gts[2, 0, :4] = 255  # 255 counts as foreground for the peers
    probs = np.clip(gts * 0.5 + RNG.random(gts.shape) * 0.6, 0, 1)
    probs[3] = 0.0  # an empty prediction
    maxf, miou = _peer_saliency(probs, gts)
    for protocol in ("mtl-pytorch", "astmt"):
        t, m = _meter("saliency", protocol)
        m.update(probs, gts)
        got = m.compute()
        assert got["maxF"] == pytest.approx(maxf, abs=1e-9) and got["max_mIoU"] == pytest.approx(
            miou, abs=1e-9
        )
        assert t.primary(protocol) == "max_mIoU"
    assert build_task("saliency").primary("edgemtl") == "maxF"


def test_depth_peer_rules():
    gts = RNG.random((4, 10, 10)) * 5 + 0.5
    gts[:, :2] = 0  # invalid pixels
    preds = gts + RNG.normal(0, 0.5, gts.shape)
    preds[0, 5, :3] = -1.0  # non-positive predictions: 1e-9 for both peers
    # MTL-PyTorch eval_depth: mask first, then clamp; pooled over pixels
    valid = gts != 0
    p = np.where(preds <= 0, 1e-9, preds)
    rmse = np.sqrt(np.mean((gts[valid] - p[valid]) ** 2))
    log_rmse = np.sqrt(np.mean((np.log(gts[valid]) - np.log(p[valid])) ** 2))
    _, m = _meter("depth", "mtl-pytorch")
    m.update(preds, gts)
    got = m.compute()
    assert got["rmse"] == pytest.approx(rmse, rel=1e-12) and got["log_rmse"] == pytest.approx(
        log_rmse, rel=1e-12
    )
    # ASTMT eval_depth: gt 0 -> 1e-9 before the mask (every pixel counts), per-image RMSE averaged, median log
    g = np.where(gts == 0, 1e-9, gts)
    per_rmse = [np.sqrt(np.mean((gi - pi) ** 2)) for gi, pi in zip(g, p)]
    per_log = [np.sqrt(np.mean((np.log(gi) - np.log(pi)) ** 2)) for gi, pi in zip(g, p)]
    _, a = _meter("depth", "astmt")
    a.update(preds, gts)
    got = a.compute()
    assert got["rmse"] == pytest.approx(np.mean(per_rmse), rel=1e-12)
    assert got["log_rmse"] == pytest.approx(np.median(per_log), rel=1e-12)


def test_edges_seism_conventions():
    from edgemtl.metrics.edges import image_counts

    gt = np.zeros((3, 20, 20), np.uint8)
    gt[:, 10, 2:18] = 1
    probs = np.zeros((3, 20, 20))
    probs[0, 10, 2:18] = 0.5  # exactly a threshold: counted by >= (MTL-PyTorch), not by >
    probs[1, 11, 2:18] = 0.3
    # image 2 predicts nothing at all
    t, m = _meter("edges", "mtl-pytorch", edge_max_dist=0.05)
    th = np.round(np.arange(1, 100) * 0.01, 2)
    assert np.array_equal(m.thresholds, th) and m.inclusive
    counts = np.stack([image_counts(p, g, 0.05, th, inclusive=True) for p, g in zip(probs, gt)])
    assert counts[0, 49, 2] == 16 and image_counts(probs[0], gt[0], 0.05, th)[49, 2] == 0
    m.update(probs, gt)
    total = counts.sum(0).astype(float)
    # SEISM gather_measure: pooled counts; a threshold without predictions has P = 1, R = 0
    rec = total[:, 0] / total[:, 1]
    prec = np.where(total[:, 3] == 0, 1.0, total[:, 2] / np.maximum(total[:, 3], 1))
    rec = np.where(total[:, 3] == 0, 0.0, rec)
    f = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0)
    got = m.compute()
    assert got["odsF"] == pytest.approx(100 * f.max(), abs=1e-9)  # best threshold, no interpolation
    assert m.curve()["precision"][-1] == 1.0  # no prediction above 0.5 anywhere: P = 1
    astmt = Protocol(name="astmt").new_meter(t)
    assert astmt.thresholds.size == 101 and astmt.thresholds[0] == 0.001 and not astmt.inclusive


def test_unknown_protocol_is_named(tmp_path, capsys):
    from edgemtl.cli import main

    assert (
        main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--data", str(tmp_path), "--protocol", "mtl"])
        == 2
    )
    assert "unknown --protocol 'mtl'" in capsys.readouterr().err
