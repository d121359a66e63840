"""PT2E PTQ / QAT on tiny real models (XNNPACK quantizer, torchao)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_MODEL

from edgemtl.errors import EdgeMTLError
from edgemtl.models import create_model
from edgemtl.quant import QuantConfig, QuantizedModel, load_program, prepare_qat, ptq, save_program

TASKS = {"semseg": {"out_channels": 5}, "depth": {"out_channels": 1}, "normals": {"out_channels": 3}}


def model_(arch="astmt", **kw):
    torch.manual_seed(0)
    m = create_model(arch=arch, tasks=TASKS, **{**TINY_MODEL, **kw})
    m.train()
    with torch.no_grad():  # warm BN statistics so activations have realistic ranges
        for _ in range(3):
            m.forward_all(torch.rand(4, 3, 48, 48))
    return m.eval()


def weight_quant_ops(gm, module: str, op: str) -> list[str]:
    """Quantize/dequantize ops feeding the weight input of the first ``op`` node of ``module``.

    Walks up the weight argument's producers (reshape, mm with the one-hot, ...) a few levels.
    Raises if the module or op is absent, so the check can never pass vacuously.
    """
    nodes = [
        n
        for n in gm.graph.nodes
        if n.op == "call_function"
        and op in str(n.target)
        and any(v[0] == module for v in n.meta.get("nn_module_stack", {}).values())
    ]
    assert nodes, f"no {op} node in {module}"
    frontier, found, seen = [nodes[0].args[0 if op == "bmm" else 1]], [], set()
    for _ in range(6):
        nxt = []
        for node in frontier:
            if not hasattr(node, "op") or node in seen:
                continue
            seen.add(node)
            if "quantize" in str(node.target):
                found.append(str(node.target))
            nxt.extend(a for a in node.args if hasattr(a, "op"))
        frontier = nxt
    return found


def sqnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float(10 * torch.log10(a.square().mean() / (a - b).square().mean()))


@pytest.fixture(scope="module")
def astmt():
    return model_()


@pytest.fixture(scope="module")
def ptq_float(astmt):
    return ptq(astmt, [torch.rand(2, 3, 48, 48) for _ in range(3)])


@pytest.mark.slow
def test_ptq_keeps_the_task_input_and_float_task_weights(astmt, ptq_float):
    m = astmt
    q = QuantizedModel(ptq_float, m, "ptq")
    ops = [str(n.target) for n in q.gm.graph.nodes if n.op == "call_function"]
    assert sum("quantize_per_channel" in o for o in ops) > 10, "conv weights must be int8 per channel"
    se = "backbone.body.blocks.2.0.bn3.1"
    assert weight_quant_ops(q.gm, se, "bmm") == [], "task-selected SE weights stay fp32"
    assert any("per_channel" in o for o in weight_quant_ops(q.gm, "backbone.body.blocks.2.0.conv_pw", "conv"))
    x = torch.rand(1, 3, 48, 48)
    outs = [q(x, torch.tensor([t])) for t in range(3)]
    ref = [m(x, torch.tensor([t])) for t in range(3)]
    assert (outs[0][:, :1] - outs[1][:, :1]).abs().max() > 1e-4, "task switching survives quantization"
    for o, r in zip(outs, ref):
        assert sqnr(r, o) > 8, "int8 output close to fp32 (random weights, warmed BN)"


def dequantized_inputs(gm, module: str) -> list[str]:
    """Dequantize ops feeding the ops of ``module`` (int8 tensors entering its computation)."""
    found = []
    for n in gm.graph.nodes:
        if n.op == "call_function" and any(
            v[0] == module for v in n.meta.get("nn_module_stack", {}).values()
        ):
            found += [str(a.target) for a in n.args if hasattr(a, "target") and "dequantize" in str(a.target)]
    return found


@pytest.mark.slow
def test_per_tensor_mode_quantizes_task_modules_per_tensor(astmt, ptq_float):
    se = "backbone.body.blocks.2.0.bn3.1"
    fp = dequantized_inputs(ptq_float, se)
    pt_gm = ptq(astmt, [torch.rand(2, 3, 48, 48)], QuantConfig(task_weights="per_tensor"))
    pt = dequantized_inputs(pt_gm, se)
    # float: only tensors arriving from quantized neighbours; per_tensor: the SE's own FC/ReLU6
    # arithmetic runs on int8 tensors too, always with per-tensor parameters.
    assert len(pt) > len(fp) and all("per_tensor" in o for o in pt)
    # The selected weights are computed in-graph by the one-hot matmul and stay fp32 either way.
    assert weight_quant_ops(pt_gm, se, "bmm") == []
    with pytest.raises(EdgeMTLError, match="task_weights"):
        QuantConfig(task_weights="per_channel")


@pytest.mark.slow
def test_per_head_float_modules():
    m = model_("hard_sharing", se="shared")
    gm = ptq(m, [torch.rand(2, 3, 48, 48)], QuantConfig(float_modules=["heads.depth"]))
    assert weight_quant_ops(gm, "heads.depth", "conv") == []
    assert any("per_channel" in o for o in weight_quant_ops(gm, "heads.semseg", "conv"))
    with pytest.raises(EdgeMTLError, match="heads.dept.*heads.depth"):
        ptq(m, [], QuantConfig(float_modules=["heads.dept"]))


@pytest.mark.slow
def test_qat_freezes_observers_for_eval(astmt):
    prepared = prepare_qat(astmt)
    qm = QuantizedModel(prepared, astmt, "qat").train()
    opt = torch.optim.SGD([p for p in qm.parameters() if p.requires_grad], lr=1e-3)
    loss = qm.forward_task(torch.rand(2, 3, 48, 48), "semseg").square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    x = torch.rand(1, 3, 48, 48)
    qm.train()
    a = qm(x, torch.tensor([1])).detach()
    qm(torch.rand(2, 3, 48, 48) * 5, torch.tensor([1, 1]))  # training-mode call moves observer ranges
    qm.eval()
    b = qm(x, torch.tensor([1]))
    qm(torch.rand(1, 3, 48, 48) * 9, torch.tensor([1]))  # an eval call on other data must not move ranges
    assert torch.equal(qm(x, torch.tensor([1])), b), (
        "frozen observers: eval outputs must not drift between calls"
    )
    assert not torch.equal(a, b)  # ...while training-mode calls did update them


@pytest.mark.slow
def test_quantized_program_round_trip(tmp_path, astmt, ptq_float):
    x = torch.rand(1, 3, 48, 48)
    onehot = torch.nn.functional.one_hot(torch.tensor([2]), 3).float()
    save_program(ptq_float, astmt, tmp_path / "q.pt2")
    ep = load_program(tmp_path / "q.pt2")
    torch.testing.assert_close(ep.module()(x, onehot), ptq_float(x, onehot))
    with pytest.raises(EdgeMTLError, match="not found"):
        load_program(tmp_path / "missing.pt2")
    (tmp_path / "bad.pt2").write_bytes(b"junk")
    with pytest.raises(EdgeMTLError, match="cannot read"):
        load_program(tmp_path / "bad.pt2")


@pytest.mark.slow
def test_qat_cli_reports_fp32_ptq_qat(write_recipe, tiny_data, tmp_path, capsys):
    from edgemtl.checkpoint import save_checkpoint
    from edgemtl.cli import main
    from edgemtl.data.dataset import load_meta
    from edgemtl.tasks import build_tasks

    recipe = write_recipe(tasks=("semseg", "normals"), train={"max_steps_per_epoch": 1})
    meta = load_meta(tiny_data)
    tasks = {n: t.describe() for n, t in build_tasks(["semseg", "normals"], meta).items()}
    save_checkpoint(tmp_path / "m.pt", create_model(arch="astmt", tasks=tasks, **TINY_MODEL), meta)
    assert (
        main(
            [
                "qat",
                "--checkpoint",
                str(tmp_path / "m.pt"),
                "--recipe",
                str(recipe),
                "--epochs",
                "1",
                "--calib-batches",
                "2",
                "--out",
                str(tmp_path / "q"),
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "q" / "quant_report.json").read_text())
    assert set(report["primary"]) == {"fp32", "ptq", "qat"}
    assert set(report["delta_vs_fp32"]) == {"ptq", "qat"}
    assert (tmp_path / "q" / "qat_int8.pt2").is_file()
    assert "QAT int8: Δm vs its fp32 model" in capsys.readouterr().out


def test_ort_float_heads_stop_at_the_last_conv_on_each_output_path():
    """edgemtl.quant.ort.float_heads against a hand-built graph: out = Resize(Conv2(Relu(Conv1(x))))
    + Conv3(x), aux = Sigmoid(Conv2 path). Kept float: the Resize, the Add, the Sigmoid and the two
    convs next to the outputs (Conv2, Conv3), not Conv1 or the Relu behind Conv2."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from edgemtl.quant.ort import float_heads

    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w"], ["c2"], name="conv2"),
        helper.make_node("Resize", ["c2", "", "scales"], ["up"], name="resize", mode="linear"),
        helper.make_node("Conv", ["x", "w"], ["c3"], name="conv3"),
        helper.make_node("Add", ["up", "c3"], ["out"], name="add"),
        helper.make_node("Sigmoid", ["c2"], ["aux"], name="sigmoid"),
    ]
    scales = numpy_helper.from_array(np.array([1, 1, 1, 1], np.float32), "scales")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("x", "out", "aux")]
    model = helper.make_model(helper.make_graph(nodes, "g", [io[0]], io[1:], [w, scales]))
    assert sorted(float_heads(model)) == ["add", "conv2", "conv3", "resize", "sigmoid"]


def test_qat_program_normalises_with_running_statistics(astmt):
    """Per-task BN is Python arithmetic that torchao cannot switch to eval after tracing: a QAT graph
    traced in train mode kept batch statistics in the deployed program, so an image's output
    depended on the other images of its batch (and at batch 1 on itself alone). The converted QAT
    program must give an image the same output alone as in a batch."""
    from edgemtl.models.modulation import TaskBatchNorm
    from edgemtl.quant.pt2e import convert

    assert any(isinstance(m, TaskBatchNorm) for m in astmt.modules())
    prepared = prepare_qat(astmt)
    left_training = astmt.training
    qm = QuantizedModel(prepared, astmt, "qat").train()
    qm(torch.rand(4, 3, 48, 48), torch.tensor([1, 1, 1, 1]))  # a training step's forward: observers
    converted = QuantizedModel(convert(prepared), astmt, "converted")
    torch.manual_seed(1)
    x, others = torch.rand(1, 3, 48, 48), 3 * torch.rand(3, 3, 48, 48)
    alone = converted(x, torch.tensor([1]))
    batched = converted(torch.cat([x, others]), torch.tensor([1, 1, 1, 1]))[:1]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    stats = [
        str(n.target)
        for n in converted.gm.graph.nodes
        if n.op == "call_function" and str(n.target).startswith("aten.var")
    ]
    assert not stats, f"batch statistics in the converted program: {stats}"
    assert not left_training, "preparing QAT leaves the float model's mode as it was"


def test_a_program_with_batch_statistics_is_refused(tmp_path, astmt):
    """A QAT program saved before per-task BN was traced on running statistics (batch statistics in
    its graph) is refused when loaded for export or evaluation, naming the fix."""
    from edgemtl.quant.pt2e import load_quantized_model

    class BatchStats(torch.nn.Module):
        def forward(self, image, task):
            return astmt(image, task) - image.var((0, 2, 3), unbiased=False).mean()

    save_program(BatchStats(), astmt, tmp_path / "qat_int8.pt2", "converted")
    with pytest.raises(EdgeMTLError, match="batch statistics.*re-run 'edgemtl qat'"):
        load_quantized_model(tmp_path / "qat_int8.pt2")
