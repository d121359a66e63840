"""timm backbones (``features_only``), with ASTMT per-task modulation injected into their blocks.

Channels and strides always come from timm's ``feature_info``; nothing is hard-coded.
Adding a backbone is one ``register_timm`` line below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import Tensor, nn

from edgemtl.errors import EdgeMTLError
from edgemtl.models.modulation import SE, Modulated, TaskAdapter, TaskBatchNorm, TaskSE
from edgemtl.models.task_input import TaskContext
from edgemtl.registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    timm_kwargs: tuple[tuple[str, object], ...] = ()  # extra timm.create_model arguments


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_timm(name: str, timm_name: str | None = None, **timm_kwargs: object) -> None:
    BACKBONES.register(name)(BackboneSpec(name, timm_name or name, tuple(sorted(timm_kwargs.items()))))


for _w in ("050", "075", "100", "140"):
    register_timm(f"mobilenetv2_{_w}")
register_timm("efficientnetv2_b0", "tf_efficientnetv2_b0")
register_timm("efficientnetv2_rw_t")
register_timm("efficientnetv2_s", "tf_efficientnetv2_s")  # AMTL's VOC+NYU backbone (21 M params)
register_timm("efficientnet_lite0", "tf_efficientnet_lite0")
# timm's MobileNet-v2 generator at width 0.35 with one block per stage (depth_multiplier 0.25):
# 0.1 M params, the same block types and strides. For microcontroller-sized budgets and for the
# export tests, where graph size (not FLOPs) sets the lowering time. No pretrained weights exist.
register_timm("mobilenetv2_tiny", "mobilenetv2_035", depth_multiplier=0.25)

# (final projection BN, projection conv, all BNs) per timm block type: the per-task SE goes right
# after the projection BN and before the residual add, as in ASTMT's SE-MobileNet.
_BLOCK_LAYOUT = {
    "InvertedResidual": ("bn3", "conv_pwl", ("bn1", "bn2", "bn3")),
    "EdgeResidual": ("bn2", "conv_pwl", ("bn1", "bn2")),
    "DepthwiseSeparableConv": ("bn2", "conv_pw", ("bn1", "bn2")),
    "ConvBnAct": ("bn1", None, ("bn1",)),
}

_HEAD_KEYS = ("conv_head.", "bn2.", "classifier.")  # classifier parts absent from features_only


def load_state_dict_file(path: str) -> dict[str, Tensor]:
    if not os.path.isfile(path):
        raise EdgeMTLError(f"pretrained weights file not found: {path} (model.pretrained)")
    if path.endswith(".safetensors"):  # what the timm / Hugging Face hubs serve
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise EdgeMTLError(f"cannot read pretrained weights {path}: {str(e).splitlines()[0]}") from None
    from edgemtl.checkpoint import load_torch_file

    sd = load_torch_file(path, "pretrained weights file (model.pretrained)")
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise EdgeMTLError(f"{path} does not hold a state_dict")
    return sd


def load_pretrained(body: nn.Module, path: str) -> None:
    """Load a timm classification state_dict into a features_only body; every key must map."""
    sd = load_state_dict_file(path)
    own = body.state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked") or k in own}
    missing = sorted(k for k in own if k not in sd and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in sd if k not in own and not k.startswith(_HEAD_KEYS))
    shape = sorted(k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shape:
        raise EdgeMTLError(
            f"pretrained weights {path} do not match the backbone: {len(missing)} missing keys "
            f"{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, {len(shape)} shape "
            f"mismatches {shape[:5]}. Check model.backbone and model.pad_type."
        )
    body.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)


class Backbone(nn.Module):
    """A timm feature extractor returning all feature levels (strides 2, 4, 8, 16, 32/dilated)."""

    def __init__(
        self,
        name: str,
        output_stride: int = 16,
        pad_type: str = "",
        pretrained: str | None = None,
        se: str = "none",  # "none" | "shared" | "task"
        se_reduction: int = 4,
        per_task_bn: bool = False,
        adapters: bool = False,
        ctx: TaskContext | None = None,
    ) -> None:
        super().__init__()
        from edgemtl._compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        import timm

        spec = BACKBONES.get(name)
        kwargs = {"features_only": True, "output_stride": output_stride, **dict(spec.timm_kwargs)}
        if pad_type:
            kwargs["pad_type"] = pad_type
        if pretrained == "timm":
            try:
                body = timm.create_model(spec.timm_name, pretrained=True, **kwargs)
            except Exception as e:
                raise EdgeMTLError(
                    f"could not fetch timm's pretrained weights for {spec.timm_name} ({type(e).__name__}: "
                    f"{str(e)[:200]}). Offline? Pass a local file: model.pretrained=/path/to/weights.pth"
                ) from None
        else:
            body = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
            if pretrained:
                load_pretrained(body, pretrained)
        self.body = body
        self.pretrained_cfg = dict(getattr(body, "pretrained_cfg", {}) or {})
        self.channels: list[int] = list(body.feature_info.channels())
        self.reductions: list[int] = list(body.feature_info.reduction())
        num_tasks = ctx.num_tasks if ctx is not None else 1
        if (se == "task" or per_task_bn or adapters) and ctx is None:
            raise ValueError("task modulation in the encoder needs a TaskContext")
        for stage in body.blocks:
            for block in stage:
                layout = _BLOCK_LAYOUT.get(type(block).__name__)
                if layout is None:
                    raise EdgeMTLError(f"backbone {name}: unsupported timm block {type(block).__name__}")
                final_bn, proj, bns = layout
                if per_task_bn:
                    for bn in bns:
                        setattr(block, bn, TaskBatchNorm(getattr(block, bn), num_tasks, ctx))
                if adapters and proj is not None:
                    setattr(block, proj, TaskAdapter(getattr(block, proj), num_tasks, ctx))
                if se != "none":
                    c = _out_channels(block, proj)
                    mod = TaskSE(c, num_tasks, ctx, se_reduction) if se == "task" else SE(c, se_reduction)
                    setattr(block, final_bn, Modulated(getattr(block, final_bn), mod))

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.body(x)


def _out_channels(block: nn.Module, proj: str | None) -> int:
    conv = getattr(block, proj) if proj else block.conv
    conv = getattr(conv, "conv", conv)  # unwrap TaskAdapter
    return conv.out_channels
