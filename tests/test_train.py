"""Training loops on tiny synthetic data: real models, real optimisers, real checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.recipes import load_recipe
from edgemtl.train.adversarial import ganin_alpha, grad_reverse
from edgemtl.train.trainer import Trainer


def make_trainer(write_recipe, tmp_path, name="run", resume=False, **kw):
    recipe = load_recipe(str(write_recipe(**kw)))
    return Trainer(
        recipe,
        tmp_path / name,
        resume=resume,
        progress=False,
        baselines_path=str(tmp_path / "baselines.json"),
    )


def test_single_tasking_step_touches_only_that_tasks_parameters(write_recipe, tmp_path):
    tr = make_trainer(
        write_recipe, tmp_path, train={"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.01}
    )
    assert tr.loop == "single_tasking"
    groups = {g["name"]: g["lr"] for g in tr.optimizer.param_groups}
    assert groups["shared"] == pytest.approx(groups["task_specific"] / 3)  # lr / T for shared weights
    from edgemtl.train.steps import single_tasking_step

    batch = next(iter(torch.utils.data.DataLoader(tr.train_ds, batch_size=4)))
    se = tr.model.backbone.body.blocks[2][0].bn3[1]  # a per-task SE deep in the encoder
    head = tr.model.head
    for _ in range(2):  # two batches: momentum buffers exist after the first
        before_se, before_head = se.w1.detach().clone(), head.weight.detach().clone()
        before_stem = tr.model.backbone.body.conv_stem.weight.detach().clone()
        # Run only the first task's step by restricting the task dict.
        tr.step_ctx.tasks = {"semseg": tr.tasks["semseg"]}
        single_tasking_step(tr.step_ctx, batch, "test")
        assert not torch.equal(se.w1[0], before_se[0]), "semseg's own SE row must move"
        assert torch.equal(se.w1[1:], before_se[1:]), "other tasks' SE rows must not move (momentum/decay)"
        assert torch.equal(head.weight[1:], before_head[1:])
        assert not torch.equal(tr.model.backbone.body.conv_stem.weight, before_stem)


@pytest.mark.slow
def test_train_resume_is_exact(write_recipe, tmp_path):
    kw = dict(train={"epochs": 2, "max_steps_per_epoch": 2, "balancer": "dwa"})
    full = make_trainer(write_recipe, tmp_path, "full", **kw)
    full.fit()
    first = make_trainer(write_recipe, tmp_path, "split", **{**kw, "train": {**kw["train"], "epochs": 2}})
    first.cfg.epochs = 1  # stop after one epoch, as if interrupted
    first.fit()
    resumed = make_trainer(write_recipe, tmp_path, "split", resume=True, **kw)
    assert resumed.epoch == 1
    resumed.fit()
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    losses_full = [
        json.loads(line)["train_loss"]
        for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    ]
    losses_res = [
        json.loads(line)["train_loss"]
        for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses_full == losses_res  # same next-step losses on the same data order


def test_resume_of_a_run_started_from_pretrained_weights(write_recipe, tmp_path):
    # Checkpoints store model.pretrained as None (the weights are in the file); the resume check once
    # compared it with the recipe's path and refused every interrupted bench run with ImageNet weights.
    from edgemtl._compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import timm

    weights = tmp_path / "imagenet.pth"  # a timm state_dict, as ImageNet weights files are
    torch.save(timm.create_model("mobilenetv2_050", pretrained=False).state_dict(), weights)
    kw = dict(model={"pretrained": str(weights)}, train={"epochs": 2})
    first = make_trainer(write_recipe, tmp_path, "run", **kw)
    first.cfg.epochs = 1  # interrupted after one epoch
    first.fit()
    resumed = make_trainer(write_recipe, tmp_path, "run", resume=True, **kw)
    assert resumed.epoch == 1
    resumed.fit()
    assert resumed.epoch == 2


def test_resume_of_a_run_made_by_an_older_edgemtl(write_recipe, tmp_path):
    """A run whose config lacks fields added since (model.bifpn_levels, ...) ran with their defaults;
    and train.precision 'auto' is the same run as the precision it resolves to here."""
    from edgemtl.train.speed import resolve_precision

    here = resolve_precision("auto", torch.device("cpu"))
    kw = dict(train={"epochs": 2, "precision": here})
    first = make_trainer(write_recipe, tmp_path, "run", **kw)
    first.cfg.epochs = 1
    first.fit()
    last = tmp_path / "run" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    for key in ("bifpn_levels", "bifpn_repeats", "head_blocks"):
        del ckpt["model_config"][key]
    ckpt["extra"]["train_config"]["precision"] = "auto"
    torch.save(ckpt, last)
    resumed = make_trainer(write_recipe, tmp_path, "run", resume=True, **kw)
    assert resumed.epoch == 1
    ckpt["model_config"]["decoder_channels"] = 999  # a real difference is still refused
    torch.save(ckpt, last)
    with pytest.raises(EdgeMTLError, match="model.decoder_channels: run 999"):
        make_trainer(write_recipe, tmp_path, "run", resume=True, **kw)


def test_existing_run_needs_resume(write_recipe, tmp_path):
    make_trainer(write_recipe, tmp_path).fit()
    with pytest.raises(EdgeMTLError, match="--resume"):
        make_trainer(write_recipe, tmp_path)


def test_nan_guard_names_task_and_step(write_recipe, tmp_path, monkeypatch):
    tr = make_trainer(write_recipe, tmp_path)
    calls = {"n": 0}
    orig = tr.tasks["normals"].loss

    def bad(pred, target):
        calls["n"] += 1
        return orig(pred, target) * (float("nan") if calls["n"] == 2 else 1.0)

    monkeypatch.setattr(tr.tasks["normals"], "loss", bad)
    with pytest.raises(EdgeMTLError, match=r"non-finite normals loss \(nan\) at epoch 1, step 2"):
        tr.fit()


@pytest.mark.parametrize(
    "arch,balancer,extra",
    [
        ("hard_sharing", "pcgrad", {}),
        (
            "hard_sharing",
            "amtl",
            {"balancer_params": {"potentials": {"semseg": 0.5, "normals": 0.5, "edges": 0.5}}},
        ),
        ("mtinet", "uncertainty", {}),
        ("astmt", "gradnorm", {"loop": "joint"}),
    ],
)
def test_joint_loop_with_balancers(write_recipe, tmp_path, arch, balancer, extra):
    model = {"arch": arch} if arch != "hard_sharing" else {"arch": arch, "se": "shared"}
    if arch == "mtinet":
        model["se"] = "none"
    tr = make_trainer(
        write_recipe,
        tmp_path,
        model=model,
        train={"balancer": balancer, **extra},
        **({"aux_tasks": ["depth"]} if arch == "mtinet" else {}),
    )
    assert tr.loop == "joint"
    summary = tr.fit()
    assert set(summary["metrics"]) == {"semseg", "normals", "edges"}
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(rec["weights"]) == {"semseg", "normals", "edges"} and all(
        map(lambda v: v == v, rec["weights"].values())
    )


def test_single_tasking_rejects_joint_only_balancers(write_recipe, tmp_path):
    with pytest.raises(EdgeMTLError, match="train.loop=joint"):
        make_trainer(write_recipe, tmp_path, train={"balancer": "pcgrad"})


def test_recipe_errors_name_the_key(write_recipe, tmp_path):
    with pytest.raises(EdgeMTLError, match="train.epoch'.*epochs"):
        make_trainer(write_recipe, tmp_path, train={"epoch": 3})
    with pytest.raises(EdgeMTLError, match="train.balancer.*pcgard.*pcgrad"):
        make_trainer(write_recipe, tmp_path, train={"balancer": "pcgard"})
    with pytest.raises(EdgeMTLError, match="unknown task 'normal'"):
        make_trainer(write_recipe, tmp_path, tasks=("semseg", "normal"))


def test_recipe_carries_its_typed_train_config(write_recipe):
    """Bad train settings fail when the recipe loads (naming the file); changes make a new recipe."""
    from edgemtl.quant.config import QuantConfig
    from edgemtl.train.config import TrainConfig

    path = write_recipe(train={"lr": "2e-3"})  # YAML 1.1 reads 2e-3 as a string: coerced, not refused
    recipe = load_recipe(str(path))
    cfg = recipe.train_config
    assert isinstance(cfg, TrainConfig) and cfg.lr == 2e-3 and cfg.epochs == 1
    assert cfg.momentum == TrainConfig().momentum  # defaults from the one place they live
    with pytest.raises(EdgeMTLError, match=rf"{path}.*train.epochs: expected an integer"):
        load_recipe(str(path), ["train.epochs=two"])
    qat = QuantConfig(qat_epochs=3, lr_scale=0.5).finetune_recipe(recipe)
    assert (qat.train_config.epochs, qat.train_config.lr, qat.train_config.adversarial) == (3, 1e-3, False)
    assert recipe.train_config.epochs == 1 and recipe.train["lr"] == "2e-3"  # the original is untouched
    with pytest.raises(EdgeMTLError, match="train.epochs must be >= 1"):
        recipe.with_train(epochs=0)


def test_gradient_reversal_and_schedule():
    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))
    assert ganin_alpha(0, 100) == pytest.approx(2 / (1 + 2.718281828**-0.1) - 1, rel=1e-6)
    assert ganin_alpha(99, 100) > 0.99


@pytest.mark.parametrize("loop", ["single_tasking", "joint"])
def test_adversarial_training_changes_encoder_gradients(write_recipe, tmp_path, loop):
    tr = make_trainer(write_recipe, tmp_path, train={"adversarial": True, "adv_weight": 0.5, "loop": loop})
    assert tr.disc is not None
    from edgemtl.train.adversarial import discriminator_loss

    batch = next(iter(torch.utils.data.DataLoader(tr.train_ds, batch_size=2)))
    out, feats = tr.model(batch["image"], torch.tensor([0, 0]), return_features=True)
    loss = tr.tasks["semseg"].loss(out[:, :10], batch["semseg"])
    d = discriminator_loss(loss, feats, 0, tr.tasks["semseg"].valid_mask(batch["semseg"]), tr.disc, 1.0)
    stem = tr.model.backbone.body.conv_stem.weight
    (g_adv,) = torch.autograd.grad(d, stem, retain_graph=True)
    assert g_adv.abs().sum() > 0, "the discriminator loss must reach the encoder through double backprop"
    disc_w = tr.disc.net[0].weight
    (g_d,) = torch.autograd.grad(d, disc_w)
    assert g_d.abs().sum() > 0
    summary = tr.fit()
    assert "semseg" in summary["metrics"]


def test_single_task_runs_feed_delta_m(write_recipe, tmp_path):
    reg = tmp_path / "baselines.json"
    for t in ("semseg", "normals"):
        make_trainer(
            write_recipe, tmp_path, name=f"st_{t}", model={"arch": "single_task", "se": "shared"}, tasks=(t,)
        ).fit()
    entries = json.loads(reg.read_text())
    assert len(entries) == 2 and all("|mobilenetv2_050|48x48|seed0|" in k for k in entries)
    summary = make_trainer(write_recipe, tmp_path, name="mtl", tasks=("semseg", "normals")).fit()
    base = {k.split("|")[-1]: v["metrics"] for k, v in entries.items()}
    p = summary["primary"]
    expect = 50 * (
        (p["semseg"] - base["semseg"]["mIoU"]) / base["semseg"]["mIoU"]
        - (p["normals"] - base["normals"]["mean"]) / base["normals"]["mean"]
    )
    assert summary["delta_m"] == pytest.approx(expect)
