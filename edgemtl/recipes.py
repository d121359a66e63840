"""Recipes: YAML files in the repository's ``models/`` folder (model + tasks + data [+ train]).

A recipe is data, validated on load: unknown sections or keys name themselves and the valid
choices. ``--set section.key=value`` overrides any entry (the value is parsed as YAML).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgemtl.errors import EdgeMTLError, did_you_mean
from edgemtl.named import read_named_yaml

RECIPE_DIR = Path(__file__).resolve().parents[1] / "models"
SECTIONS = ("description", "model", "tasks", "aux_tasks", "data", "train")
DATA_KEYS = ("root", "synth", "derive_edges", "sources")


def synth_size(value: Any, where: Any = "recipe") -> list[tuple[int, int]]:
    """``data.synth.size``: an int (square), [H, W], or a list of [H, W] (a mixed-size dataset)."""

    def one(v: Any) -> tuple[int, int] | None:
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v, v
        if (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)
        ):
            return int(v[0]), int(v[1])
        return None

    sizes = (
        [one(value)]
        if one(value)
        else ([one(v) for v in value] if isinstance(value, (list, tuple)) else [None])
    )
    if not sizes or None in sizes:
        raise EdgeMTLError(
            f"{where}: data.synth.size must be an int, [H, W] of positive ints, or a list of [H, W] "
            f"for mixed sizes (got {value!r})"
        )
    return sizes


@dataclass
class Recipe:
    """A recipe's sections as written (with ``--set`` applied) and their typed, validated forms.

    The written sections are the run's identity (the bench keys runs by their hash, so a default
    added to TrainConfig later does not orphan finished runs); everything that *uses* a setting
    reads the typed ``train_config`` / ``model_config()``, whose defaults live in one place. Change
    a setting with ``with_train``, which returns a new, re-validated recipe.
    """

    path: str
    description: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    aux_tasks: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.train_config  # noqa: B018 (validates now: a bad train key fails at load, naming the recipe)
        from edgemtl.models.config import ModelConfig

        try:  # a mistyped model key too, before any data is rendered or read
            ModelConfig.check_keys(self.model)
        except EdgeMTLError as e:
            raise EdgeMTLError(f"{self.path}: {e}") from None

    @property
    def train_config(self):
        """The ``train`` section as a TrainConfig (every default filled in)."""
        from edgemtl.train.config import TrainConfig

        try:
            return TrainConfig.from_dict(dict(self.train))
        except EdgeMTLError as e:
            raise EdgeMTLError(f"{self.path}: {e}") from None

    def with_train(self, **changes: Any) -> Recipe:
        """A copy with ``train`` settings changed (validated; this recipe is left as it is)."""
        return dataclasses.replace(self, train={**copy.deepcopy(self.train), **changes})

    def dataset_meta(self) -> dict[str, Any]:
        """dataset.json of ``data.root`` if it exists, else the synthetic preset's description; for
        ``data.sources``, the union of the sources' (tasks, classes, depth range), as the merge has."""
        if self.data.get("sources"):
            metas = [
                dataclasses.replace(self, data={k: v for k, v in src.items() if k != "ratio"}).dataset_meta()
                for src in self.data["sources"]
            ]
            from edgemtl.data.merge import union_meta

            return union_meta(metas, [f"data.sources[{k}]" for k in range(len(metas))])
        root = self.data.get("root")
        if root and (Path(root) / "dataset.json").is_file():
            from edgemtl.data.dataset import load_meta

            return load_meta(root)
        synth = self.data.get("synth")
        if synth is not None:
            from edgemtl.data.synth import preset_meta

            sizes = synth_size(synth.get("size", (128, 128)), self.path)
            return preset_meta(
                synth.get("preset", "nyud"), sizes[0] if len(sizes) == 1 else None, synth.get("tasks")
            )
        if root:
            raise EdgeMTLError(
                f"{self.path}: data.root {root} has no dataset.json (make one with `edgemtl data synth`)"
            )
        raise EdgeMTLError(
            f"{self.path}: the recipe needs data.root or data.synth to know the tasks' classes"
        )

    def model_config(self, meta: dict[str, Any] | None = None):
        from edgemtl.models.config import ModelConfig
        from edgemtl.tasks import build_tasks

        meta = meta if meta is not None else self.dataset_meta()
        tasks = {n: t.describe() for n, t in build_tasks(self.tasks, meta).items()}
        aux = {n: t.describe() for n, t in build_tasks(self.aux_tasks, meta).items()}
        try:
            return ModelConfig.from_dict({**self.model, "tasks": tasks, "aux_tasks": aux})
        except EdgeMTLError as e:  # a model key or value: name the recipe it came from, as train's do
            msg = str(e)
            raise EdgeMTLError(msg if msg.startswith(f"{self.path}:") else f"{self.path}: {msg}") from None


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    d = copy.deepcopy(d)
    for item in overrides:
        if "=" not in item:
            raise EdgeMTLError(f"--set expects key=value (got '{item}'), e.g. --set model.se=decoder")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        parts = key.split(".")
        if parts[0] not in SECTIONS:
            raise EdgeMTLError(
                f"--set {key}: unknown section '{parts[0]}'.{did_you_mean(parts[0], SECTIONS)} Sections: "
                f"{', '.join(SECTIONS)}"
            )
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise EdgeMTLError(f"--set {key}: '{p}' is not a section")
        node[parts[-1]] = value
    return d


def load_recipe(name: str, overrides: list[str] | None = None) -> Recipe:
    path, raw = read_named_yaml(name, RECIPE_DIR, "recipe", "recipe", f"with sections {', '.join(SECTIONS)}")
    raw = apply_overrides(raw, overrides or [])
    for key in raw:
        if key not in SECTIONS:
            raise EdgeMTLError(
                f"{path}: unknown section '{key}'.{did_you_mean(key, SECTIONS)} Valid sections: "
                f"{', '.join(SECTIONS)}"
            )
    for key in raw.get("data", {}) or {}:
        if key not in DATA_KEYS:
            raise EdgeMTLError(
                f"{path}: unknown key data.{key}.{did_you_mean(key, DATA_KEYS)} Valid: {', '.join(DATA_KEYS)}"
            )
    tasks = raw.get("tasks") or []
    if isinstance(tasks, str):
        tasks = [tasks]
    if not tasks:
        raise EdgeMTLError(f"{path}: 'tasks' must list at least one task")
    from edgemtl.tasks import TASKS

    for t in [*tasks, *(raw.get("aux_tasks") or [])]:
        TASKS.get(t)  # raises 'unknown task' with suggestions
    return Recipe(
        str(path),
        raw.get("description", ""),
        dict(raw.get("model") or {}),
        list(tasks),
        list(raw.get("aux_tasks") or []),
        dict(raw.get("data") or {}),
        dict(raw.get("train") or {}),
    )
