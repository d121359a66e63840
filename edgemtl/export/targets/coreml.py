"""CoreML ``.mlpackage`` (ML program): fp16 (or fp32) compute with float32 inputs and outputs.

Task input: one-hot ``task`` float32 [1, T] (no int gather, which CoreML/ANE handle poorly), or
``per-task``: a multifunction package (one function per task, weights stored once, iOS 18).
Weight compression (weight-only, works on Linux): ``int8`` (linear_quantize_weights) or
``palettize`` (palettize_weights, ``palette_bits``).

coremltools cannot run a model on Linux, so the package is checked structurally (I/O names,
dtypes, shapes; op histogram; weight precision and size) and the numbers are checked on the very
ExportedProgram that was converted, run in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemtl.data.layout import atomic_write_bytes
from edgemtl.errors import EdgeMTLError
from edgemtl.export import TARGETS
from edgemtl.export.target import ExportContext, ExportTarget, check_io

if TYPE_CHECKING:
    from edgemtl.export.wrapper import Graph

_ARRAY_DTYPES = {65568: "float32", 65552: "float16", 131104: "int32", 65600: "float64"}
_MIL_FLOAT16, _MIL_FLOAT32 = 10, 11
_COMPRESSION_OPS = {
    "int8": ("constexpr_blockwise_shift_scale", "constexpr_affine_dequantize"),
    "palettize": ("constexpr_lut_to_dense",),
}
_LARGE = 64  # consts with more elements than this are weights (smaller ones are shapes, scalars)


def _quiet_ct():
    # coremltools warns about the untested torch version and scikit-learn on import; harmless here.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        import coremltools as ct
    return ct


def _model_file(package: Path) -> Path:
    files = list((package / "Data" / "com.apple.CoreML").glob("*.mlmodel"))
    if len(files) != 1:
        raise EdgeMTLError(f"{package}: not a CoreML package (no single Data/com.apple.CoreML/*.mlmodel)")
    return files[0]


def load_spec(package: Path):
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(_model_file(package).read_bytes())
    return spec


def _ops(block, hist: Counter, consts: Counter) -> None:
    for op in block.operations:
        hist[op.type] += 1
        if op.type == "const" and op.outputs:
            t = op.outputs[0].type.tensorType
            n = int(np.prod([d.constant.size for d in t.dimensions])) if t.dimensions else 1
            if n > _LARGE:
                consts[
                    {_MIL_FLOAT16: "float16", _MIL_FLOAT32: "float32"}.get(t.dataType, f"mil_{t.dataType}")
                ] += n
        for sub in op.blocks:
            _ops(sub, hist, consts)


@TARGETS.register("coreml")
class CoreMLTarget(ExportTarget):
    name = "coreml"
    suffix = ".mlpackage"
    default_precision = "fp16"
    not_runnable = (
        "CoreML packages run on Apple platforms only (Core ML on macOS / iOS; coremltools cannot "
        "predict on Linux)"
    )
    description = (
        "CoreML ML program (.mlpackage), fp16 or fp32 compute, float32 I/O; per-task = multifunction"
    )
    precisions = ("fp16", "fp32")
    task_inputs = ("onehot", "per-task", "all")
    options = {"minimum_deployment_target": None, "weight_compression": "none", "palette_bits": 6}
    option_choices = {
        "minimum_deployment_target": (None, "iOS16", "iOS17", "iOS18"),
        "weight_compression": ("none", "int8", "palettize"),
        "palette_bits": (1, 2, 3, 4, 6, 8),
    }
    unsupported_why = {
        "index": " (an int64 task id becomes an int32 gather in CoreML, poorly supported on GPU/ANE: use "
        "onehot, or per-task for a multifunction package)",
        "int8": " as a compute precision (for int8 weights use options weight_compression: int8)",
    }

    def _deployment_target(self, ctx: ExportContext):
        ct = _quiet_ct()
        chosen = ctx.options["minimum_deployment_target"]
        if ctx.scheme == "per-task":
            if chosen not in (None, "iOS18"):
                raise EdgeMTLError(
                    f"coreml --task-input per-task makes a multifunction package, which needs "
                    f"minimum_deployment_target iOS18 (got {chosen})"
                )
            chosen = "iOS18"
        return getattr(ct.target, chosen or "iOS17"), chosen or "iOS17"

    def _convert(self, program: Any, graph: Graph, ctx: ExportContext):
        ct = _quiet_ct()
        target, _ = self._deployment_target(ctx)
        inputs = [
            ct.TensorType(name=s["name"], shape=tuple(s["shape"]), dtype=np.float32) for s in graph.inputs
        ]
        outputs = [ct.TensorType(name=s["name"], dtype=np.float32) for s in graph.outputs]
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            ml = ct.convert(
                program,
                inputs=inputs,
                outputs=outputs,
                convert_to="mlprogram",
                minimum_deployment_target=target,
                compute_precision=ct.precision.FLOAT16 if ctx.precision == "fp16" else ct.precision.FLOAT32,
            )
            return self._compress(ml, ctx)

    def _compress(self, ml, ctx: ExportContext):
        kind = ctx.options["weight_compression"]
        if kind == "none":
            return ml
        from coremltools.optimize import coreml as cto

        if kind == "int8":
            op_cfg = cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=_LARGE
            )
            return cto.linear_quantize_weights(ml, cto.OptimizationConfig(global_config=op_cfg))
        # "uniform" needs no scikit-learn (kmeans does, and coremltools 9 disables sklearn 1.9).
        op_cfg = cto.OpPalettizerConfig(
            mode="uniform", nbits=int(ctx.options["palette_bits"]), weight_threshold=_LARGE
        )
        return cto.palettize_weights(ml, cto.OptimizationConfig(global_config=op_cfg))

    def write(self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext) -> None:
        ct = _quiet_ct()
        # coremltools needs ATen-dialect programs; these exact programs are also the ones run in ORT.
        from edgemtl.export.targets.onnx import ort_surrogates

        self.converted = {g.method: programs[g.method].run_decompositions({}) for g in graphs}
        self.surrogates = ort_surrogates(self.converted, graphs)
        _, name = self._deployment_target(ctx)
        ctx.options["minimum_deployment_target"] = name
        if ctx.scheme != "per-task":
            self._convert(self.converted["forward"], graphs[0], ctx).save(str(ctx.out))
            return
        with tempfile.TemporaryDirectory() as tmp:
            desc = ct.utils.MultiFunctionDescriptor()
            self.single_weights = 0
            for g in graphs:
                path = Path(tmp) / f"{g.method}.mlpackage"
                self._convert(self.converted[g.method], g, ctx).save(str(path))
                self.single_weights = max(self.single_weights, _weights_bytes(path))
                desc.add_function(str(path), src_function_name="main", target_function_name=g.method)
            desc.default_function_name = graphs[0].method
            with contextlib.redirect_stdout(io.StringIO()):
                ct.utils.save_multifunction(desc, str(ctx.out))

    def inspect(self, graphs: list[Graph], ctx: ExportContext) -> dict[str, Any]:
        spec = load_spec(ctx.out)

        def feats(values) -> list[dict[str, Any]]:
            return [
                {
                    "name": f.name,
                    "dtype": _ARRAY_DTYPES.get(f.type.multiArrayType.dataType, "?"),
                    "shape": list(f.type.multiArrayType.shape),
                }
                for f in values
            ]

        if spec.description.functions:
            found = {
                f.name: {"inputs": feats(f.input), "outputs": feats(f.output)}
                for f in spec.description.functions
            }
        else:  # a single-function package calls its function "main"; the manifest calls it "forward"
            found = {
                "forward": {
                    "inputs": feats(spec.description.input),
                    "outputs": feats(spec.description.output),
                }
            }
        problems = check_io(found, ctx.io["methods"], "coreml")
        hist: Counter = Counter()
        consts: Counter = Counter()
        for fn in spec.mlProgram.functions.values():
            for block in fn.block_specializations.values():
                _ops(block, hist, consts)
        gathers = {k: v for k, v in hist.items() if k.startswith("gather")}
        if gathers:
            problems.append(
                f"coreml: {gathers} ops in a {ctx.scheme} model (the task must not be selected by a gather)"
            )
        other = "float32" if ctx.precision == "fp16" else "float16"
        if consts.get(other):
            problems.append(f"coreml: {consts[other]} {other} weight values in an {ctx.precision} model")
        kind = ctx.options["weight_compression"]
        if kind != "none" and not any(hist.get(op) for op in _COMPRESSION_OPS[kind]):
            problems.append(
                f"coreml: weight_compression={kind} but no {'/'.join(_COMPRESSION_OPS[kind])} ops"
            )
        weights = _weights_bytes(ctx.out)
        report = {
            "problems": problems,
            "spec_version": spec.specificationVersion,
            "io": found,
            "ops": dict(hist.most_common()),
            "weight_values_by_dtype": dict(consts),
            "weights_bytes": weights,
            "bytes": sum(f.stat().st_size for f in ctx.out.rglob("*") if f.is_file()),
            "runs_here": False,
        }
        if ctx.scheme == "per-task":
            report["single_function_weights_bytes"] = self.single_weights
            # De-duplicated weights: the package is about one function's size, not T times it.
            if weights > 1.5 * self.single_weights:
                problems.append(
                    f"coreml: multifunction weights {weights} B vs {self.single_weights} B for one function: "
                    "weights are not shared"
                )
        return report

    def numeric(
        self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext, images
    ) -> dict[str, Any]:
        from edgemtl.export.targets.onnx import numeric_via_ort

        ctx.notes.append(
            "coremltools cannot predict on Linux: numbers checked on the converted ExportedProgram "
            "(after run_decompositions({})) in ONNX Runtime, fp32; fp16 rounding and CoreML's own "
            "conversion are checked structurally only"
        )
        return numeric_via_ort(
            self.surrogates, graphs, ctx, images, "the ExportedProgram given to coremltools"
        )

    def embed_metadata(self, path: Path, meta: dict[str, Any]) -> None:
        from edgemtl import __version__
        from edgemtl.artifact.manifest import METADATA_KEY, to_json

        spec = load_spec(path)
        md = spec.description.metadata
        md.userDefined[METADATA_KEY] = to_json(meta)
        md.author = "edgemtl"
        md.versionString = __version__
        md.shortDescription = (
            f"edgemtl {meta['arch']} tasks={','.join(meta['tasks'])} "
            f"task_input={meta['task_input']['scheme']}"
        )
        atomic_write_bytes(_model_file(path), spec.SerializeToString())


def _weights_bytes(package: Path) -> int:
    return sum(
        f.stat().st_size for f in (package / "Data" / "com.apple.CoreML" / "weights").glob("*") if f.is_file()
    )
