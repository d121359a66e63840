"""LiteRT (``.tflite``, formerly TensorFlow Lite): the runtime most Android apps ship, and the one the
Qualcomm, MediaTek and Google Tensor NPU delegates plug into. Converted by ``litert-torch`` from the
same wrapped graphs as every target; run here by ``ai-edge-litert``'s interpreter (XNNPACK on CPU).

Optional: ``pip install 'edgemtl[litert]'`` (litert-torch pulls JAX and transformers, about 1 GB).
Without it the target is listed but refuses to export, and its tests skip.

- One ``.tflite`` holds one signature per method: ``forward`` (onehot / all) or one per task
  (per-task), with inputs ``args_0`` (image), ``args_1`` (task) and outputs ``output_0..``, in the
  manifest's order. NCHW float32 I/O as in the other targets (litert-torch inserts the transposes).
- int8: LiteRT's own quantizer (ai-edge-quantizer, recipe ``dynamic_wi8_afp32``) on the converted
  float model: int8 per-channel weights, activations quantized on the fly by the int8 kernels
  (dynamic range), float32 I/O; no calibration. Verified against the float model by the int8 SQNR
  rule. A PT2E int8 program (``edgemtl qat``'s ``.pt2``) is refused: litert-torch 0.10 rejects its
  quantize/dequantize nodes on this stack (torch 2.13, torchao 0.18: 'stablehlo.uniform_dequantize'
  on i8 weights), and ai-edge-quantizer's static recipe makes the I/O int8 too.
- No ``index`` task input: without ``enable_x64`` LiteRT narrows int64 inputs, and the one-hot
  input is what NPU delegates handle.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemtl.data.layout import atomic_write_bytes
from edgemtl.errors import EdgeMTLError, UnsupportedError
from edgemtl.export import TARGETS
from edgemtl.export.target import Backend, ExportContext, ExportTarget, check_io

if TYPE_CHECKING:
    from edgemtl.export.wrapper import Graph

INSTALL = "pip install 'edgemtl[litert]' (litert-torch and ai-edge-litert)"
_DTYPES = {np.float32: "float32", np.int64: "int64", np.int32: "int32", np.float16: "float16"}


def _index(name: str) -> int:
    """``args_1`` / ``output_3`` -> 1 / 3: LiteRT lists signature tensors by name, not position."""
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else 0


class LiteRTBackend(Backend):
    """ai-edge-litert's interpreter (built-in kernels with the XNNPACK delegate); one signature per method."""

    name = "litert"
    runtime_module = "ai_edge_litert.interpreter"

    def __init__(self, artifact: str | os.PathLike | bytes, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UnsupportedError(f"running .tflite needs ai-edge-litert: {INSTALL}") from None
        src = {"model_content": artifact} if isinstance(artifact, bytes) else {"model_path": str(artifact)}
        try:
            self.interpreter = Interpreter(**src, num_threads=int(threads) if threads else None)
        except Exception as e:  # noqa: BLE001 (the interpreter raises ValueError / RuntimeError of its own)
            where = "LiteRT model" if isinstance(artifact, bytes) else str(artifact)
            raise EdgeMTLError(
                f"cannot load {where} with LiteRT (truncated or corrupt?): {str(e)[:300]}"
            ) from None
        self.threads = threads
        self.signatures = self.interpreter.get_signature_list()
        self.methods = sorted(self.signatures)
        self._runners: dict[str, Any] = {}

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if method not in self.signatures:
            raise EdgeMTLError(f"this LiteRT model has signatures {self.methods}, not '{method}'")
        if method not in self._runners:
            self._runners[method] = self.interpreter.get_signature_runner(method)
        names = sorted(self.signatures[method]["inputs"], key=_index)
        out = self._runners[method](
            **{n: np.ascontiguousarray(a) for n, a in zip(names, inputs, strict=True)}
        )
        return [out[k] for k in sorted(out, key=_index)]

    def io(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Per signature, its inputs and outputs in order: dtype and shape (names are positional)."""
        found = {}
        for method in self.methods:
            runner = self.interpreter.get_signature_runner(method)
            specs = {}
            for kind, details in (
                ("inputs", runner.get_input_details()),
                ("outputs", runner.get_output_details()),
            ):
                specs[kind] = [
                    {
                        "name": n,
                        "dtype": _DTYPES.get(d["dtype"], str(d["dtype"])),
                        "shape": [int(s) for s in d["shape"]],
                    }
                    for n, d in sorted(details.items(), key=lambda kv: _index(kv[0]))
                ]
            found[method] = specs
        return found


@TARGETS.register("litert")
class LiteRTTarget(ExportTarget):
    name = "litert"
    suffix = ".tflite"
    backend = LiteRTBackend
    requires = ("litert_torch", "ai_edge_litert")
    install = INSTALL
    description = (
        "LiteRT / TensorFlow Lite flatbuffer via litert-torch, one signature per method; fp32, int8 "
        "(ai-edge-quantizer dynamic range: int8 weights)"
    )
    precisions = ("fp32", "int8")
    task_inputs = ("onehot", "per-task", "all")
    unsupported_why = {
        "index": " (LiteRT narrows int64 inputs without enable_x64, and NPU delegates want the one-hot: use "
        "onehot or per-task)",
        "fp16": " (edgemtl exports LiteRT as fp32 or int8; fp16 is a delegate's choice at run time)",
    }

    def prepare_model(self, model, precision, ctx_options, calibration, size, notes):
        if precision == "int8":
            if getattr(model, "stage", None) is not None:
                raise UnsupportedError(
                    "litert int8 quantizes the float model with ai-edge-quantizer; this is a PT2E int8 "
                    "program "
                    f"({model.stage}), which litert-torch cannot convert here: export the float checkpoint "
                    "with "
                    "--precision int8"
                )
            notes.append(
                "int8: ai-edge-quantizer dynamic_wi8_afp32 (int8 per-channel weights, activations quantized "
                "on the fly by the kernels, float32 I/O); verified against the float model (SQNR)"
            )
        return model

    def write(self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext) -> None:
        import litert_torch

        converter = None
        for g in graphs:  # one signature per method, each traced from the same wrapped module
            add = litert_torch.signature if converter is None else converter.signature
            converter = add(g.method, g.module, g.example)
        data = converter.convert().model_content()
        if ctx.precision == "int8":
            import ai_edge_quantizer
            from ai_edge_quantizer import recipe

            quantizer = ai_edge_quantizer.Quantizer(data)
            quantizer.load_quantization_recipe(recipe.dynamic_wi8_afp32())
            data = bytes(quantizer.quantize().quantized_model)
        atomic_write_bytes(ctx.out, data)

    def inspect(self, graphs: list[Graph], ctx: ExportContext) -> dict[str, Any]:
        backend = LiteRTBackend(ctx.out)
        found = backend.io()
        # LiteRT names tensors args_N / output_N: compare dtypes and shapes by position, names from the
        # manifest.
        named = {
            m: {
                k: [
                    {**s, "name": want["name"]}
                    for s, want in zip(spec[k], ctx.io["methods"].get(m, {}).get(k, []))
                ]
                for k in ("inputs", "outputs")
            }
            for m, spec in found.items()
        }
        problems = check_io(named, ctx.io["methods"], "litert")
        ops = Counter()
        for op in backend.interpreter._get_ops_details():  # noqa: SLF001 (the public API has no op list)
            ops[op["op_name"]] += 1
        weights = Counter(
            str(np.dtype(t["dtype"]))
            for t in backend.interpreter.get_tensor_details()
            if int(np.prod(t["shape"])) > 64 and t["name"].startswith(("arith.constant", "edgemtl"))
        )
        if ctx.precision == "int8" and not weights.get("int8"):
            problems.append("litert: an int8 export holds no int8 weights")
        return {
            "problems": problems,
            "signatures": found,
            "ops": dict(ops.most_common()),
            "tensors_by_dtype": dict(weights),
            "bytes": Path(ctx.out).stat().st_size,
        }
