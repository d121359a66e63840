"""The artifact format (edgemtl.artifact): a leaf both export and runtime import, enough on its own
to run an ``.onnx`` artifact without PyTorch, and the one decoder/colouring of every task."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.artifact import boxes, decoding
from edgemtl.errors import EdgeMTLError
from edgemtl.tasks import TASKS, build_tasks

ROOT = Path(__file__).resolve().parents[1]
META = {
    "classes": {
        "semseg": ["bg", "wall", "chair", "table"],
        "parts": ["bg", "head", "torso"],
        "detection": ["chair", "table"],
    },
    "depth_range": [0.5, 8.0],
}
TINY = {
    "backbone": "mobilenetv2_tiny",
    "image_size": (32, 32),
    "decoder_channels": 16,
    "low_level_channels": 8,
    "mti_channels": 8,
}
# What the artifact modules may import: the standard library, numpy, OpenCV, and these edgemtl modules.
# edgemtl's own tasks (tests/test_tasks.py registers a plugin task in the same process)
BUILTIN = [n for n in TASKS.names() if TASKS.get(n).__module__.startswith("edgemtl.tasks")]
ALLOWED = {"numpy", "cv2", "edgemtl.errors", "edgemtl.data.layout"}


def _imports(path: Path, top_level: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_artifact_package_is_a_leaf():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted((ROOT / "edgemtl" / "artifact").glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            ok = top in stdlib or name in ALLOWED or top in ALLOWED or name.startswith("edgemtl.artifact")
            assert ok, (
                f"{path.name} imports {name}: the artifact format must stay a leaf (no torch, no "
                "export/runtime)"
            )
    # The runtime never reaches into the export pipeline or the tasks (the old export <-> runtime cycle).
    # It finds a format's backend through the target registry (edgemtl.export, whose target files
    # import no torch), never through the export pipeline.
    for path in sorted((ROOT / "edgemtl" / "runtime").glob("*.py")):
        names = _imports(path)
        assert not any(n.startswith(("edgemtl.export.", "edgemtl.tasks", "torch")) for n in names), path
    for path in sorted((ROOT / "edgemtl" / "export" / "targets").glob("*.py")):
        top = _imports(path, top_level=True)
        heavy = {
            n for n in top if n.split(".")[0] in ("torch", "onnx", "executorch", "coremltools", "torchao")
        }
        assert not heavy and not any(
            n in top for n in ("edgemtl.export.base", "edgemtl.export.verify", "edgemtl.export.wrapper")
        ), (path, heavy)


def test_manifests_and_reports_are_strict_json(tmp_path):
    """NaN and +-Infinity (e.g. the SQNR of a bit-exact int8 task) are not JSON: a browser's JSON.parse
    rejected such a manifest. They are written as null, in manifests and in result files."""
    from edgemtl.artifact.manifest import to_json
    from edgemtl.data.layout import json_text
    from edgemtl.report import write_json

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))

    obj = {"sqnr_db": float("inf"), "x": [np.float32(np.nan), np.float64(-np.inf), 1.5, np.int64(3)]}
    want = {"sqnr_db": None, "x": [None, None, 1.5, 3]}
    assert strict(to_json(obj)) == want
    assert strict(json_text(obj, indent=2, default=float)) == want
    write_json(tmp_path / "r.json", obj)
    assert strict((tmp_path / "r.json").read_text()) == want


def test_manifest_written_with_infinity_before_still_reads(all_tasks_onnx, tmp_path):
    """A manifest from before null-for-Infinity (sqnr_db: Infinity, digested that way) still loads;
    editing it is still caught."""
    import shutil

    from edgemtl.artifact.manifest import manifest_digest, read_manifest

    _, path = all_tasks_onnx
    old = tmp_path / path.name
    shutil.copy(path, old)
    meta = json.loads(Path(f"{path}.json").read_text())
    meta["verification"]["numeric"]["extra_sqnr_db"] = float("inf")
    meta["manifest_sha256"] = manifest_digest(meta, legacy=True)
    Path(f"{old}.json").write_text(json.dumps(meta))  # Python's default: writes Infinity
    assert "Infinity" in Path(f"{old}.json").read_text()
    assert read_manifest(old)["verification"]["numeric"]["extra_sqnr_db"] == float("inf")
    meta["tasks"] = meta["tasks"][::-1]
    Path(f"{old}.json").write_text(json.dumps(meta))
    with pytest.raises(EdgeMTLError, match="edited after export"):
        read_manifest(old)


def test_turbo_table_is_matplotlibs():
    import matplotlib

    ref = (np.asarray(matplotlib.colormaps["turbo"].colors) * 255).astype(np.uint8)
    assert np.array_equal(decoding.TURBO, ref)
    v = np.random.default_rng(0).uniform(-0.2, 1.2, (64, 64)).astype(np.float32)
    v[0, 0] = np.nan
    want = (matplotlib.colormaps["turbo"](np.clip(v, 0, 1))[..., :3] * 255).astype(np.uint8)
    want[0, 0] = 0  # matplotlib's 'bad' colour for NaN is transparent black
    assert np.array_equal(decoding.colormap(v, 0.0, 1.0), want)


@pytest.mark.parametrize("name", BUILTIN)
def test_numpy_decoding_and_colouring_equal_the_tasks_own(name):
    """Every registered task: the manifest-driven numpy decode equals Task.decode (torch), and
    drawing from the manifest entry equals Task.visualize; so does the rule for old manifests."""
    task = build_tasks([name], META)[name]
    info = json.loads(json.dumps(task.describe()))  # exactly what a manifest carries
    raw = torch.randn(1, task.out_channels, 24, 20, generator=torch.Generator().manual_seed(1)) * 3
    if name == "depth":
        raw = raw.abs() * 2 - 1  # some negative depth, which the decoding clamps
    if not task.dense:  # boxes: same detections; drawn on an image, by the one drawing function
        ref, got = task.decode(raw)[0], decoding.decode(raw.numpy(), info)
        assert len(got["boxes"]) > 0 and set(got) == set(ref) == {"boxes", "scores", "labels"}
        for k in got:
            np.testing.assert_array_equal(got[k], ref[k])
        canvas = np.full((24, 20, 3), 40, np.uint8)
        drawn = decoding.visualize(got, info, image=canvas)
        assert np.array_equal(drawn, boxes.draw(canvas, got, info["class_names"])) and (drawn != canvas).any()
        assert decoding.visual_spec({k: v for k, v in info.items() if k != "visual"}) == info["visual"]
        return
    ref = task.decode(raw)[0].numpy()
    got = decoding.decode(raw.numpy(), info)
    assert got.shape == ref.shape
    if ref.dtype.kind in "iu":
        assert np.array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    assert np.array_equal(decoding.visualize(got, info), task.visualize(ref))
    legacy = {k: v for k, v in info.items() if k not in ("visual", "clamp_min")}
    assert decoding.visual_spec(legacy) == info["visual"]
    np.testing.assert_allclose(decoding.decode(raw.numpy(), legacy), got, rtol=1e-6, atol=1e-6)


def test_unknown_decoding_or_style_is_one_line():
    from edgemtl.errors import EdgeMTLError

    with pytest.raises(EdgeMTLError, match="unknown decoding 'softmax3d' for task 'x'.*upgrade edgemtl"):
        decoding.decode(np.zeros((1, 1, 2, 2), np.float32), {"name": "x", "decoding": "softmax3d"})
    with pytest.raises(EdgeMTLError, match="unknown visual style 'hologram'"):
        decoding.visualize(np.zeros((2, 2), np.float32), {"name": "x", "visual": {"style": "hologram"}})


NO_TORCH = r"""
import importlib.abc, json, sys
import numpy as np

BLOCKED = ("torch", "torchvision", "timm", "matplotlib", "onnx", "executorch", "coremltools", "scipy",
           "skimage")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the runtime must run .onnx without it")

sys.meta_path.insert(0, Block())
import edgemtl.runtime as runtime

path, image_file, out = sys.argv[1:4]
rt = runtime.load(path, threads=1)
image = np.load(image_file)
res = {}
for t in rt.tasks:
    pred = rt.predict(image, t)
    if isinstance(pred["prediction"], dict):  # detection: boxes, scores, labels
        res.update({f"{t}_{k}": v for k, v in pred["prediction"].items()})
    else:
        res[f"{t}_prediction"] = pred["prediction"]
    res[f"{t}_rgb"] = rt.visualize(pred)
np.savez(out, **res)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
"""


@pytest.fixture(scope="module")
def all_tasks_onnx(tmp_path_factory):
    """One ONNX artifact with every registered task (multi-output hard sharing)."""
    from edgemtl.export import export
    from edgemtl.models import create_model

    tasks = {n: t.describe() for n, t in build_tasks(BUILTIN, META).items()}
    torch.manual_seed(0)
    model = create_model(arch="hard_sharing", tasks=tasks, **TINY).eval()
    out = tmp_path_factory.mktemp("artifact") / "all.onnx"
    export(model, "onnx", out, images=None, num_images=1)
    return model, out


def _run_without_torch(path: Path, image: np.ndarray, tmp: Path) -> tuple[dict, list]:
    np.save(tmp / "image.npy", image)
    script = tmp / "no_torch.py"
    script.write_text(NO_TORCH)
    proc = subprocess.run(
        [sys.executable, str(script), str(path), str(tmp / "image.npy"), str(tmp / "out.npz")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(tmp / "out.npz")), json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_runtime_runs_an_onnx_artifact_without_torch(all_tasks_onnx, tmp_path):
    """`import torch` (and matplotlib, onnx, ...) raise in the subprocess; every task still predicts
    and draws, equal to the tasks' own torch decode and colouring of the same ONNX outputs."""
    from edgemtl import runtime
    from edgemtl.artifact.processing import resize_output

    model, path = all_tasks_onnx
    image = np.random.default_rng(3).integers(0, 256, (45, 61, 3), dtype=np.uint8)  # not the model size
    res, loaded = _run_without_torch(path, image, tmp_path)
    assert loaded == []
    rt = runtime.load(path, threads=1)
    tasks = build_tasks(BUILTIN, META)
    for t in rt.tasks:
        if not tasks[t].dense:  # boxes decoded at model resolution, in the image's pixels
            raw = rt.predict(image, t)["raw"][None]
            ref = boxes.to_pixels(tasks[t].decode(torch.from_numpy(raw))[0], image.shape[:2])
            for k in ("boxes", "scores", "labels"):
                np.testing.assert_allclose(res[f"{t}_{k}"], ref[k], rtol=1e-5, atol=1e-4, err_msg=t)
            black = np.zeros_like(image)
            assert np.array_equal(res[f"{t}_rgb"], boxes.draw(black, ref, tasks[t].class_names)), t
            continue
        full = resize_output(rt.predict(image, t)["raw"][None], image.shape[:2])
        ref = tasks[t].decode(torch.from_numpy(full))[0].numpy()
        np.testing.assert_allclose(res[f"{t}_prediction"], ref, rtol=1e-5, atol=1e-5, err_msg=t)
        # the colours are the task's own colouring of those values
        assert np.array_equal(res[f"{t}_rgb"], tasks[t].visualize(res[f"{t}_prediction"])), t


def test_runtime_without_torch_reads_the_embedded_metadata(all_tasks_onnx, tmp_path):
    """Without the .json beside it, the ONNX file's own metadata (read through onnxruntime) serves."""
    import shutil

    _, path = all_tasks_onnx
    alone = tmp_path / "alone.onnx"
    shutil.copy(path, alone)
    image = np.full((32, 32, 3), 128, np.uint8)
    res, _ = _run_without_torch(alone, image, tmp_path)
    assert res["depth_prediction"].shape == (32, 32)
    assert res["normals_rgb"].shape == (32, 32, 3)
