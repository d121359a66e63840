"""Export profiles: YAML files in the repository's ``export/`` folder naming a target, a precision,
a task-input scheme and target options. ``--profile`` loads one; CLI flags override it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemtl.errors import EdgeMTLError, did_you_mean
from edgemtl.named import read_named_yaml

PROFILE_DIR = Path(__file__).resolve().parents[2] / "export"
KEYS = {
    "description": "free text",
    "target": "an export target (edgemtl.export.TARGETS: onnx, executorch, coreml, ...)",
    "precision": "fp32 | fp16 (per target)",
    "task_input": "onehot | index | per-task | all",
    "options": "target options (see docs/export.md)",
    "input_size": "[H, W] export input size (default: the model's image_size)",
    "images": "folder of images for the parity check (default: rendered scenes)",
}


def load_profile(name: str | Path) -> dict[str, Any]:
    """A validated profile dict (only the keys in ``KEYS``; unknown keys raise naming the key)."""
    path, data = read_named_yaml(
        name, PROFILE_DIR, "profile", "--profile", f"of {', '.join(KEYS)}", "--profile "
    )
    for key in data:
        if key not in KEYS:
            raise EdgeMTLError(
                f"--profile {path}: unknown key '{key}'.{did_you_mean(key, KEYS)} "
                f"Valid keys: {', '.join(KEYS)}"
            )
    if "options" in data and not isinstance(data["options"], dict):
        raise EdgeMTLError(f"--profile {path}: 'options' must be a mapping (got {data['options']!r})")
    if "target" in data:
        from edgemtl.export import get_target

        get_target(data["target"]).resolve_options(data.get("options"))  # option names and values checked now
    return data
