"""QuantizedModel: a fake-quant or converted PT2E module behind the MultiTaskModel API, so the
trainer, evaluation and export treat it like any edgemtl model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgemtl.errors import EdgeMTLError
from edgemtl.models.base import MultiTaskModel


class QuantizedModel(MultiTaskModel):
    def __init__(self, gm: nn.Module, reference: MultiTaskModel, stage: str) -> None:
        super().__init__(reference.config)
        self.gm = gm
        self.stage = stage  # "qat" (fake-quant, trainable), "ptq" or "converted"
        self.conditional = reference.conditional
        self.one_pass_all_tasks = reference.one_pass_all_tasks
        self.mean.copy_(reference.mean)
        self.std.copy_(reference.std)

    @property
    def encoder_shared(self) -> bool:
        return False  # the graph is one piece: every task runs it whole

    def forward(
        self,
        image: Tensor,
        task: Tensor | None = None,
        return_features: bool = False,
        return_aux: bool = False,
    ):
        if return_features or return_aux:
            raise EdgeMTLError(
                "adversarial training and deep supervision are not available on a quantized "
                "graph: set train.adversarial=false (QAT finetunes the task losses only)"
            )
        if self.conditional:
            if task is not None and not task.dtype.is_floating_point:  # graphs take the one-hot input
                task = torch.nn.functional.one_hot(task, len(self.task_names)).float()
            return self.gm(image, task)
        return self.gm(image)

    def train(self, mode: bool = True) -> QuantizedModel:
        from edgemtl.quant.pt2e import _quiet_imports

        _, _, pt2e_mod, _ = _quiet_imports()
        # Exported graphs refuse .train()/.eval(): switch them with torchao's helpers instead.
        self.training = mode
        if self.stage != "qat":
            pt2e_mod.move_exported_model_to_eval(self.gm)
        else:
            if mode:
                pt2e_mod.move_exported_model_to_train(self.gm)
                self.gm.apply(pt2e_mod.enable_observer)
            else:
                # Frozen observers: evaluation must not move the quantization ranges.
                pt2e_mod.move_exported_model_to_eval(self.gm)
                self.gm.apply(pt2e_mod.disable_observer)
        return self
