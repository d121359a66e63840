"""Procedural solid textures, Lambert + Blinn-Phong lighting with cast shadows, sensor model.

Textures are *solid* (functions of the 3D hit point), so they need no UV mapping and stay
continuous across the faces of a primitive. Colours are drawn per material from one
distribution shared by every class, so colour alone does not identify a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOLID, CHECKER, STRIPES, NOISE, MARBLE, GRADIENT = range(6)
PATTERN_NAMES = ("solid", "checker", "stripes", "noise", "marble", "gradient")
PATTERN_P = np.array([0.22, 0.16, 0.16, 0.16, 0.14, 0.16])
LATTICE = 16  # value-noise lattice size (periodic)


@dataclass
class Material:
    pattern: int
    c1: np.ndarray  # linear RGB in [0, 1]
    c2: np.ndarray
    scale: float  # pattern period in metres
    rot: np.ndarray  # 3x3 texture-space rotation
    origin: np.ndarray  # texture-space origin (random phase)
    sharp: float  # stripe sharpness
    grain: float  # multiplicative fine-noise amplitude
    grain_scale: float
    ks: float  # specular strength
    shininess: float
    unlit: bool = False  # emissive (sky backdrop, glowing lamp shades)
    gain: float = 1.0


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A linear-RGB albedo: uniform hue, broad saturation and value (greys included)."""
    s = rng.uniform(0.0, 1.0) ** 0.8
    v = rng.uniform(0.12, 1.0)
    return hsv_to_rgb(rng.random(), s, v) ** 2.2


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation from a normalised Gaussian quaternion."""
    w, x, y, z = rng.normal(size=4) / 1.0
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def random_material(rng: np.random.Generator, size: float, pattern: int | None = None) -> Material:
    """``size`` (metres) sets the range of pattern periods (a fraction to ~1x of the object size)."""
    pat = int(rng.choice(6, p=PATTERN_P)) if pattern is None else pattern
    c1 = random_colour(rng)
    if rng.random() < 0.5:
        c2 = random_colour(rng)
    else:  # same hue family, different lightness
        c2 = np.clip(c1 * rng.uniform(0.15, 0.7), 0, 1) if rng.random() < 0.5 else np.clip(c1**0.5, 0, 1)
    scale = size * float(np.exp(rng.uniform(np.log(0.08), np.log(0.8))))
    spec = rng.random() < 0.4
    return Material(
        pattern=pat,
        c1=c1,
        c2=c2,
        scale=scale,
        rot=random_rotation(rng),
        origin=rng.uniform(-10, 10, size=3),
        sharp=float(np.exp(rng.uniform(0, np.log(12)))),
        grain=float(rng.uniform(0.05, 0.35)) if rng.random() < 0.3 else 0.0,
        grain_scale=float(np.exp(rng.uniform(np.log(0.01), np.log(0.08)))),
        ks=float(rng.uniform(0.05, 0.35)) if spec else 0.0,
        shininess=float(rng.uniform(8, 80)),
    )


def noise_table(lattice: np.ndarray) -> np.ndarray:
    """(LATTICE^3, 8) corner values of every lattice cell, corner c = 4 dx + 2 dy + dz."""
    n = LATTICE
    cols = [
        np.roll(lattice, (-dx, -dy, -dz), axis=(0, 1, 2)).reshape(-1)
        for dx in (0, 1)
        for dy in (0, 1)
        for dz in (0, 1)
    ]
    return np.ascontiguousarray(np.stack(cols, axis=1), dtype=np.float32).reshape(n**3, 8)


def value_noise(q: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Trilinear value noise in [0, 1] at points q (3, M) (lattice units, periodic).

    ``table`` comes from :func:`noise_table`: one gather of a cell's 8 corners per point.
    """
    fl = np.floor(q)
    f = (q - fl).astype(np.float32)
    f = f * f * (3.0 - 2.0 * f)
    i = fl.astype(np.int64) & (LATTICE - 1)
    c = table[(i[0] * LATTICE + i[1]) * LATTICE + i[2]]  # (M, 8)
    cz = c[:, 0::2] + (c[:, 1::2] - c[:, 0::2]) * f[2][:, None]  # (M, 4): (dx, dy)
    cy = cz[:, 0::2] + (cz[:, 1::2] - cz[:, 0::2]) * f[1][:, None]  # (M, 2): dx
    return cy[:, 0] + (cy[:, 1] - cy[:, 0]) * f[0]


def fbm(q: np.ndarray, table: np.ndarray, octaves: int = 2) -> np.ndarray:
    out, amp, tot = 0.0, 1.0, 0.0
    for o in range(octaves):
        out = out + amp * value_noise(q * (2.0**o) + 3.7 * o, table)
        tot += amp
        amp *= 0.5
    return out / tot


def albedo(m: Material, p: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Albedo (M, 3) of material m at world points p (3, M)."""
    q = (m.rot.astype(np.float32) @ (p - m.origin[:, None].astype(np.float32))) / np.float32(m.scale)
    if m.pattern == SOLID:
        v = np.zeros(p.shape[1], dtype=np.float32)
    elif m.pattern == CHECKER:
        v = ((np.floor(q).astype(np.int64).sum(axis=0)) & 1).astype(np.float32)
    elif m.pattern == STRIPES:
        v = np.clip((np.sin(2 * np.pi * q[0]) * 0.5) * m.sharp + 0.5, 0, 1)
    elif m.pattern == NOISE:
        v = np.clip((fbm(q * 2.0, table, 2) - 0.5) * 2.5 + 0.5, 0, 1)
    elif m.pattern == MARBLE:
        v = 0.5 + 0.5 * np.sin(2 * np.pi * q[0] + 6.0 * fbm(q, table, 2))
    else:  # GRADIENT along the rotated x axis, one period = scale
        v = np.clip(0.5 + q[0] * 0.5, 0, 1)
    v = v.astype(np.float32)
    col = m.c1[None, :].astype(np.float32) + v[:, None] * (m.c2 - m.c1)[None, :].astype(np.float32)
    if m.grain > 0:
        g = fbm(p / np.float32(m.grain_scale) + m.origin[:, None].astype(np.float32), table, 1)
        col = col * (1.0 + m.grain * (2.0 * g[:, None] - 1.0))
    return np.clip(col, 0, 1)


@dataclass
class Light:
    direction: np.ndarray  # unit, from the surface towards the light (world)
    colour: np.ndarray  # linear RGB intensity


def shade(
    materials: list[Material],
    mat_of_pixel: np.ndarray,
    P: np.ndarray,
    N: np.ndarray,
    V: np.ndarray,
    lights: list[Light],
    ambient: np.ndarray,
    shadowed: list[np.ndarray],
    table: np.ndarray,
) -> np.ndarray:
    """Linear radiance (M, 3).

    P hit points (3, M), N unit normals facing the viewer (3, M), V unit directions towards the
    camera (3, M), ``shadowed[i]`` boolean (M,) for light i, ``mat_of_pixel`` (M,) material index.
    """
    m = P.shape[1]
    alb = np.empty((m, 3), dtype=np.float32)
    ks = np.zeros(m, dtype=np.float32)
    shin = np.ones(m, dtype=np.float32)
    emissive = np.zeros(m, dtype=bool)
    gain = np.ones(m, dtype=np.float32)
    for mi in np.flatnonzero(np.bincount(mat_of_pixel, minlength=len(materials))):
        idx = np.flatnonzero(mat_of_pixel == mi)
        mat = materials[int(mi)]
        alb[idx] = albedo(mat, P[:, idx], table)
        if mat.ks > 0:
            ks[idx] = mat.ks
            shin[idx] = mat.shininess
        if mat.unlit:
            emissive[idx] = True
            gain[idx] = mat.gain
    diffuse = np.empty((m, 3), dtype=np.float32)
    diffuse[:] = ambient.astype(np.float32)
    spec_px = np.flatnonzero(ks > 0)
    spec = np.zeros((spec_px.size, 3), dtype=np.float32)
    Ns, Vs = N[:, spec_px], V[:, spec_px]
    for light, sh in zip(lights, shadowed):
        L = light.direction.astype(np.float32)
        col = light.colour.astype(np.float32)
        ndl = np.maximum(L @ N, 0.0)
        ndl[sh] = 0.0
        diffuse += ndl[:, None] * col[None, :]
        if spec_px.size:
            Hv = Vs + L[:, None]
            Hv /= np.sqrt((Hv * Hv).sum(axis=0)) + 1e-8
            ndh = np.maximum((Hv * Ns).sum(axis=0), 0.0)
            s = ks[spec_px] * ndh ** shin[spec_px] * (ndl[spec_px] > 0)
            spec += s[:, None] * col[None, :]
    rad = alb * diffuse
    if spec_px.size:
        rad[spec_px] += spec
    if emissive.any():
        rad[emissive] = alb[emissive] * gain[emissive, None]
    return rad


def sensor(
    radiance: np.ndarray, rng: np.random.Generator, key: float, gamma: float, sigma: float, wb: np.ndarray
) -> np.ndarray:
    """Auto-exposure, white balance, gamma, Gaussian read noise -> uint8 (..., 3)."""
    lum = radiance @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    flat = lum.reshape(-1)
    kth = min(flat.size - 1, int(0.97 * flat.size))
    ref = float(np.partition(flat, kth)[kth]) + 1e-6
    img = radiance * np.float32(key / ref) * wb.astype(np.float32)
    img = np.clip(img, 0.0, 1.0) ** np.float32(1.0 / gamma)
    img = img + np.float32(sigma) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
