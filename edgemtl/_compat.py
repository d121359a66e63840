"""Import torchvision (and therefore timm) beside the CPU build of torch.

torchvision 0.28.0 is the only release matching torch 2.13.0 and it is CUDA-linked: its
``_meta_registrations`` registers fakes for ``torchvision::nms``/``qnms`` without checking
that its compiled ops loaded, so ``import torchvision`` raises on a CPU-only torch. Defining
the two op schemas first lets the pure-Python parts (which timm needs) import; only the
compiled ops (nms, ...) stay unusable, and edgemtl does not use them.
"""

from __future__ import annotations

import sys

_state: dict[str, object] = {}


def ensure_torchvision_importable() -> str:
    """Make ``import torchvision`` / ``import timm`` work; returns 'native' or 'shimmed'."""
    if "mode" in _state:
        return _state["mode"]  # type: ignore[return-value]
    import torch

    try:
        import torchvision  # noqa: F401

        _state["mode"] = "native"
        return "native"
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
    for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[k]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in (
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    ):
        lib.define(schema)
    _state["lib"] = lib  # the Library must stay alive or the schemas are dropped
    import torchvision  # noqa: F401,F811

    _state["mode"] = "shimmed"
    return "shimmed"
