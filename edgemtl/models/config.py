"""ModelConfig: everything needed to rebuild a model; it travels into checkpoints and artifacts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgemtl.errors import EdgeMTLError, did_you_mean, unknown_choice

SE_MODES = ("none", "shared", "decoder", "encoder_decoder")
DECODERS = ("aspp_lite", "light", "bifpn")
ASPP_MODES = ("shared", "per_task")


MIN_SIDE, MAX_SIDE = 32, 8192  # model.image_size bounds


@dataclass
class ModelConfig:
    """Typed model description.

    ``tasks`` maps task name -> the task's ``describe()`` dict (at least ``out_channels``), so a
    checkpoint or artifact is self-describing without the dataset at hand.
    """

    arch: str = "astmt"
    backbone: str = "mobilenetv2_100"
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    aux_tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # MTI-Net/PAD-Net only
    output_stride: int = 16
    pretrained: str | None = None  # None | "timm" (hub, online users) | path to a state_dict
    pad_type: str = ""  # "" (symmetric) | "same" (TF-style, e.g. the TF-slim MobileNet-v2 weights)
    mean: tuple[float, float, float] | None = None  # None -> the backbone's pretrained config
    std: tuple[float, float, float] | None = None
    image_size: tuple[int, int] = (128, 128)
    decoder: str = "aspp_lite"
    decoder_channels: int = 64  # ASTMT's MobileNet decoder width
    low_level_channels: int = 32
    aspp: str = "shared"
    aspp_rates: tuple[int, int, int] = (6, 12, 18)
    se: str | None = None  # None -> the architecture's default
    se_reduction: int = 4
    # None -> on wherever task SE modulates (ASTMT): after task-gated features, one set of BN
    # running statistics would average over differently-scaled tasks and break eval-mode BN.
    # Encoder BNs become per-task only when the encoder itself is modulated.
    per_task_bn: bool | None = None
    adapters: bool = False
    mti_channels: int = 32  # MTI-Net/PAD-Net per-scale width after the 1x1 reduction
    # decoder "bifpn" (hard sharing, ASTMT): the feature reductions and fusion rounds (AMTL's VOC+NYU
    # model: 1/16, 1/32, 1/64, two rounds, decoder_channels 64)
    bifpn_levels: tuple[int, ...] = (16, 32, 64)
    bifpn_repeats: int = 2
    # inverted-residual blocks per task before its prediction layer (AMTL's heads: 2 at 64 channels);
    # per task in ASTMT (per-task conv and BN), one stack per task in hard sharing
    head_blocks: int = 0

    def __post_init__(self) -> None:
        from edgemtl.models import ARCHITECTURES, BACKBONES
        from edgemtl.typed import coerce_fields

        coerce_fields(self, "model")

        if self.arch not in ARCHITECTURES:
            raise unknown_choice("architecture (model.arch)", self.arch, ARCHITECTURES.names())
        if self.backbone not in BACKBONES:
            raise unknown_choice("backbone (model.backbone)", self.backbone, BACKBONES.names())
        if not self.tasks:
            raise EdgeMTLError("model.tasks is empty: a model needs at least one task")
        for name, info in {**self.tasks, **self.aux_tasks}.items():
            if int(info.get("out_channels", 0)) < 1:
                raise EdgeMTLError(
                    f"model.tasks.{name}.out_channels must be >= 1 (got {info.get('out_channels')})"
                )
        if self.output_stride not in (8, 16, 32):
            raise EdgeMTLError(f"model.output_stride must be 8, 16 or 32 (got {self.output_stride})")
        arch_cls = ARCHITECTURES.get(self.arch)
        if self.se is None:
            self.se = arch_cls.default_se
        if self.per_task_bn is None:
            self.per_task_bn = bool(arch_cls.conditional and self.se in ("decoder", "encoder_decoder"))
        if self.se not in arch_cls.supported_se:
            raise EdgeMTLError(
                f"model.se='{self.se}' is not available for arch '{self.arch}' "
                f"(valid: {', '.join(arch_cls.supported_se)}); per-task SE needs a task-conditional arch "
                "such as astmt"
            )
        for key, value, choices in (
            ("se", self.se, SE_MODES),
            ("decoder", self.decoder, DECODERS),
            ("aspp", self.aspp, ASPP_MODES),
            ("pad_type", self.pad_type, ("", "same")),
        ):
            if value not in choices:
                raise unknown_choice(f"model.{key}", value, choices)
        if self.se_reduction < 1:
            raise EdgeMTLError(f"model.se_reduction must be >= 1 (got {self.se_reduction})")
        self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]
        if len(self.image_size) != 2 or not all(MIN_SIDE <= v <= MAX_SIDE for v in self.image_size):
            # The backbones reduce by 32 (a smaller side has no pixel left at the last stage); beyond
            # MAX_SIDE one float32 feature map alone takes GBs.
            raise EdgeMTLError(
                f"model.image_size must be [H, W] with each side in [{MIN_SIDE}, {MAX_SIDE}] "
                f"(got {list(self.image_size)})"
            )
        self.aspp_rates = tuple(int(v) for v in self.aspp_rates)  # type: ignore[assignment]
        self.bifpn_levels = tuple(int(v) for v in self.bifpn_levels)  # type: ignore[assignment]
        lv = self.bifpn_levels
        if len(lv) < 2 or any(b != 2 * a for a, b in zip(lv, lv[1:])) or lv[0] < 4:
            raise EdgeMTLError(
                f"model.bifpn_levels must list >= 2 reductions from 1/4 on, each twice the one before, "
                f"e.g. [16, 32, 64] (got {list(lv)})"
            )
        if self.head_blocks < 0:
            raise EdgeMTLError(f"model.head_blocks must be >= 0 (got {self.head_blocks})")
        if self.head_blocks and self.decoder == "light":
            raise EdgeMTLError("model.head_blocks needs a decoder (aspp_lite or bifpn), not the light heads")
        if (self.decoder == "bifpn" or self.head_blocks) and self.arch not in (
            "hard_sharing",
            "single_task",
            "astmt",
        ):
            raise EdgeMTLError(
                f"model.decoder=bifpn and model.head_blocks apply to hard_sharing, single_task and astmt, "
                f"not '{self.arch}' (it has its own decoder)"
            )
        if self.bifpn_repeats < 1:
            raise EdgeMTLError(f"model.bifpn_repeats must be >= 1 (got {self.bifpn_repeats})")
        for key in ("mean", "std"):
            v = getattr(self, key)
            if v is not None:
                if len(v) != 3:
                    raise EdgeMTLError(f"model.{key} needs 3 values (RGB), got {v}")
                setattr(self, key, tuple(float(x) for x in v))

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def check_keys(cls, d: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in names:
                raise EdgeMTLError(
                    f"unknown model config key '{key}'.{did_you_mean(key, names)} Valid keys: "
                    f"{', '.join(sorted(names))}"
                )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        cls.check_keys(d)
        return cls(**d)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)
