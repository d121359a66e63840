"""The int8 settings, torch-free so that the CLI can show their defaults without loading the
quantization stack (edgemtl.quant.pt2e uses them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgemtl.errors import EdgeMTLError


@dataclass
class QuantConfig:
    """Every int8 setting, with the defaults `edgemtl qat`, the bench and the quickstart share."""

    task_weights: str = "float"  # "float" | "per_tensor": how task-selected weights are handled
    float_modules: list[str] = field(default_factory=list)  # module names kept fp32, e.g. heads.depth
    calib_batches: int = 8  # PTQ calibration batches (of train.batch_size images)
    qat_epochs: int = 2  # QAT finetuning epochs
    lr_scale: float = 0.1  # QAT learning rate = train.lr x this

    def finetune_recipe(self, recipe):
        """A copy of ``recipe`` set up for QAT finetuning: ``qat_epochs`` at ``lr_scale`` x its lr,
        no warm-up, no adversarial branch (the discriminator is not part of the int8 program)."""
        lr = recipe.train_config.lr * float(self.lr_scale)
        return recipe.with_train(epochs=int(self.qat_epochs), lr=lr, adversarial=False, warmup_epochs=0)

    def __post_init__(self) -> None:
        if self.task_weights not in ("float", "per_tensor"):
            raise EdgeMTLError(f"task_weights must be 'float' or 'per_tensor' (got '{self.task_weights}')")
