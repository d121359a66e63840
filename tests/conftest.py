import os

# A stray pretrained=True must fail in 0.1 s instead of retrying the hub for ~46 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Under pytest-xdist (``-n 2`` in pyproject) each worker gets one core: torch's intra-op pool and
# ExecuTorch's would otherwise oversubscribe the CPU, and renders into the data cache must not race.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import tempfile

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault(
        "EDGEMTL_EVAL_WORKERS", "1"
    )  # one core per xdist worker (the parallel path has its own test)
    os.environ.setdefault(
        "EDGEMTL_CACHE", tempfile.mkdtemp(prefix=f"edgemtl-cache-{os.environ['PYTEST_XDIST_WORKER']}-")
    )
    import torch

    torch.set_num_threads(1)

import pytest  # noqa: E402

TINY_MODEL = {
    "backbone": "mobilenetv2_050",
    "image_size": [48, 48],
    "decoder_channels": 16,
    "low_level_channels": 8,
    "mti_channels": 8,
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """24 synthetic 48x48 scenes with all six tasks (rendered once per test session)."""
    from edgemtl.data.synth import generate

    root = tmp_path_factory.mktemp("data") / "synth"
    generate(root, 24, (48, 48), seed=3, preset="pascal", workers=1, progress=False)
    return root


MIXED_SIZES = [(64, 80), (40, 40), (56, 72)]  # larger, smaller and wider than the 48x48 model input


def as_jpeg_photos(root, every: int = 2) -> None:
    """Re-encode every ``every``-th image of a dataset as JPEG (lossy, .jpg), like real photo collections."""
    import cv2

    for i, p in enumerate(sorted((root / "images").glob("*.png"))):
        if i % every == 0:
            cv2.imwrite(str(p.with_suffix(".jpg")), cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 85])
            p.unlink()


@pytest.fixture(scope="session")
def mixed_data(tmp_path_factory):
    """24 synthetic scenes whose sizes vary within every split (none is the model's 48x48), half of
    them JPEG photos: a dataset unlike the embedded scenes, as PASCAL-Context is."""
    from edgemtl.data.synth import generate

    root = tmp_path_factory.mktemp("data") / "mixed"
    generate(
        root, 24, MIXED_SIZES, seed=5, preset="pascal", workers=1, progress=False, splits=(0.5, 0.25, 0.25)
    )
    as_jpeg_photos(root)
    return root


@pytest.fixture
def write_recipe(tmp_path, tiny_data):
    """Write a tiny recipe YAML on ``tiny_data``; keyword sections override the defaults."""
    import yaml

    def make(
        name: str = "r",
        model: dict | None = None,
        tasks=("semseg", "normals", "edges"),
        train: dict | None = None,
        **sections,
    ):
        recipe = {
            "model": {"arch": "astmt", **TINY_MODEL, **(model or {})},
            "tasks": list(tasks),
            "data": {"root": str(tiny_data)},
            "train": {
                "epochs": 1,
                "batch_size": 4,
                "edge_thresholds": 3,
                "max_steps_per_epoch": 2,
                **(train or {}),
            },
            **sections,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        return path

    return make
