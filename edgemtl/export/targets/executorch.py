"""ExecuTorch ``.pte`` programs: XNNPACK (runs here, checked numerically in the ExecuTorch runtime)
and the CoreML delegate (runs on Apple hardware only: checked structurally, numbers through ORT).

``--task-input per-task`` lowers one method per task into one program
(``to_edge_transform_and_lower({"<task>": ep, ...})``); the weights are stored once (the
program's named data is shared between methods).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemtl._proc import NativeStderr
from edgemtl.data.layout import atomic_write_bytes
from edgemtl.errors import EdgeMTLError, UnsupportedError
from edgemtl.export import TARGETS
from edgemtl.export.target import Backend, ExportContext, ExportTarget, check_io

if TYPE_CHECKING:
    from edgemtl.export.wrapper import Graph

_SCALAR = {6: "float32", 4: "int64", 5: "float16", 3: "int32", 11: "bool"}


def _lower(programs: dict[str, Any], partitioner: list) -> bytes:
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_edge_transform_and_lower(programs, partitioner=partitioner).to_executorch().buffer


def inspect_pte(data: bytes) -> dict[str, Any]:
    """Methods, their I/O specs, delegate calls and the kernels left outside any delegate."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, KernelCall

    program = deserialize_pte_binary(data).program
    methods: dict[str, Any] = {}
    for plan in program.execution_plan:

        def spec(idx: int, name: str, plan=plan) -> dict[str, Any]:
            t = plan.values[idx].val
            return {
                "name": name,
                "dtype": _SCALAR.get(int(t.scalar_type), str(t.scalar_type)),
                "shape": list(t.sizes),
            }

        kernels: Counter = Counter()
        delegates: Counter = Counter()
        for chain in plan.chains:
            for ins in chain.instructions:
                if isinstance(ins.instr_args, KernelCall):
                    kernels[plan.operators[ins.instr_args.op_index].name] += 1
                elif isinstance(ins.instr_args, DelegateCall):
                    delegates[plan.delegates[ins.instr_args.delegate_index].id] += 1
        methods[plan.name] = {
            "inputs": [spec(i, f"input_{k}") for k, i in enumerate(plan.inputs)],
            "outputs": [spec(i, f"output_{k}") for k, i in enumerate(plan.outputs)],
            "delegate_calls": dict(delegates),
            "kernels_outside_delegates": dict(kernels),
        }
    return methods


def _check(methods: dict[str, Any], ctx: ExportContext) -> list[str]:
    # .pte values carry no names: compare dtypes and shapes by position, names from the manifest.
    found = {
        m: {
            k: [
                {**s, "name": want["name"]}
                for s, want in zip(info[k], ctx.io["methods"].get(m, {}).get(k, []))
            ]
            + info[k][len(ctx.io["methods"].get(m, {}).get(k, [])) :]
            for k in ("inputs", "outputs")
        }
        for m, info in methods.items()
    }
    return check_io(found, ctx.io["methods"], "executorch")


def set_executorch_threads(threads: int | None) -> None:
    """ExecuTorch's CPU threadpool is process-wide: this affects every loaded program."""
    if threads:
        from executorch.extension.pybindings import portable_lib

        with NativeStderr():  # it prints "Resetting threadpool to N threads."
            portable_lib._unsafe_reset_threadpool(int(threads))


class EtBackend(Backend):
    """ExecuTorch runtime (portable + XNNPACK kernels). Methods are loaded on first use."""

    name = "executorch"
    runtime_module = "executorch.runtime"

    def __init__(self, program: str | os.PathLike | bytes, threads: int | None = None) -> None:
        from executorch.runtime import Runtime

        set_executorch_threads(threads)
        self.threads = threads
        src = program if isinstance(program, bytes) else Path(program)
        try:
            self.program = Runtime.get().load_program(src)
        except Exception as e:  # noqa: BLE001 (each runtime raises its own types)
            raise EdgeMTLError(
                f"cannot load ExecuTorch program {'' if isinstance(program, bytes) else program} "
                f"(truncated or corrupt?): {str(e)[:300]}"
            ) from None
        self.methods = sorted(self.program.method_names)
        self._loaded: dict = {}

    @staticmethod
    def require_delegate(name: str) -> None:
        """Fail at load time, not at the first call, when a delegate is not compiled into this runtime."""
        from executorch.runtime import Runtime

        registry = Runtime.get().backend_registry
        if not registry.is_available(name):
            raise UnsupportedError(
                f"this program is delegated to {name}, which this ExecuTorch runtime does not have "
                f"(available: {', '.join(registry.registered_backend_names)}); "
                + (
                    "run it on Apple hardware (iOS/macOS ExecuTorch with the CoreML backend)"
                    if "CoreML" in name
                    else ""
                )
            )

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        if method not in self._loaded:
            native = NativeStderr()
            try:
                with native:
                    self._loaded[method] = self.program.load_method(method)
            except Exception as e:  # noqa: BLE001 (each runtime raises its own types)
                msg = (str(e) + (f" [{native.text[-300:]}]" if native.text else ""))[:600]
                hint = (
                    " (a CoreML-delegated .pte runs on Apple platforms only)"
                    if "CoreML" in msg or "0x:20" in msg
                    else ""
                )
                raise EdgeMTLError(
                    f"cannot load method '{method}' of the ExecuTorch program{hint}: {msg}"
                ) from None
        outs = self._loaded[method].execute([torch.from_numpy(np.ascontiguousarray(a)) for a in inputs])
        return [o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in outs]


@TARGETS.register("executorch")
class ExecuTorchXnnpack(ExportTarget):
    name = "executorch"
    suffix = ".pte"
    backend = EtBackend
    description = "ExecuTorch program, XNNPACK delegate (portable kernels for the rest); fp32 or int8 (PT2E)"
    precisions = ("fp32", "int8")
    task_inputs = ("onehot", "index", "per-task", "all")
    unsupported_why = {
        "fp16": " (XNNPACK fp16 needs an fp16 graph edgemtl does not build; use coreml or executorch-coreml)",
    }

    def write(self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext) -> None:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        atomic_write_bytes(ctx.out, _lower(programs, [XnnpackPartitioner()]))

    def inspect(self, graphs: list[Graph], ctx: ExportContext) -> dict[str, Any]:
        methods = inspect_pte(ctx.out.read_bytes())
        return {"problems": _check(methods, ctx), "methods": methods, "bytes": ctx.out.stat().st_size}


@TARGETS.register("executorch-coreml")
class ExecuTorchCoreML(ExportTarget):
    name = "executorch-coreml"
    suffix = ".pte"
    default_precision = "fp16"
    backend = EtBackend
    delegate = "CoreMLBackend"  # present in ExecuTorch's Apple builds only
    description = (
        "ExecuTorch program, whole graph delegated to CoreML (runs on Apple platforms; "
        "verified structurally + the same program in ORT)"
    )
    precisions = ("fp16", "fp32")
    task_inputs = ("onehot", "per-task", "all")
    options = {"minimum_deployment_target": "iOS17"}
    option_choices = {"minimum_deployment_target": ("iOS16", "iOS17", "iOS18")}
    unsupported_why = {
        "index": " (CoreML has no int64 inputs and the ANE prefers one-hot: use onehot or per-task)",
        "int8": " (the CoreML delegate takes fp16/fp32 graphs here; for int8 on Apple use the coreml target "
        "with weight_compression: int8, or executorch int8 on XNNPACK)",
    }

    def write(self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext) -> None:
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        specs = CoreMLBackend.generate_compile_specs(
            compute_precision=ct.precision.FLOAT16 if ctx.precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=getattr(ct.target, ctx.options["minimum_deployment_target"]),
        )
        from edgemtl.export.targets.onnx import ort_surrogates

        self.surrogates = ort_surrogates(programs, graphs)
        atomic_write_bytes(ctx.out, _lower(programs, [CoreMLPartitioner(compile_specs=specs)]))

    def inspect(self, graphs: list[Graph], ctx: ExportContext) -> dict[str, Any]:
        methods = inspect_pte(ctx.out.read_bytes())
        problems = _check(methods, ctx)
        for name, m in methods.items():
            if m["kernels_outside_delegates"]:
                problems.append(
                    f"executorch-coreml: method '{name}' runs {m['kernels_outside_delegates']} outside "
                    "the CoreML delegate (expected the whole graph delegated)"
                )
            if set(m["delegate_calls"]) != {"CoreMLBackend"}:
                problems.append(f"executorch-coreml: method '{name}' delegates to {m['delegate_calls']}")
        return {"problems": problems, "methods": methods, "bytes": ctx.out.stat().st_size, "runs_here": False}

    def numeric(
        self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext, images
    ) -> dict[str, Any]:
        from edgemtl.export.targets.onnx import numeric_via_ort

        ctx.notes.append(
            "CoreML-delegated programs cannot run on Linux: numbers checked on the same ExportedProgram "
            "in ONNX Runtime (fp32); the delegate's conversion is checked structurally"
        )
        return numeric_via_ort(
            self.surrogates, graphs, ctx, images, "the ExportedProgram lowered to the CoreML delegate"
        )
