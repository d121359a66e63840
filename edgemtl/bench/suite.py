"""Benchmark suites: YAML files in the repository's ``benchmarks/`` folder.

    description: free text
    data: {synth: {preset: pascal, num: 300, size: 64, seed: 0}}   # or {root: DIR}
    tasks: [semseg, normals, saliency]
    model: {backbone: mobilenetv2_050, image_size: [64, 64], ...}   # shared by every model
    train: {epochs: 4, batch_size: 16, ...}                         # shared by every model
    variants:                       # multi-task models; single-task baselines are always trained
      hard_sharing: {model: {arch: hard_sharing}}
      astmt_se_dec: {model: {arch: astmt, se: decoder}, train: {balancer: fixed}}
    quant: {variants: [astmt_se_dec], qat_epochs: 1, calib_batches: 4, lr_scale: 0.1}
    export:
      models: [astmt_se_dec]        # default: every variant
      formats:                      # (target, precision) pairs, one row each per model
        - {target: onnx, precision: fp32}
        - {target: executorch, precision: int8-qat}
    latency: {threads: 2, runs: 10, warmup: 3}
    seeds: 3                        # every model trained with seeds train.seed, +1, +2 (or a list)
    scales:                         # presets chosen with `edgemtl bench --scale NAME` (default smoke)
      cpu:                          # deep-merged over the suite; `variants:` here keeps a subset
        data: {synth: {num: 1400, splits: [0.5, 0.1, 0.4]}}
        train: {epochs: 20}
        seeds: 3
        variants: [hard_sharing, astmt_se_dec]

Scales: ``smoke`` (the suite as written unless it defines one: minutes, a test of the pipeline, not a
result), ``cpu`` (converges on a 2-core CPU in a few hours; several seeds) and ``gpu`` (towards the
papers' schedules). Every preset of the committed suites has a test split of at least 500 images.

Precisions: ``fp32`` (coreml: fp32 or ``fp16``), ``int8-ptq`` / ``int8-qat`` (the PT2E programs of
``quant``), ``int8-ort`` (ONNX Runtime's own quantizer on the fp32 model; onnx only).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemtl.errors import EdgeMTLError, did_you_mean
from edgemtl.named import read_named_yaml

SUITE_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
KEYS = (
    "description",
    "data",
    "tasks",
    "model",
    "train",
    "variants",
    "quant",
    "export",
    "latency",
    "seeds",
    "scales",
)
SCALES = ("smoke", "cpu", "gpu")
PRECISIONS = ("fp32", "fp16", "int8-ptq", "int8-qat", "int8-ort")


@dataclass
class Suite:
    name: str
    path: str
    description: str
    data: dict[str, Any]
    tasks: list[str]
    model: dict[str, Any]
    train: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    quant: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    scale: str = "smoke"
    protocol: str = "edgemtl"  # metric conventions of every number (edgemtl.evaluate.PROTOCOLS)

    def model_names(self) -> list[str]:
        return [f"single_task_{t}" for t in self.tasks] + list(self.variants)

    def recipe(self, name: str, seed: int | None = None):
        """The Recipe of one model of the suite (``single_task_<task>`` or a variant), at ``seed``
        (default: the suite's first seed)."""
        from edgemtl.recipes import Recipe

        model, train = copy.deepcopy(self.model), copy.deepcopy(self.train)
        train["seed"] = self.seeds[0] if seed is None else int(seed)
        tasks = list(self.tasks)
        if name.startswith("single_task_") and name not in self.variants:
            tasks = [name[len("single_task_") :]]
            model.update(arch="single_task")
            model.pop("se", None)
        else:
            spec = self.variants[name]
            model.update(spec.get("model", {}))
            train.update(spec.get("train", {}))
        return Recipe(
            f"{self.path}#{name}", f"{self.name}: {name}", model, tasks, [], copy.deepcopy(self.data), train
        )

    def set_seeds(self, value: Any, where: str = "seeds") -> None:
        """``N`` (seeds train.seed .. train.seed + N - 1) or a list of seeds."""
        base = int(self.train.get("seed", 0) or 0)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            self.seeds = [base + i for i in range(value)]
        elif (
            isinstance(value, list)
            and value
            and len(set(value)) == len(value)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        ):
            self.seeds = list(value)
        else:
            raise EdgeMTLError(
                f"{self.path}: '{where}' must be a count >= 1 or a list of distinct seeds >= 0 "
                f"(got {value!r})"
            )

    @property
    def train_config(self):
        """The suite's shared ``train`` section, typed (the defaults every variant starts from)."""
        from edgemtl.train.config import TrainConfig

        return TrainConfig.from_dict(dict(self.train))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "path", "scale", "protocol", *KEYS) if k != "scales"}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        )
    return out


def apply_scale(raw: dict[str, Any], scale: str, path: Path) -> dict[str, Any]:
    """The suite at one of its ``scales`` presets (see the module docstring)."""
    if scale not in SCALES:
        from edgemtl.errors import unknown_choice

        raise unknown_choice("--scale", scale, SCALES)
    scales = raw.pop("scales", None) or {}
    if not isinstance(scales, dict) or any(k not in SCALES for k in scales):
        bad = [k for k in scales if k not in SCALES] if isinstance(scales, dict) else scales
        raise EdgeMTLError(f"{path}: 'scales' maps {', '.join(SCALES)} to suite sections (got {bad!r})")
    spec = scales.get(scale)
    if spec is None:
        if scale == "smoke":
            return raw
        raise EdgeMTLError(
            f"{path}: no '{scale}' scale; this suite defines: smoke"
            + "".join(f", {k}" for k in scales if k != "smoke")
        )
    spec = dict(spec)
    keep = spec.pop("variants", None)
    for key in spec:
        if key not in KEYS or key == "scales":
            raise EdgeMTLError(f"{path}: scales.{scale}: unknown key '{key}'.{did_you_mean(key, KEYS)}")
    raw = _merge(raw, spec)
    if keep is not None:
        variants = raw.get("variants") or {}
        for v in keep:
            if v not in variants:
                raise EdgeMTLError(
                    f"{path}: scales.{scale}.variants names '{v}', not a variant.{did_you_mean(v, variants)}"
                )
        raw["variants"] = {k: variants[k] for k in keep}
        # the preset's subset also prunes what quant/export name
        if (raw.get("quant") or {}).get("variants"):
            raw["quant"] = {**raw["quant"], "variants": [v for v in raw["quant"]["variants"] if v in keep]}
            if not raw["quant"]["variants"]:
                raw.pop("quant")
        if (raw.get("export") or {}).get("models"):
            models = [m for m in raw["export"]["models"] if m in keep or m.startswith("single_task_")]
            raw["export"] = {**raw["export"], "models": models}
    return raw


def load_suite(
    name: str | Path, data_dir: str | None = None, overrides: list[str] | None = None, scale: str = "smoke"
) -> Suite:
    """A validated suite at ``scale``; ``data_dir`` replaces its data section (an existing dataset
    folder); ``overrides`` are ``key.path=yaml`` items (applied after the scale), e.g.
    ``model.pretrained=weights.pth``."""
    path, raw = read_named_yaml(name, SUITE_DIR, "suite", "--suite", f"with keys {', '.join(KEYS)}")
    raw = apply_scale(raw, scale, path)
    if overrides:
        from edgemtl.recipes import apply_overrides

        raw = apply_overrides(raw, overrides)
    for key in raw:
        if key not in KEYS:
            raise EdgeMTLError(
                f"{path}: unknown key '{key}'.{did_you_mean(key, KEYS)} Valid keys: {', '.join(KEYS)}"
            )
    if data_dir:
        if not (Path(data_dir) / "dataset.json").is_file():
            raise EdgeMTLError(
                f"--data {data_dir}: no dataset.json there (make one with 'edgemtl data synth' "
                "or a converter)"
            )
        raw["data"] = {"root": str(data_dir)}
    if not raw.get("data"):
        raise EdgeMTLError(f"{path}: 'data' is required (synth: {{...}} or root: DIR)")
    tasks = raw.get("tasks") or []
    if not tasks:
        raise EdgeMTLError(f"{path}: 'tasks' must list at least one task")
    from edgemtl.tasks import TASKS

    for t in tasks:
        TASKS.get(t)
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict) or not variants:
        raise EdgeMTLError(f"{path}: 'variants' must map names to {{model: ..., train: ...}} (at least one)")
    for vname, spec in variants.items():
        bad = set(spec or {}) - {"model", "train"}
        if bad:
            raise EdgeMTLError(
                f"{path}: variant '{vname}' has unknown keys {sorted(bad)} (valid: model, train)"
            )
    suite = Suite(
        path.stem,
        str(path),
        raw.get("description", ""),
        dict(raw["data"]),
        list(tasks),
        dict(raw.get("model") or {}),
        dict(raw.get("train") or {}),
        {k: dict(v or {}) for k, v in variants.items()},
        dict(raw.get("quant") or {}),
        dict(raw.get("export") or {}),
        dict(raw.get("latency") or {}),
    )
    suite.scale = scale
    suite.set_seeds(raw.get("seeds", 1))
    _check_references(suite)
    return suite


# Nested sections: their keys and the type each value must have (unknown keys are refused, not ignored).
SECTION_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "latency": {"threads": int, "runs": int, "warmup": int},
    "quant": {
        "variants": list,
        "qat_epochs": int,
        "calib_batches": int,
        "lr_scale": (int, float),
        "task_weights": str,
        "float_modules": list,
    },
    "export": {"models": list, "formats": list},
}
_POSITIVE = {"latency.threads", "latency.runs", "quant.qat_epochs", "quant.calib_batches"}


def _check_sections(s: Suite) -> None:
    for section, keys in SECTION_KEYS.items():
        for key, value in getattr(s, section).items():
            if key not in keys:
                raise EdgeMTLError(
                    f"{s.path}: unknown key '{section}.{key}'.{did_you_mean(key, keys)} "
                    f"Valid keys: {', '.join(keys)}"
                )
            want = keys[key]
            if isinstance(value, bool) or not isinstance(value, want):
                names = "/".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
                raise EdgeMTLError(f"{s.path}: '{section}.{key}' must be {names}, got {value!r}")
            if (f"{section}.{key}" in _POSITIVE and value < 1) or (key == "warmup" and value < 0):
                raise EdgeMTLError(
                    f"{s.path}: '{section}.{key}' must be >= {0 if key == 'warmup' else 1}, got {value}"
                )


def _check_references(s: Suite) -> None:
    _check_sections(s)
    for v in s.quant.get("variants", []):
        if v not in s.variants:
            raise EdgeMTLError(
                f"{s.path}: quant.variants names '{v}', not a variant.{did_you_mean(v, s.variants)}"
            )
    names = s.model_names()
    for m in s.export.get("models", []):
        if m not in names:
            raise EdgeMTLError(
                f"{s.path}: export.models names '{m}'.{did_you_mean(m, names)} Models: {', '.join(names)}"
            )
    from edgemtl.export import TARGETS

    for f in s.export.get("formats", []):
        if not isinstance(f, dict) or set(f) != {"target", "precision"}:
            raise EdgeMTLError(
                f"{s.path}: export.formats entries are {{target: ..., precision: ...}} (got {f!r})"
            )
        TARGETS.get(f["target"])
        if f["precision"] not in PRECISIONS:
            raise EdgeMTLError(
                f"{s.path}: export precision '{f['precision']}'.{did_you_mean(f['precision'], PRECISIONS)} "
                f"Valid: {', '.join(PRECISIONS)}"
            )
