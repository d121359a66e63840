"""MultiTaskDataset, load_meta, validate_dataset and edge derivation on tiny generic-layout trees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.data.dataset import MultiTaskDataset, load_meta
from edgemtl.data.derive import derive_edges_on_disk, edges_from_segmentation
from edgemtl.data.layout import write_image, write_label, write_meta, write_splits
from edgemtl.data.validate import validate_dataset
from edgemtl.errors import EdgeMTLError

H, W = 16, 20
ALL = ["semseg", "depth", "normals", "edges", "saliency", "parts"]


def make_dataset(root: Path, tasks=ALL, ids=("000001", "000002", "000003")) -> Path:
    rng = np.random.default_rng(0)
    for sid in ids:
        write_image(root, sid, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        seg = np.zeros((H, W), np.uint8)
        seg[:, W // 2 :] = 2
        seg[0, 0] = 255
        labels = {
            "semseg": seg,
            "parts": np.where(seg == 2, 1, 0).astype(np.uint8),
            "edges": edges_from_segmentation(seg),
            "saliency": (seg == 2).astype(np.uint8),
            "depth": np.linspace(0.0, 5.0, H * W, dtype=np.float32).reshape(H, W),
            "normals": np.tile(np.array([0, 0, 1], np.float32), (H, W, 1)),
        }
        for t in tasks:
            write_label(root, t, sid, labels[t])
    write_splits(root, {"train": list(ids[:2]), "val": list(ids[2:])})
    meta = {"name": "tiny", "tasks": list(tasks), "edge_max_dist": 0.0075}
    cls = {t: n for t, n in (("semseg", ["a", "b", "c"]), ("parts", ["bg", "p"])) if t in tasks}
    if cls:
        meta["classes"] = cls
    if "depth" in tasks:
        meta["depth_range"] = [0.0, 5.0]
    write_meta(root, meta)
    return root


def test_item_layout(tmp_path):
    ds = MultiTaskDataset(make_dataset(tmp_path), "train")
    assert len(ds) == 2 and ds.tasks == ALL
    assert ds.num_classes("semseg") == 3 and ds.class_names("parts") == ["bg", "p"]
    it = ds[0]
    assert it["id"] == "000001"
    assert it["image"].dtype == torch.float32 and it["image"].shape == (3, H, W)
    assert 0 <= it["image"].min() and it["image"].max() <= 1
    assert it["semseg"].dtype == torch.int64 and it["semseg"].shape == (H, W)
    assert it["semseg"][0, 0] == 255 and it["semseg"][5, W - 1] == 2
    assert it["parts"].dtype == torch.int64
    for t in ("edges", "saliency", "depth"):
        assert it[t].dtype == torch.float32 and it[t].shape == (1, H, W)
    assert set(it["edges"].unique().tolist()) <= {0.0, 1.0, 255.0}
    assert it["normals"].shape == (3, H, W) and torch.all(it["normals"][2] == 1)
    assert it["depth"][0, -1, -1] == pytest.approx(5.0)


def test_task_selection_errors(tmp_path):
    make_dataset(tmp_path, tasks=["semseg", "depth"])
    assert MultiTaskDataset(tmp_path, tasks=["depth"])[0].keys() == {"id", "image", "depth"}
    with pytest.raises(EdgeMTLError, match="no 'normals' task; it has: semseg, depth"):
        MultiTaskDataset(tmp_path, tasks=["normals"])
    with pytest.raises(EdgeMTLError, match="Did you mean 'semseg'"):
        MultiTaskDataset(tmp_path, tasks=["semseq"])
    with pytest.raises(EdgeMTLError, match="test.txt not found. Available splits: train, val"):
        MultiTaskDataset(tmp_path, "test")


def test_derive_edges_on_the_fly(tmp_path):
    make_dataset(tmp_path, tasks=["semseg"])
    with pytest.raises(EdgeMTLError, match="no 'edges' task"):
        MultiTaskDataset(tmp_path, tasks=["edges"])
    ds = MultiTaskDataset(tmp_path, derive_edges=True)
    assert ds.tasks == ["semseg", "edges"]
    it = ds[0]
    assert it["edges"].shape == (1, H, W)
    expect = edges_from_segmentation(it["semseg"].numpy().astype(np.uint8))
    assert np.array_equal(it["edges"][0].numpy(), expect.astype(np.float32))
    assert it["edges"][0, 5, W // 2 - 1] == 1 and it["edges"][0, 5, W // 2] == 0


def test_edges_from_segmentation_rule():
    seg = np.zeros((5, 6), np.uint8)
    seg[:, 3:] = 1
    e = edges_from_segmentation(seg)
    # 1 px thick: only the column left of the change (its right neighbour differs).
    assert e[:, 2].tolist() == [1] * 5 and e.sum() == 5
    seg[2, 0] = 255
    e = edges_from_segmentation(seg)
    assert e[2, 0] == 255  # ignored pixel is undefined
    assert e[1, 0] == 255  # its down neighbour is ignored and nothing else differs: unknown
    assert e[2, 1] == 0  # right/down neighbours valid and equal: interior
    seg[4, 3:] = 2
    e = edges_from_segmentation(seg)
    assert e[3, 3:].tolist() == [1, 1, 1]  # horizontal boundary, marked on the upper side
    assert e[4, 2] == 1


def test_derive_edges_on_disk(tmp_path):
    make_dataset(tmp_path, tasks=["semseg"])
    assert derive_edges_on_disk(tmp_path) == 3
    meta = load_meta(tmp_path)
    assert meta["tasks"] == ["semseg", "edges"] and "edges" in meta["source"]
    assert (tmp_path / "edges" / "000003.png").is_file()
    assert MultiTaskDataset(tmp_path, "val")[0]["edges"].shape == (1, H, W)
    with pytest.raises(EdgeMTLError, match="already lists 'edges'"):
        derive_edges_on_disk(tmp_path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.pop("tasks"), "missing key 'tasks'"),
        (lambda m: m.update(tasks=["semseg", "albedo"]), "key 'tasks': unknown task 'albedo'"),
        (lambda m: m["classes"].pop("semseg"), "classes.semseg"),
        (lambda m: m.pop("depth_range"), "depth_range"),
        (lambda m: m.update(format_version=7), "format_version 7"),
    ],
)
def test_meta_errors(tmp_path, edit, match):
    make_dataset(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    edit(meta)
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(EdgeMTLError, match=match) as exc:
        load_meta(tmp_path)
    assert "dataset.json" in str(exc.value)


def test_missing_meta(tmp_path):
    with pytest.raises(EdgeMTLError, match="dataset.json not found"):
        MultiTaskDataset(tmp_path)


def _break(root: Path, kind: str) -> None:
    if kind == "missing_label":
        (root / "semseg" / "000003.png").unlink()
    elif kind == "size":
        write_label(root, "semseg", "000003", np.zeros((H, W + 1), np.uint8))
    elif kind == "class_range":
        write_label(root, "semseg", "000003", np.full((H, W), 3, np.uint8))
    elif kind == "binary":
        write_label(root, "saliency", "000003", np.full((H, W), 2, np.uint8))
    elif kind == "depth_shape":
        np.save(root / "depth" / "000003.npy", np.zeros((H, W, 1), np.float32))
    elif kind == "normals_dtype":
        np.save(root / "normals" / "000003.npy", np.zeros((H, W, 3), np.int32))
    elif kind == "image":
        (root / "images" / "000003.png").write_bytes(b"not a png")


@pytest.mark.parametrize(
    "kind, match",
    [
        ("missing_label", r"000003\.png: missing semseg label"),
        ("size", r"000003\.png: label size 16x21 does not match"),
        ("class_range", r"000003\.png: class id\(s\) \[3\] out of range"),
        ("binary", r"000003\.png: saliency map holds value\(s\) \[2\]"),
        ("depth_shape", r"000003\.npy: depth must be a float HxW array"),
        ("normals_dtype", r"000003\.npy: normals must be a float HxWx3 array"),
        ("image", r"000003\.png: unreadable or corrupt image"),
    ],
)
def test_lazy_item_errors_name_the_file(tmp_path, kind, match):
    make_dataset(tmp_path)
    _break(tmp_path, kind)
    if kind == "missing_label":  # a missing file is found when the split is opened (a stat per file)
        with pytest.raises(EdgeMTLError, match=match + r" file \(1 of the 1 'val' images lack one\)"):
            MultiTaskDataset(tmp_path, "val")
        return
    ds = MultiTaskDataset(tmp_path, "val")  # construction stays cheap: nothing decoded yet
    with pytest.raises(EdgeMTLError, match=match):
        ds[0]


def test_split_errors(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "splits" / "val.txt").write_text("\n\n")
    with pytest.raises(EdgeMTLError, match=r"val\.txt: split file is empty"):
        MultiTaskDataset(tmp_path, "val")
    (tmp_path / "splits" / "val.txt").write_text("000003\n000009\n")
    with pytest.raises(EdgeMTLError, match=r"val\.txt: id\(s\) \['000009'\] have no image"):
        MultiTaskDataset(tmp_path, "val")


def test_validate_collects_all_problems(tmp_path):
    make_dataset(tmp_path)
    assert validate_dataset(tmp_path) == []
    _break(tmp_path, "class_range")
    _break(tmp_path, "depth_shape")
    write_label(tmp_path, "normals", "000001", np.full((H, W, 3), 0.5, np.float32))
    np.save(tmp_path / "depth" / "000002.npy", np.full((H, W), 9.0, np.float32))
    (tmp_path / "splits" / "test.txt").write_text("000001\n")
    probs = validate_dataset(tmp_path)
    text = "\n".join(probs)
    assert len(probs) == 5, text
    assert "semseg/000003.png: class id(s) [3]" in text
    assert "depth/000003.npy: depth must be" in text
    assert "normals/000001.npy" in text and "unit length" in text
    assert "depth/000002.npy: depth values [9, 9] m fall outside depth_range" in text
    assert "in both 'train' and 'test'" in text
    only = validate_dataset(tmp_path, splits=["val"], tasks=["depth"])
    assert len(only) == 1 and "depth/000003.npy" in only[0]
    assert "dataset.json not found" in validate_dataset(tmp_path / "nope")[0]


def test_augmentation_is_seeded_per_item_and_epoch(tmp_path):
    from edgemtl.data.transforms import ColorJitter

    make_dataset(tmp_path)
    t = ColorJitter(brightness=0.5)
    a, b = MultiTaskDataset(tmp_path, transform=t, seed=1), MultiTaskDataset(tmp_path, transform=t, seed=1)
    assert torch.equal(a[0]["image"], b[0]["image"])  # same seed, epoch, index -> same item
    b.set_epoch(1)
    assert not torch.equal(a[0]["image"], b[0]["image"])
    # Independent of worker count / which worker loads an item.
    loader = lambda n: torch.utils.data.DataLoader(a, batch_size=2, num_workers=n)  # noqa: E731
    assert torch.equal(next(iter(loader(0)))["image"], next(iter(loader(2)))["image"])
