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
import mmap
import os
import tempfile
import threading
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
        return _global_pools(path.read_bytes()), external


def _global_pools(data: bytes) -> bytes:
    """``adaptive_avg_pool2d(x, 1)`` (SE, ASPP image pooling) leaves the exporter as ReduceMean over
    axes 2, 3; on a 4-D tensor that is GlobalAveragePool, which ONNX Runtime's quantizer turns into
    one uint8 kernel (QLinearGlobalAveragePool) instead of DequantizeLinear -> float ReduceMean ->
    QuantizeLinear. Measured on a Xeon with VNNI/AMX, MobileNet-v2 single-task at 256x256, 1 thread:
    int8 / fp32 latency 0.73 -> 0.62; fp32 unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    g = model.graph
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in [*g.value_info, *g.input, *g.output]}
    consts = {t.name: t for t in g.initializer}
    changed = 0
    for i, n in enumerate(g.node):
        if n.op_type != "ReduceMean" or rank.get(n.input[0]) != 4:
            continue
        attrs = {a.name: a for a in n.attribute}
        if "keepdims" in attrs and attrs["keepdims"].i != 1:
            continue
        if len(n.input) > 1 and n.input[1] in consts:
            axes = numpy_helper.to_array(consts[n.input[1]]).tolist()
        else:
            axes = list(attrs["axes"].ints) if "axes" in attrs else []
        if sorted(a % 4 for a in axes) != [2, 3]:
            continue
        g.node[i].CopyFrom(helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output), name=n.name))
        changed += 1
    if not changed:
        return data
    used = {v for n in g.node for v in n.input} | {o.name for o in g.output}
    kept = [t for t in g.initializer if t.name in used]  # the axes constants nothing reads now
    del g.initializer[:]
    g.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OrtBackend(Backend):
    """ONNX Runtime, CPU provider. ``threads`` sets intra-op threads (None: ORT's default).

    A ``graphs=specialized`` artifact runs as one session per task, each created the first time its
    task is asked for from the branch cut out of the file (edgemtl.artifact.onnx_branches): a
    single-task graph to ONNX Runtime, so its layout passes apply and an app pays memory only for the
    tasks it runs. ``sessions="single"`` runs the file's own ``If`` graph instead (same numbers).
    """

    name = "onnxruntime"
    runtime_module = "onnxruntime"

    def __init__(
        self, model: str | os.PathLike | bytes, threads: int | None = None, sessions: str = "per-task"
    ) -> None:
        from edgemtl.artifact.onnx_branches import split

        if sessions not in ("per-task", "single"):
            raise EdgeMTLError(f"runtime option sessions={sessions!r}: choose 'per-task' or 'single'")
        self._where = "ONNX model" if isinstance(model, bytes) else str(model)
        self.threads = threads
        self.methods = ["forward"]
        self.branches = split(_mapped(model)) if sessions == "per-task" else None
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        if self.branches is None:
            self.session = self._session(model if isinstance(model, bytes) else str(model))
            self._names = [i.name for i in self.session.get_inputs()]

    def _session(self, data: bytes | str) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if self.branches is not None:
            # Per-task sessions each own a thread pool whose workers spin after a call; the next
            # task's session would compete with them (all tasks in a row 2.7x slower at 2 threads).
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (ORT raises its own types: InvalidProtobuf, Fail, ...)
            raise EdgeMTLError(
                f"cannot load {self._where} with onnxruntime (truncated or corrupt?): {str(e)[:300]}"
            ) from None

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if method != "forward":
            raise EdgeMTLError(f"an ONNX model has one graph ('forward'), not '{method}'")
        if self.branches is None:
            return self.session.run(None, dict(zip(self._names, inputs)))
        i = self._branch_index(inputs[1])
        if i is None:  # what the If graph gives for an invalid task input
            return [np.full(self.branches.output_shape, np.nan, np.float32)]
        with self._lock:  # two threads asking for a new task build its session once
            if i not in self._sessions:
                self._sessions[i] = self._session(self.branches.model(i))
        return self._sessions[i].run(None, {self.branches.image: inputs[0]})

    def _branch_index(self, task: np.ndarray) -> int | None:
        """The branch the artifact's selector picks for ``task`` (merge_branches' ``_selector``):
        one-hot with every entry 0 or 1 and exactly one 1, or an index in range; None otherwise."""
        b = self.branches
        want = [1, b.count] if b.task_dtype == "float32" else [1]
        if not isinstance(task, np.ndarray) or list(task.shape) != want or task.dtype != b.task_dtype:
            got = f"{task.dtype} {list(task.shape)}" if isinstance(task, np.ndarray) else type(task).__name__
            raise EdgeMTLError(
                f"{self._where}: task input '{b.task}' must be {b.task_dtype} {want}, got {got}"
            )
        if b.task_dtype == "float32":
            x = task[0].astype(np.float32)
            if np.abs(x * (1 - x)).sum() + abs(x.sum() - 1) != 0:
                return None
            return int(np.argmax(x))
        i = int(task[0])
        return i if 0 <= i < b.count else None

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


def _mapped(model: str | os.PathLike | bytes) -> bytes | mmap.mmap:
    """The file, memory-mapped: reading its graph structure touches a few pages, not its weights."""
    if isinstance(model, bytes):
        return model
    try:
        with open(model, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:  # ValueError: an empty file cannot be mapped
        raise EdgeMTLError(f"cannot read ONNX file {model} (empty or unreadable?): {e}") from None


@TARGETS.register("onnx")
class OnnxTarget(ExportTarget):
    name = "onnx"
    suffix = ".onnx"
    backend = OrtBackend
    description = "ONNX (opset 18+) single file, ONNX Runtime; fp32, int8 QDQ (ORT quantizer or PT2E)"
    precisions = ("fp32", "int8")
    task_inputs = ("onehot", "index", "all")
    options = {
        "opset": 18,
        "optimize": True,
        "quantizer": "auto",
        "reduce_range": "auto",
        "graphs": "conditional",
        "shared_weights": True,
    }
    option_choices = {
        "graphs": ("conditional", "specialized"),
        "shared_weights": (True, False),
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

    def specializes(self, scheme: str, options: dict[str, Any]) -> bool:
        if options.get("graphs") != "specialized":
            return False
        if scheme == "all":  # one pass returns every task: there is no single task to specialise to
            raise UnsupportedError(
                "onnx graphs=specialized puts one single-task graph per task behind a one-hot or index "
                "task input; with --task-input all (every task from one pass, the only input of "
                "multi-output models such as hard sharing) there is none to specialise: drop "
                "graphs=specialized, or use --task-input onehot/index on a task-conditional model"
            )
        return True

    def prepare_model(self, model, precision, ctx_options, calibration, size, notes):
        self.ort_calibration = None
        if ctx_options.get("graphs") == "specialized" and getattr(model, "stage", None):
            raise UnsupportedError(
                "onnx graphs=specialized specialises a float model to each task before quantizing it; "
                f"this one is already quantized ({model.stage}): export its float checkpoint with "
                "--precision int8, or use graphs=conditional"
            )
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
        opset, optimize = int(ctx.options["opset"]), bool(ctx.options["optimize"])
        ort_int8 = ctx.precision == "int8" and self.ort_calibration is not None
        if graphs[0].branches:
            data = self._write_specialized(graphs[0], ctx, opset, optimize, ort_int8)
        else:
            data, _ = export_onnx_bytes(programs["forward"], graphs[0], opset, optimize)
            if ort_int8:
                data = self._quantize_ort(data, graphs[0], ctx)
        if ort_int8:
            from edgemtl.quant.ort import QdqSimulation

            graphs[0].reference = QdqSimulation(data)
        atomic_write_bytes(ctx.out, data)

    def _quantize_ort(self, data: bytes, graph: Graph, ctx: ExportContext) -> bytes:
        from edgemtl.quant.ort import quantize_ort

        return quantize_ort(data, graph, ctx.io, self.ort_calibration, bool(ctx.options["reduce_range"]))

    def _write_specialized(
        self, graph: Graph, ctx: ExportContext, opset: int, optimize: bool, ort_int8: bool
    ) -> bytes:
        """One ONNX graph whose task input selects a specialised single-task branch (``If``)."""
        import onnx

        from edgemtl.export.base import export_program

        branches = []
        for b in graph.branches or []:
            data, _ = export_onnx_bytes(export_program(b), b, opset, optimize)
            if ort_int8:
                data = self._quantize_ort(data, b, ctx)
            else:  # BN folded offline: identical layers of two branches get bit-identical weights
                data = ort_basic_optimized(data)
            branches.append(onnx.load_from_string(data))
        share = bool(ctx.options["shared_weights"])
        model, shared = merge_branches(branches, graph, ctx.io["scheme"], share)
        if share:
            ctx.notes.append(
                f"graphs=specialized: one If branch per task, {shared['initializers']} weight tensors "
                f"({shared['bytes'] / 1e6:.2f} MB) stored once in the outer graph. edgemtl.runtime runs "
                "each task as its own single-task session cut from the file (single-task speed); a "
                "program running the If graph itself in native ONNX Runtime on x86 loses the NCHWc "
                "layout on those weights (about 1.9x slower; shared_weights=false avoids it)"
            )
        else:
            ctx.notes.append(
                "graphs=specialized: one If branch per task, each with its own weights (T times the "
                "weights on disk; for programs that run the If graph itself in native ONNX Runtime on x86)"
            )
        return model.SerializeToString()

    def numeric(self, programs, graphs, ctx, images) -> dict[str, Any]:
        """The artifact as edgemtl's runtime runs it (a specialised file: one session per task) and,
        for a specialised file, also as any other ONNX Runtime program runs it (its ``If`` graph)."""
        result = super().numeric(programs, graphs, ctx, images)
        if graphs[0].branches:
            from edgemtl.export.target import task_info
            from edgemtl.export.verify import numeric_parity

            single = OrtBackend(ctx.out, sessions="single")
            what = "onnxruntime, the If graph as one session"
            other = numeric_parity(
                graphs, ctx.io, single.run, images, ctx.precision, what, task_info(ctx.model)
            )
            result["if_graph"] = {k: v for k, v in other.items() if k != "failures"}
            result["failures"] = result.get("failures", []) + [f"If graph: {f}" for f in other["failures"]]
            result["passed"] = result.get("passed", False) and other["passed"]
        return result

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


def ort_basic_optimized(data: bytes) -> bytes:
    """ONNX Runtime's hardware-independent graph optimisations (constant folding, Conv+BN fusion),
    applied offline: the result is plain ONNX. Identical layers of different branches then carry
    bit-identical folded weights, which :func:`merge_branches` stores once."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        return (Path(tmp) / "opt.onnx").read_bytes()


def _prefixed_branch(i: int, model: Any, branch: Graph, image: str, c_max: int) -> tuple[list, list, str]:
    """Branch ``i``'s nodes and initializers with every name prefixed ``t{i}/`` (names must be unique
    across an ONNX model's subgraphs), reading ``image`` from the outer scope; its output padded with
    zero channels to ``c_max`` (the conditional graph's ``out``: the task's channels first)."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    kinds = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in kinds for n in g.node for a in n.attribute):
        raise EdgeMTLError(f"onnx graphs=specialized: branch '{branch.method}' has nested subgraphs")

    def name(v: str) -> str:
        return v if v in ("", image) else f"t{i}/{v}"

    nodes, inits = [], []
    for n in g.node:
        node = onnx.NodeProto()
        node.CopyFrom(n)
        node.name = f"t{i}/{n.name}"
        node.input[:] = [name(v) for v in n.input]
        node.output[:] = [name(v) for v in n.output]
        nodes.append(node)
    for t in g.initializer:
        new = onnx.TensorProto()
        new.CopyFrom(t)
        new.name = name(t.name)
        inits.append(new)
    result, channels = name(g.output[0].name), int(branch.outputs[0]["shape"][1])
    if channels < c_max:
        pads = np.array([0, 0, 0, 0, 0, c_max - channels, 0, 0], dtype=np.int64)
        inits.append(numpy_helper.from_array(pads, f"t{i}/pad_amounts"))
        nodes.append(
            helper.make_node("Pad", [result, f"t{i}/pad_amounts"], [f"t{i}/padded"], name=f"t{i}/pad")
        )
        result = f"t{i}/padded"
    return nodes, inits, result


def _share_identical(prefixed: list[tuple[list, list, str]]) -> tuple[list, dict[str, int]]:
    """Initializers that two or more branches hold with identical dtype, shape and bytes become one
    outer initializer; the branches' nodes are renamed to read it. Returns (outer initializers, stats)."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    groups: dict[str, list[tuple[int, Any]]] = {}
    for i, (_, inits, _) in enumerate(prefixed):
        for t in inits:
            arr = numpy_helper.to_array(t)
            key = hashlib.sha256(f"{t.data_type}{tuple(t.dims)}".encode() + arr.tobytes()).hexdigest()
            groups.setdefault(key, []).append((i, t))
    outer, rename = [], {}
    stats = {"initializers": 0, "bytes": 0}
    for key, members in groups.items():
        if len({i for i, _ in members}) < 2:
            continue
        shared = onnx.TensorProto()
        shared.CopyFrom(members[0][1])
        shared.name = f"shared/{key[:16]}"
        outer.append(shared)
        stats["initializers"] += 1
        stats["bytes"] += numpy_helper.to_array(shared).nbytes
        for _, t in members:
            rename[t.name] = shared.name
    for nodes, inits, _ in prefixed:
        for node in nodes:
            node.input[:] = [rename.get(v, v) for v in node.input]
        inits[:] = [t for t in inits if t.name not in rename]
    return outer, stats


def _selector(task: dict[str, Any], scheme: str, count: int) -> tuple[list, list, list[str]]:
    """Nodes computing ``cond_i``: "the task input selects exactly task i" (one-hot: every entry 0 or 1
    and one 1, as the conditional graph's guard; index: equal to i). Returns (nodes, inits, conds)."""
    from onnx import helper, numpy_helper

    nodes, inits = [], []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(arr, name))
        return name

    idx, valid = task["name"], None
    if scheme == "onehot":
        one, zero = const("sel/one", np.array(1.0, np.float32)), const("sel/zero", np.array(0.0, np.float32))
        axes, x = const("sel/axes", np.array([1], np.int64)), task["name"]
        nodes += [
            helper.make_node("Sub", [one, x], ["sel/1-x"]),
            helper.make_node("Mul", [x, "sel/1-x"], ["sel/x(1-x)"]),
            helper.make_node("Abs", ["sel/x(1-x)"], ["sel/|x(1-x)|"]),
            helper.make_node("ReduceSum", ["sel/|x(1-x)|", axes], ["sel/not01"], keepdims=0),
            helper.make_node("ReduceSum", [x, axes], ["sel/sum"], keepdims=0),
            helper.make_node("Sub", ["sel/sum", one], ["sel/sum-1"]),
            helper.make_node("Abs", ["sel/sum-1"], ["sel/|sum-1|"]),
            helper.make_node("Add", ["sel/not01", "sel/|sum-1|"], ["sel/bad"]),
            helper.make_node("Equal", ["sel/bad", zero], ["sel/valid"]),
            helper.make_node("ArgMax", [x], ["sel/argmax"], axis=1, keepdims=0),
        ]
        idx, valid = "sel/argmax", "sel/valid"
    conds = []
    for i in range(count):
        nodes.append(
            helper.make_node("Equal", [idx, const(f"sel/id{i}", np.array([i], np.int64))], [f"sel/is{i}"])
        )
        if valid is None:
            conds.append(f"sel/is{i}")
        else:
            nodes.append(helper.make_node("And", [valid, f"sel/is{i}"], [f"sel/cond{i}"]))
            conds.append(f"sel/cond{i}")
    return nodes, inits, conds


def _if_chain(subgraphs: list, conds: list[str], out: str, shape: list[int]) -> Any:
    """``If(cond_0, branch_0, If(cond_1, branch_1, ... NaN))``: the outermost If node, writing ``out``."""
    from onnx import TensorProto, helper, numpy_helper

    nan = numpy_helper.from_array(np.array(np.nan, np.float32), "invalid/nan")
    dims = numpy_helper.from_array(np.array(shape, np.int64), "invalid/shape")
    else_graph = helper.make_graph(  # no task selected: NaN, as the conditional graph's guard gives
        [helper.make_node("Expand", [nan.name, dims.name], ["invalid/out"])],
        "invalid_task",
        [],
        [helper.make_tensor_value_info("invalid/out", TensorProto.FLOAT, shape)],
        [nan, dims],
    )
    for i in reversed(range(len(subgraphs))):
        name = out if i == 0 else f"select{i}/out"
        node = helper.make_node(
            "If", [conds[i]], [name], name=f"select{i}", then_branch=subgraphs[i], else_branch=else_graph
        )
        if i == 0:
            return node
        value = helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        else_graph = helper.make_graph([node], f"else{i}", [], [value])
    raise EdgeMTLError("onnx graphs=specialized: no branches")


def merge_branches(
    branches: list[Any], graph: Graph, scheme: str, share: bool = True
) -> tuple[Any, dict[str, int]]:
    """One ONNX model: the task input (``graph.inputs[1]``, one-hot or index) selects branch ``i``
    (a single-task graph reading ``image``) through nested ``If`` nodes; its output is padded with
    zero channels to the task-conditional graph's ``out``, and an invalid task input gives all-NaN,
    exactly the signature of the conditional graph (edgemtl.artifact.signature).

    Weights that several branches hold with identical content (the layers no task modulates) become
    one initializer of the outer graph, read by every branch from the outer scope (``share``)."""
    import onnx
    from onnx import TensorProto, helper

    image, task, out = graph.inputs[0], graph.inputs[1], graph.outputs[0]
    shape = list(out["shape"])
    prefixed = [
        _prefixed_branch(i, m, b, image["name"], shape[1])
        for i, (m, b) in enumerate(zip(branches, graph.branches))
    ]
    outer_inits, stats = _share_identical(prefixed) if share else ([], {"initializers": 0, "bytes": 0})
    subgraphs = [
        helper.make_graph(
            nodes,
            f"branch_{b.method}",
            [],
            [helper.make_tensor_value_info(result, TensorProto.FLOAT, shape)],
            inits,
        )
        for (nodes, inits, result), b in zip(prefixed, graph.branches)
    ]
    sel_nodes, sel_inits, conds = _selector(task, scheme, len(subgraphs))
    dtypes = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}
    outer = helper.make_graph(
        [*sel_nodes, _if_chain(subgraphs, conds, out["name"], shape)],
        "edgemtl_specialized",
        [helper.make_tensor_value_info(s["name"], dtypes[s["dtype"]], s["shape"]) for s in (image, task)],
        [helper.make_tensor_value_info(out["name"], TensorProto.FLOAT, shape)],
        outer_inits + sel_inits,
    )
    opsets = {o.domain: o.version for m in branches for o in m.opset_import}
    opset_ids = [helper.make_opsetid(d, v) for d, v in opsets.items()]
    model = helper.make_model(outer, opset_imports=opset_ids, ir_version=branches[0].ir_version)
    onnx.checker.check_model(model)
    return model, stats


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
    from edgemtl.export.target import task_info
    from edgemtl.export.verify import numeric_parity

    sessions = {m: OrtBackend(data) for m, data in models.items()}

    def run(method: str, inputs: list) -> list:
        return sessions[method].run("forward", inputs)

    return numeric_parity(graphs, ctx.io, run, images, "fp32", f"onnxruntime on {what}", task_info(ctx.model))
