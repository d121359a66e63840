"""Every registered architecture x tasks, on a tiny backbone and tiny inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.models import ARCHITECTURES, BACKBONES, create_model
from edgemtl.profile.counts import param_breakdown, profile_counts

TASKS = {
    "semseg": {"out_channels": 5},
    "depth": {"out_channels": 1},
    "normals": {"out_channels": 3},
    "edges": {"out_channels": 1},
    "saliency": {"out_channels": 1},
    "parts": {"out_channels": 4},
}
SIZE = (32, 32)
TINY = dict(
    backbone="mobilenetv2_050", image_size=SIZE, decoder_channels=16, low_level_channels=8, mti_channels=8
)


def tasks_for(arch: str) -> dict:
    return {"semseg": TASKS["semseg"]} if arch == "single_task" else TASKS


def build(arch: str, **kw):
    torch.manual_seed(0)
    return create_model(arch=arch, tasks=kw.pop("tasks", tasks_for(arch)), **{**TINY, **kw})


@pytest.fixture(scope="module", params=ARCHITECTURES.names())
def arch_model(request):
    return request.param, build(request.param)


def test_registry_lists_every_architecture():
    assert {"single_task", "hard_sharing", "astmt", "mtinet", "padnet"} <= set(ARCHITECTURES.names())
    assert {
        "mobilenetv2_050",
        "mobilenetv2_075",
        "mobilenetv2_100",
        "mobilenetv2_140",
        "efficientnetv2_b0",
        "efficientnetv2_rw_t",
        "efficientnet_lite0",
    } <= set(BACKBONES.names())


def test_forward_backward_shapes(arch_model):
    arch, model = arch_model
    model.train()
    x = torch.rand(2, 3, *SIZE)
    outs = model.forward_all(x)
    assert list(outs) == model.task_names
    for name, y in outs.items():
        assert y.shape == (2, TASKS[name]["out_channels"], *SIZE), name
        assert torch.isfinite(y).all()
    loss = sum(y.square().mean() for y in outs.values())
    model.zero_grad()
    loss.backward()
    stem = model.backbone.body.conv_stem.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_task_switching_changes_outputs_and_selection_modes_agree():
    model = build("astmt").eval()
    x = torch.rand(2, 3, *SIZE)
    t = len(model.task_names)
    outs = []
    for i in range(t):
        by_index = model(x, torch.tensor([i, i]))
        by_onehot = model(x, torch.nn.functional.one_hot(torch.tensor([i, i]), t).float())
        assert torch.equal(by_index, by_onehot), "one-hot and index selection must be bit-identical"
        c = TASKS[model.task_names[i]]["out_channels"]
        if c < by_index.shape[1]:
            assert by_index[:, c:].abs().max() == 0, "padded channels must be exactly zero"
        outs.append(by_index[:, :1])
    # Same head channel, different task -> different features: modulation really happens.
    assert (outs[0] - outs[1]).abs().max() > 1e-4
    # Mixed tasks in one batch (inference) equal the single-task results per sample.
    mixed = model(x, torch.tensor([0, 1]))
    assert torch.allclose(mixed[0], model(x[:1], torch.tensor([0]))[0], atol=1e-5)
    assert torch.allclose(mixed[1], model(x[1:], torch.tensor([1]))[0], atol=1e-5)


@pytest.mark.parametrize(
    "variant",
    [
        dict(se="decoder"),
        dict(se="encoder_decoder"),
        dict(se="shared"),
        dict(se="none"),
        dict(per_task_bn=True),
        dict(adapters=True),
        dict(aspp="per_task"),
        dict(decoder="light"),
    ],
)
def test_astmt_variants_run_and_modulate(variant):
    model = build("astmt", **variant)
    x = torch.rand(1, 3, *SIZE)
    model.train()
    y = model(x, torch.tensor([0]))
    y.sum().backward()
    model.eval()
    a, b = model(x, torch.tensor([0])), model(x, torch.tensor([1]))
    per_task_params = param_breakdown(model)[2]
    if variant.get("se") in ("shared", "none") and len(variant) == 1:
        # Only the prediction layer differs: channel 0 of semseg vs depth comes from other heads.
        assert per_task_params["semseg"] == per_task_params["depth"] > 0
    assert (a[:, :1] - b[:, :1]).abs().max() > 0


def test_decoder_only_modulation_runs_encoder_once():
    model = build("astmt", se="decoder").eval()
    assert model.encoder_shared
    calls = []
    h = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(1, 3, *SIZE)
    outs = model.forward_all(x)
    h.remove()
    assert len(calls) == 1
    for name, y in outs.items():  # same numbers as the per-task forward
        assert torch.allclose(y, model.forward_task(x, name), atol=1e-6)
    assert not build("astmt", se="encoder_decoder").encoder_shared


def test_param_breakdown_matches_declared_sharing():
    single = build("single_task")
    astmt_dec = build("astmt", se="decoder")
    astmt_enc = build("astmt", se="encoder_decoder")
    for m in (single, astmt_dec, astmt_enc, build("hard_sharing"), build("mtinet")):
        total, shared, per, aux = param_breakdown(m)
        assert total == sum(p.numel() for p in m.parameters())
        assert shared + sum(per.values()) + aux == total
    # Encoder modulation adds per-task parameters that decoder-only modulation does not have.
    assert param_breakdown(astmt_enc)[2]["semseg"] > param_breakdown(astmt_dec)[2]["semseg"] > 0
    # Shared part of hard sharing = everything but the 1x1 heads.
    hs = build("hard_sharing")
    _, _, per, _ = param_breakdown(hs)
    assert per["semseg"] == 16 * 5 + 5 and per["depth"] == 16 + 1


def test_profile_counts_macs():
    st = profile_counts(build("single_task"))
    astmt = profile_counts(build("astmt", se="decoder"))
    mt = profile_counts(build("mtinet"))
    # Task-conditional inference of one task costs about one single-task model.
    assert abs(astmt.macs_per_task["semseg"] / st.macs_per_task["semseg"] - 1) < 0.05
    # All tasks with a shared encoder cost less than T separate passes.
    assert astmt.macs_all_tasks < sum(astmt.macs_per_task.values())
    assert mt.macs_per_task["semseg"] == mt.macs_all_tasks


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["astmt", "hard_sharing", "mtinet", "padnet", "single_task"])
def test_torch_export_with_task_input(arch):
    model = build(arch).eval()
    modes = ["onehot", "index"] if model.conditional else [None]
    for mode in modes:
        ex = model.example_inputs(1, mode) if mode else model.example_inputs(1)
        ep = torch.export.export(model, ex)
        if model.conditional:
            for t in range(len(model.task_names)):
                task = (
                    torch.tensor([t])
                    if mode == "index"
                    else torch.nn.functional.one_hot(torch.tensor([t]), 6).float()
                )
                torch.testing.assert_close(ep.module()(ex[0], task), model(ex[0], task), atol=1e-5, rtol=1e-5)
        else:
            got, want = ep.module()(*ex), model(*ex)
            for k in want:
                torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5)


def test_auxiliary_tasks_and_deep_supervision():
    model = build(
        "mtinet",
        tasks={"semseg": TASKS["semseg"], "depth": TASKS["depth"]},
        aux_tasks={"normals": TASKS["normals"], "edges": TASKS["edges"]},
    )
    out, aux = model(torch.rand(1, 3, *SIZE), return_aux=True)
    assert set(out) == {"semseg", "depth"}
    assert set(aux) == {"scale_0", "scale_1", "scale_2", "scale_3"}
    assert set(aux["scale_0"]) == {"semseg", "depth", "normals", "edges"}
    assert param_breakdown(model)[3] > 0  # auxiliary-only parameters counted separately


def test_bad_task_input_is_a_clear_error():
    model = build("astmt").eval()
    x = torch.rand(1, 3, *SIZE)
    with pytest.raises(EdgeMTLError, match="out of range"):
        model(x, torch.tensor([6]))
    with pytest.raises(EdgeMTLError, match="out of range"):
        model(x, torch.tensor([-1]))
    with pytest.raises(EdgeMTLError, match="one-hot"):
        model(x, torch.ones(1, 6))
    with pytest.raises(EdgeMTLError, match="unknown task 'semseq'.*semseg"):
        model.forward_task(x, "semseq")


def test_config_errors_name_the_key():
    with pytest.raises(EdgeMTLError, match="architecture.*astm.*astmt"):
        create_model(arch="astm", tasks=TASKS)
    with pytest.raises(EdgeMTLError, match="backbone.*mobilenetv2_10.*mobilenetv2_100"):
        create_model(arch="astmt", backbone="mobilenetv2_10", tasks=TASKS)
    with pytest.raises(EdgeMTLError, match="output_stride"):
        create_model(arch="astmt", tasks=TASKS, output_stride=4)
    with pytest.raises(EdgeMTLError, match="se='encoder_decoder'.*hard_sharing"):
        create_model(arch="hard_sharing", tasks=TASKS, se="encoder_decoder")
    with pytest.raises(EdgeMTLError, match="exactly one task"):
        create_model(arch="single_task", tasks=TASKS, **TINY)
    with pytest.raises(EdgeMTLError, match="unknown model config key 'se_reductoin'.*se_reduction"):
        create_model({"arch": "astmt", "tasks": TASKS, "se_reductoin": 2})


@pytest.mark.parametrize(
    "backbone,output_stride", [("mobilenetv2_050", 8), ("efficientnetv2_b0", 16), ("efficientnet_lite0", 16)]
)
def test_backbones_and_output_stride(backbone, output_stride):
    model = build("astmt", backbone=backbone, output_stride=output_stride)
    assert max(model.backbone.reductions) == output_stride
    # Channels come from timm's feature_info, never hard-coded.
    assert model.backbone.channels == list(model.backbone.body.feature_info.channels())
    y = model(torch.rand(1, 3, *SIZE), torch.tensor([2]))
    assert y.shape == (1, 5, *SIZE)


def test_pretrained_loader_maps_every_key(tmp_path):
    from edgemtl._compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import timm

    ref = timm.create_model("mobilenetv2_050", pretrained=False)  # the classifier: head keys too
    torch.nn.init.normal_(ref.conv_stem.weight)
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    model = build("astmt", pretrained=str(path), per_task_bn=True)
    assert torch.equal(model.backbone.body.conv_stem.weight, ref.conv_stem.weight)
    # Per-task BN starts from the pretrained shared BN for every task.
    bn = model.backbone.body.blocks[1][0].bn1
    assert torch.equal(bn.weight[3], ref.blocks[1][0].bn1.weight)
    sd = ref.state_dict()
    del sd["blocks.1.0.conv_pw.weight"]
    torch.save(sd, path)
    with pytest.raises(EdgeMTLError, match="1 missing keys.*blocks.1.0.conv_pw.weight"):
        build("astmt", pretrained=str(path))
    torch.save({"conv_stem.weight": torch.zeros(3)}, path)
    with pytest.raises(EdgeMTLError, match="do not match"):
        build("astmt", pretrained=str(path))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(EdgeMTLError, match="cannot read pretrained weights.*truncated") as e:
        build("astmt", pretrained=str(path))
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
    torch.save({"conv_stem.weight": torch.zeros(3), "why": Path("x")}, path)  # a pickled object
    with pytest.raises(EdgeMTLError, match="holds pickled Python objects") as e:
        build("astmt", pretrained=str(path))
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
    # .safetensors, as the timm / Hugging Face hubs serve weights
    from safetensors.torch import save_file

    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(st))
    model = build("astmt", pretrained=str(st))
    assert torch.equal(model.backbone.body.conv_stem.weight, ref.conv_stem.weight)
    st.write_bytes(st.read_bytes()[:500])
    with pytest.raises(EdgeMTLError, match="cannot read pretrained weights .*model.safetensors"):
        build("astmt", pretrained=str(st))
    with pytest.raises(EdgeMTLError, match="not found"):
        build("astmt", pretrained=str(tmp_path / "nope.pth"))


def test_pretrained_timm_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EdgeMTLError, match="model.pretrained=/path"):
        build("astmt", pretrained="timm")


@pytest.mark.parametrize("per_task_bn", [None, False])
def test_bn_statistics_are_per_task_behind_task_gated_features(per_task_bn):
    """Eval-mode BN behind task-gated features needs each task's own running statistics.

    Alternating tasks on one fixed batch makes a BN's running mean converge to its input's batch
    mean. Behind a per-task SE the input differs per task, so one shared running mean cannot match
    every task (the eval-time failure per-task BN avoids); per-task running means match exactly.
    """
    torch.manual_seed(0)
    model = build("astmt", se="encoder_decoder", per_task_bn=per_task_bn)
    for m in model.modules():  # fast convergence of running statistics: 0.5^20 ~ 1e-6
        if isinstance(getattr(m, "momentum", None), float):
            m.momentum = 0.5
    bn = model.backbone.body.blocks[3][0].bn1  # input = conv of the task-gated output of blocks[2]
    seen = {}
    hook = bn.register_forward_pre_hook(lambda m, a: seen.__setitem__("mean", a[0].mean((0, 2, 3))))
    x = torch.rand(4, 3, *SIZE)
    batch_means = {}
    with torch.no_grad():
        model.train()
        for _ in range(20):
            for t in range(3):
                model(x, torch.full((4,), t))
                batch_means[t] = seen["mean"]
    hook.remove()
    gap = float((batch_means[0] - batch_means[1]).abs().max())
    assert gap > 1e-3, "task gating must change the BN input statistics"
    running = [
        bn.running_mean[t]
        if per_task_bn is None
        else bn.bn.running_mean
        if hasattr(bn, "bn")
        else bn.running_mean
        for t in range(3)
    ]
    errs = [float((running[t] - batch_means[t]).abs().max()) for t in range(3)]
    if per_task_bn is None:  # the default for task SE
        assert model.config.per_task_bn and max(errs) < 1e-3 * max(gap, 1), errs
    else:
        assert max(errs) > 0.2 * gap, errs


@pytest.mark.parametrize("selection", ["index", "onehot"])
def test_per_task_bn_trains_as_batchnorm2d_on_the_task_rows(selection):
    """A training step of per-task BN == nn.BatchNorm2d holding that task's parameters and
    statistics (float64): output, gradients of input and affine parameters, running statistics;
    the other tasks' rows receive no gradient and keep their statistics. Eval mode too."""
    from edgemtl.models.modulation import TaskBatchNorm
    from edgemtl.models.task_input import TaskContext

    torch.manual_seed(0)
    shared = torch.nn.BatchNorm2d(6).double()
    ctx = TaskContext(3)
    tbn = TaskBatchNorm(shared, 3, ctx).double()
    with torch.no_grad():
        for p in (tbn.weight, tbn.bias, tbn.running_mean):
            p.normal_()
        tbn.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in tbn.state_dict().items()}
    task = 1
    ref = torch.nn.BatchNorm2d(6, momentum=tbn.momentum, eps=tbn.eps).double()
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(ref, name).copy_(before[name][task])
    x = torch.randn(4, 6, 5, 7, dtype=torch.float64) * 3 + 1
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(4, 6, 5, 7, dtype=torch.float64)
    idx = torch.full((4,), task)
    ctx.set(idx if selection == "index" else torch.nn.functional.one_hot(idx, 3).double())
    tbn.train()
    y = tbn(x1)
    (y * g).sum().backward()
    y_ref = ref(x2)
    (y_ref * g).sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(tbn.weight.grad[task], ref.weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(tbn.bias.grad[task], ref.bias.grad, rtol=1e-10, atol=1e-12)
    others = [0, 2]
    assert not tbn.weight.grad[others].any() and not tbn.bias.grad[others].any()
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(tbn, name)[task], getattr(ref, name), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(getattr(tbn, name)[others], before[name][others], rtol=0, atol=0)
    tbn.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(tbn(x), ref(x), rtol=1e-10, atol=1e-12)
    ctx.clear()


@pytest.mark.parametrize(
    "kw",
    [
        dict(se="encoder_decoder"),
        dict(se="encoder_decoder", adapters=True, aspp="per_task"),
        dict(se="decoder", decoder="light"),
    ],
)
def test_specialize_bakes_one_task_in_exactly(kw):
    """The specialised model has no task modules left and computes forward_task of the original."""
    from edgemtl.models.specialize import specialize

    torch.manual_seed(0)
    tasks = {"semseg": {"out_channels": 5}, "depth": {"out_channels": 1}, "normals": {"out_channels": 3}}
    m = create_model(
        arch="astmt",
        tasks=tasks,
        backbone="mobilenetv2_tiny",
        image_size=(32, 32),
        decoder_channels=16,
        low_level_channels=8,
        **kw,
    ).eval()
    with torch.no_grad():  # make the tasks differ (fresh per-task parameters are copies of each other)
        for p in m.parameters():
            if getattr(p, "_edgemtl_per_task", False):
                p.add_(torch.randn_like(p) * 0.1)
        for n, b in m.named_buffers():
            if n.endswith("running_var"):
                b.add_(torch.rand_like(b))
    x = torch.rand(2, 3, 32, 32)
    outs = {}
    for t in m.task_names:
        s = specialize(m, t)
        assert not [type(mod).__name__ for mod in s.modules() if type(mod).__name__.startswith("Task")]
        with torch.no_grad():
            outs[t] = m.forward_task(x, t)
            torch.testing.assert_close(s.forward_task(x, t), outs[t], atol=1e-5, rtol=1e-5)
    assert (outs["semseg"][:, :1] - outs["depth"]).abs().max() > 1e-3, "the tasks really differ"
    with pytest.raises(EdgeMTLError, match="not task-conditional"):
        specialize(
            create_model(arch="hard_sharing", tasks=tasks, backbone="mobilenetv2_tiny", image_size=(32, 32)),
            "depth",
        )


def test_building_a_model_leaves_its_config_unchanged():
    """The backbone's normalisation is resolved into the model's own copy of the config."""
    from edgemtl.models.config import ModelConfig

    cfg = ModelConfig.from_dict(
        {
            "arch": "hard_sharing",
            "backbone": "mobilenetv2_tiny",
            "image_size": [32, 32],
            "decoder_channels": 16,
            "low_level_channels": 8,
            "tasks": {"semseg": {"out_channels": 3}},
        }
    )
    before = cfg.to_dict()
    model = create_model(cfg)
    assert cfg.to_dict() == before and cfg.mean is None
    assert model.config.mean is not None and len(model.config.mean) == 3
