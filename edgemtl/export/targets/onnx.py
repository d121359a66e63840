"""ONNX: one graph in one file (opset 18+), run with ONNX Runtime.

Gotchas handled here: the dynamo exporter writes weights to ``<file>.data`` unless
``external_data=False`` (single file unless the weights exceed protobuf's 2 GB limit); metadata
goes into ``metadata_props`` under the key ``edgemtl``.

int8, two quantizers (option ``quantizer``):

- ``ort``: ONNX Runtime's static quantizer on the fp32 graph (edgemtl.quant.ort), QDQ with uint8
  activations and int8 per-channel weights (U8S8: the fast path of ORT's x86 kernels; S8S8 and PT2E's QDQ run
  slower than fp32 there). Nodes that read the task input or anything derived from it (task
  encoding, selected per-task weights and the ops reading them, the invalid-task guard) stay
  fp32, as in edgemtl.quant. Option ``reduce_range`` (auto | true | false): 7-bit weights.
  ``auto`` turns it on when the exporting host is x86 without VNNI: there ORT's U8S8 kernels
  sum two uint8 x int8 products in int16 (VPMADDUBSW) and saturate. Measured on an AVX2-only
  EPYC, trained MobileNet-v2 (nyud-like): integer kernels vs their own QDQ simulation 0-12 dB
  SQNR with 8-bit weights, 13-22 dB with 7-bit; vs fp32 +3-5 dB better with 7-bit. ARM and VNNI
  hosts keep 8 bits. The manifest notes which was used.
- ``pt2e``: the PT2E program (PTQ here, or QAT from ``edgemtl qat``) exported as QDQ: the same
  numbers as the ExecuTorch int8 program, but slower on ORT x86 (see above).

``auto`` (default) picks ``pt2e`` for an already-quantized model (QAT ranges must be kept) and
``ort`` for a float one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
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

_PROTO_LIMIT = 2 * 1024**3 - 64 * 1024**2  # leave room for the graph itself
_DTYPES = {1: "float32", 7: "int64", 10: "float16", 6: "int32"}


def export_onnx_bytes(
    program: Any, graph: Graph, opset: int = 18, optimize: bool = True
) -> tuple[bytes, bool]:
    """ExportedProgram -> (ONNX bytes, external_data). Also used to check CoreML programs in ORT."""
    import torch

    n_bytes = sum(t.numel() * t.element_size() for t in program.state_dict.values())
    external = n_bytes > _PROTO_LIMIT
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        import contextlib

        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress lines
            torch.onnx.export(
                program,
                graph.example,
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=[s["name"] for s in graph.inputs],
                output_names=[s["name"] for s in graph.outputs],
                external_data=external,
                optimize=optimize,
                verbose=False,
            )
        if external:
            raise EdgeMTLError(
                "weights over 2 GB need ONNX external data, which edgemtl does not package yet"
            )
        return path.read_bytes(), external


class OrtBackend(Backend):
    """ONNX Runtime, CPU provider. ``threads`` sets intra-op threads (None: ORT's default)."""

    name = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        src = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (ORT raises its own types: InvalidProtobuf, Fail, ...)
            where = "ONNX model" if isinstance(model, bytes) else str(model)
            raise EdgeMTLError(
                f"cannot load {where} with onnxruntime (truncated or corrupt?): {str(e)[:300]}"
            ) from None
        self.threads = threads
        self.methods = ["forward"]
        self._names = [i.name for i in self.session.get_inputs()]

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if method != "forward":
            raise EdgeMTLError(f"an ONNX model has one graph ('forward'), not '{method}'")
        return self.session.run(None, dict(zip(self._names, inputs)))

    @staticmethod
    def embedded_manifest(path: Path) -> dict[str, Any] | None:
        """``metadata_props['edgemtl']`` (the fallback when the .json was not copied), read through
        onnxruntime so that running an artifact needs no ``onnx`` package."""
        import onnxruntime as ort

        from edgemtl.artifact.manifest import METADATA_KEY

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (onnxruntime raises its own Fail / InvalidProtobuf types)
            raise EdgeMTLError(
                f"cannot read ONNX file {path} (truncated or corrupt?): {str(e)[:200]}"
            ) from None
        props = sess.get_modelmeta().custom_metadata_map
        return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else None


@TARGETS.register("onnx")
class OnnxTarget(ExportTarget):
    name = "onnx"
    suffix = ".onnx"
    backend = OrtBackend
    description = "ONNX (opset 18+) single file, ONNX Runtime; fp32, int8 QDQ (ORT quantizer or PT2E)"
    precisions = ("fp32", "int8")
    task_inputs = ("onehot", "index", "all")
    options = {"opset": 18, "optimize": True, "quantizer": "auto", "reduce_range": "auto"}
    option_choices = {
        "opset": (18, 19, 20, 21),
        "optimize": (True, False),
        "quantizer": ("auto", "ort", "pt2e"),
        "reduce_range": ("auto", True, False),
    }
    unsupported_why = {
        "per-task": " (an ONNX file holds one graph: use --task-input onehot or index, or one export per "
        "task)",
        "fp16": " (fp16 ONNX needs a float16 conversion pass edgemtl does not ship; use coreml for fp16)",
    }

    def prepare_model(self, model, precision, ctx_options, calibration, size, notes):
        self.ort_calibration = None
        if precision == "int8":
            quantizer = ctx_options["quantizer"]
            if quantizer == "auto":
                quantizer = "pt2e" if getattr(model, "stage", None) else "ort"
            if quantizer == "ort" and getattr(model, "stage", None):
                raise UnsupportedError(
                    "onnx quantizer=ort quantizes a float model; this one is already quantized "
                    f"({model.stage}): use quantizer=pt2e (keeps its QAT/PTQ ranges)"
                )
            ctx_options["quantizer"] = quantizer
            if quantizer == "ort":
                from edgemtl.profile.cpu import x86_without_vnni

                self.ort_calibration = calibration()
                n = sum(b.shape[0] for b in self.ort_calibration)
                rr = ctx_options["reduce_range"]
                rr = x86_without_vnni() if rr == "auto" else bool(rr)
                ctx_options["reduce_range"] = rr
                bits = "7-bit (reduce_range: this x86 host has no VNNI)" if rr else "8-bit"
                notes.append(
                    f"int8: ONNX Runtime static quantization (QDQ, uint8 activations, {bits} per-channel "
                    "int8 weights; task-selected weights and the task guard fp32) calibrated on "
                    f"{n} images x every task; verified against the same QDQ graph simulated in float "
                    "(ONNX Runtime with graph optimisations off), i.e. its fake-quant model"
                )
                return model
        return super().prepare_model(model, precision, ctx_options, calibration, size, notes)

    def write(self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext) -> None:
        data, _ = export_onnx_bytes(
            programs["forward"], graphs[0], int(ctx.options["opset"]), bool(ctx.options["optimize"])
        )
        if ctx.precision == "int8" and self.ort_calibration is not None:
            from edgemtl.quant.ort import QdqSimulation, quantize_ort

            data = quantize_ort(
                data, graphs[0], ctx.io, self.ort_calibration, bool(ctx.options["reduce_range"])
            )
            graphs[0].reference = QdqSimulation(data)
        atomic_write_bytes(ctx.out, data)

    def inspect(self, graphs: list[Graph], ctx: ExportContext) -> dict[str, Any]:
        import onnx

        model = onnx.load(str(ctx.out), load_external_data=False)
        problems = []
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset < 18:
            problems.append(f"onnx: opset {opset} < 18")
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            problems.append("onnx: weights were written as external data; expected a single file")

        def specs(values) -> list[dict[str, Any]]:
            return [
                {
                    "name": v.name,
                    "dtype": _DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type)),
                    "shape": [d.dim_value for d in v.type.tensor_type.shape.dim],
                }
                for v in values
            ]

        found = {"forward": {"inputs": specs(model.graph.input), "outputs": specs(model.graph.output)}}
        problems += check_io(found, ctx.io["methods"], "onnx")
        ops = Counter(n.op_type for n in model.graph.node)
        # The wrapper turns a task id into a one-hot (Equal): a Gather on it would wrap -1 silently.
        if any(n.op_type == "Gather" and "task" in n.input for n in model.graph.node):
            problems.append("onnx: the task input feeds a Gather (out-of-range ids would not be caught)")
        return {
            "problems": problems,
            "opset": opset,
            "ops": dict(ops.most_common()),
            "io": found,
            "single_file": True,
            "bytes": ctx.out.stat().st_size,
        }

    def embed_metadata(self, path: Path, meta: dict[str, Any]) -> None:
        import onnx

        from edgemtl.artifact.manifest import METADATA_KEY, to_json

        model = onnx.load(str(path))
        del model.metadata_props[:]
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, to_json(meta)
        model.producer_name = "edgemtl"
        model.doc_string = (
            f"edgemtl {meta['arch']} tasks={','.join(meta['tasks'])} "
            f"task_input={meta['task_input']['scheme']}; see metadata_props['{METADATA_KEY}']"
        )
        atomic_write_bytes(path, model.SerializeToString())


def ort_surrogates(programs: dict[str, Any], graphs: list[Graph]) -> dict[str, bytes]:
    """ONNX bytes of each ExportedProgram, made *before* a backend lowers it (lowering mutates programs)."""
    return {g.method: export_onnx_bytes(programs[g.method], g, optimize=False)[0] for g in graphs}


def numeric_via_ort(
    models: dict[str, bytes], graphs: list[Graph], ctx: ExportContext, images, what: str
) -> dict[str, Any]:
    """Parity of the exact ExportedProgram(s) a non-runnable target converted, run in ONNX Runtime.

    Used where the artifact's own runtime is not available on this host (CoreML): it checks the
    graph capture and wrapper, not the backend's own conversion (which is checked structurally).
    """
    from edgemtl.export.verify import numeric_parity

    sessions = {m: OrtBackend(data) for m, data in models.items()}

    def run(method: str, inputs: list) -> list:
        return sessions[method].run("forward", inputs)

    return numeric_parity(graphs, ctx.io, run, images, "fp32", f"onnxruntime on {what}")
