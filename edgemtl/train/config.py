"""TrainConfig: the ``train`` section of a recipe, typed and validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgemtl.errors import EdgeMTLError, did_you_mean, unknown_choice

LOOPS = ("auto", "single_tasking", "joint")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("poly", "cosine", "constant")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 16
    loop: str = "auto"  # auto: single_tasking for task-conditional models, joint otherwise
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "poly"
    poly_power: float = 0.9
    warmup_epochs: int = 0
    balancer: str = "fixed"
    balancer_params: dict[str, Any] = field(default_factory=dict)
    loss_weights: dict[str, float] = field(default_factory=dict)  # overrides the tasks' fixed weights
    aux_weight: float = 1.0  # deep supervision (MTI-Net / PAD-Net initial predictions)
    adversarial: bool = False
    adv_weight: float = 0.01  # ASTMT's dscr_w: (1 - w) * task loss + w * discriminator loss
    adv_lr_mult: float = 10.0
    adv_hidden: int = 64
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    val_split: str = "val"
    eval_every: int = 1
    augment: bool = True
    scales: tuple[float, float] = (0.75, 1.25)
    crop: tuple[int, int] | None = None  # training crop HxW; None = the model's image_size
    grad_clip: float | None = None
    max_steps_per_epoch: int | None = None  # cap for quick runs (quickstart, tests)
    edge_thresholds: int = 15  # validation edge metric thresholds (fewer = faster)
    deterministic: bool = True
    # Speed (edgemtl.train.speed): none of these changes results beyond floating-point rounding.
    precision: str = "auto"  # fp32 | bf16 | fp16 | auto (bf16 on CUDA and on CPUs with AMX, else fp32)
    channels_last: bool | None = None  # None: on for CPU and CUDA (NHWC activations)
    compile: bool = False  # torch.compile the model
    data_cache: float = (
        4.0  # GiB of decoded images and labels kept in memory per split (0 = decode every time)
    )

    def __post_init__(self) -> None:
        from edgemtl.typed import coerce_fields

        coerce_fields(self, "train")  # YAML reads 1e-4 as a string; --set train.epochs=two must be refused
        for key, value, choices in (
            ("loop", self.loop, LOOPS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
        ):
            if value not in choices:
                raise unknown_choice(f"train.{key}", value, choices)
        from edgemtl.balancers import BALANCERS

        if self.balancer not in BALANCERS:
            raise unknown_choice("train.balancer", self.balancer, BALANCERS.names())
        for key in ("epochs", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise EdgeMTLError(f"train.{key} must be >= 1 (got {getattr(self, key)})")
        import math

        # nan passes every comparison below and inf trains to NaN at step 1: refuse both up front
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise EdgeMTLError(f"train.{f.name} must be a finite number (got {v})")
        for key in ("loss_weights", "balancer_params"):
            for k, v in getattr(self, key).items():
                if isinstance(v, float) and not math.isfinite(v):
                    raise EdgeMTLError(f"train.{key}.{k} must be a finite number (got {v})")
        if self.lr <= 0:
            raise EdgeMTLError(f"train.lr must be > 0 (got {self.lr})")
        for key in ("max_steps_per_epoch", "eval_every"):
            v = getattr(self, key)
            if v is not None and int(v) < 1:
                raise EdgeMTLError(
                    f"train.{key} must be >= 1 (got {v})"
                    + ("; leave it unset (null) for no cap" if key == "max_steps_per_epoch" else "")
                )
        if not 0 <= self.adv_weight < 1:
            raise EdgeMTLError(f"train.adv_weight must be in [0, 1) (got {self.adv_weight})")
        from edgemtl.train.speed import PRECISIONS

        if self.precision not in PRECISIONS:
            raise unknown_choice("train.precision", self.precision, PRECISIONS)
        if self.data_cache < 0:
            raise EdgeMTLError(
                f"train.data_cache must be >= 0 GiB (got {self.data_cache}); 0 turns the cache off"
            )
        if self.num_workers < 0:
            raise EdgeMTLError(f"train.num_workers must be >= 0 (got {self.num_workers})")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise EdgeMTLError(f"train.device must be auto, cpu, cuda or cuda:N (got {self.device})")
        self.scales = tuple(float(s) for s in self.scales)  # type: ignore[assignment]
        if self.crop is not None:
            self.crop = tuple(int(v) for v in self.crop)  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                raise EdgeMTLError(
                    f"unknown train config key 'train.{key}'.{did_you_mean(key, names)} "
                    f"Valid keys: {', '.join(names)}"
                )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
