"""Object builders: each returns a :class:`Proto` in object-local coordinates.

Local frame: origin on the floor at the object's centre, y up, the object's front facing +z.
Sizes are metres. Part names ("top", "leg", "head", ...) are resolved to part ids by the preset;
only classes the preset lists as part-annotated keep them. ``slot`` picks one of the object's
materials (slot 0 = main); colours are drawn per object independent of the class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgemtl.data.synth.raycast import KINDS


@dataclass
class Prim:
    kind: str
    center: np.ndarray
    R: np.ndarray
    scale: np.ndarray
    part: str = ""
    slot: int = 0

    @property
    def kind_id(self) -> int:
        return KINDS[self.kind]

    def transformed(self, R: np.ndarray, t: np.ndarray) -> Prim:
        return Prim(self.kind, R @ self.center + t, R @ self.R, self.scale.copy(), self.part, self.slot)

    def bound_radius(self) -> float:
        sx, sy, sz = (float(v) for v in self.scale)
        if self.kind == "box":
            return math.sqrt(sx * sx + sy * sy + sz * sz)
        if self.kind == "ellipsoid":
            return max(sx, sy, sz)
        return math.hypot(max(sx, sz), sy)


@dataclass
class Proto:
    cls: str
    prims: list[Prim]
    against_wall: float = 0.0  # probability of standing with its back (-z side) against a wall
    small: bool = False  # may stand on a support surface (table / cabinet top)
    support: tuple[float, float, float] | None = None  # (top y, half x, half z) others may stand on
    slots: int = 1
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # exact local AABB of the primitives' oriented boxes (every canonical shape fits in [-1, 1]^3)
        c = np.array([p.center for p in self.prims])
        e = np.array([np.abs(p.R) @ p.scale for p in self.prims])
        lo, hi = (c - e).min(axis=0), (c + e).max(axis=0)
        self.lo, self.hi = lo, hi
        #: footprint rectangle on the floor, in local coordinates: centre (x, z) and half sizes (x, z)
        self.foot_center = (float(lo[0] + hi[0]) / 2, float(lo[2] + hi[2]) / 2)
        self.foot_half = (float(hi[0] - lo[0]) / 2, float(hi[2] - lo[2]) / 2)
        #: horizontal radius about the local origin enclosing the footprint
        self.radius = math.hypot(max(-lo[0], hi[0]), max(-lo[2], hi[2]))
        #: highest point above the floor
        self.top = float(hi[1])


# --------------------------------------------------------------------------- geometry helpers


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def cross(a, b) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is ~50x slower on single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def frame_y(axis: np.ndarray) -> np.ndarray:
    """A rotation whose local y axis is ``axis`` (unit)."""
    y = np.asarray(axis, dtype=np.float64)
    y = y / math.sqrt(y @ y)
    a = np.array([1.0, 0.0, 0.0]) if abs(y[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    x = cross(y, a)
    x /= math.sqrt(x @ x)
    z = cross(x, y)
    return np.stack([x, y, z], axis=1)


def box(c, h, part="", slot=0, R=None) -> Prim:
    return Prim("box", np.asarray(c, float), np.eye(3) if R is None else R, np.asarray(h, float), part, slot)


def ell(c, s, part="", slot=0, R=None) -> Prim:
    R = np.eye(3) if R is None else R
    return Prim("ellipsoid", np.asarray(c, float), R, np.asarray(s, float), part, slot)


def cyl(c, r, hh, part="", slot=0, R=None, rz=None) -> Prim:
    """Capped cylinder around the local y axis: radius r (x) / rz (z), half height hh."""
    return Prim(
        "cylinder",
        np.asarray(c, float),
        np.eye(3) if R is None else R,
        np.array([r, hh, r if rz is None else rz], float),
        part,
        slot,
    )


def cyl_between(a, b, r, part="", slot=0) -> Prim:
    a, b = np.asarray(a, float), np.asarray(b, float)
    v = b - a
    n = float(np.linalg.norm(v))
    return Prim("cylinder", (a + b) / 2, frame_y(v / n), np.array([r, n / 2, r]), part, slot)


def _legs(rng, hx, hz, height, inset, part="leg", slot=1) -> list[Prim]:
    """Four legs under a rectangular top, square or round at random."""
    round_ = rng.random() < 0.5
    t = rng.uniform(0.015, 0.03)
    out = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (hx - inset), height / 2, sz * (hz - inset))
            if round_:
                out.append(cyl(c, t, height / 2, part, slot))
            else:
                out.append(box(c, (t, height / 2, t), part, slot))
    return out


# --------------------------------------------------------------------------- furniture


def cabinet(rng) -> Proto:
    hx, hz, h = rng.uniform(0.25, 0.6), rng.uniform(0.18, 0.3), rng.uniform(0.7, 2.0)
    prims = [box((0, h / 2, 0), (hx, h / 2, hz))]
    nk = int(rng.integers(1, 3))
    for i in range(nk):  # door knobs / handles on the front
        x = (i - (nk - 1) / 2) * hx * 0.5
        y = h * rng.uniform(0.45, 0.8)
        if rng.random() < 0.5:
            prims.append(ell((x, y, hz + 0.012), (0.022, 0.022, 0.02), slot=1))
        else:
            prims.append(box((x, y, hz + 0.012), (0.012, rng.uniform(0.05, 0.12), 0.012), slot=1))
    top = h
    if rng.random() < 0.5:  # a top slab in another material
        prims.append(box((0, h + 0.015, 0), (hx + 0.02, 0.015, hz + 0.02), slot=1))
        top = h + 0.03
    return Proto("cabinet", prims, against_wall=0.8, support=(top, hx, hz), slots=2)


def boxy(rng) -> Proto:
    a, b, c = rng.uniform(0.1, 0.3, size=3)
    return Proto("box", [box((0, b, 0), (a, b, c))], small=True)


def bed(rng) -> Proto:
    hx, hz = rng.uniform(0.45, 0.9), rng.uniform(0.95, 1.1)
    leg_h, mat = rng.uniform(0.1, 0.25), rng.uniform(0.2, 0.3)
    prims = _legs(rng, hx, hz, leg_h, 0.06)
    top = leg_h + mat
    prims.append(box((0, leg_h + mat / 2, 0), (hx, mat / 2, hz), "top", 0))
    head_h = top + rng.uniform(0.3, 0.8)
    prims.append(box((0, head_h / 2, -hz - 0.03), (hx + 0.03, head_h / 2, 0.03), "back", 1))
    npil = int(rng.integers(1, 3)) if hx > 0.6 else 1
    for i in range(npil):
        x = 0.0 if npil == 1 else (i - 0.5) * hx
        prims.append(ell((x, top + 0.05, -hz + 0.25), (min(0.3, hx / npil * 0.8), 0.07, 0.16), "top", 2))
    return Proto("bed", prims, against_wall=0.85, slots=3)


def chair(rng) -> Proto:
    hw = rng.uniform(0.2, 0.26)
    seat_h, th = rng.uniform(0.42, 0.5), rng.uniform(0.02, 0.04)
    prims = _legs(rng, hw, hw, seat_h - 2 * th, 0.03)
    prims.append(box((0, seat_h - th, 0), (hw, th, hw), "top", 0))
    back_h = rng.uniform(0.35, 0.5)
    tilt = rng.uniform(0.0, 0.2)
    R = rot_x(-tilt)
    c = np.array([0.0, seat_h, -hw + 0.02]) + R @ np.array([0.0, back_h / 2, 0.0])
    prims.append(box(c, (hw, back_h / 2, 0.02), "back", 0, R=R))
    if rng.random() < 0.3:
        for sx in (-1, 1):
            prims.append(box((sx * (hw - 0.02), seat_h + 0.2, 0), (0.02, 0.02, hw), "arm", 1))
            prims.append(box((sx * (hw - 0.02), seat_h + 0.1, hw - 0.03), (0.015, 0.1, 0.015), "arm", 1))
    return Proto("chair", prims, against_wall=0.1, slots=2)


def sofa(rng) -> Proto:
    hx, hz = rng.uniform(0.7, 1.1), rng.uniform(0.4, 0.48)
    seat_h = rng.uniform(0.38, 0.45)
    leg_h = rng.uniform(0.04, 0.1) if rng.random() < 0.6 else 0.0
    prims = _legs(rng, hx, hz, leg_h, 0.05, slot=1) if leg_h else []
    prims.append(box((0, (leg_h + seat_h) / 2, 0), (hx, (seat_h - leg_h) / 2, hz), "top", 0))
    back_t, back_h = rng.uniform(0.08, 0.12), rng.uniform(0.3, 0.45)
    prims.append(
        box(
            (0, (leg_h + seat_h + back_h) / 2, -hz + back_t),
            (hx, (seat_h + back_h - leg_h) / 2, back_t),
            "back",
            0,
        )
    )
    arm_w, arm_h = rng.uniform(0.05, 0.1), rng.uniform(0.15, 0.25)
    for sx in (-1, 1):
        prims.append(
            box(
                (sx * (hx + arm_w), (leg_h + seat_h + arm_h) / 2, 0),
                (arm_w, (seat_h + arm_h - leg_h) / 2, hz),
                "arm",
                0,
            )
        )
    if rng.random() < 0.5:  # seat cushions
        n = int(rng.integers(2, 4))
        for i in range(n):
            x = (i - (n - 1) / 2) * 2 * hx / n
            prims.append(box((x, seat_h + 0.04, 0.03), (hx / n - 0.01, 0.04, hz - back_t - 0.02), "top", 2))
    return Proto("sofa", prims, against_wall=0.7, slots=3)


def table(rng, low_ok: bool = True) -> Proto:
    h = rng.uniform(0.4, 0.78) if (low_ok and rng.random() < 0.3) else rng.uniform(0.68, 0.78)
    th = rng.uniform(0.015, 0.03)
    if rng.random() < 0.7:
        hx, hz = rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.5)
        prims = _legs(rng, hx, hz, h - 2 * th, 0.05)
        prims.append(box((0, h - th, 0), (hx, th, hz), "top", 0))
        sup = (h, hx, hz)
    else:
        r = rng.uniform(0.35, 0.6)
        prims = [
            cyl((0, h - th, 0), r, th, "top", 0),
            cyl((0, h / 2, 0), rng.uniform(0.03, 0.06), h / 2 - th, "leg", 1),
            cyl((0, 0.015, 0), rng.uniform(0.18, 0.3), 0.015, "leg", 1),
        ]
        sup = (h, r * 0.7, r * 0.7)
    return Proto("table", prims, against_wall=0.2, support=sup, slots=2)


def lamp(rng, small: bool | None = None) -> Proto:
    small = rng.random() < 0.35 if small is None else small
    H = rng.uniform(0.3, 0.5) if small else rng.uniform(1.2, 1.7)
    br = rng.uniform(0.06, 0.1) if small else rng.uniform(0.12, 0.2)
    bh = rng.uniform(0.01, 0.025)
    prims = [
        cyl((0, bh, 0), br, bh, "stand", 1),
        cyl((0, H / 2, 0), rng.uniform(0.008, 0.02), H / 2, "stand", 1),
    ]
    sr = rng.uniform(0.1, 0.15) if small else rng.uniform(0.15, 0.25)
    sh = sr * rng.uniform(0.5, 0.8)
    if rng.random() < 0.7:
        prims.append(cyl((0, H, 0), sr, sh, "shade", 0))
    else:
        prims.append(ell((0, H, 0), (sr, sh * 1.2, sr), "shade", 0))
    return Proto("lamp", prims, small=small, slots=2, meta={"glow": rng.random() < 0.4})


# --------------------------------------------------------------------------- pascal-style objects


def person(rng) -> Proto:
    h = rng.uniform(1.5, 1.9) if rng.random() < 0.8 else rng.uniform(1.0, 1.45)
    leg_len = 0.47 * h
    hip_x = 0.055 * h
    sh_y = leg_len + 0.33 * h
    tw, td = rng.uniform(0.11, 0.135) * h, rng.uniform(0.055, 0.075) * h
    prims: list[Prim] = []
    if rng.random() < 0.5:
        prims.append(box((0, (leg_len + sh_y) / 2, 0), (tw, (sh_y - leg_len) / 2 + 0.01 * h, td), "torso", 0))
    else:
        prims.append(
            cyl((0, (leg_len + sh_y) / 2, 0), tw, (sh_y - leg_len) / 2 + 0.01 * h, "torso", 0, rz=td)
        )
    # neck + head
    hy = sh_y + 0.09 * h
    prims.append(cyl((0, sh_y + 0.02 * h, 0), 0.025 * h, 0.03 * h, "head", 2))
    tilt = rot_x(rng.uniform(-0.3, 0.3)) @ rot_z(rng.uniform(-0.2, 0.2))
    prims.append(ell((0, hy, 0.005 * h), (0.055 * h, 0.068 * h, 0.062 * h), "head", 2, R=tilt))
    if rng.random() < 0.3:  # hat / hair cap
        prims.append(
            ell((0, hy + 0.025 * h, -0.005 * h), (0.058 * h, 0.05 * h, 0.064 * h), "head", 3, R=tilt)
        )
    # legs: walking / standing stance
    stride = rng.uniform(0.0, 0.18) * h
    lr = rng.uniform(0.035, 0.045) * h
    for sx, ph in ((-1, 1), (1, -1)):
        hip = np.array([sx * hip_x, leg_len, 0.0])
        foot = np.array([sx * hip_x * rng.uniform(1.0, 1.8), 0.0, ph * stride / 2])
        if rng.random() < 0.5:  # bent knee
            knee = (hip + foot) / 2 + np.array([0, 0, rng.uniform(0.0, 0.06) * h])
            prims.append(cyl_between(hip, knee, lr, "leg", 1))
            prims.append(cyl_between(knee, foot, lr * 0.9, "leg", 1))
        else:
            prims.append(cyl_between(hip, foot, lr, "leg", 1))
    # arms: two segments each, random pose
    ar = rng.uniform(0.024, 0.032) * h
    up, lo = 0.19 * h, 0.18 * h
    for sx in (-1, 1):
        shoulder = np.array([sx * (tw + ar), sh_y - 0.03 * h, 0.0])
        if rng.random() < 0.15:  # raised arm
            swing, abduct = rng.uniform(-0.5, 0.5), rng.uniform(1.8, 2.8)
        else:
            swing, abduct = rng.uniform(-0.7, 0.7), rng.uniform(0.05, 0.5)
        dir_up = rot_x(-swing) @ rot_z(sx * abduct) @ np.array([0.0, -1.0, 0.0])
        elbow = shoulder + up * dir_up
        bend = rng.uniform(0.0, 1.5)
        dir_lo = rot_x(-swing - bend) @ rot_z(sx * abduct) @ np.array([0.0, -1.0, 0.0])
        hand = elbow + lo * dir_lo
        prims.append(cyl_between(shoulder, elbow, ar, "arm", 0))
        prims.append(cyl_between(elbow, hand, ar * 0.85, "arm", 0))
        prims.append(ell(hand + dir_lo * 0.02 * h, (0.03 * h, 0.03 * h, 0.03 * h), "arm", 2))
    return Proto("person", prims, slots=4)


def animal(rng) -> Proto:
    H = rng.uniform(0.35, 1.5)  # shoulder height
    a = rng.uniform(0.55, 0.85) * H  # body half length (along z)
    b = rng.uniform(0.2, 0.3) * H  # body half width / height
    leg_len = rng.uniform(0.5, 0.65) * H
    by = leg_len + 0.6 * b
    prims = [ell((0, by, 0), (b, b * rng.uniform(0.9, 1.1), a), "torso", 0)]
    lr = rng.uniform(0.06, 0.1) * H
    for sz in (-1, 1):
        for sx in (-1, 1):
            top = np.array([sx * b * 0.55, by - 0.3 * b, sz * a * 0.6])
            foot = top * [1.1, 0, 1.0] + [0, 0, rng.uniform(-0.1, 0.1) * H]
            prims.append(cyl_between(top, foot, lr, "leg", 1 if rng.random() < 0.8 else 0))
    # neck and head at the front (+z)
    neck_a = np.array([0, by + 0.3 * b, a * 0.75])
    up = rng.uniform(0.3, 1.2)
    head_c = neck_a + np.array([0, np.sin(up), np.cos(up)]) * rng.uniform(0.35, 0.6) * H
    prims.append(cyl_between(neck_a, head_c, b * rng.uniform(0.35, 0.5), "torso", 0))
    pitch = rng.uniform(-0.6, 0.3)
    hs = rng.uniform(0.25, 0.35) * H
    R = rot_x(-pitch) @ rot_y(rng.uniform(-0.4, 0.4))
    prims.append(ell(head_c + R @ np.array([0, 0, hs * 0.5]), (hs * 0.6, hs * 0.6, hs), "head", 2, R=R))
    if rng.random() < 0.6:  # ears
        for sx in (-1, 1):
            prims.append(
                ell(
                    head_c + R @ np.array([sx * hs * 0.45, hs * 0.55, 0.0]),
                    (hs * 0.12, hs * 0.3, hs * 0.08),
                    "head",
                    2,
                    R=R,
                )
            )
    # tail
    tail_a = np.array([0, by + 0.3 * b, -a * 0.9])
    ang = rng.uniform(-1.2, 0.8)
    tail_dir = np.array([rng.uniform(-0.1, 0.1), np.sin(ang), -np.cos(ang)])
    tail_b = tail_a + tail_dir * rng.uniform(0.3, 0.8) * a
    prims.append(cyl_between(tail_a, tail_b, b * rng.uniform(0.08, 0.15), "tail", 1))
    return Proto("animal", prims, slots=3)


def car(rng) -> Proto:
    hz, hx = rng.uniform(1.8, 2.3), rng.uniform(0.8, 0.95)
    clear, body_h, wr = rng.uniform(0.15, 0.25), rng.uniform(0.55, 0.75), rng.uniform(0.3, 0.36)
    prims = [box((0, clear + body_h / 2, 0), (hx, body_h / 2, hz))]
    cab_l, cab_h = rng.uniform(0.45, 0.6) * hz, rng.uniform(0.4, 0.55)
    cz = -rng.uniform(0.0, 0.15) * hz
    cab_y = clear + body_h + cab_h / 2
    prims.append(box((0, cab_y, cz), (hx * 0.88, cab_h / 2, cab_l)))
    # window band, slightly proud of the cabin
    prims.append(box((0, cab_y + cab_h * 0.08, cz), (hx * 0.89, cab_h * 0.3, cab_l * 1.01), slot=1))
    Rw = frame_y(np.array([1.0, 0.0, 0.0]))
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (hx - 0.08), wr, sz * (hz - rng.uniform(0.6, 0.8)))
            prims.append(cyl(c, wr, 0.1, slot=2, R=Rw))
    return Proto("car", prims, slots=3)


def bottle(rng) -> Proto:
    r, hh = rng.uniform(0.03, 0.05), rng.uniform(0.07, 0.13)
    prims = [cyl((0, hh, 0), r, hh)]
    prims.append(ell((0, 2 * hh, 0), (r, r * 0.8, r)))
    nr = r * rng.uniform(0.3, 0.45)
    prims.append(cyl((0, 2 * hh + r * 0.6 + 0.035, 0), nr, 0.04, slot=1))
    return Proto("bottle", prims, small=True, slots=2)


def plant(rng) -> Proto:
    r, hh = rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.2)
    prims = [cyl((0, hh, 0), r, hh)]
    n = int(rng.integers(1, 5))
    for _ in range(n):
        k = rng.uniform(0.6, 1.6) * r
        s = k * np.array([rng.uniform(0.8, 1.2), rng.uniform(0.9, 1.6), rng.uniform(0.8, 1.2)])
        off = rng.uniform(-0.5, 0.5, size=3) * r
        prims.append(ell((off[0], 2 * hh + s[1] * 0.8 + abs(off[1]), off[2]), s, slot=1))
    return Proto("plant", prims, small=r < 0.14, slots=2)


BUILDERS = {
    "cabinet": cabinet,
    "box": boxy,
    "bed": bed,
    "chair": chair,
    "sofa": sofa,
    "table": table,
    "lamp": lamp,
    "person": person,
    "animal": animal,
    "car": car,
    "bottle": bottle,
    "plant": plant,
}
