"""Δm against published ASTMT rows; Acc_MTL; error cases."""

from __future__ import annotations

import numpy as np
import pytest

from edgemtl.errors import EdgeMTLError
from edgemtl.metrics import acc_mtl, delta_m, per_task_delta

HIB = {"edge": True, "semseg": True, "parts": True, "normals": False, "sal": True}


def _row(*vals: float) -> dict[str, float]:
    return dict(zip(HIB, vals))


def test_astmt_paper_r101_se_adv() -> None:
    stl = _row(73.5, 69.76, 63.48, 14.15, 67.41)
    mtl = _row(73.5, 68.51, 63.41, 14.37, 67.72)
    assert delta_m(mtl, stl, HIB) == pytest.approx(-0.5994, abs=5e-5)
    assert round(delta_m(mtl, stl, HIB), 2) == -0.60


def test_astmt_readme_rows_average_drop_is_minus_delta_m() -> None:
    stl = _row(72.7, 68.30, 60.70, 14.61, 65.40)
    assert delta_m(_row(69.2, 63.20, 55.10, 16.04, 63.60), stl, HIB) == pytest.approx(-6.81, abs=0.01)
    assert delta_m(_row(72.4, 68.00, 61.12, 14.68, 65.71), stl, HIB) == pytest.approx(-0.03, abs=0.01)


def test_per_task_terms_and_sign() -> None:
    terms = per_task_delta(
        {"seg": 55.0, "depth": 0.5}, {"seg": 50.0, "depth": 0.625}, {"seg": True, "depth": np.bool_(False)}
    )
    assert terms == pytest.approx({"seg": 10.0, "depth": 20.0})  # both better -> positive
    assert delta_m({"seg": 45.0}, {"seg": 50.0, "unused": 1.0}, {"seg": True}) == pytest.approx(-10.0)


# Outputs of the AMTL authors' own ``merge_metrics`` (Samsung/Achievement-based-MTL 4e6f39b,
# core/metrics/utils.py), run on these vectors in the release's units (fractions, metres, degrees).
RELEASE_VECTORS = [
    (
        {"mIoU": 0.3798, "d1": 0.7685, "rms": 0.5920, "mean": 20.31, "median": 14.02, "11.25": 0.4151},
        0.3660948827162553,
    ),
    ({"mIoU": 0.4888, "d1": 0.8277, "rms": 0.4711}, 0.8049252688745457),
]


def _edgemtl_metrics(release: dict[str, float]) -> dict[str, dict[str, float]]:
    """The same numbers as edgemtl's evaluation reports them (percentages for accuracies)."""
    out = {
        "semseg": {"mIoU": 100 * release["mIoU"]},
        "depth": {"delta1": 100 * release["d1"], "rmse": release["rms"]},
    }
    if "mean" in release:
        out["normals"] = {
            "mean": release["mean"],
            "median": release["median"],
            "within_11.25": 100 * release["11.25"],
        }
    return out


@pytest.mark.parametrize("release, expected", RELEASE_VECTORS)
def test_acc_mtl_matches_the_amtl_release(release, expected) -> None:
    from edgemtl.tasks import build_tasks

    metrics = _edgemtl_metrics(release)
    tasks = build_tasks(
        list(metrics), {"tasks": list(metrics), "classes": {"semseg": ["a", "b"]}, "depth_range": [0.0, 10.0]}
    )
    got = acc_mtl(metrics, {t: tasks[t].acc_mtl_terms() for t in metrics})
    assert got == pytest.approx(expected, rel=1e-9)


def test_acc_mtl_definition() -> None:
    # geometric mean over tasks of the per-task geometric means; error metrics inverted
    terms = {"a": (("x", True, 1.0),), "b": (("y", True, 0.01), ("z", False, 1.0))}
    got = acc_mtl({"a": {"x": 0.25}, "b": {"y": 64.0, "z": 0.16}}, terms)
    assert got == pytest.approx((0.25 * (0.64 / 0.16) ** 0.5) ** 0.5)


def test_errors_name_the_task() -> None:
    with pytest.raises(EdgeMTLError, match="'depth'.*baseline"):
        delta_m({"seg": 1.0, "depth": 1.0}, {"seg": 1.0}, {"seg": True, "depth": False})
    with pytest.raises(EdgeMTLError, match="'seg'.*is 0"):
        delta_m({"seg": 1.0}, {"seg": 0.0}, {"seg": True})
    with pytest.raises(EdgeMTLError, match="'seg'.*direction"):
        delta_m({"seg": 1.0}, {"seg": 2.0}, {})
    with pytest.raises(EdgeMTLError, match="'seg'.*direction"):
        delta_m({"seg": 1.0}, {"seg": 2.0}, {"seg": "up"})
    with pytest.raises(EdgeMTLError, match="'seg'.*not finite"):
        delta_m({"seg": float("nan")}, {"seg": 2.0}, {"seg": True})
    with pytest.raises(EdgeMTLError, match="no multi-task"):
        delta_m({}, {"seg": 2.0}, {"seg": True})
    with pytest.raises(EdgeMTLError, match="'n' has no Acc_MTL terms"):
        acc_mtl({"n": {"x": 0.4}}, {})
    with pytest.raises(EdgeMTLError, match="'x'.*Acc_MTL metric of n"):
        acc_mtl({"n": {"y": 0.4}}, {"n": (("x", True, 1.0),)})


def test_task_delta_m_takes_each_tasks_primary_metric_and_direction():
    """Computed by hand: semseg mIoU (higher is better), depth RMSE (lower), saliency maxF under
    edgemtl's protocol and max-mIoU under the peers' (their Δm term)."""
    from edgemtl.metrics import task_delta_m
    from edgemtl.tasks import build_tasks

    tasks = build_tasks(["semseg", "depth", "saliency"], {"classes": {"semseg": ["a", "b"]}})
    mine = {"semseg": {"mIoU": 44.0}, "depth": {"rmse": 0.6}, "saliency": {"maxF": 70.0, "max_mIoU": 60.0}}
    ref = {"semseg": {"mIoU": 40.0}, "depth": {"rmse": 0.5}, "saliency": {"maxF": 80.0, "max_mIoU": 50.0}}
    want = 100 * ((44 - 40) / 40 - (0.6 - 0.5) / 0.5 + (70 - 80) / 80) / 3
    assert abs(task_delta_m(tasks, mine, ref) - want) < 1e-12
    peer = 100 * ((44 - 40) / 40 - (0.6 - 0.5) / 0.5 + (60 - 50) / 50) / 3
    dm, per_task = task_delta_m(tasks, mine, ref, "mtl-pytorch", per_task=True)
    assert abs(dm - peer) < 1e-12 and abs(per_task["depth"] + 20.0) < 1e-12
    # only the tasks the model has
    assert abs(task_delta_m(tasks, {"semseg": mine["semseg"]}, ref) - 10.0) < 1e-12
