"""NYUD_MT / PASCAL_MT converters on tiny fixture trees, read back through MultiTaskDataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from edgemtl.data.dataset import MultiTaskDataset
from edgemtl.data.nyud import convert_nyud
from edgemtl.data.pascal import convert_pascal, edges_from_labelmap
from edgemtl.data.validate import validate_dataset
from edgemtl.errors import EdgeMTLError

H, W = 16, 20


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((H, W, 3), 90, np.uint8))


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), arr)


def _palette_png(path: Path, arr: np.ndarray) -> None:
    """A palette ("P") PNG, as VOC-style masks are stored: the pixels are indices into a colour table."""
    from PIL import Image

    from edgemtl.artifact.decoding import palette

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr, mode="P")
    img.putpalette(palette(256).reshape(-1).tolist())
    img.save(path)
    assert Image.open(path).mode == "P"


def _split(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(ids) + "\n")


def _encode_normals(n: np.ndarray) -> np.ndarray:
    """(n+1)/2*255 as an RGB image, returned BGR for cv2.imwrite."""
    return np.round((n + 1) / 2 * 255).astype(np.uint8)[..., ::-1]


# ---------------------------------------------------------------------------------------- NYUD


def make_nyud(tmp: Path, variant: str = "mtl") -> Path:
    root = tmp / "NYUD_MT"
    ids = ["000001", "000002", "000003"]
    seg = np.full((H, W), 1, np.uint8)
    seg[0] = 0  # unlabeled
    seg[:, -1] = 40
    depth = np.full((H, W), 2.5, np.float32)
    depth[1, 1], depth[2, 2] = 0.0, np.nan
    depth[3, 3] = 7.25
    normals = np.zeros((H, W, 3), np.float32)
    normals[:, : W // 2] = (1, 0, 0)  # facing right
    normals[:, W // 2 :] = (0, 1, 0)  # the release's frame is y-up (x right, z towards the camera): facing up
    normals[0] = 0  # invalid row
    edge = np.zeros((H, W), np.float32)
    edge[:, 5] = 1
    for sid in ids:
        _img(root / "images" / f"{sid}.jpg")
        if variant == "mtl":  # Multi-Task-Learning-PyTorch files
            _palette_png(root / "segmentation" / f"{sid}.png", seg)
            for d, arr in (("depth", depth), ("normals", normals), ("edge", edge)):
                (root / d).mkdir(exist_ok=True)
                np.save(root / d / f"{sid}.npy", arr)
        else:  # ASTMT files
            for d in ("segmentation", "depth"):
                (root / d).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "segmentation" / f"{sid}.mat", {"segmentation": seg})
            scipy.io.savemat(root / "depth" / f"{sid}.mat", {"depth": depth})
            _png(root / "normals" / f"{sid}.png", _encode_normals(normals))
            _png(root / "edge" / f"{sid}.png", (edge * 255).astype(np.uint8))
    _split(root / "gt_sets" / "train.txt", ids[:2])
    _split(root / "gt_sets" / "val.txt", ids[2:])
    return tmp


@pytest.mark.parametrize("variant", ["mtl", "astmt"])
def test_nyud_convert_and_load(tmp_path, variant):
    out = convert_nyud(make_nyud(tmp_path / "src", variant), tmp_path / "out")
    assert validate_dataset(out) == []
    ds = MultiTaskDataset(out, "train")
    assert ds.tasks == ["semseg", "depth", "normals", "edges"] and len(ds) == 2
    assert ds.num_classes("semseg") == 40 and ds.class_names("semseg")[0] == "wall"
    assert ds.meta["edge_max_dist"] == 0.011 and ds.meta["depth_range"] == [2.5, 7.25]
    it = MultiTaskDataset(out, "val")[0]
    assert it["id"] == "000003" and it["image"].shape == (3, H, W)
    seg = it["semseg"]
    assert seg[0, 3] == 255  # 0 (unlabeled) -> ignore
    assert seg[5, 3] == 0  # class 1 (wall) -> 0
    assert seg[5, W - 1] == 39  # class 40 -> 39
    d = it["depth"][0]
    assert d[5, 5] == 2.5 and d[1, 1] == 0 and d[2, 2] == 0  # NaN -> invalid
    n = it["normals"]
    assert torch.all(n[:, 0] == 0)  # invalid row stays invalid
    assert torch.allclose(n[:, 5, 2], torch.tensor([1.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(n[:, 5, W - 2], torch.tensor([0.0, 1.0, 0.0]), atol=0.01)  # y-up kept: floor y > 0
    norm = n.norm(dim=0)
    assert torch.allclose(norm[1:], torch.ones_like(norm[1:]), atol=1e-5)
    e = it["edges"][0]
    assert torch.all(e[:, 5] == 1) and e.sum() == H


def test_nyud_keep_unlabeled_and_errors(tmp_path):
    src = make_nyud(tmp_path / "src", "astmt")
    out = convert_nyud(src / "NYUD_MT", tmp_path / "out", keep_unlabeled_as_class=True, normals_y_down=True)
    it = MultiTaskDataset(out, "val")[0]
    assert it["semseg"][0, 3] == 0 and it["semseg"][5, 3] == 1 and it["semseg"][5, W - 1] == 40
    # normals_y_down=True is for a copy stored y-down: y is negated
    assert torch.allclose(it["normals"][:, 5, W - 2], torch.tensor([0.0, -1.0, 0.0]), atol=0.01)
    with pytest.raises(EdgeMTLError, match="is not empty"):
        convert_nyud(src, tmp_path / "out")
    (src / "NYUD_MT" / "depth" / "000003.mat").unlink()
    with pytest.raises(EdgeMTLError, match=r"depth/000003\.npy\|\.mat: missing depth label"):
        convert_nyud(src, tmp_path / "out2")
    (src / "NYUD_MT" / "gt_sets" / "val.txt").write_text("000009\n")
    with pytest.raises(EdgeMTLError, match=r"000009\.jpg: image listed in gt_sets not found"):
        convert_nyud(src, tmp_path / "out3")
    shutil.rmtree(src / "NYUD_MT" / "gt_sets")
    with pytest.raises(
        EdgeMTLError,
        match=r"(?s)NYUD_MT is not a NYUD_MT tree: missing folder\(s\) gt_sets"
        r"\. Expected layout:\n.*NYUD_MT/images/<id>\.jpg",
    ):
        convert_nyud(src, tmp_path / "out4")


# -------------------------------------------------------------------------------------- PASCAL


def _anno(path: Path) -> None:
    """A PASCAL-Part 'anno' struct: a person with head + left foot parts, and a partless dog."""
    part_dt = [("part_name", "O"), ("mask", "O")]
    obj_dt = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    head, foot, person, dog = (np.zeros((H, W), np.uint8) for _ in range(4))
    head[2:4, 2:4] = 1
    foot[10:12, 2:4] = 1
    person[2:12, 2:4] = 1
    dog[2:6, 12:16] = 1
    parts = np.empty((1, 2), dtype=part_dt)
    parts[0, 0] = ("head", head)
    parts[0, 1] = ("lfoot", foot)
    objs = np.empty((1, 2), dtype=obj_dt)
    objs[0, 0] = ("person", np.array([[15]]), person, parts)
    objs[0, 1] = ("dog", np.array([[12]]), dog, np.zeros((0, 0)))
    anno = np.empty((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = ("x", objs)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"anno": anno})


def make_pascal(tmp: Path) -> Path:
    root = tmp / "PASCAL_MT"
    ids = ["2008_000001", "2008_000002"]
    seg = np.zeros((H, W), np.uint8)
    seg[:, W // 2 :] = 15
    seg[:, W // 2] = 255
    sal = np.zeros((H, W), np.uint8)
    sal[:, :4] = 255
    sal[:, 4] = 200  # > 0.5 after /255 -> salient
    sal[:, 5] = 100  # < 0.5 -> not salient
    normals = np.zeros((H, W, 3), np.float32)
    normals[:, : W // 2] = (0, 1, 0)  # the release's frame is y-up: facing up
    normals[:, W // 2 :] = (1, 0, 0)
    label_map = np.full((H, W), 284, np.uint16)  # person: an NYUD-like class, normals kept
    label_map[:, 14:] = 2  # aeroplane: not an NYUD class, normals dropped
    for sid in ids:
        _img(root / "JPEGImages" / f"{sid}.jpg")
        _palette_png(root / "semseg" / "pascal-context" / f"{sid}.png", seg)  # VOC masks are palette PNGs
        _png(root / "sal_distill" / f"{sid}.png", sal)
        _png(root / "normals_distill" / f"{sid}.png", _encode_normals(normals))
        (root / "pascal-context" / "trainval").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "pascal-context" / "trainval" / f"{sid}.mat", {"LabelMap": label_map})
    _anno(root / "human_parts" / f"{ids[0]}.mat")  # the second image has no part file
    _split(root / "ImageSets" / "Context" / "train.txt", ids[:1])
    _split(root / "ImageSets" / "Context" / "val.txt", ids[1:])
    return tmp


def test_pascal_convert_and_load(tmp_path):
    out = convert_pascal(make_pascal(tmp_path / "src"), tmp_path / "out")
    assert validate_dataset(out) == []
    ds = MultiTaskDataset(out, "train")
    assert ds.tasks == ["semseg", "parts", "saliency", "normals", "edges"]
    assert ds.num_classes("semseg") == 21 and ds.num_classes("parts") == 7
    assert ds.meta["edge_max_dist"] == 0.0075
    it = ds[0]
    assert it["semseg"][3, 3] == 0 and it["semseg"][3, W - 1] == 15 and it["semseg"][3, W // 2] == 255
    p = it["parts"]
    assert p[2, 2] == 1 and p[10, 2] == 6  # head, lower leg (lfoot)
    assert p[6, 2] == 0 and p[3, 13] == 0  # unannotated person pixel / dog: background
    s = it["saliency"][0]
    assert s[0, 0] == 1 and s[0, 4] == 1 and s[0, 5] == 0 and s[0, 10] == 0  # 255 -> 1
    n = it["normals"]
    assert torch.allclose(n[:, 3, 3], torch.tensor([0.0, 1.0, 0.0]), atol=0.01)  # up, y-up frame
    assert torch.allclose(n[:, 3, 12], torch.tensor([1.0, 0.0, 0.0]), atol=0.01)
    assert torch.all(n[:, :, 14:] == 0)  # non-NYUD class: invalid
    e = it["edges"][0]
    assert torch.equal(
        e,
        torch.from_numpy(
            edges_from_labelmap(np.where(np.arange(W) >= 14, 2, 284)[None].repeat(H, 0))
        ).float(),
    )
    # Laplacian marks both sides of the class change (cols 13, 14); thinning keeps one pixel per
    # row (skimage's thin may drop a line end at the image border, as in the reference loader).
    assert torch.all(e.sum(1) <= 1) and e.sum() >= H - 2 and e[:, 13:15].sum() == e.sum()
    val = MultiTaskDataset(out, "val")[0]
    assert torch.all(val["parts"] == 255)  # no part annotation -> ignore everywhere


def test_pascal_simplified_parts_and_errors(tmp_path):
    src = make_pascal(tmp_path / "src")
    parts = np.full((H, W), 3, np.uint8)
    _png(src / "PASCAL_MT" / "parts" / "2008_000002.png", parts)
    out = convert_pascal(src, tmp_path / "out")
    assert torch.all(MultiTaskDataset(out, "val")[0]["parts"] == 3)
    seg = np.full((H, W), 30, np.uint8)
    _png(src / "PASCAL_MT" / "semseg" / "pascal-context" / "2008_000002.png", seg)
    with pytest.raises(EdgeMTLError, match=r"2008_000002\.png: .*semseg_classes='context60'"):
        convert_pascal(src, tmp_path / "out2")
    out3 = convert_pascal(src, tmp_path / "out3", semseg_classes="context60")
    assert MultiTaskDataset(out3, "val").num_classes("semseg") == 60
    with pytest.raises(EdgeMTLError, match="unknown semseg class set 'voc'"):
        convert_pascal(src, tmp_path / "out4", semseg_classes="voc")
    (src / "PASCAL_MT" / "sal_distill" / "2008_000001.png").unlink()
    with pytest.raises(EdgeMTLError, match=r"sal_distill/2008_000001\.png: missing saliency"):
        convert_pascal(src, tmp_path / "out5")
    with pytest.raises(EdgeMTLError, match=r"missing folder\(s\) JPEGImages, ImageSets/Context"):
        convert_pascal(src / "PASCAL_MT" / "semseg", tmp_path / "out6")


def test_palette_pngs_are_read_as_class_indices(tmp_path):
    """OpenCV expands a palette PNG to its colours; the reference loaders (np.array(PIL.Image.open))
    read the indices, and so must the converters and the generic-layout reader."""
    src = make_pascal(tmp_path / "src")
    sal = np.zeros((H, W), np.uint8)
    sal[:, :7] = 1  # a palette saliency map: index 1 = salient (dark red in the VOC palette)
    for sid in ("2008_000001", "2008_000002"):
        _palette_png(src / "PASCAL_MT" / "sal_distill" / f"{sid}.png", sal)
    out = convert_pascal(src, tmp_path / "out")
    it = MultiTaskDataset(out, "train")[0]
    assert it["semseg"][3, W - 1] == 15 and it["semseg"][3, 3] == 0 and it["semseg"][3, W // 2] == 255
    assert torch.equal(it["saliency"][0], torch.from_numpy(sal).float()), "indices, not brightness"
    # A dataset in the generic layout whose semseg PNGs are palette images reads the same ids.
    seg = np.asarray(it["semseg"], dtype=np.uint8)
    _palette_png(out / "semseg" / "2008_000001.png", seg)
    assert torch.equal(MultiTaskDataset(out, "train")[0]["semseg"], it["semseg"])
    assert validate_dataset(out) == []
    # A JPEG stored under a .png name is not a label map (lossy values would be silent garbage).
    ok, jpg = cv2.imencode(".jpg", np.zeros((H, W), np.uint8))
    (out / "semseg" / "2008_000001.png").write_bytes(jpg.tobytes())
    with pytest.raises(
        EdgeMTLError, match=r"2008_000001\.png: unreadable or corrupt semseg PNG \(a JPEG file"
    ):
        MultiTaskDataset(out, "train")[0]
