"""The model card (edgemtl.card): one serializer writes it into checkpoints, int8 programs (.pt2) and
manifests, and one loader reads it back from each, the same card every time."""

from __future__ import annotations

import json

import pytest
import torch

from edgemtl.card import DATASET_KEYS, ModelCard, read_card
from edgemtl.checkpoint import load_checkpoint, save_checkpoint
from edgemtl.errors import EdgeMTLError
from edgemtl.models import create_model
from edgemtl.tasks import build_tasks

META = {
    "name": "mini",
    "classes": {"semseg": ["bg", "wall", "chair"]},
    "depth_range": [0.5, 8.0],
    "ignore_index": 255,
    "splits": {"train": 10},  # describes files, not the model: does not travel
}
TINY = {
    "backbone": "mobilenetv2_tiny",
    "image_size": (32, 32),
    "decoder_channels": 16,
    "low_level_channels": 8,
}


def _model():
    tasks = {n: t.describe() for n, t in build_tasks(["semseg", "depth", "edges"], META).items()}
    torch.manual_seed(0)
    return create_model(arch="astmt", se="decoder", tasks=tasks, **TINY).eval()


def test_checkpoint_program_and_manifest_carry_one_card(tmp_path):
    from edgemtl.export import export
    from edgemtl.quant.pt2e import save_program

    model = _model()
    expected = ModelCard.of(model, META).to_dict()
    assert set(expected["dataset"]) <= set(DATASET_KEYS) and "splits" not in expected["dataset"]
    assert expected["model_config"]["pretrained"] is None  # a card never asks for a download
    assert expected["task_info"]["depth"]["depth_range"] == [0.5, 8.0]
    assert expected["task_info"]["semseg"]["class_names"] == ["bg", "wall", "chair"]

    save_checkpoint(tmp_path / "m.pt", model, META)
    save_program(model, model, tmp_path / "m.pt2", "converted", META)
    images = [("a", torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8).numpy())]
    export(model, "onnx", tmp_path / "m.onnx", images=images, task_input="index")
    # The manifest writes the model card (read from the checkpoint, the exporter's usual input).
    export(str(tmp_path / "m.pt"), "onnx", tmp_path / "c.onnx", images=images, task_input="index")

    cards = {p: read_card(tmp_path / p).to_dict() for p in ("m.pt", "m.pt2", "c.onnx")}
    for path, card in cards.items():
        assert json.dumps(card, sort_keys=True) == json.dumps(expected, sort_keys=True), path
    # Every file's card rebuilds the same network (same modules and shapes).
    rebuilt = read_card(tmp_path / "m.pt2").build_model()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded.forward_task(x, "depth"), model.forward_task(x, "depth"))


def test_cards_written_before_task_info_get_it_from_their_config(tmp_path):
    model = _model()
    card = ModelCard.of(model, META).to_dict()
    old = {k: v for k, v in card.items() if k != "task_info"}
    assert ModelCard.from_dict(old, "old.pt").task_info == card["task_info"]


def test_bad_cards_are_refused_naming_the_file(tmp_path):
    card = ModelCard.of(_model(), META).to_dict()
    with pytest.raises(EdgeMTLError, match=r"x\.pt: no model card"):
        ModelCard.from_dict({"state_dict": {}}, "x.pt")
    with pytest.raises(EdgeMTLError, match=r"y\.pt2: its model config is not valid.*bakcbone"):
        ModelCard.from_dict({**card, "model_config": {**card["model_config"], "bakcbone": "x"}}, "y.pt2")
    edited = {**card, "task_info": {"semseg": card["task_info"]["semseg"]}}
    with pytest.raises(EdgeMTLError, match=r"z\.json: its task_info lists \['semseg'\].*edited"):
        ModelCard.from_dict(edited, "z.json")
    with pytest.raises(EdgeMTLError, match=r"w\.txt: no model card in a '\.txt' file"):
        read_card(tmp_path / "w.txt")
