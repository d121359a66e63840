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
    terms = per_task_delta({"seg": 55.0, "depth": 0.5}, {"seg": 50.0, "depth": 0.625}, {"seg": True, "depth": np.bool_(False)})
    assert terms == pytest.approx({"seg": 10.0, "depth": 20.0})  # both better -> positive
    assert delta_m({"seg": 45.0}, {"seg": 50.0, "unused": 1.0}, {"seg": True}) == pytest.approx(-10.0)


def test_acc_mtl() -> None:
    assert acc_mtl({"seg": 0.38, "depth": 0.77}, {"seg": 0.38, "depth": 0.7}) == pytest.approx(105.0)
    assert acc_mtl({"seg": 40.0}, {"seg": 50.0}) == pytest.approx(80.0)


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
    with pytest.raises(EdgeMTLError, match="'n'.*single-task accuracy"):
        acc_mtl({"n": 0.4}, {})
    with pytest.raises(EdgeMTLError, match="'n'.*> 0"):
        acc_mtl({"n": 0.4}, {"n": 0.0})
