"""Int8 quantization with PT2E (torchao) and the XNNPACK quantizer: PTQ and QAT; and, for ONNX
artifacts of float models, ONNX Runtime's static quantizer (edgemtl.quant.ort).

Nothing else in edgemtl knows about quantization: training reuses the trainer on a
:class:`QuantizedModel` adapter, export lowers the converted program it saves.

The names below load on first use, so that ``edgemtl.quant.config`` (the settings, used by the
CLI's argument parser) does not pull in torch and torchao.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "QuantConfig": "edgemtl.quant.config",
    "QuantizedModel": "edgemtl.quant.wrapper",
    **{
        n: "edgemtl.quant.pt2e"
        for n in (
            "calibrate",
            "convert",
            "export_for_quant",
            "load_program",
            "prepare_qat",
            "ptq",
            "save_program",
        )
    },
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'edgemtl.quant' has no attribute '{name}'")


__all__ = sorted(_WHERE)
