"""PASCAL VOC conversion on fixture trees: 1-based inclusive boxes to continuous corners, difficult
flags, the segmented subset, splits, and one-line errors naming the file."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgemtl.data.voc import CLASSES, convert_voc
from edgemtl.errors import EdgeMTLError

# id -> (H, W, [(name, xmin, ymin, xmax, ymax, difficult)])
IMAGES = {
    "2008_000001": (40, 60, [("dog", 1, 1, 60, 40, 0), ("person", 10, 5, 19, 30, 1)]),
    "2008_000002": (50, 30, [("tvmonitor", 3, 4, 20, 22, 0)]),
    "2008_000003": (36, 48, []),
}


def xml(sid, h, w, objects) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for n, x1, y1, x2, y2, d in objects
    )
    return (
        f"<annotation><folder>VOC2012</folder><filename>{sid}.jpg</filename><size><width>{w}</width>"
        f"<height>{h}</height><depth>3</depth></size>{objs}</annotation>"
    )


def make_tree(root, segmented=("2008_000001", "2008_000002")):
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for sid, (h, w, objects) in IMAGES.items():
        cv2.imwrite(str(voc / "JPEGImages" / f"{sid}.jpg"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        (voc / "Annotations" / f"{sid}.xml").write_text(xml(sid, h, w, objects))
        if sid in segmented:
            from PIL import Image

            mask = np.zeros((h, w), np.uint8)
            mask[2:10, 3:12] = 12  # dog
            mask[0, :] = 255  # void
            img = Image.fromarray(mask, mode="P")
            img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
            img.save(voc / "SegmentationClass" / f"{sid}.png")
    (voc / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000003\n")
    (voc / "ImageSets/Main/val.txt").write_text("2008_000002\n")
    (voc / "ImageSets/Main/test.txt").write_text("2009_999999\n")  # VOC2012 test: no annotations
    return voc


def test_boxes_become_continuous_corners_with_difficult_flags(tmp_path):
    from edgemtl.data.dataset import MultiTaskDataset
    from edgemtl.data.validate import validate_dataset

    make_tree(tmp_path)
    out = tmp_path / "out"
    meta = convert_voc(tmp_path / "VOCdevkit", out, val_as_test=True)
    assert meta["tasks"] == ["detection"] and meta["classes"]["detection"] == list(CLASSES)
    assert (out / "splits" / "train.txt").read_text().split() == ["2008_000001", "2008_000003"]
    assert (out / "splits" / "test.txt").read_text().split() == ["2008_000002"]
    assert not (out / "splits" / "val.txt").exists()
    doc = json.loads((out / "detection" / "2008_000001.json").read_text())["objects"]
    # 1-based inclusive (1, 1, 60, 40) covers every pixel of the 60x40 image: [0, 0, 60, 40]
    assert doc[0] == {"box": [0.0, 0.0, 60.0, 40.0], "class": CLASSES.index("dog"), "difficult": False}
    assert doc[1] == {"box": [9.0, 4.0, 19.0, 30.0], "class": CLASSES.index("person"), "difficult": True}
    assert json.loads((out / "detection" / "2008_000003.json").read_text()) == {"objects": []}
    assert (out / "images" / "2008_000002.jpg").read_bytes() == (
        tmp_path / "VOCdevkit/VOC2012/JPEGImages/2008_000002.jpg"
    ).read_bytes()  # copied, not re-encoded
    assert validate_dataset(out) == []
    item = MultiTaskDataset(out, "train")[0]
    np.testing.assert_allclose(item["detection"][0].numpy(), [0, 0, 1, 1, CLASSES.index("dog"), 0])


def test_segmentation_keeps_the_segmented_images_and_their_class_indices(tmp_path):
    make_tree(tmp_path)
    out = tmp_path / "seg"
    meta = convert_voc(tmp_path / "VOCdevkit" / "VOC2012", out, segmentation=True)
    assert meta["tasks"] == ["detection", "semseg"] and meta["classes"]["semseg"][12] == "dog"
    assert (out / "splits" / "train.txt").read_text().split() == ["2008_000001"]  # 000003: no mask
    from edgemtl.data.layout import read_label_png

    lab = read_label_png(out / "semseg" / "2008_000001.png")
    assert lab[5, 5] == 12 and lab[0, 0] == 255 and lab[20, 30] == 0  # indices, not palette colours


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda x: x.replace("<name>dog</name>", "<name>wolf</name>"), "class 'wolf', not a VOC class"),
        (lambda x: x.replace("<xmax>60</xmax>", "<xmax>61</xmax>"), "lies outside the 60x40 image"),
        (lambda x: x.replace("<xmin>10</xmin>", "<xmin>30</xmin>"), "empty or inverted box"),
        (lambda x: x.replace("<ymin>1</ymin>", "<ymin>one</ymin>"), "numeric xmin, ymin, xmax, ymax"),
        (lambda x: x[:-5], "not a readable VOC annotation XML"),
    ],
)
def test_a_bad_annotation_is_one_line_naming_the_file(tmp_path, edit, says):
    voc = make_tree(tmp_path)
    p = voc / "Annotations" / "2008_000001.xml"
    p.write_text(edit(p.read_text()))
    with pytest.raises(EdgeMTLError) as e:
        convert_voc(voc, tmp_path / "out")
    assert str(p) in str(e.value) and says in str(e.value) and "\n" not in str(e.value)


def test_cli_converts_and_refuses_voc_flags_for_other_formats(tmp_path, capsys):
    from edgemtl.cli import main

    make_tree(tmp_path)
    assert main(["data", "convert", "voc", str(tmp_path / "VOCdevkit"), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "dataset.json").is_file()
    assert (
        main(["data", "convert", "nyud", str(tmp_path), "--out", str(tmp_path / "n"), "--segmentation"]) != 0
    )
    assert "apply to 'voc' only" in capsys.readouterr().err
