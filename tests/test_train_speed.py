"""Training speed settings (edgemtl.train.speed, the decode cache): each computes what it replaces."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from edgemtl.data.dataset import MultiTaskDataset
from edgemtl.errors import EdgeMTLError
from edgemtl.recipes import load_recipe
from edgemtl.train.speed import DilatedDepthwiseConv2d, fast_dilated_depthwise, plain_convs, resolve_precision
from edgemtl.train.trainer import Trainer


@pytest.mark.parametrize(
    "c, h, w, d, bias",
    [
        (8, 8, 8, 2, False),
        (6, 9, 11, 3, True),
        (8, 8, 8, 12, True),
        (4, 8, 13, 18, False),
        (4, 9, 9, 8, True),
        (5, 6, 7, 6, False),
    ],
)
def test_fast_dilated_depthwise_matches_torch(c, h, w, d, bias):
    """Same outputs and gradients (input, weight, bias) as torch's conv, in float64."""
    torch.manual_seed(0)
    ref = nn.Conv2d(c, c, 3, padding=d, dilation=d, groups=c, bias=bias).double()
    fast = nn.Conv2d(c, c, 3, padding=d, dilation=d, groups=c, bias=bias).double()
    fast.load_state_dict(ref.state_dict())
    assert fast_dilated_depthwise(fast) == 1 and type(fast) is DilatedDepthwiseConv2d
    x = torch.randn(3, c, h, w, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, c, h, w, dtype=torch.float64)
    y_ref, y_fast = ref(x), fast(x)
    assert torch.allclose(y_ref, y_fast, atol=1e-12)
    for a, b in zip(
        torch.autograd.grad(y_ref, [x, *ref.parameters()], g),
        torch.autograd.grad(y_fast, [x, *fast.parameters()], g),
    ):
        assert torch.allclose(a, b, atol=1e-10)
    plain_convs(fast)
    assert type(fast) is nn.Conv2d and list(fast.state_dict()) == list(ref.state_dict())


def test_only_stride1_same_padded_dilated_depthwise_convs_are_switched():
    convs = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # not dilated
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, stride=2),  # strided
        nn.Conv2d(8, 8, 3, padding=1, dilation=2, groups=8),  # not "same"
        nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=8),  # not depthwise
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),
    )  # eligible
    assert fast_dilated_depthwise(convs) == 1 and type(convs[4]) is DilatedDepthwiseConv2d


def test_decode_cache_is_bit_identical_and_reads_no_file_again(mixed_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(mixed_data, root)
    cached = MultiTaskDataset(root, "train", tasks=["semseg", "normals", "depth"], cache_gib=1.0)
    assert cached.preload() == len(cached)
    for p in list((root / "images").iterdir()) + list((root / "depth").iterdir()):
        p.unlink()  # everything now comes from memory
    fresh = MultiTaskDataset(mixed_data, "train", tasks=["semseg", "normals", "depth"])
    for i in range(len(fresh)):
        x, y = fresh[i], cached[i]
        for k in ("image", "semseg", "normals", "depth"):
            assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), (i, k)
    y["image"].add_(1.0)  # a consumer writing into an item never reaches the cache
    assert torch.equal(cached[len(cached) - 1]["image"], fresh[len(fresh) - 1]["image"])
    tight = MultiTaskDataset(mixed_data, "train", tasks=["semseg"], cache_gib=1e-5)  # ~10 kB: a few items
    assert 0 < tight.preload() < len(tight) and tight._cache_bytes <= 1e-5 * 2**30
    with pytest.raises(EdgeMTLError, match="cache_gib"):
        MultiTaskDataset(mixed_data, "train", cache_gib=-1)


def _trainer(write_recipe, tmp_path, name, **train):
    recipe = load_recipe(
        str(
            write_recipe(
                name,
                model={"arch": "hard_sharing"},
                tasks=("semseg", "normals"),
                train={"max_steps_per_epoch": 3, "balancer": "uniform", **train},
            )
        )
    )
    return Trainer(recipe, tmp_path / name, progress=False, baselines_path=str(tmp_path / "b.json"))


def test_cache_and_workers_leave_training_bit_identical(write_recipe, tmp_path):
    base = {"precision": "fp32", "channels_last": False, "data_cache": 0}
    plain = _trainer(write_recipe, tmp_path, "plain", **base)
    fast = _trainer(write_recipe, tmp_path, "cached", **{**base, "data_cache": 1.0, "num_workers": 1})
    plain.fit()
    fast.fit()
    loss = [
        json.loads((tmp_path / r / "metrics.jsonl").read_text())["train_loss"] for r in ("plain", "cached")
    ]
    assert loss[0] == loss[1]
    for (n, p), (_, q) in zip(plain.model.state_dict().items(), fast.model.state_dict().items()):
        assert torch.equal(p, q), n


def test_channels_last_and_fast_convs_change_only_rounding(write_recipe, tmp_path):
    """One step's losses and gradients with the defaults (NHWC, the fast dilated depthwise backward)
    against NCHW and torch's convs, in float64: the same function. (In float32 the early layers'
    gradients of this tiny random network differ by up to ~25 % between NCHW and NHWC: train-mode
    BN over 3x3 maps of 4 images makes them ill-conditioned, so any kernel change shows as much.)"""
    from edgemtl.train.steps import _forward

    ref = _trainer(write_recipe, tmp_path, "ref", channels_last=False)
    plain_convs(ref.model)
    fast = _trainer(write_recipe, tmp_path, "fast")
    assert fast.channels_last and any(type(m) is DilatedDepthwiseConv2d for m in fast.model.modules())
    batch = next(iter(ref._loader("train", ref.train_ds, True)))
    grads, losses = [], []
    for tr in (ref, fast):
        tr.model.double().train()
        b = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}
        b = tr._to_device(b)
        outs, _, _ = _forward(tr.step_ctx, b["image"], list(tr.tasks), False, False)
        total = sum(tr.tasks[n].loss(outs[n], b[n]) for n in tr.tasks)
        total.backward()
        losses.append(total.item())
        grads.append({n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None})
    ref.release()
    fast.release()
    assert losses[0] == pytest.approx(losses[1], rel=1e-10)
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        scale = grads[0][n].abs().max().item() + 1e-30
        assert (grads[0][n] - grads[1][n]).abs().max().item() <= 1e-7 * scale, n


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_trains(write_recipe, tmp_path, precision):
    tr = _trainer(write_recipe, tmp_path, precision, precision=precision, max_steps_per_epoch=2)
    assert tr.amp.precision == precision and (tr.amp.scaler is not None) == (precision == "fp16")
    summary = tr.fit()
    assert all(
        np.isfinite(v) for m in summary["metrics"].values() for v in m.values() if isinstance(v, float)
    )
    if precision == "fp16":  # the loss scale travels in the checkpoint for an exact resume
        ckpt = torch.load(tmp_path / precision / "last.pt", weights_only=True)
        assert ckpt["extra"]["train_state"]["grad_scaler"]["scale"] > 0


def test_precision_choices(write_recipe, tmp_path):
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(EdgeMTLError, match="train.precision"):
        _trainer(write_recipe, tmp_path, "p", precision="fp8")
    with pytest.raises(EdgeMTLError, match="fp16 needs loss scaling.*pcgrad.*bf16"):
        _trainer(write_recipe, tmp_path, "g", precision="fp16", balancer="pcgrad")


def test_epoch_sampler_keeps_the_order_of_earlier_releases():
    """Data order depends only on (seed, epoch), as RandomSampler with a seeded generator gave it: runs
    started before the persistent loader resume on the same order."""
    from edgemtl.train.data import EpochRandomSampler

    s = EpochRandomSampler(37, seed=4)
    for epoch in (0, 3):
        s.set_epoch(epoch)
        old = torch.utils.data.RandomSampler(
            range(37), generator=torch.Generator().manual_seed(4 * 100003 + epoch)
        )
        assert list(s) == list(old)


def test_resume_refuses_another_precision_than_the_run_trained_in(write_recipe, tmp_path, monkeypatch):
    """'auto' resolves per machine: a run resumed where it would mean bf16 must not silently switch."""
    monkeypatch.setattr("edgemtl.train.speed.cpu_bf16_pays_off", lambda: False)  # trained without bf16
    _trainer(write_recipe, tmp_path, "run", max_steps_per_epoch=1).fit()
    monkeypatch.setattr("edgemtl.train.speed.cpu_bf16_pays_off", lambda: True)
    recipe = load_recipe(str(tmp_path / "run.yaml"))
    recipe = recipe.with_train(epochs=2)
    with pytest.raises(EdgeMTLError, match="trained in fp32.*would continue in bf16.*train.precision=fp32"):
        Trainer(
            recipe, tmp_path / "run", resume=True, progress=False, baselines_path=str(tmp_path / "b.json")
        )


def test_unit_normalize_is_f_normalize_with_finite_gradients():
    from edgemtl.tasks.normals import unit_normalize

    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    x[0, :, 1, 1] = 0.0  # an exactly-zero prediction (e.g. a freshly initialised head)
    x.requires_grad_()
    assert torch.allclose(unit_normalize(x), torch.nn.functional.normalize(x, dim=1, eps=1e-6))
    (g,) = torch.autograd.grad(unit_normalize(x).sum(), x)
    assert torch.isfinite(g).all()
    small = torch.full((1, 3, 2, 2), 1e-5, dtype=torch.float16, requires_grad=True)  # fp16 would underflow
    (g16,) = torch.autograd.grad(unit_normalize(small).sum(), small)
    assert torch.isfinite(g16).all() and torch.isfinite(unit_normalize(small)).all()


def test_native_bf16_flags_are_read_and_key_bench_runs(tmp_path, monkeypatch):
    """amx_bf16 makes train.precision=auto mean bf16 on a CPU (avx512_bf16 alone does not: slower
    than fp32 where measured); a bench run made that way gets its own key, so it is never reused
    as the fp32 run of the same recipe (and fp32 keys stay)."""
    from edgemtl.bench.runner import recipe_hash
    from edgemtl.profile.cpu import cpu_features
    from edgemtl.recipes import Recipe

    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu avx2 fma avx512f avx512_bf16 amx_bf16 amx_int8 amx_tile\n")
    assert {"avx512_bf16", "amx_bf16", "amx_int8"} <= set(cpu_features(str(info)))
    info.write_text("processor : 0\nflags : fpu avx2 fma\n")
    assert cpu_features(str(info)) == ["avx2", "fma"]
    from edgemtl.train.speed import cpu_bf16_pays_off, resolve_precision

    for flags, want in (
        (["avx512_bf16", "amx_bf16"], "bf16"),
        (["avx512f", "avx512_bf16"], "fp32"),
        ([], "fp32"),
    ):
        monkeypatch.setattr("edgemtl.profile.cpu.cpu_features", lambda path=None, f=flags: f)
        assert cpu_bf16_pays_off() == (want == "bf16")
        assert resolve_precision("auto", torch.device("cpu")) == want
    monkeypatch.undo()

    recipe = Recipe(
        "r", model={"arch": "hard_sharing"}, tasks=["semseg"], data={"root": "d"}, train={"device": "cpu"}
    )
    monkeypatch.setattr("edgemtl.train.speed.cpu_bf16_pays_off", lambda: False)
    fp32_auto = recipe_hash(recipe)
    monkeypatch.setattr("edgemtl.train.speed.cpu_bf16_pays_off", lambda: True)
    assert recipe_hash(recipe) != fp32_auto  # auto -> bf16 here: another run
    assert recipe_hash(recipe.with_train(precision="fp32")) == fp32_auto  # the same fp32 run as before
    assert recipe_hash(recipe.with_train(precision="bf16")) == recipe_hash(recipe)
    monkeypatch.setattr("edgemtl.train.speed.cpu_bf16_pays_off", lambda: False)
    assert recipe_hash(recipe) == fp32_auto
