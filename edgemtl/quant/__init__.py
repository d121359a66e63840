"""Int8 quantization with PT2E (torchao) and the XNNPACK quantizer: PTQ and QAT.

Nothing else in edgemtl knows about quantization: training reuses the trainer on a
:class:`QuantizedModel` adapter, export lowers the converted program it saves.
"""

from edgemtl.quant.pt2e import (
    QuantConfig,
    calibrate,
    convert,
    export_for_quant,
    load_program,
    prepare_qat,
    ptq,
    save_program,
)
from edgemtl.quant.wrapper import QuantizedModel

__all__ = [
    "QuantConfig",
    "QuantizedModel",
    "calibrate",
    "convert",
    "export_for_quant",
    "load_program",
    "prepare_qat",
    "ptq",
    "save_program",
]
