"""Render a :class:`~edgemtl.data.synth.scene.Scene` into an image and six exact label maps."""

from __future__ import annotations

import numpy as np

from edgemtl.data.layout import IGNORE_INDEX
from edgemtl.data.synth import raycast as rc
from edgemtl.data.synth.presets import get_preset
from edgemtl.data.synth.scene import Scene, as_rng, sample_scene
from edgemtl.data.synth.shading import noise_table, sensor, shade
from edgemtl.errors import EdgeMTLError

TASKS = ("semseg", "depth", "normals", "edges", "saliency", "parts")
OPTIONAL_TASKS = ("detection",)  # written only when asked for (``generate(..., tasks=...)``)
DIFFICULT_PIXELS = 24  # an object showing fewer pixels is marked difficult (ignored by the metrics)
MIN_SIZE = 32
MAX_SIZE = 4096
SHADOW_OFFSET = 2e-3  # metres along the normal before casting a shadow ray


def check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
        ok = len(tuple(size)) == 2 and all(float(v) == int(v) for v in size)
    except (TypeError, ValueError):
        ok = False
    if not ok or not (MIN_SIZE <= h <= MAX_SIZE and MIN_SIZE <= w <= MAX_SIZE):
        got = f"{h}x{w}" if ok else repr(size)
        raise EdgeMTLError(
            f"--size: expected HxW with {MIN_SIZE} <= H, W <= {MAX_SIZE} pixels (e.g. 128x128), got {got}."
        )
    return h, w


def edges_from_instances(inst: np.ndarray) -> np.ndarray:
    """1-pixel boundaries: a pixel is an edge iff its right or lower neighbour is another segment."""
    e = np.zeros(inst.shape, dtype=np.uint8)
    e[:, :-1] |= inst[:, :-1] != inst[:, 1:]
    e[:-1, :] |= inst[:-1, :] != inst[1:, :]
    return e


def detection_classes(preset: str) -> list[str]:
    """The object classes that get boxes: every class that is not a room surface, in class-id order."""
    P = get_preset(preset)
    return [c for c in P.classes if c not in P.room_classes]


def _det_class(preset: str) -> np.ndarray:
    """Semantic class id -> detection class id, -1 for room surfaces."""
    P = get_preset(preset)
    names = detection_classes(preset)
    return np.array([names.index(c) if c in names else -1 for c in P.classes] + [-1] * 256, np.int64)[:256]


def boxes_from_instances(inst: np.ndarray, semseg: np.ndarray, det_class: np.ndarray) -> np.ndarray:
    """Exact boxes of the visible objects: per instance whose class has a detection id
    (``det_class[semantic id] >= 0``), the box around its visible pixels in pixel corners
    ``[x_min, y_min, x_max + 1, y_max + 1]``, its detection class and a difficult flag (fewer than
    DIFFICULT_PIXELS visible pixels). float32 [N, 6], sorted by instance id."""
    rows = []
    obj = det_class[semseg] >= 0
    for i in np.unique(inst[obj]):
        ys, xs = np.nonzero((inst == i) & obj)
        c = int(det_class[semseg[ys[0], xs[0]]])
        hard = float(len(ys) < DIFFICULT_PIXELS)
        rows.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, c, hard))
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)


def render(scene: Scene, size: tuple[int, int], aux: bool = False) -> dict[str, np.ndarray]:
    """Ray cast ``scene`` at ``size`` = (H, W).

    Returns ``image`` (uint8 HxWx3 RGB) and the labels ``semseg``, ``depth``, ``normals``,
    ``edges``, ``saliency``, ``parts`` and ``detection`` (boxes in pixels,
    :func:`boxes_from_instances`). With ``aux=True`` also ``instances`` (int32 segment ids, room faces
    included), ``surface`` (int32: 0..5 room face, 6+k primitive k) and ``points`` (float32 HxWx3
    world hit points).
    """
    h, w = check_size(size)
    cam = scene.camera
    K = cam.K((h, w))
    dirs = rc.camera_rays(K, cam.R, (h, w))
    o = cam.position.astype(np.float32)
    t, sid = rc.cast_room(scene.room_lo, scene.room_hi, o, dirs)
    sid = sid.astype(np.int32)
    pk = rc.Packed(scene.prims)
    rects = rc.screen_rects(pk, K, cam.R, cam.position, (h, w))
    rc.cast_primary(pk, rects, o, dirs, t, sid)

    n_px = h * w
    tf, sf = t.reshape(-1), sid.reshape(-1)
    D = dirs.reshape(3, n_px)
    P = o[:, None] + tf[None, :] * D

    # surface normals (world), outward from the surface, then flipped to face the camera
    N = np.zeros((3, n_px), dtype=np.float32)
    room = sf < rc.ROOM_FACES
    axis = sf[room] // 2
    N[axis, np.flatnonzero(room)] = np.where(sf[room] % 2 == 0, 1.0, -1.0)  # room normals point inwards
    obj = np.flatnonzero(~room)
    if obj.size:
        k = sf[obj] - rc.ROOM_FACES
        q = np.einsum("nij,jn->in", pk.Rt[k], P[:, obj] - pk.center[k].T) * pk.inv_scale[k].T
        nc = rc.canonical_normals(pk.kind[k], q) * pk.inv_scale[k].T
        nw = np.einsum("nij,jn->in", pk.R[k], nc)
        N[:, obj] = nw / np.linalg.norm(nw, axis=0, keepdims=True)
    flip = (N * D).sum(axis=0) > 0
    N[:, flip] *= -1.0

    # label tables indexed by surface id
    surf_class = np.concatenate([scene.face_class, scene.prim_class]).astype(np.uint8)
    surf_inst = np.concatenate([scene.face_instance, scene.prim_instance]).astype(np.int32)
    surf_part = np.concatenate([np.zeros(6, np.int32), scene.prim_part]).astype(np.uint8)
    surf_comp = np.concatenate([np.zeros(6, bool), scene.prim_composite])
    surf_sal = np.concatenate([np.zeros(6, np.uint8), np.ones(pk.n, np.uint8)])
    surf_mat = np.concatenate([scene.face_material, scene.prim_material])

    inst = surf_inst[sid]
    parts = surf_part[sid]
    if not surf_comp[sid].any():
        parts = np.full((h, w), IGNORE_INDEX, dtype=np.uint8)

    # shading
    V = -D / np.linalg.norm(D, axis=0, keepdims=True)
    shadowed = []
    for light in scene.lights:
        L = light.direction.astype(np.float32)
        sh = np.zeros(n_px, dtype=bool)
        lit = np.flatnonzero(L @ N > 0)
        if lit.size:
            Ps = P[:, lit] + np.float32(SHADOW_OFFSET) * N[:, lit]
            sh[lit] = rc.shadow_mask(pk, Ps, L)
        shadowed.append(sh)
    rad = shade(
        scene.materials,
        surf_mat[sf],
        P,
        N,
        V,
        scene.lights,
        scene.ambient,
        shadowed,
        noise_table(scene.lattice),
    )
    s = scene.sensor
    image = sensor(
        rad.reshape(h, w, 3), np.random.default_rng(s["seed"]), s["key"], s["gamma"], s["sigma"], s["wb"]
    )

    normals_cam = (cam.R.T.astype(np.float32) @ N).T.reshape(h, w, 3)
    out = {
        "image": image,
        "semseg": surf_class[sid],
        "depth": t.astype(np.float32),
        "normals": np.ascontiguousarray(normals_cam, dtype=np.float32),
        "edges": edges_from_instances(inst),
        "saliency": surf_sal[sid],
        "parts": parts,
        "detection": boxes_from_instances(inst, surf_class[sid], _det_class(scene.preset)),
    }
    if aux:
        out["instances"] = inst
        out["surface"] = sid
        out["points"] = np.ascontiguousarray(P.T.reshape(h, w, 3))
    return out


def render_scene(
    rng_or_seed, size: tuple[int, int] = (128, 128), preset: str = "nyud", aux: bool = False
) -> dict[str, np.ndarray]:
    """Sample a scene from ``rng_or_seed`` (int, SeedSequence or Generator) and render it."""
    get_preset(preset)
    size = check_size(size)
    return render(sample_scene(as_rng(rng_or_seed), preset), size, aux=aux)
