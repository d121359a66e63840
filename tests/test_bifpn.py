"""The BiFPN neck and per-task inverted-residual heads (AMTL's VOC+NYU model), in hard sharing and in
the task-conditional ASTMT model; exported with the task input."""

from __future__ import annotations

import pytest
import torch

from edgemtl.errors import EdgeMTLError
from edgemtl.models import create_model

TASKS = {
    "semseg": {"out_channels": 5},
    "depth": {"out_channels": 1},
    "detection": {"out_channels": 8, "class_names": ["a", "b", "c"], "kind": "boxes"},
}
SMALL = {"backbone": "mobilenetv2_tiny", "image_size": (64, 64), "decoder_channels": 16, "decoder": "bifpn"}


@pytest.mark.parametrize("output_stride, sources", [(32, [3, 4, None]), (16, [4, None, None])])
def test_levels_come_from_the_backbone_or_are_pooled(output_stride, sources):
    m = create_model(arch="hard_sharing", tasks=TASKS, output_stride=output_stride, **SMALL).eval()
    assert m.decoder.src[1:] == sources[1:] and m.decoder.src[0] is not None
    feats = m.backbone(torch.rand(1, 3, 64, 64))
    levels = m.decoder.levels(feats)
    assert [tuple(p.shape[-2:]) for p in levels] == [(4, 4), (2, 2), (1, 1)]  # 1/16, 1/32, 1/64
    assert all(p.shape[1] == 16 for p in levels)
    assert m.decoder(feats).shape == (1, 16, 4, 4)  # every level at 1/16, fused


@pytest.mark.parametrize(
    "arch, se", [("hard_sharing", "shared"), ("astmt", "decoder"), ("astmt", "encoder_decoder")]
)
def test_models_with_the_neck_and_head_blocks_predict_every_task(arch, se):
    m = create_model(arch=arch, tasks=TASKS, se=se, head_blocks=2, output_stride=32, **SMALL).eval()
    with torch.no_grad():
        out = m.forward_all(torch.rand(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "semseg": (2, 5, 64, 64), "depth": (2, 1, 64, 64), "detection": (2, 8, 64, 64)
    }  # fmt: skip
    if arch == "astmt":  # task SE in the neck, per-task convs in the heads
        assert any(type(x).__name__ == "TaskSE" for x in m.decoder.modules())
        assert any(type(x).__name__ == "TaskConv2d" for x in m.head_blocks.modules())
        assert any(type(x).__name__ == "TaskSE" for x in m.head_blocks.modules())


def test_a_task_step_leaves_the_other_tasks_heads_unchanged():
    """ASTMT's per-task head blocks: training detection moves only detection's slice."""
    m = create_model(arch="astmt", tasks=TASKS, se="decoder", head_blocks=1, output_stride=32, **SMALL)
    conv = next(x for x in m.head_blocks.modules() if type(x).__name__ == "TaskConv2d")
    out = m.forward_task(torch.rand(2, 3, 64, 64), "detection")
    out.square().mean().backward()
    g = conv.weight.grad
    assert g[2].abs().sum() > 0 and g[0].abs().sum() == 0 and g[1].abs().sum() == 0


def test_config_errors_name_the_key():
    with pytest.raises(EdgeMTLError, match="model.bifpn_levels"):
        create_model(arch="hard_sharing", tasks=TASKS, bifpn_levels=[16, 48], **SMALL)
    with pytest.raises(EdgeMTLError, match="head_blocks needs a decoder"):
        create_model(arch="hard_sharing", tasks=TASKS, **{**SMALL, "decoder": "light"}, head_blocks=1)


def test_onehot_onnx_export_verifies(tmp_path):
    from edgemtl.export import export

    torch.manual_seed(0)
    m = create_model(arch="astmt", tasks=TASKS, se="decoder", head_blocks=1, output_stride=32, **SMALL).eval()
    res = export(m, "onnx", tmp_path / "m.onnx", images=None, num_images=1)
    assert res.metadata["verification"]["passed"] and res.metadata["task_input"]["scheme"] == "onehot"
    assert res.metadata["model_config"]["decoder"] == "bifpn"


def test_the_neck_is_refused_where_the_architecture_has_its_own_decoder():
    with pytest.raises(EdgeMTLError, match="not 'mtinet'"):
        create_model(arch="mtinet", tasks=TASKS, **SMALL)
