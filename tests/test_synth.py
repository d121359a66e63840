"""The procedural multi-task scene generator (edgemtl.data.synth): exact labels, determinism, layout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgemtl.data.synth import (
    PRESETS,
    TASKS,
    edges_from_instances,
    generate,
    image_rng,
    render,
    render_index,
    render_scene,
    sample_scene,
)
from edgemtl.errors import EdgeMTLError

SIZE = (48, 64)
PRESET_NAMES = sorted(PRESETS)


def _cam_rays64(scene, size):
    """Independent float64 rays: camera-frame (x, y, -1) through pixel centres, and world directions."""
    fx, fy, cx, cy = scene.camera.K(size)
    h, w = size
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], axis=-1)
    return d_cam, d_cam @ scene.camera.R.T


def _canonical_norm(prim, p):
    """1 on the primitive's surface, < 1 inside, > 1 outside (p: (..., 3) world points)."""
    q = (p - prim.center) @ prim.R / prim.scale
    if prim.kind == "box":
        return np.abs(q).max(axis=-1)
    if prim.kind == "ellipsoid":
        return np.linalg.norm(q, axis=-1)
    return np.maximum(np.abs(q[..., 1]), np.hypot(q[..., 0], q[..., 2]))


@pytest.fixture(scope="module", params=PRESET_NAMES)
def scene_and_labels(request):
    # a scene with a reasonable number of visible objects
    for seed in range(20):
        scene = sample_scene(image_rng(7, seed), request.param)
        out = render(scene, SIZE, aux=True)
        if out["saliency"].mean() > 0.1:
            return request.param, scene, out
    raise AssertionError("no scene with visible objects")


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_render_scene_outputs(preset):
    out = render_scene(3, SIZE, preset)
    assert set(out) == {"image", *TASKS, "detection"}  # boxes are rendered always, written on request
    assert out["detection"].dtype == np.float32 and out["detection"].shape[1] == 6
    h, w = SIZE
    assert out["image"].dtype == np.uint8 and out["image"].shape == (h, w, 3)
    for t in ("semseg", "edges", "saliency", "parts"):
        assert out[t].dtype == np.uint8 and out[t].shape == (h, w), t
    assert out["depth"].dtype == np.float32 and out["depth"].shape == (h, w)
    assert out["normals"].dtype == np.float32 and out["normals"].shape == (h, w, 3)
    assert out["semseg"].max() < len(PRESETS[preset].classes)  # nothing undefined in a closed room
    assert (out["depth"] > 0).all() and np.isfinite(out["depth"]).all()
    assert set(np.unique(out["edges"])) <= {0, 1} and set(np.unique(out["saliency"])) <= {0, 1}


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_depth_within_declared_range(preset):
    lo, hi = PRESETS[preset].depth_range
    for i in range(12):
        d = render_index(11, i, (32, 32), preset)["depth"]
        assert d.min() >= lo and d.max() <= hi, (i, d.min(), d.max())


# --------------------------------------------------------------------------- exact geometry


def test_floor_depth_matches_plane_intersection(scene_and_labels):
    _, scene, out = scene_and_labels
    floor = out["surface"] == 2  # room face 2 = the plane y = 0
    assert floor.sum() > 50
    _, d_world = _cam_rays64(scene, SIZE)
    t = -scene.camera.position[1] / d_world[..., 1]  # ray o + t d meets y = 0; d_cam z = -1 -> t = z-depth
    np.testing.assert_allclose(out["depth"][floor], t[floor], rtol=1e-5)
    # back-projecting depth with the intrinsics lands on the floor
    d_cam, _ = _cam_rays64(scene, SIZE)
    p_cam = d_cam * out["depth"][..., None].astype(np.float64)
    p_world = p_cam @ scene.camera.R.T + scene.camera.position
    np.testing.assert_allclose(p_world[floor][:, 1], 0.0, atol=1e-4)


def test_object_depth_lies_on_the_hit_primitive(scene_and_labels):
    _, scene, out = scene_and_labels
    _, d_world = _cam_rays64(scene, SIZE)
    p = scene.camera.position + d_world * out["depth"][..., None].astype(np.float64)
    sid = out["surface"]
    checked = 0
    for k in np.unique(sid[sid >= 6]):
        m = sid == k
        np.testing.assert_allclose(_canonical_norm(scene.prims[k - 6], p[m]), 1.0, atol=2e-3)
        checked += m.sum()
    assert checked > 50


def test_nothing_nearer_than_the_labelled_surface(scene_and_labels):
    # ray-march 160 random pixels: no sample before the hit may lie inside any primitive
    _, scene, out = scene_and_labels
    _, d_world = _cam_rays64(scene, SIZE)
    rng = np.random.default_rng(0)
    idx = rng.choice(SIZE[0] * SIZE[1], 160, replace=False)
    d = d_world.reshape(-1, 3)[idx]
    t = out["depth"].reshape(-1)[idx].astype(np.float64)
    s = np.linspace(0.02, 0.995, 300)
    pts = scene.camera.position + d[:, None, :] * (t[:, None, None] * s[None, :, None])
    for prim in scene.prims:
        assert (_canonical_norm(prim, pts) > 1.0 - 1e-6).all()
    lo, hi = scene.room_lo, scene.room_hi
    assert ((pts > lo) & (pts < hi)).all()


def test_normals_unit_camera_frame_and_facing_camera(scene_and_labels):
    _, scene, out = scene_and_labels
    n = out["normals"].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    d_cam, _ = _cam_rays64(scene, SIZE)
    assert ((n * d_cam).sum(-1) < 0).all()  # every normal faces the camera
    # room faces: inward axis normals, expressed in the camera frame (x right, y up, z to the viewer)
    R = scene.camera.R
    sid = out["surface"]
    for face in range(6):
        m = sid == face
        if m.any():
            axis_n = np.zeros(3)
            axis_n[face // 2] = 1.0 if face % 2 == 0 else -1.0
            np.testing.assert_allclose(n[m], np.broadcast_to(R.T @ axis_n, n[m].shape), atol=1e-5)
    if (sid == 2).any():  # the floor's normal is world up; a level camera would see (0, 1, 0)
        assert n[sid == 2][0, 1] > 0.8


def test_normals_match_depth_on_planar_surfaces(scene_and_labels):
    # finite differences of back-projected depth (independent of the normal code) on flat faces
    _, scene, out = scene_and_labels
    d_cam, _ = _cam_rays64(scene, SIZE)
    p = d_cam * out["depth"][..., None].astype(np.float64)
    n = out["normals"].astype(np.float64)
    sid = out["surface"]
    planar = np.isin(sid, [6 + k for k, q in enumerate(scene.prims) if q.kind == "box"]) | (sid < 6)
    same = (sid[:-1, :-1] == sid[1:, :-1]) & (sid[:-1, :-1] == sid[:-1, 1:]) & planar[:-1, :-1]
    same &= np.abs(n[:-1, :-1] - n[1:, :-1]).max(-1) < 1e-4  # same box face: identical normals
    same &= np.abs(n[:-1, :-1] - n[:-1, 1:]).max(-1) < 1e-4
    fd = np.cross(p[:-1, 1:] - p[:-1, :-1], p[1:, :-1] - p[:-1, :-1])
    fd /= np.linalg.norm(fd, axis=-1, keepdims=True)
    cos = np.abs((fd * n[:-1, :-1]).sum(-1))[same]
    assert same.sum() > 100
    assert np.percentile(cos, 1) > 0.995


def test_saliency_edges_parts_consistent(scene_and_labels):
    preset, scene, out = scene_and_labels
    P = PRESETS[preset]
    obj_ids = [i for i, c in enumerate(P.classes) if c not in P.room_classes]
    np.testing.assert_array_equal(out["saliency"], np.isin(out["semseg"], obj_ids).astype(np.uint8))
    # edges: exactly the pixels whose right or lower neighbour is another segment
    inst = out["instances"]
    np.testing.assert_array_equal(out["edges"], edges_from_instances(inst))
    right = np.zeros_like(inst, dtype=bool)
    right[:, :-1] = inst[:, :-1] != inst[:, 1:]
    down = np.zeros_like(inst, dtype=bool)
    down[:-1] = inst[:-1] != inst[1:]
    assert ((right | down) == (out["edges"] == 1)).all()
    assert out["edges"][-1, -1] == 0
    # every semantic boundary is an edge (instances refine classes)
    sem = out["semseg"]
    assert out["edges"][:, :-1][sem[:, :-1] != sem[:, 1:]].all()
    # parts: nonzero exactly on part-annotated (composite) objects
    comp = np.isin(sem, [P.class_id(c) for c in P.part_classes])
    if out["parts"].max() == 255:
        assert (out["parts"] == 255).all() and not comp.any()
    else:
        np.testing.assert_array_equal(out["parts"] > 0, comp)
        assert out["parts"].max() < len(P.parts)


def test_images_without_composite_objects_ignore_parts():
    found = False
    for i in range(60):
        out = render_index(5, i, (32, 32), "pascal")
        comp = np.isin(out["semseg"], [PRESETS["pascal"].class_id(c) for c in PRESETS["pascal"].part_classes])
        if not comp.any():
            assert (out["parts"] == 255).all()
            found = True
            break
        assert (out["parts"] != 255).all()
    assert found


# --------------------------------------------------------------------------- not trivial from colour


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_classes_not_predictable_from_colour(preset):
    n_cls = len(PRESETS[preset].classes)

    def pixels(ids):
        outs = [render_index(3, i, (32, 32), preset) for i in ids]
        x = np.concatenate([o["image"].reshape(-1, 3) for o in outs]).astype(np.float64)
        y = np.concatenate([o["semseg"].ravel() for o in outs])
        return x, y, outs

    xa, ya, outs = pixels(range(20))
    xb, yb, _ = pixels(range(20, 40))
    cents = np.array([xa[ya == c].mean(0) if (ya == c).any() else np.full(3, 1e9) for c in range(n_cls)])
    pred = ((xb[:, None, :] - cents[None]) ** 2).sum(-1).argmin(1)
    recalls = [(pred[yb == c] == c).mean() for c in range(n_cls) if (yb == c).any()]
    assert np.mean(recalls) < 0.3, np.mean(recalls)  # chance is ~0.1
    # one class, very different mean colours across images
    floor_like = PRESETS[preset].class_id("floor" if preset == "nyud" else "ground")
    means = np.array(
        [o["image"][o["semseg"] == floor_like].mean(0) for o in outs if (o["semseg"] == floor_like).any()]
    )
    assert means.std(axis=0).mean() > 25


# --------------------------------------------------------------------------- determinism


def test_deterministic_per_seed_and_index():
    a = render_index(0, 4, SIZE, "nyud")
    b = render_index(0, 4, SIZE, "nyud")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = render_index(1, 4, SIZE, "nyud")
    d = render_index(0, 5, SIZE, "nyud")
    assert not np.array_equal(a["image"], c["image"]) and not np.array_equal(a["image"], d["image"])
    assert not np.array_equal(a["depth"], c["depth"])


def _read_all(root):
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            files[str(p.relative_to(root))] = p.read_bytes()
    return files


def test_generate_layout_and_workers_identical(tmp_path):
    from edgemtl.data.dataset import load_meta

    m1 = generate(tmp_path / "a", 6, SIZE, seed=2, preset="pascal", workers=1, progress=False)
    generate(tmp_path / "b", 6, SIZE, seed=2, preset="pascal", workers=2, progress=False)
    assert _read_all(tmp_path / "a") == _read_all(tmp_path / "b")

    root = tmp_path / "a"
    meta = load_meta(root)  # passes the layout's own validator
    assert meta == m1 == json.loads((root / "dataset.json").read_text())
    keys = ("name", "preset", "tasks", "classes", "depth_range", "edge_max_dist", "image_size", "generator")
    for key in keys:
        assert key in meta, key
    assert meta["tasks"] == ["semseg", "depth", "normals", "edges", "saliency", "parts"]
    assert meta["classes"]["semseg"] == list(PRESETS["pascal"].classes)
    assert meta["classes"]["parts"][0] == "background"
    assert meta["edge_max_dist"] == 0.0075 and meta["image_size"] == list(SIZE)
    assert meta["generator"]["seed"] == 2 and meta["generator"]["num"] == 6

    ids = [f"{i:06d}" for i in range(6)]
    split_ids = {s: (root / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert sorted(sum(split_ids.values(), [])) == ids  # cover all ids, no overlap
    assert all(split_ids.values())
    for i in ids:
        img = cv2.imread(str(root / "images" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert img.shape == (*SIZE, 3) and img.dtype == np.uint8
        for t in ("semseg", "edges", "saliency", "parts"):
            lab = cv2.imread(str(root / t / f"{i}.png"), cv2.IMREAD_UNCHANGED)
            assert lab.shape == SIZE and lab.dtype == np.uint8
        assert np.load(root / "depth" / f"{i}.npy").shape == SIZE
        nrm = np.load(root / "normals" / f"{i}.npy")
        assert nrm.shape == (*SIZE, 3) and nrm.dtype == np.float32
    # what is on disk is what render_index returns
    ref = render_index(2, 3, SIZE, "pascal")
    np.testing.assert_array_equal(cv2.imread(str(root / "images" / "000003.png"))[..., ::-1], ref["image"])
    np.testing.assert_array_equal(np.load(root / "depth" / "000003.npy"), ref["depth"])
    parts = cv2.imread(str(root / "parts" / "000003.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(parts, ref["parts"])

    # re-running with the same parameters is allowed (resumes), different ones are refused
    generate(root, 6, SIZE, seed=2, preset="pascal", workers=1, progress=False)
    with pytest.raises(EdgeMTLError, match="--out"):
        generate(root, 6, SIZE, seed=3, preset="pascal", workers=1, progress=False)


def test_resume_fills_in_missing_files(tmp_path):
    root = tmp_path / "d"
    generate(root, 3, (32, 32), seed=0, workers=1, progress=False)
    before = _read_all(root)
    (root / "normals" / "000001.npy").unlink()
    (root / "dataset.json").unlink()
    generate(root, 3, (32, 32), seed=0, workers=1, progress=False)
    assert _read_all(root) == before


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"num": 0}, "--num"),
        ({"size": (16, 64)}, "--size"),
        ({"size": (0, 32)}, "--size"),
        ({"size": "big"}, "--size"),
        ({"preset": "kitchen"}, "--preset"),
        ({"seed": -1}, "--seed"),
        ({"workers": 0}, "--workers"),
    ],
)
def test_bad_arguments_name_the_flag(tmp_path, kwargs, flag):
    args = {"num": 2, "size": (32, 32), "preset": "nyud", "seed": 0, "workers": 1, "progress": False}
    args.update(kwargs)
    with pytest.raises(EdgeMTLError, match=flag):
        generate(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()  # nothing written on bad arguments


def test_error_messages_list_valid_values(tmp_path):
    with pytest.raises(EdgeMTLError, match="nyud, pascal"):
        render_scene(0, (32, 32), "nyd")
    with pytest.raises(EdgeMTLError, match="32"):
        render_scene(0, (8, 8), "nyud")


def test_non_empty_out_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(EdgeMTLError, match="--out.*empty"):
        generate(tmp_path, 2, (32, 32), workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "tasks, says", [("detection", "expected a list"), (["detectoin"], "no task 'detectoin'")]
)
def test_bad_synth_task_lists_are_one_line(tasks, says):
    from edgemtl.data.synth.driver import check_tasks

    with pytest.raises(EdgeMTLError, match=says):
        check_tasks(tasks)
