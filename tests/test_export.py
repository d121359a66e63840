"""Export to ONNX / ExecuTorch / CoreML and the runtime API, with the real runtimes (never mocked).

Tiny models (mobilenetv2_tiny: timm's MobileNet-v2 generator with one block per stage, 32x32,
2-3 tasks): lowering time grows with graph size, and ExecuTorch's XNNPACK lowering still takes
~20-30 s per graph here, so each artifact is built once and shared.
The default run exports every registered architecture to every target, covers every precision
of every target, every task-input scheme and every runtime error. EDGEMTL_EXPORT_MATRIX=1 adds
the full architecture x target x precision product (about 20 minutes here).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl import runtime
from edgemtl.artifact.processing import preprocess
from edgemtl.errors import EdgeMTLError, UnsupportedError
from edgemtl.export import TARGETS, export, get_target, support_table
from edgemtl.export.target import ExportTarget
from edgemtl.export.verify import VerificationError, numeric_parity, sample_images
from edgemtl.export.wrapper import build_graphs, task_io
from edgemtl.models import ARCHITECTURES, create_model

TINY = {
    "backbone": "mobilenetv2_tiny",
    "image_size": (32, 32),
    "decoder_channels": 16,
    "low_level_channels": 8,
    "mti_channels": 8,
}
CLASSES = ["bg", "a", "b", "c", "d"]
TASKS3 = {
    "semseg": {"out_channels": 5, "class_names": CLASSES},
    "depth": {"out_channels": 1},
    "normals": {"out_channels": 3},
}
TASKS2 = {"semseg": {"out_channels": 5}, "edges": {"out_channels": 1}}
MATRIX = os.environ.get("EDGEMTL_EXPORT_MATRIX") == "1"


def tiny(arch: str, tasks: dict = TASKS3, **kw):
    torch.manual_seed(0)
    if arch == "single_task":
        tasks = {"semseg": tasks["semseg"]}
    # se="decoder" keeps astmt's per-task SE out of the encoder: same export paths, ~7x fewer
    # XNNPACK partitions to lower (the encoder-SE graph takes minutes to lower here).
    extra = {"se": "decoder"} if arch == "astmt" else {}
    return create_model(arch=arch, tasks=tasks, **TINY, **{**extra, **kw}).eval()


@pytest.fixture(scope="module")
def images():
    # Rendered scenes and a real photo (tests/fixtures), none at the model size: exercises resizing.
    return sample_images(None, (40, 56), 2) + sample_images(Path(__file__).parent / "fixtures", n=1)


@pytest.fixture(scope="module")
def astmt():
    return tiny("astmt")


@pytest.fixture(scope="module")
def onnx_onehot(astmt, images, tmp_path_factory):
    return export(astmt, "onnx", tmp_path_factory.mktemp("onnx") / "astmt.onnx", images=images)


@pytest.fixture(scope="module")
def pte_per_task(images, tmp_path_factory):
    model = tiny("hard_sharing", TASKS2)
    res = export(
        model, "executorch", tmp_path_factory.mktemp("et") / "hs.pte", task_input="per-task", images=images
    )
    return model, res


def reference(model, image: np.ndarray, task: str, size=(32, 32)) -> np.ndarray:
    with torch.no_grad():
        return model.forward_task(torch.from_numpy(preprocess(image, size)), task)[0].numpy()


def check_runtime_matches_pytorch(model, path, images) -> None:
    rt = runtime.load(path, threads=1)
    assert rt.tasks == model.task_names
    for name, img in images:
        for task in rt.tasks:
            pred = rt.predict(img, task)
            ref = reference(model, img, task)
            np.testing.assert_allclose(pred["raw"], ref, atol=1e-4, rtol=1e-4, err_msg=f"{task} on {name}")
            assert pred["prediction"].shape[:2] == img.shape[:2]
            vis = rt.visualize(pred)
            assert vis.dtype == np.uint8 and vis.shape == (*img.shape[:2], 3)


# ---- declared support -----------------------------------------------------------------------


def test_support_table_is_declarative():
    rows = {r["target"]: r for r in support_table()}
    assert set(rows) == set(TARGETS.names()) >= {"onnx", "executorch", "executorch-coreml", "coreml"}
    for name, row in rows.items():  # every target declares all of it
        cls = TARGETS.get(name)
        assert (
            row["suffix"].startswith(".") and row["precisions"] and row["task_inputs"] and row["description"]
        )
        assert (
            set(row["precisions"]) <= {"fp32", "fp16", "int8"} and cls.default_precision in row["precisions"]
        )
        assert cls.backend is not None or cls.not_runnable != ExportTarget.not_runnable, name
    assert rows["onnx"]["precisions"] == ("fp32", "int8") and "per-task" not in rows["onnx"]["task_inputs"]
    assert rows["executorch"]["precisions"] == ("fp32", "int8")
    assert (
        set(rows["coreml"]["precisions"]) == {"fp16", "fp32"} and "index" not in rows["coreml"]["task_inputs"]
    )
    assert "per-task" in rows["executorch"]["task_inputs"]


def test_docs_support_table_lists_every_registered_target():
    """docs/export.md's table is the registry's: a target added without its row, or with other
    precisions / task inputs than it declares, fails here."""
    import re

    rows = {}
    for line in (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text().splitlines():
        m = re.match(r"\| `([\w-]+)` \| (.*?) \| (.*?) \| (.*?) \|", line)
        if m and m.group(1) in TARGETS:
            rows[m.group(1)] = (
                re.findall(r"fp32|fp16|int8", m.group(3)),
                re.findall(r"onehot|index|per-task|all", m.group(4)),
            )
    assert set(rows) == set(TARGETS.names())
    for name, (precisions, schemes) in rows.items():
        cls = TARGETS.get(name)
        assert set(precisions) == set(cls.precisions) and set(schemes) == set(cls.task_inputs), name


@pytest.mark.parametrize(
    "target,precision,scheme,arch,match",
    [
        ("onnx", "fp32", "per-task", "astmt", "one graph"),
        ("onnx", "fp16", None, "astmt", "fp16"),
        ("executorch", "fp16", None, "astmt", "fp16"),
        ("coreml", "fp16", "index", "astmt", "int32 gather"),
        ("executorch-coreml", "fp16", "index", "astmt", "int64"),
        ("onnx", "fp32", "onehot", "hard_sharing", "multi-output"),
        ("coreml", "fp16", "all", "astmt_encoder_se", "task-modulated encoder"),
        ("executorch-coreml", "int8", None, "astmt", "weight_compression: int8"),
        ("coreml", "int8", None, "astmt", "weight_compression"),
    ],
)
def test_unsupported_combinations_raise_before_any_work(tmp_path, target, precision, scheme, arch, match):
    model = tiny("astmt", se="encoder_decoder") if arch == "astmt_encoder_se" else tiny(arch)
    out = tmp_path / f"m{get_target(target).suffix}"
    with pytest.raises(UnsupportedError, match=match):
        export(model, target, out, precision=precision, task_input=scheme)
    assert not out.exists()


def test_bad_names_and_options_are_clear(tmp_path):
    model = tiny("single_task")
    with pytest.raises(EdgeMTLError, match="Did you mean 'onnx'"):
        export(model, "onnxx", tmp_path / "m.onnx")
    with pytest.raises(
        EdgeMTLError, match="unknown option 'weight_compresion'.*Did you mean 'weight_compression'"
    ):
        export(
            model, "coreml", tmp_path / "m.mlpackage", precision="fp16", options={"weight_compresion": "int8"}
        )
    with pytest.raises(EdgeMTLError, match="writes a .pte file"):
        export(model, "executorch", tmp_path / "m.onnx")


def test_every_shipped_profile_loads_and_unknown_keys_fail(tmp_path):
    from edgemtl.export.profiles import PROFILE_DIR, load_profile

    files = sorted(PROFILE_DIR.glob("*.yaml"))
    assert {f.stem for f in files} >= {
        "onnx_fp32",
        "executorch_xnnpack_fp32",
        "coreml_ios17_fp16",
        "coreml_multifunction",
    }
    for f in files:
        prof = load_profile(f.stem)
        target = get_target(prof["target"])
        assert prof.get("precision", "fp32") in target.precisions, f.name
        assert prof.get("task_input", "onehot") in target.task_inputs + ("all",), f.name
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: onnx\nprecison: fp32\n")
    with pytest.raises(EdgeMTLError, match="unknown key 'precison'.*Did you mean 'precision'"):
        load_profile(bad)
    bad.write_text("target: coreml\noptions: {palette_bits: 5}\n")
    with pytest.raises(EdgeMTLError, match="palette_bits=5"):
        load_profile(bad)


# ---- ONNX (one-hot + index), runtime API and its errors --------------------------------------


@pytest.mark.slow
def test_onnx_onehot_artifact_verified_and_self_describing(onnx_onehot, astmt, images):
    meta = onnx_onehot.metadata
    assert meta["verification"]["passed"]
    parity = meta["verification"]["numeric"]["tasks"]
    assert set(parity) == set(astmt.task_names)
    assert all(p["max_abs_diff"] < 1e-4 and p["images"] == len(images) == 3 for p in parity.values())
    assert meta["task_input"]["scheme"] == "onehot"
    assert meta["task_input"]["methods"]["forward"]["inputs"][1] == {
        "name": "task",
        "dtype": "float32",
        "shape": [1, 3],
    }
    assert meta["task_info"]["semseg"]["class_names"] == CLASSES
    assert (
        meta["task_info"]["depth"]["unit"] == "metres"
        and meta["task_info"]["normals"]["decoding"] == "l2_normalize"
    )
    assert "inside the graph" in meta["preprocessing"]["normalization"]
    assert meta["model_config"]["arch"] == "astmt" and meta["edgemtl_version"]
    manifest = json.loads(onnx_onehot.manifest.read_text())
    assert manifest["artifact_sha256"] and manifest["tasks"] == astmt.task_names
    import onnx

    m = onnx.load(str(onnx_onehot.path))
    assert json.loads({p.key: p.value for p in m.metadata_props}["edgemtl"])["tasks"] == astmt.task_names
    assert not list(onnx_onehot.path.parent.glob("*.data")), "single file, no external weights"


def test_onnx_runtime_predict_matches_pytorch_for_every_task(onnx_onehot, astmt, images):
    check_runtime_matches_pytorch(astmt, onnx_onehot.path, images)
    rt = runtime.load(onnx_onehot.path)
    pred = rt.predict(images[0][1], "normals")
    assert np.allclose(np.linalg.norm(pred["prediction"], axis=-1), 1, atol=1e-4), "unit normals"
    assert rt.predict(images[0][1], 0)["task"] == "semseg"


def test_onnx_global_pools_are_global_average_pools(onnx_onehot, tmp_path):
    """adaptive_avg_pool2d(x, 1) (SE, ASPP pooling) is GlobalAveragePool in the file, not ReduceMean
    over H, W, so that ORT's quantizer makes it one uint8 kernel; other ReduceMeans stay as they are."""
    import onnx
    from onnx import TensorProto, helper

    from edgemtl.export.targets.onnx import _global_pools

    ops = [n.op_type for n in onnx.load(str(onnx_onehot.path)).graph.node]
    assert "GlobalAveragePool" in ops and "ReduceMean" not in ops
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])
    nodes, outs = [], []
    cases = [
        ([2, 3], 1, [1, 3, 1, 1]),
        ([-1, -2], 1, [1, 3, 1, 1]),
        ([1], 1, [1, 1, 4, 5]),
        ([2, 3], 0, [1, 3]),
    ]
    for i, (axes, keep, shape) in enumerate(cases):
        axes_t = helper.make_tensor(f"axes{i}", TensorProto.INT64, [len(axes)], axes)
        nodes.append((helper.make_node("ReduceMean", ["x", f"axes{i}"], [f"y{i}"], keepdims=keep), axes_t))
        outs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, shape))
    graph = helper.make_graph([n for n, _ in nodes], "g", [x], outs, [t for _, t in nodes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    rewritten = onnx.load_from_string(_global_pools(model.SerializeToString()))
    assert [n.op_type for n in rewritten.graph.node] == ["GlobalAveragePool"] * 2 + ["ReduceMean"] * 2
    assert sorted(t.name for t in rewritten.graph.initializer) == ["axes2", "axes3"]
    import onnxruntime as ort

    feed = {"x": np.random.default_rng(0).random((1, 3, 4, 5), dtype=np.float32)}
    a = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    b = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feed
    )
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-6)


def test_graph_returns_nan_for_an_invalid_onehot(onnx_onehot):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_onehot.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    for bad in ([[0, 0, 0]], [[1, 1, 0]], [[0.5, 0.5, 0]]):
        assert np.isnan(sess.run(None, {"image": x, "task": np.array(bad, np.float32)})[0]).all()
    assert np.isfinite(sess.run(None, {"image": x, "task": np.array([[0, 1, 0]], np.float32)})[0]).all()


@pytest.mark.slow
def test_onnx_index_graph_guards_out_of_range_ids(astmt, images, tmp_path):
    import onnx
    import onnxruntime as ort

    res = export(astmt, "onnx", tmp_path / "idx.onnx", task_input="index", images=images[:1])
    assert res.metadata["verification"]["passed"]
    assert not any(n.op_type == "Gather" and "task" in n.input for n in onnx.load(str(res.path)).graph.node)
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = preprocess(images[0][1], (32, 32))
    for bad in (-1, 3, 7):  # ORT would wrap -1 to the last task with a plain gather
        assert np.isnan(sess.run(None, {"image": x, "task": np.array([bad])})[0]).all()
    rt = runtime.load(res.path)
    with pytest.raises(EdgeMTLError, match="task id -1 out of range"):
        rt.predict(images[0][1], -1)
    np.testing.assert_allclose(
        rt.predict(images[0][1], "depth")["raw"], reference(astmt, images[0][1], "depth"), atol=1e-4
    )


def test_runtime_input_errors_are_clear(onnx_onehot, images):
    rt = runtime.load(onnx_onehot.path)
    img = images[0][1]
    with pytest.raises(EdgeMTLError, match="unknown task 'dept'.*Did you mean 'depth'"):
        rt.predict(img, "dept")
    with pytest.raises(EdgeMTLError, match="task id 3 out of range"):
        rt.predict(img, 3)
    with pytest.raises(EdgeMTLError, match="dtype must be uint8"):
        rt.predict(img.astype(np.float32) / 255, "depth")
    with pytest.raises(EdgeMTLError, match="grayscale"):
        rt.predict(img[..., 0], "depth")
    with pytest.raises(EdgeMTLError, match=r"RGBA: pass image\[..., :3\]"):
        rt.predict(np.dstack([img, img[..., :1]]), "depth")
    with pytest.raises(EdgeMTLError, match="model input is 32x32"):
        rt.predict(img, "depth", resize=False)
    with pytest.raises(EdgeMTLError, match=r"float32 \[1, 3, 32, 32\]"):
        rt.run(np.zeros((1, 3, 40, 40), np.float32), "depth")


def test_runtime_file_errors_are_clear(onnx_onehot, tmp_path):
    with pytest.raises(EdgeMTLError, match="artifact not found"):
        runtime.load(tmp_path / "none.onnx")
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(onnx_onehot.path.read_bytes()[:5000])
    shutil.copy(onnx_onehot.manifest, tmp_path / "trunc.onnx.json")
    with pytest.raises(EdgeMTLError, match="sha256 differs"):
        runtime.load(trunc)
    (tmp_path / "trunc.onnx.json").unlink()
    with pytest.raises(EdgeMTLError, match="truncated or corrupt"):
        runtime.load(trunc)
    # Without its manifest an ONNX file still loads from its embedded metadata.
    alone = tmp_path / "alone.onnx"
    shutil.copy(onnx_onehot.path, alone)
    assert runtime.load(alone).tasks == onnx_onehot.metadata["tasks"]
    # A manifest cut short or edited by hand is named, not a KeyError from deep inside.
    meta = json.loads(onnx_onehot.manifest.read_text())
    del meta["preprocessing"], meta["task_input"]["methods"]
    shutil.copy(onnx_onehot.path, tmp_path / "edited.onnx")
    (tmp_path / "edited.onnx.json").write_text(json.dumps(meta))
    with pytest.raises(
        EdgeMTLError,
        match=r"edited.onnx.json: manifest lacks or mangles 'preprocessing' \(dict\), "
        r"'task_input.methods'",
    ):
        runtime.load(tmp_path / "edited.onnx")


def test_failed_parity_names_task_and_output(onnx_onehot, astmt, images):
    from edgemtl.export.targets.onnx import OrtBackend

    graphs = build_graphs(astmt, "onehot")
    io = task_io(astmt, "onehot", graphs)
    backend = OrtBackend(onnx_onehot.path)

    def off_for_depth(method, inputs):  # the real artifact, with depth's channel shifted afterwards
        out = backend.run(method, inputs)
        if inputs[1][0, 1] == 1:
            out[0] = out[0] + 0.5
        return out

    rep = numeric_parity(graphs, io, off_for_depth, images, "fp32", "ort")
    assert not rep["passed"] and rep["tasks"]["semseg"]["max_abs_diff"] < 1e-4
    assert len(rep["failures"]) == len(images) and "task 'depth' output 'out'" in rep["failures"][0]
    from edgemtl.export.verify import raise_if_failed

    with pytest.raises(VerificationError, match="task 'depth' output 'out'"):
        raise_if_failed({"numeric": rep}, "m.onnx")


def test_latency_measure(onnx_onehot):
    from edgemtl.profile.latency import measure

    r = measure(runtime.load(onnx_onehot.path, threads=1), "depth", warmup=1, runs=5)
    assert 0 < r["median_ms"] <= r["p90_ms"] and r["threads"] == 1 and r["backend"] == "onnxruntime"


def test_latency_measure_interleaved_spreads_every_call_over_the_rounds(onnx_onehot):
    """Each call gets its warm-up at the start of every round and runs/rounds timed calls there, and
    the rounds alternate between the calls: a log of who ran shows it, not only the summary."""
    import time

    from edgemtl.profile.latency import all_tasks_call, measure_interleaved, task_call

    log = []

    def logged(name, call):
        return lambda: (log.append(name), call())

    rt = runtime.load(onnx_onehot.path, threads=1)
    sleepy = logged("sleep", lambda: time.sleep(0.004))
    calls = {
        "depth": logged("depth", task_call(rt, "depth")),
        "all": logged("all", all_tasks_call(rt)),
        "s": sleepy,
    }
    out = measure_interleaved(calls, warmup=1, runs=7, rounds=3)
    assert {k: log.count(k) for k in ("depth", "all", "sleep")} == {"depth": 10, "all": 10, "sleep": 10}
    assert all(out[k]["runs"] == 7 and out[k]["rounds"] == 3 for k in calls)
    assert out["s"]["median_ms"] >= 4 and 0 < out["depth"]["median_ms"] <= out["depth"]["p90_ms"]
    # Round 1 holds 4 calls of each (1 warm-up + 3 timed): all three ran before round 2 began.
    first = log[: 4 + 4 + 4]
    assert set(first) == {"depth", "all", "sleep"}
    with pytest.raises(EdgeMTLError, match="rounds must be >= 1"):
        measure_interleaved(calls, rounds=0)


def test_profile_rejects_a_negative_warmup_before_any_export(capsys):
    """Spread over interleaved rounds, a negative warm-up would round to 0 silently: the flag and
    the library both refuse it, before minutes of export."""
    from edgemtl.cli import main
    from edgemtl.profile.latency import profile_runtimes

    with pytest.raises(SystemExit):
        main(["profile", "models/astmt_mnv2.yaml", "--warmup", "-1"])
    assert "argument --warmup: must be at least 0 (got -1)" in capsys.readouterr().err
    with pytest.raises(EdgeMTLError, match="warmup >= 0"):
        profile_runtimes(None, ["onnx"], 1, warmup=-1)


# ---- ExecuTorch (per-task methods) ----------------------------------------------------------


def test_memory_footprint_of_one_and_several_artifacts(onnx_onehot, tmp_path):
    """Load time and resident memory, in a fresh process, above the runtime library's own baseline."""
    import shutil

    from edgemtl.profile.memory import footprint

    one = footprint([onnx_onehot.path], threads=1)
    assert one["artifacts"] == ["astmt.onnx"] and one["load_ms"] > 0
    assert 0 < one["baseline_mb"] <= one["after_load_mb"] <= one["peak_mb"]
    assert one["peak_delta_mb"] == pytest.approx(one["peak_mb"] - one["baseline_mb"], abs=0.2)
    copy = tmp_path / "copy.onnx"
    shutil.copy(onnx_onehot.path, copy)
    shutil.copy(f"{onnx_onehot.path}.json", f"{copy}.json")
    two = footprint([onnx_onehot.path, copy], threads=1)
    assert two["artifacts"] == ["astmt.onnx", "copy.onnx"]
    assert two["baseline_mb"] == pytest.approx(one["baseline_mb"], rel=0.2)  # same imports, same baseline
    with pytest.raises(EdgeMTLError, match="artifact not found: .*nope.onnx"):
        footprint([tmp_path / "nope.onnx"])


@pytest.mark.slow
@pytest.mark.parametrize("se", ["decoder", "encoder_decoder"])
def test_executorch_onehot_graph_is_fully_delegated(images, tmp_path, se):
    """The task-conditional one-hot graph runs inside XNNPACK: task selection, per-task BN, task SE and
    the invalid-task guard delegate; only the guard's two sums over the [1, T] input and the layout
    copies at the graph's ends stay outside (they split the graph into 6-21 partitions before)."""
    model = tiny("astmt", se=se)
    res = export(model, "executorch", tmp_path / "a.pte", images=images)
    forward = res.metadata["verification"]["structure"]["methods"]["forward"]
    assert forward["delegate_calls"] == {"XnnpackBackend": 2}, forward
    assert set(forward["kernels_outside_delegates"]) <= {"aten::sum", "dim_order_ops::_to_dim_order_copy"}, (
        forward
    )
    check_runtime_matches_pytorch(model, res.path, images)
    rt = runtime.load(res.path, threads=1)
    x = preprocess(images[0][1], (32, 32))
    assert np.isnan(rt.backend.run("forward", [x, np.zeros((1, 3), np.float32)])[0]).all()


@pytest.mark.slow
def test_executorch_per_task_methods_share_weights_and_match(pte_per_task, images):
    model, res = pte_per_task
    meta = res.metadata
    assert meta["verification"]["passed"] and "executorch" in meta["verification"]["numeric"]["runtime"]
    methods = meta["verification"]["structure"]["methods"]
    assert set(methods) == {"semseg", "edges"}
    assert all(m["delegate_calls"].get("XnnpackBackend") for m in methods.values())
    # Shared weights: the program holds the encoder once (measured 1.09x the fp32 parameter bytes;
    # one copy per method would be ~1.9x for this model).
    param_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert res.size_bytes < 1.25 * param_bytes, (res.size_bytes, param_bytes)
    assert meta["task_input"]["task_outputs"]["edges"] == {
        "method": "edges",
        "output": "edges",
        "index": 0,
        "channels": [0, 1],
    }
    check_runtime_matches_pytorch(model, res.path, images)
    pred = runtime.load(res.path).predict(images[0][1], "edges")
    assert pred["decoding"] == "sigmoid" and 0 <= pred["prediction"].min() <= pred["prediction"].max() <= 1


@pytest.mark.slow
def test_executorch_runtime_errors_and_threads(pte_per_task, tmp_path, images):
    from edgemtl.profile.latency import measure

    _, res = pte_per_task
    r = measure(runtime.load(res.path, threads=1), "semseg", warmup=1, runs=3)
    assert r["backend"] == "executorch" and r["threads"] == 1
    lonely = tmp_path / "lonely.pte"
    shutil.copy(res.path, lonely)
    with pytest.raises(EdgeMTLError, match="missing manifest .*lonely.pte.json"):
        runtime.load(lonely)
    shutil.copy(res.manifest, tmp_path / "lonely.pte.json")
    lonely.write_bytes(res.path.read_bytes()[: res.size_bytes // 3])
    with pytest.raises(EdgeMTLError, match="truncated, corrupt"):
        runtime.load(lonely)


@pytest.mark.slow
def test_profile_latency_of_an_artifact_and_of_a_recipe(pte_per_task, tmp_path, capsys):
    from edgemtl.cli import main

    _, res = pte_per_task
    out = tmp_path / "p.json"
    assert (
        main(["profile", str(res.path), "--threads", "1", "--runs", "3", "--warmup", "1", "--json", str(out)])
        == 0
    )
    prof = json.loads(out.read_text())
    et = prof["latency"]["runtimes"]["executorch"]
    assert prof["latency"]["threads"] == 1 and et["bytes"] == res.size_bytes and prof["params_total"] > 0
    assert set(et["per_task"]) == {"semseg", "edges"} and all(
        m["median_ms"] > 0 for m in et["per_task"].values()
    )
    assert et["all_tasks"]["calls_per_image"] == 2, "per-task methods: one call per task"
    assert "1 thread(s)" in capsys.readouterr().out

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {arch: astmt, backbone: mobilenetv2_tiny, image_size: [32, 32], decoder_channels: 16, "
        "low_level_channels: 8, se: decoder}\ntasks: [semseg, depth]\n"
        "data: {synth: {preset: pascal, num: 4, size: 32}}\n"
    )
    assert (
        main(
            [
                "profile",
                str(recipe),
                "--runtime",
                "onnx",
                "--runtime",
                "executorch",
                "--threads",
                "1",
                "--runs",
                "3",
                "--warmup",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    both = json.loads(out.read_text())["latency"]["runtimes"]
    ort_prof = both["onnx"]
    assert ort_prof["task_input"] == "onehot" and set(ort_prof["per_task"]) == {"semseg", "depth"}
    assert ort_prof["all_tasks"]["calls_per_image"] == 1, "decoder-only SE: all-tasks graph, encoder once"
    assert ort_prof["all_tasks_sequential"]["calls_per_image"] == 2
    # Two runtimes, timed in interleaved rounds: every call got its runs, and memory was measured.
    for prof in both.values():
        assert all(
            m["runs"] == 3 and m["rounds"] == 3 and "times_ms" not in m for m in prof["per_task"].values()
        )
        assert prof["memory"].get("load_ms") or prof["memory"].get("error")
    printed = capsys.readouterr().out
    assert "encoder once" in printed and "interleaved rounds" in printed


# ---- CoreML (structural on Linux + the converted program in ORT) ----------------------------


@pytest.mark.slow
def test_coreml_fp16_onehot_structure(astmt, images, tmp_path):
    res = export(astmt, "coreml", tmp_path / "m.mlpackage", precision="fp16", images=images[:1])
    v = res.metadata["verification"]
    s = v["structure"]
    assert v["passed"] and "onnxruntime" in v["numeric"]["runtime"]
    assert s["io"]["forward"]["inputs"] == [
        {"name": "image", "dtype": "float32", "shape": [1, 3, 32, 32]},
        {"name": "task", "dtype": "float32", "shape": [1, 3]},
    ]
    assert s["io"]["forward"]["outputs"][0]["dtype"] == "float32", "fp16 compute, float32 I/O"
    assert not any(op.startswith("gather") for op in s["ops"]) and s["ops"].get("conv")
    assert set(s["weight_values_by_dtype"]) == {"float16"}
    n_params = sum(p.numel() for p in astmt.parameters())
    assert s["weights_bytes"] < 2.3 * n_params, "fp16 weights: ~2 bytes per parameter"
    from edgemtl.export.targets.coreml import load_spec

    assert json.loads(load_spec(res.path).description.metadata.userDefined["edgemtl"])["precision"] == "fp16"
    with pytest.raises(UnsupportedError, match="Apple"):
        runtime.load(res.path)


@pytest.mark.slow
def test_coreml_multifunction_shares_weights(images, tmp_path):
    model = tiny("astmt", TASKS2)
    res = export(
        model, "coreml", tmp_path / "mf.mlpackage", precision="fp16", task_input="per-task", images=images[:1]
    )
    s = res.metadata["verification"]["structure"]
    assert res.metadata["verification"]["passed"] and set(s["io"]) == {"semseg", "edges"}
    assert s["spec_version"] >= 9 and res.metadata["target_options"]["minimum_deployment_target"] == "iOS18"
    assert s["weights_bytes"] < 1.2 * s["single_function_weights_bytes"]


# ---- int8: ONNX Runtime's quantizer, PT2E to ONNX (QDQ) and ExecuTorch, .pt2 from edgemtl qat ----


@pytest.fixture(scope="module")
def astmt_ptq(astmt, images):
    """The PT2E PTQ model, calibrated once and shared by the int8 targets."""
    from edgemtl.export.base import calibration_batches, prepare_precision

    notes = []
    q = prepare_precision(astmt, "int8", lambda: calibration_batches(images, (32, 32)), (32, 32), notes)
    assert q.stage == "ptq" and "PT2E post-training quantization" in notes[0]
    return q


def _sqnr(ref, got):
    from edgemtl.export.verify import sqnr_db

    return sqnr_db(ref, got)


@pytest.mark.parametrize("scheme, share", [("onehot", True), ("index", False)])
def test_onnx_specialized_graphs_behind_the_task_input(astmt, images, tmp_path, scheme, share):
    """graphs=specialized: one If branch per task (the model specialised to it: static weights, BN
    folded), selected by the same task input as the conditional graph; shared_weights stores the layers
    no task modulates once, in the outer graph."""
    import onnx

    options = {"graphs": "specialized", "shared_weights": share}
    res = export(astmt, "onnx", tmp_path / "s.onnx", task_input=scheme, images=images, options=options)
    assert res.metadata["verification"]["passed"] and res.task_input == scheme
    model = onnx.load(str(res.path))
    ifs = [n for n in model.graph.node if n.op_type == "If"]
    assert len(ifs) == 1  # nested: task 0, else (task 1, else (task 2, else NaN))
    assert not any(n.op_type in ("Gather", "BatchNormalization") for n in model.graph.node)
    shared = [i for i in model.graph.initializer if i.name.startswith("shared/")]
    encoder = sum(p.numel() for p in astmt.backbone.parameters())
    if share:  # the layers no task modulates (the encoder, with se=decoder), read by every branch
        assert shared and sum(np.prod(i.dims) for i in shared) > 0.5 * encoder
        assert "stored once" in res.metadata["notes"][-1]
    else:  # each branch its own weights: ONNX Runtime lays out every branch as a single-task graph
        assert not shared and "each with its own weights" in res.metadata["notes"][-1]
        assert res.size_bytes > 2.5 * encoder * 4
    check_runtime_matches_pytorch(astmt, res.path, images)
    # The signature of the conditional graph, guard included: an invalid task input gives NaN.
    rt = runtime.load(res.path, threads=1)
    x = preprocess(images[0][1], (32, 32))
    bad = np.zeros((1, 3), np.float32) if scheme == "onehot" else np.array([3], np.int64)
    assert np.isnan(rt.backend.run("forward", [x, bad])[0]).all()
    if scheme == "onehot":
        half = np.array([[0.5, 0.5, 0.0]], np.float32)
        assert np.isnan(rt.backend.run("forward", [x, half])[0]).all()


LAZY_WITHOUT_ONNX = r"""
import importlib.abc, json, sys
import numpy as np

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "onnxscript"):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, Block())
import edgemtl.runtime as runtime

rt = runtime.load(sys.argv[1], threads=1)
before = sorted(rt.backend._sessions)
x = np.load(sys.argv[2])
np.save(sys.argv[3], rt.run(x, rt.tasks[-1]))
print(json.dumps([before, sorted(rt.backend._sessions)]))
"""


def test_onnx_specialized_runs_one_session_per_task_built_when_first_used(astmt, images, tmp_path):
    """edgemtl's runtime cuts task i's branch out of the file (no onnx package needed) and runs it as
    a single-task session, created on the task's first call; the file's If graph run as one session
    (how any other ONNX Runtime program runs it) gives the same numbers, and both are verified."""
    import subprocess
    import sys

    res = export(
        astmt,
        "onnx",
        tmp_path / "s.onnx",
        task_input="onehot",
        images=images,
        options={"graphs": "specialized"},
    )
    assert res.metadata["target_options"]["shared_weights"] is True  # the default: small, and fast here
    numeric = res.metadata["verification"]["numeric"]
    assert numeric["passed"] and numeric["if_graph"]["passed"]
    assert "one session" in numeric["if_graph"]["runtime"]
    x = preprocess(images[0][1], (32, 32))
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "lazy.py"
    script.write_text(LAZY_WITHOUT_ONNX)
    proc = subprocess.run(
        [sys.executable, str(script), str(res.path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[], [2]]  # only the task asked for
    lazy, single = runtime.load(res.path, threads=1), runtime.load(res.path, threads=1, sessions="single")
    assert single.backend.branches is None and lazy.backend.branches.count == 3
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), single.run(x, astmt.task_names[-1]), atol=1e-5)
    for task in astmt.task_names:
        np.testing.assert_allclose(lazy.run(x, task), single.run(x, task), atol=1e-5, err_msg=task)
    with pytest.raises(EdgeMTLError, match="must be float32 \\[1, 3\\], got int64 \\[1\\]"):
        lazy.backend.run("forward", [x, np.array([0])])
    with pytest.raises(
        EdgeMTLError, match="runtime option 'session': the onnxruntime runtime takes sessions"
    ):
        runtime.load(res.path, session="single")


@pytest.mark.slow
def test_onnx_specialized_int8_and_refusals(astmt, astmt_ptq, images, tmp_path):
    res = export(
        astmt,
        "onnx",
        tmp_path / "s8.onnx",
        precision="int8",
        images=images,
        options={"graphs": "specialized"},
    )
    v = res.metadata["verification"]
    assert v["passed"] and all(t["sqnr_db"] >= 20 for t in v["numeric"]["tasks"].values())
    rt = runtime.load(res.path, threads=1)
    for task in rt.tasks:
        assert _sqnr(reference(astmt, images[0][1], task), rt.predict(images[0][1], task)["raw"]) >= 20, task
    with pytest.raises(UnsupportedError, match="graphs=specialized specialises a float model"):
        export(astmt_ptq, "onnx", tmp_path / "q.onnx", precision="int8", options={"graphs": "specialized"})


def test_onnx_specialized_refuses_what_it_cannot_specialise(astmt, tmp_path):
    # Never silently ignored: a multi-output model (it exports every task in one pass) or the
    # all-tasks input of a task-conditional one.
    for model in (tiny("hard_sharing", TASKS2), astmt):
        with pytest.raises(UnsupportedError, match="with --task-input all .* there is none to specialise"):
            export(model, "onnx", tmp_path / "a.onnx", task_input="all", options={"graphs": "specialized"})
    assert not list(tmp_path.iterdir())


def _assert_float_heads(path) -> None:
    """The output heads of an ORT-quantized graph stay float (edgemtl.quant.ort.float_heads): from
    every output back to the heads' linear layer (a Conv, or for the stacked task-selected heads an
    Einsum) no activation is quantized, and that layer's stored weights are float."""
    import onnx

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    stack, seen, linear = [o.name for o in graph.output], set(), []
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        quantizes_activations = node.input[0] not in inits  # not a constant stored as int8
        assert not (node.op_type in ("QuantizeLinear", "DequantizeLinear") and quantizes_activations), (
            node.name
        )
        if node.op_type in ("Conv", "MatMul", "Gemm", "Einsum"):
            linear.append(node)
        else:
            stack.extend(node.input)
    assert linear
    for node in linear:
        stored = [inits[i] for i in node.input[1:] if i in inits]
        assert all(w.data_type == onnx.TensorProto.FLOAT for w in stored), node.name


@pytest.mark.slow
def test_onnx_int8_ort_quantizer(astmt, images, tmp_path):
    import onnx

    res = export(astmt, "onnx", tmp_path / "i8.onnx", precision="int8", images=images)
    v = res.metadata["verification"]
    assert v["passed"] and res.metadata["target_options"]["quantizer"] == "ort"
    assert all(t["sqnr_db"] >= 20 for t in v["numeric"]["tasks"].values())
    graph = onnx.load(str(res.path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {i.name: i for i in graph.initializer}
    zero_points = [
        inits[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits
    ]
    assert zero_points and {z.data_type for z in zero_points} == {onnx.TensorProto.UINT8}, (
        "U8 activations (x86 fast path)"
    )
    # The task guard stays float: an invalid one-hot still yields NaN, a valid one finite outputs.
    rt = runtime.load(res.path, threads=1)
    x = preprocess(images[0][1], (32, 32))
    assert np.isnan(rt.backend.run("forward", [x, np.zeros((1, 3), np.float32)])[0]).all()
    for task in rt.tasks:
        assert _sqnr(reference(astmt, images[0][1], task), rt.predict(images[0][1], task)["raw"]) >= 20, task
    assert "ONNX Runtime static quantization" in res.metadata["notes"][0]
    _assert_float_heads(res.path)
    _assert_float_heads(
        export(tiny("single_task"), "onnx", tmp_path / "st.onnx", precision="int8", images=images).path
    )
    from edgemtl.profile.cpu import x86_without_vnni

    assert res.metadata["target_options"]["reduce_range"] is x86_without_vnni()


@pytest.mark.slow
@pytest.mark.parametrize("reduce_range", [True, False])
def test_onnx_int8_reduce_range_sets_weight_bits(astmt, images, tmp_path, reduce_range):
    """7-bit weights keep ORT's U8S8 kernels from saturating on x86 without VNNI; 8 bits elsewhere."""
    import onnx
    from onnx import numpy_helper

    res = export(
        astmt,
        "onnx",
        tmp_path / "i8.onnx",
        precision="int8",
        images=images,
        options={"reduce_range": reduce_range},
    )
    assert (
        res.metadata["verification"]["passed"]
        and res.metadata["target_options"]["reduce_range"] is reduce_range
    )
    weights = [
        numpy_helper.to_array(i)
        for i in onnx.load(str(res.path)).graph.initializer
        if i.data_type == onnx.TensorProto.INT8
    ]
    peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert (peak <= 64) if reduce_range else (peak > 64), peak
    assert ("7-bit" in res.metadata["notes"][0]) is reduce_range


@pytest.mark.slow
def test_int8_pt2e_to_executorch_and_onnx_agree(astmt_ptq, images, tmp_path):
    pte = export(astmt_ptq, "executorch", tmp_path / "i8.pte", precision="int8", images=images)
    qdq = export(astmt_ptq, "onnx", tmp_path / "i8.onnx", precision="int8", images=images)
    for res in (pte, qdq):
        assert res.metadata["verification"]["passed"] and res.precision == "int8"
        assert all(t["sqnr_db"] >= 20 for t in res.parity.values())
    assert qdq.metadata["target_options"]["quantizer"] == "pt2e"
    methods = pte.metadata["verification"]["structure"]["methods"]
    assert methods["forward"]["delegate_calls"].get("XnnpackBackend")
    a, b = runtime.load(pte.path, threads=1), runtime.load(qdq.path, threads=1)
    x = preprocess(images[1][1], (32, 32))
    for task in a.tasks:  # two runtimes, one quantized program: same integer arithmetic
        assert _sqnr(a.run(x, task), b.run(x, task)) >= 30, task
    with pytest.raises(UnsupportedError, match="already quantized"):
        export(astmt_ptq, "onnx", tmp_path / "x.onnx", precision="int8", options={"quantizer": "ort"})
    with pytest.raises(UnsupportedError, match="export it as int8"):
        export(astmt_ptq, "onnx", tmp_path / "x.onnx", precision="fp32")


@pytest.mark.slow
def test_int8_program_from_edgemtl_qat_exports_through_the_cli(astmt, astmt_ptq, images, tmp_path, capsys):
    from edgemtl.cli import main
    from edgemtl.quant import save_program

    path = tmp_path / "ptq_int8.pt2"
    save_program(astmt_ptq.gm, astmt, path, "ptq", {"classes": {"semseg": CLASSES}})
    out = tmp_path / "q.onnx"
    assert (
        main(
            ["export", "--checkpoint", str(path), "--target", "onnx", "--out", str(out), "--num-images", "1"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "int8" in printed and "SQNR" in printed
    meta = json.loads((tmp_path / "q.onnx.json").read_text())
    assert meta["precision"] == "int8" and meta["target_options"]["quantizer"] == "pt2e"
    assert meta["tasks"] == astmt.task_names and meta["model_config"]["backbone"] == "mobilenetv2_tiny"
    x = preprocess(images[0][1], (32, 32))
    rt = runtime.load(out)
    with torch.no_grad():
        ref = astmt_ptq.forward_task(torch.from_numpy(x), "depth").numpy()
    assert _sqnr(ref, rt.run(x, "depth")) >= 20
    # profile reads the program: the counts of its architecture, and where its latency comes from
    assert main(["profile", str(path), "--json", str(tmp_path / "p.json")]) == 0
    assert "timed as an artifact" in capsys.readouterr().out
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["params_total"] == sum(p.numel() for p in astmt.parameters()) and "latency" not in prof


@pytest.mark.slow
def test_int8_parity_failure_names_task(astmt_ptq, images):
    graphs = build_graphs(astmt_ptq, "onehot")
    io = task_io(astmt_ptq, "onehot", graphs)

    def noisy_normals(method, inputs):  # the quantized graph itself, with normals perturbed
        with torch.no_grad():
            out = graphs[0].module(*(torch.from_numpy(i) for i in inputs)).numpy()
        if inputs[1][0, 2] == 1:
            out = out + np.random.default_rng(0).normal(0, 1.0, out.shape).astype(np.float32)
        return [out]

    rep = numeric_parity(graphs, io, noisy_normals, images[:1], "int8", "test")
    assert not rep["passed"] and len(rep["failures"]) == 1
    assert "task 'normals'" in rep["failures"][0] and "SQNR" in rep["failures"][0]
    assert rep["tasks"]["depth"]["sqnr_db"] == float("inf")


# ---- CLI end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_export_and_predict(tmp_path, images, capsys):
    from edgemtl.checkpoint import save_checkpoint
    from edgemtl.cli import main
    from edgemtl.data.layout import encode_png

    ckpt = tmp_path / "st.pt"
    save_checkpoint(ckpt, tiny("single_task"), {"classes": {"semseg": CLASSES}})
    out = tmp_path / "st.onnx"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(ckpt),
                "--profile",
                "onnx_fp32",
                "--out",
                str(out),
                "--num-images",
                "1",
            ]
        )
        == 0
    )
    assert "semseg" in capsys.readouterr().out and (tmp_path / "st.onnx.json").is_file()
    img = tmp_path / "in.png"
    img.write_bytes(encode_png(images[0][1]))
    png = tmp_path / "pred.png"
    assert (
        main(["predict", "--model", str(out), "--image", str(img), "--task", "semseg", "--out", str(png)])
        == 0
    )
    import cv2

    assert cv2.imread(str(png)).shape == (*images[0][1].shape[:2], 3)
    assert (
        main(["predict", "--model", str(out), "--image", str(img), "--task", "sem", "--out", str(png)]) == 2
    )
    assert "Did you mean 'semseg'" in capsys.readouterr().err
    # the file names must say what the bytes are: PNG for the picture, .npy for a map's raw values
    base = ["predict", "--model", str(out), "--image", str(img), "--task", "semseg"]
    assert main([*base, "--out", str(tmp_path / "pred.jpg")]) == 2
    assert "name a .png file" in capsys.readouterr().err and not (tmp_path / "pred.jpg").exists()
    assert main([*base, "--out", str(png), "--raw-out", str(tmp_path / "raw.txt")]) == 2
    assert "name a .npy file" in capsys.readouterr().err and not (tmp_path / "raw.txt").exists()
    assert main([*base, "--out", str(png), "--raw-out", str(tmp_path / "raw.json")]) == 2
    assert "semseg predicts a map; name a .npy file" in capsys.readouterr().err
    assert main([*base, "--out", str(png), "--raw-out", str(tmp_path / "raw.npy")]) == 0
    assert np.load(tmp_path / "raw.npy").shape == images[0][1].shape[:2]
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(ckpt),
                "--target",
                "onnx",
                "--task-input",
                "per-task",
                "--out",
                str(tmp_path / "x.onnx"),
            ]
        )
        == 2
    )
    assert "does not support --task-input per-task" in capsys.readouterr().err


# ---- every architecture to every target -------------------------------------------------------


def _rotated():
    """Each architecture x each target, precisions rotated over the architectures so every
    precision of every target is exported by some architecture (int8 lives in its own tests)."""
    for i, arch in enumerate(ARCHITECTURES.names()):
        for target in TARGETS.names():
            precisions = [p for p in TARGETS.get(target).precisions if p != "int8"]
            yield arch, target, precisions[i % len(precisions)], None


def _matrix():
    for arch in ARCHITECTURES.names():
        for target in TARGETS.names():
            for precision in TARGETS.get(target).precisions:
                yield arch, target, precision, None
        if arch == "astmt":
            yield arch, "executorch", "fp32", "index"
            yield arch, "executorch", "fp32", "per-task"
            yield arch, "executorch", "fp32", "all"
            yield arch, "executorch-coreml", "fp16", "per-task"
        yield arch, "coreml", "fp16", "per-task"


def _check_matrix_entry(arch, target, precision, scheme, images, tmp_path):
    if not TARGETS.get(target).available():
        pytest.skip(f"optional target '{target}' not installed: {TARGETS.get(target).install}")
    model = tiny(arch, TASKS2)
    res = export(
        model,
        target,
        tmp_path / f"m{get_target(target).suffix}",
        precision=precision,
        task_input=scheme,
        images=images[:1],
    )
    assert res.metadata["verification"]["passed"]
    assert set(res.metadata["verification"]["numeric"]["tasks"]) == set(model.task_names)
    if TARGETS.get(target).runs_here() and precision != "int8":
        check_runtime_matches_pytorch(model, res.path, images[:1])


@pytest.mark.slow
@pytest.mark.parametrize("arch,target,precision,scheme", list(_rotated()))
def test_every_architecture_exports_to_every_target(arch, target, precision, scheme, images, tmp_path):
    _check_matrix_entry(arch, target, precision, scheme, images, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not MATRIX, reason="full export product: set EDGEMTL_EXPORT_MATRIX=1 (~20 minutes)")
@pytest.mark.parametrize("arch,target,precision,scheme", list(_matrix()))
def test_export_matrix(arch, target, precision, scheme, images, tmp_path):
    _check_matrix_entry(arch, target, precision, scheme, images, tmp_path)


# ---- nothing is lost: a failed export leaves the previous artifact alone ----------------------


@pytest.mark.slow
@pytest.mark.parametrize("target_name, suffix", [("onnx", ".onnx"), ("coreml", ".mlpackage")])
def test_a_crash_during_export_keeps_the_previous_artifact(astmt, images, tmp_path, target_name, suffix):
    from edgemtl.export.base import run_export

    out = tmp_path / f"m{suffix}"
    first = export(astmt, target_name, out, images=images[:1], num_images=1)
    manifest_before = first.manifest.read_text()
    files_before = (
        sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.is_dir() else out.read_bytes()
    )

    class FailsInVerification(type(get_target(target_name))):
        def inspect(self, graphs, ctx):  # a converter/inspection crash after the file was written
            assert ctx.out != out and ctx.out.exists()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_export(
            astmt, FailsInVerification(), out, precision=first.precision, images=images[:1], num_images=1
        )
    after = (
        sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.is_dir() else out.read_bytes()
    )
    assert after == files_before and first.manifest.read_text() == manifest_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], (
        "no partial artifact left behind"
    )
    # and a successful re-export replaces it (a package directory too)
    again = export(astmt, target_name, out, images=images[:1], num_images=1)
    assert again.metadata["verification"]["passed"] and not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")
    ]


@pytest.mark.parametrize(
    "options, ops, max_bytes_per_weight",
    [
        (
            {"weight_compression": "int8"},
            ("constexpr_blockwise_shift_scale", "constexpr_affine_dequantize"),
            1.4,
        ),
        ({"weight_compression": "palettize", "palette_bits": 4}, ("constexpr_lut_to_dense",), 1.0),
    ],
)
@pytest.mark.slow
def test_coreml_weight_compression(images, tmp_path, options, ops, max_bytes_per_weight):
    model = tiny("astmt")
    res = export(
        model, "coreml", tmp_path / "c.mlpackage", precision="fp16", images=images[:1], options=options
    )
    s = res.metadata["verification"]["structure"]
    assert res.metadata["verification"]["passed"] and any(op in s["ops"] for op in ops), s["ops"]
    n_params = sum(p.numel() for p in model.parameters())
    assert s["weights_bytes"] < max_bytes_per_weight * n_params, (s["weights_bytes"], n_params)


def test_latency_ratio_interval_covers_the_true_ratio():
    """edgemtl.profile.latency.ratio_interval against data whose true ratio is known: timed calls
    drawn from skewed distributions with medians 5 ms (int8, two tasks) and 10 ms (fp32): the 95 %
    interval contains 0.5 in most of 40 draws, narrows with more calls, and is a point for calls
    without spread."""
    from edgemtl.profile.latency import ratio_interval

    rng = np.random.default_rng(1)

    def calls(median, n):  # lognormal with the given median: a long right tail, like latencies
        return median * np.exp(rng.normal(0, 0.15, n))

    covered, widths = 0, {}
    for n in (20, 200):
        for _ in range(40 if n == 20 else 5):
            lo, hi = ratio_interval([calls(5, n), calls(5, n)], [calls(10, n), calls(10, n)], resamples=300)
            covered += n == 20 and lo <= 0.5 <= hi
            widths.setdefault(n, []).append(hi - lo)
    assert covered >= 34, covered  # nominal 95 % of 40 = 38; bootstrap percentile intervals run a bit short
    assert np.mean(widths[200]) < 0.5 * np.mean(widths[20])
    assert ratio_interval([[3.0] * 5], [[6.0] * 5]) == [0.5, 0.5]
    # ("mean", "sum"): one all-tasks call against the sum of two per-task medians
    lo, hi = ratio_interval([[4.0] * 5], [[5.0] * 5, [5.0] * 5], ("mean", "sum"))
    assert lo == hi == pytest.approx(0.4)


def test_web_latency_rounds_interleave_pages_and_pool_their_calls():
    """benchmarks/export_latency.py web: every (artifact, config) page is opened once per round in a
    shuffled order with its share of the runs (memory asked for in the first round only), and the
    rounds' timed calls are pooled into one row whose samples feed the ratio intervals; a round on
    another backend than asked makes the artifact an error instead of a row."""
    import argparse
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "export_latency.py"
    spec = importlib.util.spec_from_file_location("export_latency_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    args = argparse.Namespace(runs=7, rounds=3, warmup=2, warmup_ms=1500)
    steps = bench._web_steps([("a.onnx", "http://x/"), ("b.onnx", "http://y/")], ["wasm1", "wasm2"], args)
    keys = [s["key"] for s in steps]
    assert len(keys) == len(set(keys)) == 12
    per_round = [[k.split("#")[0] for k in keys[4 * r : 4 * r + 4]] for r in range(3)]
    assert all(sorted(r) == sorted(per_round[0]) for r in per_round)  # every page once per round
    assert len({tuple(r) for r in per_round}) > 1  # in a shuffled order
    runs = {k: int(s["bench"].split("runs=")[1].split("&")[0]) for k, s in zip(keys, steps)}
    assert sum(v for k, v in runs.items() if k.startswith("a.onnx@wasm1")) == 7
    assert all(("memory=1" in s["bench"]) == s["key"].endswith("#0") for s in steps)
    assert all("&warmup=2&warmup_ms=1500&" in s["bench"] for s in steps)  # every page warms up alike

    def result(times, backend="wasm", threads=1, load=(10.0, 5.0), memory=None):
        t = {"median_ms": float(np.median(times)), "times_ms": times}
        return {
            "result": {
                "backend": backend,
                "threads": threads,
                "task_input": "one-hot",
                "graphs": "conditional",
                "bytes": 100,
                "fetch_ms": load[0],
                "session_ms": load[1],
                "page_memory_mb": memory,
                "tasks": {"semseg": t, "depth": {**t, "times_ms": [2 * v for v in times]}},
                "all_tasks": {"times_ms": [3 * v for v in times]},
            },
            "error": None,
            "warning": None,
        }

    got = {
        "a.onnx@wasm1#0": result([1.0, 2.0, 3.0], memory=40.0, load=(100.0, 50.0)),
        "a.onnx@wasm1#1": result([4.0, 5.0], load=(10.0, 5.0)),
        "a.onnx@wasm1#2": result([6.0, 7.0], load=(20.0, 5.0)),
        "b.onnx@wasm2#0": result([1.0], threads=2),
        "b.onnx@wasm2#1": result([1.0], threads=1),  # the page fell back to one thread
    }
    rows, errors = bench._web_rows(got)
    assert (
        list(rows) == ["a.onnx@wasm1"] and "b.onnx@wasm2" in errors and "1 thread" in errors["b.onnx@wasm2"]
    )
    a = rows["a.onnx@wasm1"]
    assert a["rounds"] == 3 and a["samples_ms"]["semseg"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert a["median_ms"] == {"semseg": 4.0, "depth": 8.0} and a["all_tasks_ms"] == 12.0
    assert a["load_ms"] == 25.0 and a["page_memory_mb"] == 40.0  # median over rounds; the first's memory
