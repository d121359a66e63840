"""Balancers: the shared contract for every registered one, then each method's defining property."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgemtl.balancers import BALANCERS, BalanceContext, build_balancer
from edgemtl.errors import EdgeMTLError

TASKS = ["semseg", "depth", "normals"]
POTENTIALS = {"semseg": 0.40, "depth": 0.75, "normals": 0.45}
REQUIRED = {"amtl": {"potentials": POTENTIALS}}  # hyper-parameters without a default
STATEFUL = {"amtl", "dtp", "fmtl", "dwa", "gradnorm", "uncertainty", "imtl"}


class Tiny:
    """A shared trunk (its last Linear is the 'last shared layer') with one linear head per task."""

    def __init__(self, tasks: list[str] = TASKS, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.tasks = tasks
        self.trunk = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8))
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in tasks})
        self.x = torch.randn(16, 6, generator=g)
        self.y = {t: torch.randn(16, 1, generator=g) for t in tasks}

    def params(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.heads.parameters()]

    def losses(self) -> dict[str, torch.Tensor]:
        f = self.trunk(self.x)
        # Different loss scales per task, as in real dense-prediction losses.
        return {t: (i + 1) * F.mse_loss(self.heads[t](f), self.y[t]) for i, t in enumerate(self.tasks)}

    def ctx(self, seed: int = 0) -> BalanceContext:
        return BalanceContext(
            shared_params=list(self.trunk.parameters()),
            last_shared=self.trunk[2].weight,
            generator=torch.Generator().manual_seed(seed),
        )

    def zero_grad(self) -> None:
        for p in self.params():
            p.grad = None


def make(name: str, **kw):
    return build_balancer(name, TASKS, **{**REQUIRED.get(name, {}), **kw})


def prime(b, model: Tiny) -> None:
    """Drive a balancer into a non-initial state: KPIs, two epochs, a few steps, trained parameters."""
    b.update_kpi({"semseg": 0.20, "depth": 0.60, "normals": 0.30})
    b.update_kpi({"semseg": 0.25, "depth": 0.70, "normals": 0.32})
    b.epoch_end(0, {"semseg": 1.0, "depth": 2.0, "normals": 3.0})
    b.epoch_end(1, {"semseg": 0.5, "depth": 1.9, "normals": 2.0})
    ctx = model.ctx(seed=1)
    for _ in range(3):
        model.zero_grad()
        b.backward(model.losses(), ctx)
    with torch.no_grad():  # stands in for the trainer's optimizer stepping the balancer's parameters
        for p in b.parameters():
            p.add_(torch.linspace(-0.3, 0.4, p.numel()).view_as(p))


# ---------------------------------------------------------------- contract, every balancer

ALL = BALANCERS.names()


def test_registry_has_the_methods() -> None:
    expected = {
        "rlw",
        "dwa",
        "gls",
        "uncertainty",
        "gradnorm",
        "mgda",
        "pcgrad",
        "cagrad",
        "imtl_g",
        "imtl",
        "dtp",
        "amtl",
        "fmtl",
    }
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_backward_fills_finite_grads(name: str) -> None:
    model = Tiny()
    b = make(name)
    prime(b, model)
    model.zero_grad()
    for p in b.parameters():
        p.grad = None
    w = b.backward(model.losses(), model.ctx())
    assert set(w) == set(TASKS) and all(math.isfinite(v) for v in w.values())
    assert w == b.last_weights
    for p in model.params() + b.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.trunk.parameters())
    for t in TASKS:
        assert model.heads[t].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip(name: str) -> None:
    model = Tiny()
    a = make(name)
    prime(a, model)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # must survive the checkpoint format (weights_only load)
    buf.seek(0)
    b = make(name)
    fresh = make(name)
    b.load_state_dict(torch.load(buf, weights_only=True))
    ctx_a, ctx_b, ctx_f = model.ctx(7), model.ctx(7), model.ctx(7)
    for step in range(3):  # several steps: GradNorm's inner optimizer state matters from step 2 on
        model.zero_grad()
        wa = a.backward(model.losses(), ctx_a)
        ga = [p.grad.clone() for p in model.trunk.parameters()]
        model.zero_grad()
        wb = b.backward(model.losses(), ctx_b)
        gb = [p.grad.clone() for p in model.trunk.parameters()]
        model.zero_grad()
        wf = fresh.backward(model.losses(), ctx_f)
        assert wa == pytest.approx(wb, rel=1e-6, abs=1e-9)
        for x, y in zip(ga, gb):
            torch.testing.assert_close(x, y)
        if step == 0 and name in STATEFUL:
            # The state must matter, or this test proves nothing.
            assert wf != pytest.approx(wa, rel=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_unknown_hyper_parameter_is_named(name: str) -> None:
    with pytest.raises(EdgeMTLError, match="bogus_knob"):
        make(name, bogus_knob=1)


def test_to_moves_learnable_state_in_place() -> None:
    b = make("uncertainty")
    (p,) = b.parameters()
    b.to("cpu")
    assert b.parameters()[0] is p


# ---------------------------------------------------------------- pcgrad


def pcgrad(grads: torch.Tensor, seed: int = 0) -> torch.Tensor:
    b = build_balancer("pcgrad", [f"t{i}" for i in range(len(grads))])
    ctx = BalanceContext(shared_params=[], generator=torch.Generator().manual_seed(seed))
    return b.combine_grads(grads, {}, ctx)[0]


def test_pcgrad_projects_conflicting_pair() -> None:
    g = torch.Generator().manual_seed(0)
    g1 = torch.randn(10, generator=g, dtype=torch.float64)
    g2 = -0.7 * g1 + 0.5 * torch.randn(10, generator=g, dtype=torch.float64)
    assert g1 @ g2 < 0
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert abs(p1 @ g2) < 1e-12 and abs(p2 @ g1) < 1e-12  # each is orthogonal to the *other original*
    out = pcgrad(torch.stack([g1, g2]))
    torch.testing.assert_close(out, p1 + p2)
    assert not torch.allclose(out, g1 + g2)


def test_pcgrad_leaves_agreeing_gradients_alone() -> None:
    grads = torch.tensor([[1.0, 0.2, 0.0], [0.5, 1.0, 0.1], [0.0, 0.3, 2.0]])
    assert (grads @ grads.T >= 0).all()
    torch.testing.assert_close(pcgrad(grads), grads.sum(0))


def test_pcgrad_random_order_is_seeded() -> None:
    g = torch.Generator().manual_seed(3)
    grads = torch.randn(4, 6, generator=g)
    torch.testing.assert_close(pcgrad(grads, seed=5), pcgrad(grads, seed=5))


# ---------------------------------------------------------------- mgda


def mgda(grads: torch.Tensor, normalization: str = "none", losses=None) -> tuple[torch.Tensor, torch.Tensor]:
    tasks = [f"t{i}" for i in range(len(grads))]
    b = build_balancer("mgda", tasks, normalization=normalization)
    losses = losses or {t: torch.tensor(1.0) for t in tasks}
    out, w = b.combine_grads(grads, losses, BalanceContext(shared_params=[]))
    return out, torch.tensor([w[t] for t in tasks], dtype=torch.float64)


def grid_min_norm(grads: np.ndarray, step: float) -> float:
    T = len(grads)
    n = round(1 / step)
    best = math.inf
    for idx in itertools.product(range(n + 1), repeat=T - 1):
        if sum(idx) > n:
            continue
        a = np.array([*idx, n - sum(idx)]) / n
        best = min(best, float(np.sum((a @ grads) ** 2)))
    return best


@pytest.mark.parametrize("T,step,seed", [(2, 0.001, 0), (2, 0.001, 1), (3, 0.005, 0), (3, 0.005, 2)])
def test_mgda_is_the_min_norm_point(T: int, step: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    grads = torch.randn(T, 5, generator=g, dtype=torch.float64)
    out, alpha = mgda(grads)
    assert alpha.min() >= 0 and alpha.sum() == pytest.approx(1)
    torch.testing.assert_close(out, alpha @ grads)
    best = grid_min_norm(grads.numpy(), step)
    norm2 = float(out @ out)
    assert norm2 <= best + 1e-9  # no grid point beats it ...
    assert norm2 >= best - 1e-3 * float((grads**2).sum())  # ... and it is no illusion (grid is close)
    # KKT on the simplex: no vertex direction decreases the norm.
    assert (grads @ out >= norm2 - 1e-7).all()


def test_mgda_two_tasks_matches_closed_form() -> None:
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        g1, g2 = torch.randn(2, 7, generator=g, dtype=torch.float64)
        a = float(((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2))).clamp(0, 1))
        out, alpha = mgda(torch.stack([g1, g2]))
        assert alpha[0].item() == pytest.approx(a, abs=1e-12)
        torch.testing.assert_close(out, a * g1 + (1 - a) * g2)
    # Vertex solution: g1 is already the min-norm point of the segment.
    out, alpha = mgda(torch.tensor([[1.0, 0.0], [3.0, 1.0]], dtype=torch.float64))
    assert alpha.tolist() == [1.0, 0.0]


def test_mgda_normalization() -> None:
    g = torch.Generator().manual_seed(5)
    grads = torch.randn(3, 4, generator=g, dtype=torch.float64)
    scaled = grads * torch.tensor([[100.0], [1.0], [1.0]], dtype=torch.float64)
    # 'l2' sees unit vectors: rescaling one task's gradient leaves α unchanged; 'none' does not.
    assert torch.allclose(mgda(grads, "l2")[1], mgda(scaled, "l2")[1], atol=1e-6)
    assert not torch.allclose(mgda(grads)[1], mgda(scaled)[1], atol=1e-3)
    # 'loss' divides by the loss: scaling a task's loss and gradient together changes nothing.
    ones = {f"t{i}": torch.tensor(1.0) for i in range(3)}
    big = {**ones, "t0": torch.tensor(100.0)}
    assert torch.allclose(mgda(grads, "loss", ones)[1], mgda(scaled, "loss", big)[1], atol=1e-6)
    with pytest.raises(EdgeMTLError, match="normalization"):
        build_balancer("mgda", TASKS, normalization="l1")


# ---------------------------------------------------------------- cagrad


def cagrad(grads: torch.Tensor, **kw) -> torch.Tensor:
    b = build_balancer("cagrad", [f"t{i}" for i in range(len(grads))], **kw)
    return b.combine_grads(grads, {}, BalanceContext(shared_params=[]))[0]


def test_cagrad_c0_is_the_mean() -> None:
    grads = torch.randn(3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(cagrad(grads, c=0.0), grads.mean(0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cagrad_solves_its_conflict_averse_problem(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    grads = torch.randn(3, 6, generator=g, dtype=torch.float64)
    grads[1] = -0.8 * grads[0] + 0.3 * grads[1]  # a real conflict
    c = 0.5
    g0 = grads.mean(0)
    d = cagrad(grads, c=c, rescale=0)
    radius = c * g0.norm()
    assert (d - g0).norm() <= radius * (1 + 1e-6)
    worst = (grads @ d).min()
    assert worst >= (grads @ g0).min() - 1e-9
    # d maximises the worst task improvement over the whole ball: no sampled point does better.
    v = torch.randn(4000, 6, generator=g, dtype=torch.float64)
    r = torch.rand(4000, 1, generator=g, dtype=torch.float64) ** (1 / 6)
    r[:2000] = 1.0  # half on the boundary, where the optimum lies
    cand = g0 + radius * r * v / v.norm(dim=1, keepdim=True)
    assert (cand @ grads.T).min(dim=1).values.max() <= worst + 1e-6 * radius * grads.norm()
    torch.testing.assert_close(cagrad(grads, c=c, rescale=1), d / (1 + c**2))
    torch.testing.assert_close(cagrad(grads, c=c, rescale=2), d / (1 + c))


# ---------------------------------------------------------------- imtl_g / imtl


@pytest.mark.parametrize("T", [2, 3, 4])
def test_imtl_g_equal_projections(T: int) -> None:
    grads = torch.randn(T, 9, generator=torch.Generator().manual_seed(T), dtype=torch.float64)
    grads[0] *= 20  # very different scales: the plain sum would favour task 0
    b = build_balancer("imtl_g", [f"t{i}" for i in range(T)])
    out, w = b.combine_grads(grads, {}, BalanceContext(shared_params=[]))
    units = grads / grads.norm(dim=1, keepdim=True)
    proj = units @ out
    torch.testing.assert_close(proj, proj.mean().expand(T))
    assert sum(w.values()) == pytest.approx(1)
    assert not torch.allclose(units @ grads.sum(0), (units @ grads.sum(0)).mean().expand(T))


def test_imtl_g_end_to_end_on_shared_grads() -> None:
    model = Tiny()
    b = make("imtl_g")
    ctx = model.ctx()
    losses = model.losses()
    shared = ctx.shared_params
    task_g = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[t], shared, retain_graph=True)])
        for t in TASKS
    ]
    b.backward(losses, ctx)
    out = torch.cat([p.grad.reshape(-1) for p in shared])
    proj = torch.stack([g @ out / g.norm() for g in task_g])
    torch.testing.assert_close(proj, proj.mean().expand(3), rtol=1e-4, atol=1e-6)


def test_imtl_loss_scales_gradient() -> None:
    # IMTL-L: d/ds (e^s L − s) = e^s L − 1, zero when the scaled loss reaches 1.
    model = Tiny()
    b = make("imtl")
    with torch.no_grad():
        b.scales.copy_(torch.tensor([0.3, -0.2, 0.0]))
    losses = model.losses()
    values = torch.stack([losses[t].detach() for t in TASKS])
    b.backward(losses, model.ctx())
    torch.testing.assert_close(b.scales.grad, torch.exp(b.scales.detach()) * values - 1)


# ---------------------------------------------------------------- gls


def test_gls_is_the_geometric_mean() -> None:
    values = [0.3, 2.5, 11.0]
    losses = {t: torch.tensor(v, requires_grad=True) for t, v in zip(TASKS, values)}
    b = make("gls")
    total = b.combine(losses, b.weights(losses, BalanceContext(shared_params=[])))
    expected = math.prod(values) ** (1 / 3)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    total.backward()
    for t, v in zip(TASKS, values):  # each task's gradient is divided by its own loss
        assert losses[t].grad.item() == pytest.approx(expected / (3 * v), rel=1e-5)


# ---------------------------------------------------------------- amtl


def amtl(potentials=POTENTIALS, **kw):
    return build_balancer("amtl", list(potentials), potentials=potentials, **kw)


def test_amtl_lower_achievement_gets_higher_weight() -> None:
    # 'hard' has the higher accuracy but the lower achievement: AMTL favours it (DTP/FMTL would not).
    b = amtl({"hard": 0.90, "easy": 0.30})
    assert b.w == {"hard": 0.5, "easy": 0.5}  # 1/T before any KPI
    b.update_kpi({"hard": 0.60, "easy": 0.25})
    assert b.w["hard"] > b.w["easy"]
    f = build_balancer("fmtl", ["hard", "easy"])
    f.update_kpi({"hard": 0.60, "easy": 0.25})
    assert f.w["hard"] < f.w["easy"]


def test_amtl_hand_computed_weights() -> None:
    # notes §3: MobileNetV2 NYU potentials, KPIs (0.30, 0.70, 0.35), margin 0.05, γ = 2.
    pots = {"seg": 0.3798, "depth": 0.7685, "normal": 0.4151}
    kpi = {"seg": 0.30, "depth": 0.70, "normal": 0.35}
    raw = [(1 - kpi[t] / (pots[t] * 1.05)) ** 2 for t in pots]
    assert raw == pytest.approx([0.0614, 0.0176, 0.0388], abs=1e-4)
    soft = [math.exp(r) / sum(math.exp(x) for x in raw) for r in raw]
    assert soft == pytest.approx([0.3407, 0.3261, 0.3331], abs=1e-4)
    b = amtl(pots)
    b.update_kpi(kpi)
    assert [b.w[t] for t in pots] == pytest.approx(soft, rel=1e-9)
    s = amtl(pots, norm="sum")
    s.update_kpi(kpi)
    assert [s.w[t] for t in pots] == pytest.approx([0.5213, 0.1491, 0.3296], abs=1e-4)
    # EMA: the second KPI moves the smoothed value by 10 %.
    b.update_kpi({"seg": 0.40, "depth": 0.70, "normal": 0.35})
    assert b.kpi["seg"] == pytest.approx(0.1 * 0.40 + 0.9 * 0.30)


def test_amtl_clamps_achievement_above_potential() -> None:
    b = amtl({"a": 0.5, "b": 0.5}, focusing_factor=0.5, norm="sum")
    b.update_kpi({"a": 0.60, "b": 0.25})  # a: 0.60 / 0.525 > 1
    assert b.achievements(b.kpi)["a"] == 1.0
    assert b.w["a"] == 0.0 and b.w["b"] == 1.0
    soft = amtl({"a": 0.5, "b": 0.5}, focusing_factor=0.5)
    soft.update_kpi({"a": 0.60, "b": 0.25})
    wb = (1 - 0.25 / 0.525) ** 0.5
    assert soft.w["a"] == pytest.approx(1 / (1 + math.exp(wb)))  # softmax of (0, w̃_b)
    assert all(isinstance(v, float) and math.isfinite(v) for v in soft.w.values())


def test_amtl_combine() -> None:
    values = {"semseg": 0.4, "depth": 2.0, "normals": 7.0}
    losses = {t: torch.tensor(v) for t, v in values.items()}
    b = amtl()
    b.update_kpi({"semseg": 0.1, "depth": 0.5, "normals": 0.4})
    w = b.weights(losses, BalanceContext(shared_params=[]))
    geo = math.exp(sum(w[t] * math.log(values[t]) for t in TASKS))
    assert geo == pytest.approx(math.prod(values[t] ** w[t] for t in TASKS))
    assert b.combine(losses, w).item() == pytest.approx(geo, rel=1e-6)
    a = amtl(combine="arithmetic")
    a.update_kpi({"semseg": 0.1, "depth": 0.5, "normals": 0.4})
    assert a.combine(losses, w).item() == pytest.approx(sum(w[t] * values[t] for t in TASKS), rel=1e-6)


def test_amtl_bad_hyper_parameters() -> None:
    with pytest.raises(EdgeMTLError, match="'normals'"):
        build_balancer("amtl", TASKS, potentials={"semseg": 0.4, "depth": 0.7})
    with pytest.raises(EdgeMTLError, match="potential"):
        build_balancer("amtl", TASKS)
    with pytest.raises(EdgeMTLError, match="depth"):
        build_balancer("amtl", TASKS, potentials={**POTENTIALS, "depth": 75.0})
    with pytest.raises(EdgeMTLError, match="norm"):
        amtl(norm="l1")
    with pytest.raises(EdgeMTLError, match="\\[0, 1\\]"):
        amtl().update_kpi({"semseg": 40.0, "depth": 0.7, "normals": 0.4})
    with pytest.raises(EdgeMTLError, match="normals"):
        amtl().update_kpi({"semseg": 0.4, "depth": 0.7})


# ---------------------------------------------------------------- dwa


def test_dwa_formula() -> None:
    b = build_balancer("dwa", ["a", "b", "c"])
    b.epoch_end(0, {"a": 1.0, "b": 2.0, "c": 4.0})
    assert b.w == {"a": 1.0, "b": 1.0, "c": 1.0}  # uniform for the first two epochs
    b.epoch_end(1, {"a": 0.5, "b": 1.8, "c": 3.0})
    r = {"a": 0.5, "b": 0.9, "c": 0.75}
    z = sum(math.exp(v / 2) for v in r.values())
    expected = {t: 3 * math.exp(v / 2) / z for t, v in r.items()}
    assert b.w == pytest.approx(expected)
    assert max(b.w, key=b.w.get) == "b"  # decreased least
    assert sum(b.w.values()) == pytest.approx(3)
    b.epoch_end(2, {"a": 0.5, "b": 0.9, "c": 3.3})  # only the last two epochs count
    assert b.w["b"] < b.w["a"] < b.w["c"]
    with pytest.raises(EdgeMTLError, match="temperature"):
        build_balancer("dwa", TASKS, temperature=0)


# ---------------------------------------------------------------- uncertainty


@pytest.mark.parametrize("half", [False, True])
def test_uncertainty_optimum_at_log_loss(half: bool) -> None:
    values = torch.tensor([0.2, 1.7, 9.0])
    b = build_balancer("uncertainty", TASKS, half=half)
    ctx = BalanceContext(shared_params=[])
    with torch.no_grad():
        b.log_vars.copy_(values.log())
    b.backward({t: values[i].clone().requires_grad_() for i, t in enumerate(TASKS)}, ctx)
    assert b.log_vars.grad.abs().max() < 1e-6
    # Elsewhere the gradient is (½)(1 − e^{−s} L) and not zero: the check above can fail.
    b.log_vars.grad = None
    with torch.no_grad():
        b.log_vars.zero_()
    w = b.backward({t: values[i].clone().requires_grad_() for i, t in enumerate(TASKS)}, ctx)
    k = 0.5 if half else 1.0
    torch.testing.assert_close(b.log_vars.grad, k * (1 - values))
    assert list(w.values()) == pytest.approx([k] * 3)


# ---------------------------------------------------------------- gradnorm


def test_gradnorm_lowers_the_fast_task() -> None:
    g = torch.Generator().manual_seed(0)
    W = nn.Parameter(torch.randn(4, 4, generator=g))
    x = torch.randn(4, generator=g)
    ctx = BalanceContext(shared_params=[W], last_shared=W)
    b = build_balancer("gradnorm", ["fast", "slow"], lr=0.05)
    history = []
    for k in range(40):
        f = (W @ x).pow(2).sum()
        # Same gradient direction and size; only the training rates differ.
        w = b.backward({"fast": 0.85**k * f, "slow": f.clone()}, ctx)
        W.grad = None
        history.append(w["fast"] / w["slow"])
        assert sum(w.values()) == pytest.approx(2, abs=1e-5)
    assert history[0] == pytest.approx(1.0)
    assert history[-1] < 0.8
    assert history[-1] < history[len(history) // 2] < history[1]


def test_gradnorm_equal_rates_keep_equal_weights() -> None:
    W = nn.Parameter(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    ctx = BalanceContext(shared_params=[W], last_shared=W)
    b = build_balancer("gradnorm", ["a", "b"], lr=0.05)
    for k in range(10):
        f = W.sum() ** 2
        w = b.backward({"a": 0.9**k * f, "b": 0.9**k * f.clone()}, ctx)
        W.grad = None
    assert w["a"] == pytest.approx(w["b"], abs=1e-6)


# ---------------------------------------------------------------- dtp / fmtl


def test_dtp_weights() -> None:
    b = build_balancer("dtp", ["a", "b"])
    assert b.w == {"a": 1.0, "b": 1.0}
    b.update_kpi({"a": 0.3, "b": 0.6})
    assert b.w["a"] == pytest.approx(-(0.7**0.5) * math.log(0.3))
    assert b.w["b"] == pytest.approx(-(0.4**0.5) * math.log(0.6))
    assert b.w["a"] > b.w["b"]  # the lower KPI gets the larger weight
    b.update_kpi({"a": 0.5, "b": 0.6})
    k = 0.1 * 0.5 + 0.9 * 0.3
    assert b.w["a"] == pytest.approx(-((1 - k) ** 0.5) * math.log(k))
    with pytest.raises(EdgeMTLError, match="focusing_factor"):
        build_balancer("dtp", TASKS, focusing_factor=-1)


def test_fmtl_weights() -> None:
    b = build_balancer("fmtl", ["a", "b"])
    b.update_kpi({"a": 0.3, "b": 0.6})
    assert b.w == pytest.approx({"a": 0.49 / 0.65, "b": 0.16 / 0.65})


# ---------------------------------------------------------------- rlw


def test_rlw_seeded_and_random() -> None:
    model = Tiny()

    def run(seed: int) -> list[list[float]]:
        b = make("rlw")
        ctx = model.ctx(seed)
        out = []
        for _ in range(4):
            model.zero_grad()
            out.append(list(b.backward(model.losses(), ctx).values()))
        return out

    a = run(3)
    assert a == run(3)
    assert a != run(4)
    assert all(v > 0 for w in a for v in w) and all(sum(w) == pytest.approx(1) for w in a)
    assert len({tuple(w) for w in a}) == 4  # varies step to step


# ---------------------------------------------------------------- partially-labelled batches


@pytest.mark.parametrize("name", ALL)
def test_a_task_without_labels_in_the_batch(name: str) -> None:
    """Every balancer, primed, on a batch without 'depth' labels: finite gradients, the shared trunk
    and the present heads move, depth's head gets none, its weight stays as last used; and a stateless
    balancer gives the shared gradient of the same balancer built for the present tasks only."""
    model = Tiny()
    b = make(name)
    prime(b, model)
    before = dict(b.last_weights)
    model.zero_grad()
    losses = model.losses()
    present = {t: losses[t] for t in ("semseg", "normals")}
    used = b.step(present, model.ctx(seed=2))
    assert set(used) == set(TASKS) and used["depth"] == before["depth"]
    assert all(math.isfinite(v) for v in used.values())
    for p in model.trunk.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.heads["depth"].parameters())
    assert all(p.grad is not None for p in model.heads["semseg"].parameters())
    assert b.tasks == TASKS  # narrowed for the step only
    if name in STATEFUL:
        return
    ref_model = Tiny()
    ref = build_balancer(name, ["semseg", "normals"], **REQUIRED.get(name, {}))
    ref_model.zero_grad()
    l2 = ref_model.losses()
    ref.step({t: l2[t] for t in ("semseg", "normals")}, ref_model.ctx(seed=2))
    for p, q in zip(model.trunk.parameters(), ref_model.trunk.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_no_task_labelled_leaves_everything_as_it_was() -> None:
    model = Tiny()
    b = make("mgda")
    assert b.step({}, model.ctx()) == b.last_weights
    assert all(p.grad is None for p in model.params())


@pytest.mark.parametrize("name", ["gradnorm", "uncertainty", "imtl"])
def test_an_absent_tasks_balancer_state_does_not_move(name: str) -> None:
    """GradNorm's own optimizer, and the trainer's for uncertainty / imtl parameters (momentum, weight
    decay), would move the absent task's row; it stays as it was."""
    model = Tiny()
    b = make(name)
    prime(b, model)
    params = b.parameters()
    opt = torch.optim.AdamW(params, lr=0.1, weight_decay=0.1) if params else None
    if opt is not None:  # momentum from full steps first
        for _ in range(2):
            model.zero_grad()
            opt.zero_grad()
            b.step(model.losses(), model.ctx())
            opt.step()
    state = (b.w if name == "gradnorm" else params[0]).detach().clone()
    for _ in range(3):
        model.zero_grad()
        if opt is not None:
            opt.zero_grad()
        losses = model.losses()
        b.step({t: losses[t] for t in ("semseg", "normals")}, model.ctx())
        if opt is not None:
            opt.step()
        b.restore_absent()
    now = (b.w if name == "gradnorm" else params[0]).detach()
    assert now[1] == state[1]  # depth
    assert not torch.equal(now[[0, 2]], state[[0, 2]])
    if name == "gradnorm":
        assert float(now.sum()) == pytest.approx(3.0)
