"""ONNX Runtime's static int8 quantizer applied to an exported fp32 ONNX graph (the onnx target's
``quantizer=ort``), and the fake-quant reference its parity is checked against.

Why U8S8, per-channel, and ``reduce_range`` on x86 without VNNI: see edgemtl.export.targets.onnx.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgemtl.export.wrapper import Graph


def task_dependent_nodes(model: Any, image_input: str = "image") -> list[str]:
    """Nodes that read anything derived from a non-image input (the task): the task encoding,
    the task-selected weights and the ops they feed directly (SE matmuls, the invalid-task guard).
    Kept fp32, as edgemtl.quant keeps task-selected weights fp32: a per-tensor int8 range over
    selected weights costs accuracy, and ORT cannot fold a non-constant bias."""
    task_inputs = {i.name for i in model.graph.input if i.name != image_input}
    derived = set(task_inputs)
    from_image = {image_input}
    keep_float = []
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        reads_task = any(i in derived for i in node.input)
        reads_image = any(i in from_image for i in node.input)
        if reads_task and not reads_image:
            derived.update(node.output)
        if reads_image:
            from_image.update(node.output)
        if reads_task or not reads_image:
            keep_float.append(node.name)
    return keep_float


class QdqSimulation:
    """The fake-quant reference of an ORT-quantized graph: the same QDQ graph run by ONNX Runtime
    with graph optimisations off, so Quantize/DequantizeLinear execute as float ops instead of
    being fused into integer kernels. Called like the PyTorch module it stands in for."""

    def __init__(self, data: bytes) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs):
        import torch

        outs = self.session.run(None, {n: t.numpy() for n, t in zip(self.names, inputs)})
        return tuple(torch.from_numpy(o) for o in outs)


def float_resizes(model: Any) -> list[str]:
    """Resize nodes, kept float (DequantizeLinear -> Resize -> QuantizeLinear): ONNX Runtime's uint8
    bilinear Resize was slower than that on a Xeon with VNNI/AMX (MobileNet-v2 single-task, 256x256,
    1 thread: int8 / fp32 latency 0.62 -> 0.59), and the upsampled values are not rounded to 8 bits."""
    return [n.name for n in model.graph.node if n.op_type == "Resize" and n.name]


def float_heads(model: Any) -> list[str]:
    """The output heads, kept float: every node between a graph output and the last linear layer
    (Conv, Gemm, MatMul, or the Einsum of edgemtl's stacked task-selected heads) on its way back,
    that layer included. The heads' last conv is a small 1x1 (C_in x classes)
    and its output is what the user reads, so 8-bit logits cost accuracy for little speed; and in
    float ORT runs the conv and the full-resolution bilinear upsample after it in its blocked NCHWc
    layout, where the dequantized NCHW Resize cost 0.86 ms of a 5.6 ms int8 call (MobileNet-v2
    single-task, 256x256, 10 classes, 1 thread, AMD EPYC with avx512_vnni: int8 / fp32 latency
    0.579 -> 0.540, interleaved runs; docs/export.md)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    keep: list[str] = []
    seen: set[int] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name:
            keep.append(node.name)
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"):
            stack.extend(node.input)
    return keep


def quantize_ort(
    fp32: bytes, graph: Graph, io_spec: dict[str, Any], batches: list, reduce_range: bool = False
) -> bytes:
    """ONNX Runtime static quantization (QDQ, U8S8, per-channel) of an fp32 graph."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgemtl.artifact.signature import encode_task

    names = [s["name"] for s in graph.inputs]
    feeds = []
    for batch in batches:
        for x in batch.split(1):
            for task in io_spec["tasks"] if len(names) > 1 else io_spec["tasks"][:1]:
                _, extra = encode_task(io_spec, task)
                feeds.append(dict(zip(names, [x.numpy(), *extra])))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    import logging

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantizer logs advice per node through the root logger
        src, pre, dst = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(fp32)
        try:  # shape inference + fusions; the quantizer works without it, just less well
            quant_pre_process(str(src), str(pre))
        except Exception:  # noqa: BLE001 (its failures are optimisation misses, not errors)
            pre = src
        prepared = onnx.load(str(pre))
        try:
            quantize_static(
                str(pre),
                str(dst),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                reduce_range=reduce_range,
                nodes_to_exclude=sorted(
                    {*task_dependent_nodes(prepared), *float_resizes(prepared), *float_heads(prepared)}
                ),
            )
        finally:
            root.setLevel(level)
        return dst.read_bytes()
