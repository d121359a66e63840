"""Augmentations keep every task consistent with the image (and with each other)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemtl.data.transforms import (
    ColorJitter,
    Compose,
    PadToMultiple,
    RandomHorizontalFlip,
    RandomRotate,
    RandomScaleCrop,
    Resize,
    default_eval_transform,
    default_train_transform,
)

PALETTE = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def sample(h: int = 16, w: int = 20) -> dict:
    """A sample whose image colour encodes its semseg class (blocks of 4x5 px, 4 classes)."""
    g = torch.Generator().manual_seed(0)
    seg = torch.randint(0, 4, (h // 4, w // 5), generator=g).repeat_interleave(4, 0).repeat_interleave(5, 1)
    seg[0, 0] = 255
    image = PALETTE[seg.clamp(max=3)].permute(2, 0, 1).contiguous()
    normals = torch.nn.functional.normalize(torch.randn(3, h, w, generator=g), dim=0)
    normals[:, 1, 1] = 0  # an invalid pixel
    depth = torch.rand(1, h, w, generator=g) * 5 + 0.5
    depth[0, 2, 2] = 0
    return {
        "id": "x",
        "image": image,
        "semseg": seg,
        "parts": torch.where(seg == 255, 255, (seg == 1).long()),
        "edges": (seg[None] == 2).float(),
        "saliency": (seg[None] == 3).float(),
        "depth": depth,
        "normals": normals,
    }


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_flip_twice_is_identity_and_flip_negates_normal_x():
    s = sample()
    f = RandomHorizontalFlip(p=1.0)
    once = f(s, rng())
    twice = f(once, rng())
    for k in ("image", "semseg", "parts", "edges", "saliency", "depth", "normals"):
        assert torch.equal(twice[k], s[k]), k
    assert torch.equal(once["semseg"], s["semseg"].flip(-1))
    assert torch.equal(once["depth"], s["depth"].flip(-1))
    assert torch.equal(once["normals"][0], -s["normals"][0].flip(-1))
    assert torch.equal(once["normals"][1:], s["normals"][1:].flip(-1))
    assert once["id"] == "x"
    assert torch.equal(RandomHorizontalFlip(p=0.0)(s, rng())["image"], s["image"])


def test_rotate_90_moves_pixels_and_normals_consistently():
    n = 9
    s = {
        "image": torch.zeros(3, n, n),
        "semseg": torch.zeros(n, n, dtype=torch.long),
        "normals": torch.zeros(3, n, n),
    }
    s["semseg"][4, 7] = 1  # a marked pixel right of the centre (row 4, col 7)
    s["normals"][0] = 1.0  # every surface faces right: n = (1, 0, 0)
    out = RandomRotate(degrees=(90, 90))(s, rng())
    # A counter-clockwise quarter turn on screen moves "right of centre" to "above centre":
    # (row 4, col 7) -> (row 1, col 4); this is exactly np.rot90(k=1).
    assert out["semseg"][1, 4] == 1 and out["semseg"].sum() == 1
    assert torch.equal(out["semseg"], torch.rot90(s["semseg"], 1, (0, 1)))
    # The surfaces turned with the picture, so a normal that faced right now faces up on screen.
    # With y up: (1, 0) rotated counter-clockwise by 90 deg = (cos 90, sin 90) = (0, +1).
    assert torch.allclose(out["normals"][:, 4, 4], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    # Clockwise turn: right-facing surfaces now face down, y = -1.
    out = RandomRotate(degrees=(-90, -90))(s, rng())
    assert torch.allclose(out["normals"][:, 4, 4], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)


def test_rotate_pads_with_ignore_values():
    out = RandomRotate(degrees=(45, 45))(sample(), rng())
    assert out["semseg"][0, 0] == 255 and out["edges"][0, 0, 0] == 255
    assert out["depth"][0, 0, 0] == 0 and torch.all(out["normals"][:, 0, 0] == 0)
    assert torch.all(out["image"][:, 0, 0] == 0)
    norm = out["normals"].norm(dim=0)
    assert torch.all((norm - 1).abs()[norm > 0] < 1e-5)  # still unit or invalid


@pytest.mark.parametrize("t", [ColorJitter(0.4, 0.4, 0.4, 0.1), ColorJitter(hue=0.5)])
def test_photometric_leaves_labels_bit_identical(t):
    s = sample()
    out = t(s, rng(3))
    assert not torch.equal(out["image"], s["image"])
    assert 0 <= out["image"].min() and out["image"].max() <= 1
    for k in ("semseg", "parts", "edges", "saliency", "depth", "normals"):
        assert torch.equal(out[k], s[k]), k


@pytest.mark.parametrize("seed", range(6))
def test_scale_crop_keeps_ids_alignment_and_metric_depth(seed):
    s = sample()
    out = RandomScaleCrop(scales=(0.5, 1.5), size=(12, 14))(s, rng(seed))
    for k, shape in (
        ("image", (3, 12, 14)),
        ("semseg", (12, 14)),
        ("depth", (1, 12, 14)),
        ("normals", (3, 12, 14)),
    ):
        assert out[k].shape == shape
    assert set(out["semseg"].unique().tolist()) <= {0, 1, 2, 3, 255}  # no interpolated ids
    assert set(out["edges"].unique().tolist()) <= {0.0, 1.0, 255.0}
    # Depth is resampled, never rescaled in value: every value is an original one (or 0 padding).
    assert set(out["depth"].unique().tolist()) <= set(s["depth"].unique().tolist()) | {0.0}
    # Alignment: where a pixel and its 8 neighbours share a class, the colour is that class's.
    seg = out["semseg"]
    for y in range(1, 11):
        for x in range(1, 13):
            c = int(seg[y, x])
            if c < 4 and torch.all(seg[y - 1 : y + 2, x - 1 : x + 2] == c):
                assert torch.allclose(out["image"][:, y, x], PALETTE[c], atol=1e-4), (y, x)
    assert torch.equal(out["parts"], torch.where(seg == 255, 255, (seg == 1).long()))


def test_scale_crop_pads_when_zoomed_out():
    out = RandomScaleCrop(scales=(0.5, 0.5), size=(16, 20))(sample(), rng())
    assert (out["semseg"] == 255).float().mean() >= 0.7  # 8x10 content in a 16x20 canvas
    assert (out["depth"] == 0).float().mean() >= 0.7


def test_resize_pad_and_defaults():
    s = sample()
    out = Resize((8, 10))(s)
    assert out["semseg"].shape == (8, 10) and out["normals"].shape == (3, 8, 10)
    assert set(out["semseg"].unique().tolist()) <= {0, 1, 2, 3, 255}
    p = PadToMultiple(32)(s)
    assert p["image"].shape == (3, 32, 32) and torch.equal(p["semseg"][:16, :20], s["semseg"])
    assert torch.all(p["semseg"][16:] == 255) and torch.all(p["depth"][:, :, 20:] == 0)
    t = default_train_transform((12, 12), degrees=10, color_jitter=(0.2, 0.2, 0.2, 0.02))
    a, b = t(s, rng(5)), t(s, rng(5))
    assert all(torch.equal(a[k], b[k]) for k in a if k != "id")  # same generator state -> same output
    assert a["image"].shape == (3, 12, 12)
    assert torch.equal(default_eval_transform(None)(s)["image"], s["image"])
    assert default_eval_transform((8, 8))(s)["depth"].shape == (1, 8, 8)
    assert isinstance(t, Compose)


def test_unknown_key_is_rejected():
    with pytest.raises(ValueError, match="albedo"):
        Resize((4, 4))({"image": torch.zeros(3, 8, 8), "albedo": torch.zeros(3, 8, 8)})


@pytest.mark.parametrize("angle", [-20.0, 20.0])
def test_rotation_keeps_a_rendered_floor_facing_up(angle):
    """Normals are x right, y up: a floor faces +y, and a small turn of the picture keeps it so."""
    from edgemtl.data.synth import preset_meta, render_scene

    scene = render_scene(4, (64, 64), "nyud")
    floor = preset_meta("nyud")["classes"]["semseg"].index("floor")
    s = {
        "image": torch.from_numpy(scene["image"]).permute(2, 0, 1).float() / 255,
        "semseg": torch.from_numpy(scene["semseg"]).long(),
        "normals": torch.from_numpy(scene["normals"]).permute(2, 0, 1).contiguous(),
    }
    before = s["normals"][:, s["semseg"] == floor]
    assert before.shape[1] > 50 and torch.all(before[1] > 0.9)
    out = RandomRotate(degrees=(angle, angle))(s, rng())
    after = out["normals"][:, out["semseg"] == floor]
    assert after.shape[1] > 50 and torch.all(after[1] > 0.5), "the floor turned upside down"
    # and it leans the way the picture turned: counter-clockwise (angle > 0) tilts it towards -x
    a = np.radians(angle)
    want_x = np.cos(a) * before[0].mean() - np.sin(a) * before[1].mean()
    assert abs(float(after[0].mean()) - float(want_x)) < 0.05 and np.sign(want_x) == -np.sign(angle)


def test_scale_crop_at_scale_one_is_the_deployed_view():
    """Training sees images at the scale the artifact feeds them: the whole image resized to the model's
    input size (here a 24x40 image for a 16x16 model: stretched, as deployed), whatever its own size."""
    s = sample(24, 40)
    for k in ("image", "semseg", "depth", "normals"):
        got = RandomScaleCrop(scales=(1.0, 1.0), size=(16, 16))(s, rng(1))[k]
        assert torch.equal(got, Resize((16, 16))(s)[k]), k
    # A crop smaller than the input size is cut out of that same view.
    crop = RandomScaleCrop(scales=(1.0, 1.0), size=(8, 8), base=(16, 16))(s, rng(2))["image"]
    full = Resize((16, 16))(s)["image"]
    assert any(torch.equal(crop, full[:, y : y + 8, x : x + 8]) for y in range(9) for x in range(9))
    # base=None keeps the aspect ratio and covers the crop (scale relative to the crop size).
    cover = RandomScaleCrop(scales=(1.0, 1.0), size=(16, 16), base=None)(s, rng(1))["image"]
    assert cover.shape == (3, 16, 16) and not torch.equal(cover, full)
    # The default train transform scales around the model's input size too.
    t = default_train_transform((16, 16), scales=(1.0, 1.0))
    flipped_or_not = t(s, rng(3))["image"]
    assert torch.equal(flipped_or_not, full) or torch.equal(flipped_or_not, full.flip(-1))
