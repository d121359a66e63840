"""Vectorised ray casting against the synth scene model (numpy only, no per-pixel Python loops).

Every object primitive is a *canonical* shape seen through an affine local frame::

    p_local = R^T (p_world - center) / scale

``box``       the cube [-1, 1]^3                   (scale = half extents)
``ellipsoid`` the unit sphere                      (scale = semi-axes)
``cylinder``  x^2 + z^2 <= 1, |y| <= 1 (capped)     (scale = (radius_x, half height, radius_z))

Because the map is affine, a ray ``o + t d`` keeps its parameter ``t`` in the local frame, so
intersections are computed on canonical shapes and the resulting ``t`` is used unchanged. Primary
rays are built with a camera-frame z component of exactly -1, which makes ``t`` the z-depth
(distance along the optical axis) of the hit point.

The room is an axis-aligned box seen from the inside: the hit is the ray's exit through the six
face planes. Surfaces are numbered ``0..5`` for the room faces (``2*axis + (0 low | 1 high)``)
and ``6 + k`` for object primitive ``k``.
"""

from __future__ import annotations

import numpy as np

KIND_BOX, KIND_ELLIPSOID, KIND_CYLINDER = 0, 1, 2
KINDS = {"box": KIND_BOX, "ellipsoid": KIND_ELLIPSOID, "cylinder": KIND_CYLINDER}
ROOM_FACES = 6
T_EPS = 1e-4  # smallest accepted ray parameter
INF = np.float32(np.inf)


def intrinsics(fov: float, pp_offset: tuple[float, float], size: tuple[int, int]) -> tuple[float, ...]:
    """(fx, fy, cx, cy) in pixels; ``fov`` (radians) spans the larger image side, square pixels.

    Pixel (row v, col u) has its centre at (u + 0.5, v + 0.5) in these coordinates.
    """
    h, w = size
    f = 0.5 * max(h, w) / np.tan(0.5 * fov)
    return f, f, 0.5 * w + pp_offset[0] * w, 0.5 * h + pp_offset[1] * h


def camera_rays(K: tuple[float, ...], R: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """World-frame ray directions (3, H, W) float32 whose camera-frame z component is -1.

    Camera frame: x right, y up, z towards the viewer (the camera looks along -z). ``R`` maps
    camera to world (its columns are the camera axes in world coordinates).
    """
    fx, fy, cx, cy = K
    h, w = size
    x = (np.arange(w, dtype=np.float64) + 0.5 - cx) / fx
    y = -(np.arange(h, dtype=np.float64) + 0.5 - cy) / fy
    d_cam = np.empty((3, h, w))
    d_cam[0] = x[None, :]
    d_cam[1] = y[:, None]
    d_cam[2] = -1.0
    return np.einsum("ij,jhw->ihw", R, d_cam).astype(np.float32)


# --------------------------------------------------------------------------- canonical shapes
# o, d: (3, M) or (3, 1) in canonical coordinates; return t (M,) float32, +inf on a miss.


def hit_box(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0 = (-1.0 - o) * inv
        t1 = (1.0 - o) * inv
    tn = np.minimum(t0, t1).max(axis=0)
    tf = np.maximum(t0, t1).min(axis=0)
    ok = (tn <= tf) & (tn > T_EPS)
    return np.where(ok, tn, INF).astype(np.float32, copy=False)


def hit_ellipsoid(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    # Numerically stable form (no b^2 - ac cancellation for distant, small shapes): find the
    # point of the ray closest to the centre, then step back by the half chord.
    dn = np.sqrt((d * d).sum(axis=0))
    dh = d / dn
    tc = -(o * dh).sum(axis=0)
    q = o + tc * dh
    h2 = 1.0 - (q * q).sum(axis=0)
    with np.errstate(invalid="ignore"):
        t = (tc - np.sqrt(h2)) / dn
    ok = (h2 >= 0) & (t > T_EPS)
    return np.where(ok, t, INF).astype(np.float32, copy=False)


def hit_cylinder(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    ox, oy, oz = o[0], o[1], o[2]
    dx, dy, dz = d[0], d[1], d[2]
    # side (stable closest-approach form in the xz plane)
    dn = np.sqrt(dx * dx + dz * dz)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux, uz = dx / dn, dz / dn
        tc = -(ox * ux + oz * uz)
        qx, qz = ox + tc * ux, oz + tc * uz
        h2 = 1.0 - (qx * qx + qz * qz)
        ts = (tc - np.sqrt(h2)) / dn
        ys = oy + ts * dy
        side = (h2 >= 0) & (ts > T_EPS) & (np.abs(ys) <= 1.0)
        # near cap: entering through y = -1 when going up, y = +1 when going down
        tcap = (-np.sign(dy) - oy) / dy
        cx, cz = ox + tcap * dx, oz + tcap * dz
        cap = (cx * cx + cz * cz <= 1.0) & (tcap > T_EPS)
    return np.minimum(np.where(side, ts, INF), np.where(cap, tcap, INF)).astype(np.float32, copy=False)


HIT = {KIND_BOX: hit_box, KIND_ELLIPSOID: hit_ellipsoid, KIND_CYLINDER: hit_cylinder}


def canonical_normals(kind: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Outward normals (3, M) of the canonical shapes at canonical surface points ``q`` (3, M)."""
    n = np.zeros_like(q)
    m = kind == KIND_ELLIPSOID
    n[:, m] = q[:, m]
    m = kind == KIND_BOX
    if m.any():
        qb = q[:, m]
        ax = np.abs(qb).argmax(axis=0)
        nb = np.zeros_like(qb)
        cols = np.arange(qb.shape[1])
        nb[ax, cols] = np.sign(qb[ax, cols])
        n[:, m] = nb
    m = kind == KIND_CYLINDER
    if m.any():
        qc = q[:, m]
        rxz = np.sqrt(qc[0] ** 2 + qc[2] ** 2)
        on_cap = np.abs(qc[1]) >= rxz
        nc = np.zeros_like(qc)
        nc[1] = np.where(on_cap, np.sign(qc[1]), 0.0)
        nc[0] = np.where(on_cap, 0.0, qc[0])
        nc[2] = np.where(on_cap, 0.0, qc[2])
        n[:, m] = nc
    return n


# --------------------------------------------------------------------------- packed primitives


class Packed:
    """Struct-of-arrays view of the scene's object primitives (float32)."""

    def __init__(self, prims: list) -> None:
        k = len(prims)
        self.n = k
        self.kind = np.array([p.kind_id for p in prims], dtype=np.int8)
        self.center = np.array([p.center for p in prims], dtype=np.float32).reshape(k, 3)
        self.R = np.array([p.R for p in prims], dtype=np.float32).reshape(k, 3, 3)
        self.Rt = np.ascontiguousarray(self.R.transpose(0, 2, 1))
        self.scale = np.array([p.scale for p in prims], dtype=np.float32).reshape(k, 3)
        self.inv_scale = (1.0 / self.scale).astype(np.float32)


def screen_rects(
    pk: Packed, K: tuple[float, ...], cam_R: np.ndarray, cam_pos: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Conservative pixel rectangles (k, 4) = (r0, r1, c0, c1) covering each primitive.

    Every canonical shape lies inside [-1, 1]^3, so the 8 corners of its oriented box bound it;
    when all corners are in front of the camera the rectangle is the bbox of their projections
    (plus a margin), otherwise the whole image is tested.
    """
    h, w = size
    fx, fy, cx, cy = K
    rects = np.zeros((pk.n, 4), dtype=np.int64)
    if pk.n == 0:
        return rects
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    R = pk.R.astype(np.float64)
    corners = pk.center.astype(np.float64)[:, None, :] + np.einsum(
        "kij,kcj->kci", R, signs[None, :, :] * pk.scale.astype(np.float64)[:, None, :]
    )
    cc = (corners - cam_pos) @ cam_R  # camera frame (k, 8, 3)
    zz = -cc[..., 2]
    front = zz.min(axis=1) > 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cx + fx * cc[..., 0] / zz
        v = cy - fy * cc[..., 1] / zz
    big = 4.0 * (h + w)
    c0 = np.floor(np.clip(u.min(1), -big, big) - 0.5) - 1
    c1 = np.ceil(np.clip(u.max(1), -big, big) - 0.5) + 2
    r0 = np.floor(np.clip(v.min(1), -big, big) - 0.5) - 1
    r1 = np.ceil(np.clip(v.max(1), -big, big) - 0.5) + 2
    rects[:, 0] = np.clip(np.where(front, r0, 0), 0, h)
    rects[:, 1] = np.clip(np.where(front, r1, h), 0, h)
    rects[:, 2] = np.clip(np.where(front, c0, 0), 0, w)
    rects[:, 3] = np.clip(np.where(front, c1, w), 0, w)
    rects[zz.max(axis=1) <= 0] = 0  # entirely behind the camera
    return rects


def cast_room(lo: np.ndarray, hi: np.ndarray, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exit of rays (origin o inside the box [lo, hi]) through the room: (t, face) over d's shape."""
    ts = []
    for a in range(3):
        with np.errstate(divide="ignore"):
            plane = np.where(d[a] > 0, hi[a], lo[a]).astype(np.float32)
            ts.append((plane - np.float32(o[a])) / d[a])
    ts = np.stack(ts)
    ts = np.where(np.isfinite(ts) & (ts > 0), ts, INF)
    axis = ts.argmin(axis=0)
    t = np.take_along_axis(ts, axis[None], 0)[0]
    face = (2 * axis + (np.take_along_axis(d, axis[None], 0)[0] > 0)).astype(np.int16)
    return t.astype(np.float32), face


def cast_primary(
    pk: Packed, rects: np.ndarray, o: np.ndarray, dirs: np.ndarray, t: np.ndarray, sid: np.ndarray
) -> None:
    """Z-buffer every primitive into ``t`` (H, W) / ``sid`` (H, W) in place (surface ids 6+k)."""
    for k in range(pk.n):
        r0, r1, c0, c1 = rects[k]
        if r0 >= r1 or c0 >= c1:
            continue
        d = dirs[:, r0:r1, c0:c1].reshape(3, -1)
        ol = (pk.Rt[k] @ (o - pk.center[k]).astype(np.float32)) * pk.inv_scale[k]
        dl = (pk.Rt[k] @ d) * pk.inv_scale[k][:, None]
        tk = HIT[int(pk.kind[k])](ol[:, None], dl).reshape(r1 - r0, c1 - c0)
        tz = t[r0:r1, c0:c1]
        closer = tk < tz
        if closer.any():
            tz[closer] = tk[closer]
            sid[r0:r1, c0:c1][closer] = ROOM_FACES + k


def light_frame(L: np.ndarray) -> np.ndarray:
    """Rows e1, e2, L: an orthonormal frame whose third axis is the light direction."""
    a = np.array([1.0, 0.0, 0.0]) if abs(L[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    L = np.asarray(L, dtype=np.float64)
    e1 = np.array([L[1] * a[2] - L[2] * a[1], L[2] * a[0] - L[0] * a[2], L[0] * a[1] - L[1] * a[0]])
    e1 /= np.sqrt(e1 @ e1)
    e2 = np.array([L[1] * e1[2] - L[2] * e1[1], L[2] * e1[0] - L[0] * e1[2], L[0] * e1[1] - L[1] * e1[0]])
    return np.stack([e1, e2, L]).astype(np.float32)


def shadow_mask(pk: Packed, P: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Boolean (M,): the ray P + t L (P: (3, M) world points, L unit) hits any primitive.

    Culling happens in a light-aligned frame (e1, e2, L): points sorted by their e1 coordinate
    give each primitive a contiguous slice, which is then narrowed by the e2 coordinate and by
    "not above the primitive" before the exact intersection; points already in shadow are skipped.
    """
    m = P.shape[1]
    out = np.zeros(m, dtype=bool)
    if pk.n == 0 or m == 0:
        return out
    L = np.asarray(L, dtype=np.float32)
    E = light_frame(L)
    pu, pv, pw = E @ P
    order = np.argsort(pu, kind="stable")
    pu_s = pu[order]
    cu, cv, cw = E @ pk.center.T
    # half extents of each primitive's oriented box along the light frame axes (k, 3)
    ext = (np.abs(np.einsum("ai,kij->kaj", E, pk.R)) * pk.scale[:, None, :]).sum(axis=2) * 1.0001 + 1e-4
    ru, rv, rw = ext[:, 0], ext[:, 1], ext[:, 2]
    lo = np.searchsorted(pu_s, cu - ru, "left")
    hi = np.searchsorted(pu_s, cu + ru, "right")
    dl_all = (pk.Rt @ L) * pk.inv_scale  # light direction in each canonical frame (k, 3)
    for k in range(pk.n):
        if lo[k] >= hi[k]:
            continue
        cand = order[lo[k] : hi[k]]
        sel = cand[(np.abs(pv[cand] - cv[k]) < rv[k]) & (pw[cand] < cw[k] + rw[k]) & ~out[cand]]
        if sel.size == 0:
            continue
        ol = (pk.Rt[k] @ (P[:, sel] - pk.center[k][:, None])) * pk.inv_scale[k][:, None]
        hit = HIT[int(pk.kind[k])](ol, dl_all[k][:, None]) < INF
        out[sel[hit]] = True
    return out
