"""Scene descriptions: sampling a random room / outdoor scene for a preset.

A :class:`Scene` is independent of the image size: the camera stores its field of view and
principal-point offset as fractions, so the same scene can be rendered at any resolution.

World frame: y up, the floor / ground is the plane y = 0, the room is the axis-aligned box
``[room_lo, room_hi]`` and the camera is inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemtl.data.synth.objects import BUILDERS, Prim, Proto, box, rot_x, rot_y, rot_z
from edgemtl.data.synth.presets import Preset, get_preset
from edgemtl.data.synth.raycast import intrinsics
from edgemtl.data.synth.shading import GRADIENT, Light, Material, random_material

WALL_GAP = 0.03  # furniture stands this far from a wall (pictures are thinner)


@dataclass
class Camera:
    fov: float  # radians, spanning the larger image side
    pp: tuple[float, float]  # principal point offset from the image centre, fraction of (W, H)
    position: np.ndarray  # world (3,)
    R: np.ndarray  # camera -> world rotation; columns = camera x (right), y (up), z (backwards)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def K(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels for an image of ``size`` = (H, W)."""
        return intrinsics(self.fov, self.pp, size)

    def world_to_camera(self, p: np.ndarray) -> np.ndarray:
        """Points (..., 3) world -> camera frame (x right, y up, z towards the viewer)."""
        return (np.asarray(p, dtype=np.float64) - self.position) @ self.R


@dataclass
class SceneObject:
    cls: str
    class_id: int
    instance: int
    composite: bool  # parts annotated
    position: np.ndarray
    yaw: float
    prim_range: tuple[int, int]  # its primitives are scene.prims[a:b]


@dataclass
class Scene:
    preset: str
    camera: Camera
    room_lo: np.ndarray
    room_hi: np.ndarray
    face_class: np.ndarray  # (6,) class id of each room face
    face_instance: np.ndarray  # (6,)
    face_material: np.ndarray  # (6,)
    prims: list[Prim]  # world-frame primitives of all objects
    prim_class: np.ndarray  # (K,) class id
    prim_instance: np.ndarray  # (K,)
    prim_part: np.ndarray  # (K,) part id (0 when the object is not part-annotated)
    prim_composite: np.ndarray  # (K,) bool: belongs to a part-annotated object
    prim_material: np.ndarray  # (K,)
    materials: list[Material]
    lights: list[Light]
    ambient: np.ndarray
    lattice: np.ndarray  # value-noise lattice (float32)
    sensor: dict
    objects: list[SceneObject] = field(default_factory=list)


def as_rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


# --------------------------------------------------------------------------- placement


class _Rect:
    """An oriented rectangle on the floor: centre (x, z), unit axes u (local x) and v (local z).

    Plain Python floats: these tests run thousands of times per scene on 2-vectors.
    """

    def __init__(self, cx: float, cz: float, yaw: float, hx: float, hz: float) -> None:
        self.cx, self.cz = float(cx), float(cz)
        c, s = math.cos(yaw), math.sin(yaw)
        # rot_y(yaw) maps local x -> (cos, -sin) and local z -> (sin, cos) in world (x, z)
        self.ux, self.uz, self.vx, self.vz = c, -s, s, c
        self.hx, self.hz = float(hx), float(hz)

    def radius_along(self, ax: float, az: float) -> float:
        return self.hx * abs(ax * self.ux + az * self.uz) + self.hz * abs(ax * self.vx + az * self.vz)

    def overlaps(self, o: _Rect, gap: float) -> bool:
        dx, dz = o.cx - self.cx, o.cz - self.cz
        for ax, az in ((self.ux, self.uz), (self.vx, self.vz), (o.ux, o.uz), (o.vx, o.vz)):
            if abs(ax * dx + az * dz) > self.radius_along(ax, az) + o.radius_along(ax, az) + gap:
                return False  # separating axis found
        return True

    def distance_to(self, px: float, pz: float) -> float:
        dx, dz = px - self.cx, pz - self.cz
        du = max(abs(dx * self.ux + dz * self.uz) - self.hx, 0.0)
        dv = max(abs(dx * self.vx + dz * self.vz) - self.hz, 0.0)
        return math.hypot(du, dv)

    def extent(self) -> tuple[float, float]:
        """Half extents of the rectangle's world-axis-aligned bounding box (x, z)."""
        return (
            self.hx * abs(self.ux) + self.hz * abs(self.vx),
            self.hx * abs(self.uz) + self.hz * abs(self.vz),
        )


class _Placer:
    """Keeps footprints (oriented rectangles on the floor) and support surfaces while placing."""

    def __init__(self, preset: Preset, lo: np.ndarray, hi: np.ndarray, cam: Camera, rng) -> None:
        self.p, self.cam, self.rng = preset, cam, rng
        self.lo, self.hi = [float(v) for v in lo], [float(v) for v in hi]
        self.rects: list[_Rect] = []
        self.supports: list[dict] = []
        f = cam.R @ np.array([0.0, 0.0, -1.0])
        self.heading = float(np.arctan2(f[0], f[2]))  # azimuth of the view direction
        self.half_fov = 0.5 * cam.fov
        self.cam_xz = (float(cam.position[0]), float(cam.position[2]))

    def footprint(self, proto: Proto, x: float, z: float, yaw: float) -> _Rect:
        fx, fz = proto.foot_center
        c, s = math.cos(yaw), math.sin(yaw)
        return _Rect(x + c * fx + s * fz, z - s * fx + c * fz, yaw, *proto.foot_half)

    def _free(self, r: _Rect) -> bool:
        ex, ez = r.extent()
        g = WALL_GAP / 2
        if (
            r.cx - ex < self.lo[0] + g
            or r.cx + ex > self.hi[0] - g
            or r.cz - ez < self.lo[2] + g
            or r.cz + ez > self.hi[2] - g
        ):
            return False
        if r.distance_to(*self.cam_xz) < self.p.camera_clearance:
            return False
        return not any(r.overlaps(o, 0.02) for o in self.rects)

    def floor(self, proto: Proto, near: bool = False) -> tuple[np.ndarray, float] | None:
        rng = self.rng
        dmin, dmax = self.p.distance.get(proto.cls, self.p.default_distance)
        if near:
            dmax = min(dmax, dmin + self.p.near_span)
        for _ in range(40):
            if self.p.indoor and rng.random() < proto.against_wall:
                # back (local -z side) against the back (0), left (1) or right (2) wall
                wall = int(rng.integers(0, 3))
                off = -float(proto.lo[2]) + WALL_GAP
                if wall == 0:
                    x, z, yaw = rng.uniform(self.lo[0], self.hi[0]), self.lo[2] + off, 0.0
                elif wall == 1:
                    x, z, yaw = self.lo[0] + off, rng.uniform(self.lo[2], self.hi[2]), np.pi / 2
                else:
                    x, z, yaw = self.hi[0] - off, rng.uniform(self.lo[2], self.hi[2]), -np.pi / 2
            else:
                az = self.heading + rng.uniform(-0.8, 0.8) * self.half_fov
                dist = rng.uniform(dmin, dmax)
                x = self.cam_xz[0] + dist * math.sin(az)
                z = self.cam_xz[1] + dist * math.cos(az)
                yaw = rng.uniform(0, 2 * np.pi)
            rect = self.footprint(proto, x, z, yaw)
            if self._free(rect):
                self.rects.append(rect)
                pos = np.array([x, 0.0, z])
                if proto.support is not None:
                    self.supports.append(
                        {
                            "pos": pos,
                            "yaw": yaw,
                            "top": proto.support[0],
                            "hx": proto.support[1],
                            "hz": proto.support[2],
                            "items": [],
                        }
                    )
                return pos, float(yaw)
        return None

    def on_support(self, proto: Proto, ceiling: float) -> tuple[np.ndarray, float] | None:
        """Stand a small object on a table / cabinet top (inside the top, not overlapping others)."""
        rng, r = self.rng, proto.radius
        cands = [s for s in self.supports if s["hx"] > r and s["hz"] > r and s["top"] + proto.top < ceiling]
        if not cands:
            return None
        s = cands[int(rng.integers(len(cands)))]
        for _ in range(10):
            lx, lz = rng.uniform(-s["hx"] + r, s["hx"] - r), rng.uniform(-s["hz"] + r, s["hz"] - r)
            if all(np.hypot(lx - ix, lz - iz) >= r + ir + 0.01 for ix, iz, ir in s["items"]):
                s["items"].append((lx, lz, r))
                pos = s["pos"] + rot_y(s["yaw"]) @ np.array([lx, s["top"], lz])
                return pos, float(rng.uniform(0, 2 * np.pi))
        return None


# --------------------------------------------------------------------------- sampling


def _camera(preset: Preset, rng, lo: np.ndarray, hi: np.ndarray) -> Camera:
    fov = np.deg2rad(rng.uniform(50.0, 70.0))
    pp = (float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03)))
    roll = rng.uniform(-0.05, 0.05)
    if preset.indoor:
        w = hi[0] - lo[0]
        pos = np.array([rng.uniform(-0.5, 0.5) * (w - 1.0), rng.uniform(1.0, 1.7), -rng.uniform(0.4, 0.9)])
        target = np.array([rng.uniform(-0.35, 0.35) * w, 0.0, lo[2]])
        v = target - pos
        yaw = float(np.clip(np.arctan2(-v[0], -v[2]), -0.7, 0.7))
        pitch = rng.uniform(-0.5, -0.05)
    else:
        pos = np.array([0.0, rng.uniform(1.2, 1.8), 0.0])
        yaw = rng.uniform(0, 2 * np.pi)
        pitch = rng.uniform(-0.3, 0.05)
    R = rot_y(yaw) @ rot_x(pitch) @ rot_z(roll)
    return Camera(float(fov), pp, pos, R, float(yaw), float(pitch), float(roll))


def _picture(rng) -> Proto:
    hw, hh = rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.45)
    frame = rng.uniform(0.015, 0.05)
    prims = [box((0, 0, 0.012), (hw, hh, 0.012)), box((0, 0, 0.014), (hw - frame, hh - frame, 0.012), slot=1)]
    return Proto("picture", prims, slots=2)


_Placed = tuple[Proto, np.ndarray, float]  # an object's prototype, position and yaw


class _Materials(list):
    """The scene's material table; ``new(size)`` draws one and returns its index."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.rng = rng

    def new(self, size: float) -> int:
        self.append(random_material(self.rng, size))
        return len(self) - 1


def _room(P: Preset, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The scene box (lo, hi corners): a room indoors, a large open area outdoors."""
    if P.indoor:
        w, dep, hgt = rng.uniform(3.0, 6.0), rng.uniform(3.5, 7.0), rng.uniform(2.4, 3.2)
        return np.array([-w / 2, 0.0, -dep]), np.array([w / 2, hgt, 0.0])
    ex = rng.uniform(12.0, 25.0, size=4)
    return np.array([-ex[0], 0.0, -ex[1]]), np.array([ex[2], rng.uniform(8.0, 20.0), ex[3]])


def _surfaces(P: Preset, rng: np.random.Generator, hi: np.ndarray, mats: _Materials) -> np.ndarray:
    """Material of each of the box's six faces: walls (some different), floor and ceiling indoors;
    a sky (gradient or distant backdrop) and the ground outdoors."""
    face_material = np.zeros(6, dtype=np.int32)
    if P.indoor:
        face_material[:] = mats.new(2.0)
        for f in (0, 1, 4, 5):
            if rng.random() < 0.25:
                face_material[f] = mats.new(2.0)
        face_material[2] = mats.new(2.0)
        face_material[3] = mats.new(2.0)
        return face_material
    sky = random_material(rng, 1.0)
    if rng.random() < 0.75:  # sky-like vertical gradient; otherwise a distant textured backdrop
        sky.pattern = GRADIENT
        up = np.array([0.0, 1.0, 0.0])
        sky.rot = np.stack([up, [1.0, 0, 0], [0, 0, 1.0]])  # texture x = world y
        sky.origin = np.array([0.0, hi[1] / 2, 0.0])
        sky.scale = hi[1] / 2
    else:
        sky.scale = rng.uniform(2.0, 10.0)
    sky.unlit, sky.gain, sky.ks = True, float(rng.uniform(0.6, 1.1)), 0.0
    mats.append(sky)
    face_material[:] = len(mats) - 1
    face_material[2] = mats.new(rng.uniform(1.0, 6.0))
    return face_material


def _objects(P: Preset, rng: np.random.Generator, placer: _Placer, ceiling: float) -> list[_Placed]:
    """The preset's objects, drawn by class frequency, on supports or on the floor, never overlapping."""
    placed: list[_Placed] = []
    n = int(rng.integers(P.n_objects[0], P.n_objects[1] + 1))
    names = list(P.objects)
    weights = np.array([P.objects[k] for k in names])
    weights = weights / weights.sum()
    for j in range(n):
        cls = names[int(rng.choice(len(names), p=weights))]
        proto = BUILDERS[cls](rng)
        spot = None
        if cls in P.supported and placer.supports and rng.random() < 0.6 * P.supported[cls]:
            spot = placer.on_support(proto, ceiling)
        if spot is None:
            if proto.top >= ceiling:
                continue
            spot = placer.floor(proto, near=(j == 0 and P.hero))
        if spot is not None:
            placed.append((proto, spot[0], spot[1]))
    return placed


def _pictures(P: Preset, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> list[_Placed]:
    """Pictures on the back and side walls (indoor presets), never overlapping each other."""
    npic = int(rng.integers(P.n_pictures[0], P.n_pictures[1] + 1)) if P.n_pictures[1] > 0 else 0
    pics: list[tuple[int, float, float, float, float]] = []
    placed: list[_Placed] = []
    for _ in range(npic):
        proto = _picture(rng)
        hw, hh = proto.prims[0].scale[0], proto.prims[0].scale[1]
        wall = int(rng.integers(0, 3))
        y = rng.uniform(1.1, max(1.1, hi[1] - 0.35 - hh))
        if wall == 0:
            a = rng.uniform(lo[0] + hw + 0.1, hi[0] - hw - 0.1)
            pos, yaw = np.array([a, y, lo[2]]), 0.0
        else:
            a = rng.uniform(lo[2] + hw + 0.1, hi[2] - hw - 0.3)
            if wall == 1:
                pos, yaw = np.array([lo[0], y, a]), np.pi / 2
            else:
                pos, yaw = np.array([hi[0], y, a]), -np.pi / 2
        if any(
            w_ == wall and abs(a - a_) < hw + hw_ + 0.05 and abs(y - y_) < hh + hh_ + 0.05
            for w_, a_, y_, hw_, hh_ in pics
        ):
            continue
        pics.append((wall, a, y, hw, hh))
        placed.append((proto, pos, yaw))
    return placed


def _flatten(P: Preset, rng: np.random.Generator, placed: list[_Placed], mats: _Materials) -> dict[str, Any]:
    """World primitives and their per-primitive label tables (class, instance, part, material)."""
    prims: list[Prim] = []
    pc, pi, pp_, pcomp, pm = [], [], [], [], []
    objects: list[SceneObject] = []
    for oi, (proto, pos, yaw) in enumerate(placed):
        cid = P.class_id(proto.cls)
        inst = 7 + oi
        composite = proto.cls in P.part_classes
        size = max(proto.radius, 0.1)
        slot_mats = [mats.new(size)]
        for _s in range(1, proto.slots):
            slot_mats.append(mats.new(size) if rng.random() < 0.6 else slot_mats[0])
        if proto.meta.get("glow"):
            glow = mats.new(size)
            mats[glow].unlit, mats[glow].gain = True, float(rng.uniform(1.0, 1.6))
            slot_mats[0] = glow
        Ry = rot_y(yaw)
        a = len(prims)
        for q in proto.prims:
            prims.append(q.transformed(Ry, pos))
            pc.append(cid)
            pi.append(inst)
            pp_.append(P.parts.index(q.part) if composite else 0)
            pcomp.append(composite)
            pm.append(slot_mats[q.slot])
        objects.append(SceneObject(proto.cls, cid, inst, composite, pos, yaw, (a, len(prims))))
    return {
        "prims": prims,
        "prim_class": np.array(pc, dtype=np.int32),
        "prim_instance": np.array(pi, dtype=np.int32),
        "prim_part": np.array(pp_, dtype=np.int32),
        "prim_composite": np.array(pcomp, dtype=bool),
        "prim_material": np.array(pm, dtype=np.int32),
        "objects": objects,
    }


def _lighting(P: Preset, rng: np.random.Generator) -> tuple[list[Light], np.ndarray]:
    """One or two directional lights (the second dimmer outdoors) and a tinted ambient term."""
    lights = []
    nl = 1 + int(rng.random() < (0.5 if P.indoor else 0.3))
    for i in range(nl):
        elev = rng.uniform(0.5, 1.45) if P.indoor else rng.uniform(0.35, 1.3)
        az = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(elev) * np.sin(az), np.sin(elev), np.cos(elev) * np.cos(az)])
        inten = rng.uniform(0.5, 1.1) if (i == 0 or P.indoor) else rng.uniform(0.15, 0.4)
        lights.append(Light(d, inten * (1.0 + rng.uniform(-0.15, 0.15, size=3))))
    ambient = rng.uniform(0.15, 0.45) * (1.0 + rng.uniform(-0.15, 0.15, size=3))
    return lights, ambient


def sample_scene(rng_or_seed, preset: str | Preset = "nyud") -> Scene:
    """Draw a random scene (geometry, materials, lights, sensor settings) for ``preset``.

    The steps draw from one generator in a fixed order (room, camera, surfaces, objects, pictures,
    object materials, lights, texture lattice, sensor): a seed gives the same scene on every machine.
    """
    rng = as_rng(rng_or_seed)
    P = get_preset(preset)
    lo, hi = _room(P, rng)
    cam = _camera(P, rng, lo, hi)
    mats = _Materials(rng)
    face_material = _surfaces(P, rng, hi, mats)
    placer = _Placer(P, lo, hi, cam, rng)
    placed = _objects(P, rng, placer, hi[1] - 0.05 if P.indoor else np.inf)
    placed += _pictures(P, rng, lo, hi)
    tables = _flatten(P, rng, placed, mats)
    lights, ambient = _lighting(P, rng)
    lattice = rng.random((16, 16, 16)).astype(np.float32)
    sensor = {
        "key": float(rng.uniform(0.7, 1.0)),
        "gamma": float(rng.uniform(1.8, 2.4)),
        "sigma": float(rng.uniform(0.003, 0.02)),
        "wb": rng.uniform(0.9, 1.1, size=3),
        "seed": int(rng.integers(2**63)),
    }
    return Scene(
        preset=P.name,
        camera=cam,
        room_lo=lo,
        room_hi=hi,
        face_class=np.array([P.class_id(c) for c in P.face_class], dtype=np.int32),
        face_instance=np.array(P.face_instance, dtype=np.int32),
        face_material=face_material,
        materials=list(mats),
        lights=lights,
        ambient=ambient,
        lattice=lattice,
        sensor=sensor,
        **tables,
    )
