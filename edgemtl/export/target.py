"""The export target interface: what a target declares and implements (one file per target in
edgemtl/export/targets/), and the runtime backend interface its artifacts run through.

Torch-free on import, like the target files: the runtime reads these declarations.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgemtl.errors import EdgeMTLError, UnsupportedError, did_you_mean

if TYPE_CHECKING:
    from torch import nn

    from edgemtl.export.wrapper import Graph

PRECISIONS = ("fp32", "fp16", "int8")


class Backend:
    """A runtime for one artifact format: ``run(method, inputs) -> outputs``, numpy in and out."""

    name: ClassVar[str]
    # The Python module of the runtime library (its import cost is not an artifact's: edgemtl.profile.memory)
    runtime_module: ClassVar[str | None] = None
    methods: list[str]
    threads: int | None

    def __init__(self, artifact: str | os.PathLike | bytes, threads: int | None = None) -> None:
        raise NotImplementedError

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def embedded_manifest(path: Path) -> dict[str, Any] | None:
        """The manifest stored inside the artifact, where the format has a slot (else None)."""
        return None

    @staticmethod
    def require_delegate(name: str) -> None:
        """Fail at load time when the artifact needs a delegate this runtime lacks."""
        raise UnsupportedError(f"this runtime has no delegate '{name}'")


@dataclass
class ExportContext:
    """What a target's ``write``/``inspect`` get besides the graphs."""

    out: Path
    precision: str
    scheme: str
    options: dict[str, Any]
    io: dict[str, Any]
    model: nn.Module
    notes: list[str] = field(default_factory=list)


def task_info(model: Any) -> dict[str, dict[str, Any]]:
    """The model's task descriptions (decoding, channels, ...), as the manifest carries them."""
    return dict(getattr(getattr(model, "config", None), "tasks", None) or {})


class ExportTarget:
    """One output format. Subclasses register in ``edgemtl.export.TARGETS`` and fill these in."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    description: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    task_inputs: ClassVar[tuple[str, ...]]
    options: ClassVar[dict[str, Any]] = {}  # option -> default (profile ``options:`` / --option)
    option_choices: ClassVar[dict[str, tuple]] = {}
    unsupported_why: ClassVar[dict[str, str]] = {}  # value -> reason, for the error message
    default_precision: ClassVar[str] = "fp32"  # what `edgemtl export` uses without --precision
    # The runtime that runs this target's artifacts on this host (edgemtl.runtime.load, eval, profile,
    # bench rows), or None with ``not_runnable`` saying where they run instead.
    backend: ClassVar[type[Backend] | None] = None
    delegate: ClassVar[str | None] = None  # an ExecuTorch delegate the backend must have
    not_runnable: ClassVar[str] = "no runtime for this format on this host"

    # Python packages an optional target needs (an extra of edgemtl), and how to install them.
    requires: ClassVar[tuple[str, ...]] = ()
    install: ClassVar[str] = ""

    @classmethod
    def available(cls) -> bool:
        """Whether the packages this target needs are installed."""
        import importlib.util

        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    @classmethod
    def runs_here(cls) -> bool:
        """Whether artifacts of this target run (and are timed and evaluated) on this host."""
        return cls.backend is not None and cls.delegate is None and cls.available()

    @classmethod
    def why_not_here(cls) -> str:
        """Why :meth:`runs_here` is False, as the end of a sentence."""
        if not cls.available():
            return f"target '{cls.name}' is not installed: {cls.install}"
        if cls.delegate:
            return f"its programs need the {cls.delegate} delegate, which this host's runtime lacks"
        return cls.not_runnable

    def write(self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext) -> None:
        """Write the artifact to ``ctx.out`` (programs: method -> torch.export ExportedProgram)."""
        raise NotImplementedError

    def inspect(self, graphs: list[Graph], ctx: ExportContext) -> dict[str, Any]:
        """Structural checks of the written artifact: ``{"problems": [...], ...facts}``."""
        return {"problems": []}

    def numeric(
        self, programs: dict[str, Any], graphs: list[Graph], ctx: ExportContext, images
    ) -> dict[str, Any]:
        """Numeric parity; by default the artifact itself, run by this target's backend."""
        from edgemtl.export.verify import numeric_parity

        backend = self.open(ctx.out, threads=None)
        return numeric_parity(
            graphs,
            ctx.io,
            backend.run,
            images,
            ctx.precision,
            f"{backend.name} (the artifact itself)",
            task_info(ctx.model),
        )

    @classmethod
    def open(cls, path: str | os.PathLike, threads: int | None = None, **options: Any) -> Backend:
        """This target's artifact at ``path``, loaded by its runtime backend on this host; ``options``
        are the backend's own (ONNX Runtime: ``sessions``)."""
        if cls.backend is None:
            from edgemtl.export import TARGETS, runnable_targets

            here = " or ".join(sorted({TARGETS.get(n).suffix for n in runnable_targets()}))
            raise UnsupportedError(f"{path}: {cls.not_runnable}; here, use its {here} export")
        if cls.delegate:
            cls.backend.require_delegate(cls.delegate)
        known = set(list(inspect.signature(cls.backend.__init__).parameters)[2:]) - {"threads"}
        for key in options:
            if key not in known:
                takes = f"takes {', '.join(sorted(known))}" if known else "takes no options"
                raise EdgeMTLError(f"runtime option '{key}': the {cls.backend.name} runtime {takes}")
        return cls.backend(path, threads, **options)

    def specializes(self, scheme: str, options: dict[str, Any]) -> bool:
        """Whether the artifact holds the model specialised to each task (edgemtl.models.specialize)
        rather than the task-conditional graph: per-task methods by default; a target may also put
        specialised graphs behind a task input (ONNX ``graphs=specialized``)."""
        return scheme == "per-task"

    def embed_metadata(self, path: Path, meta: dict[str, Any]) -> None:
        """Store the metadata inside the artifact where the format has a slot (default: none)."""

    def prepare_model(
        self,
        model: nn.Module,
        precision: str,
        ctx_options: dict[str, Any],
        calibration: Callable[[], list],
        size: tuple[int, int],
        notes: list[str],
    ) -> nn.Module:
        """The precision hook (targets with their own quantizer override it)."""
        from edgemtl.export.base import prepare_precision

        return prepare_precision(model, precision, calibration, size, notes)

    # ---- shared helpers -------------------------------------------------------------------

    def resolve_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        out = dict(self.options)
        for key, value in (options or {}).items():
            if key not in self.options:
                valid = ", ".join(sorted(self.options)) or "none"
                raise EdgeMTLError(
                    f"unknown option '{key}' for target '{self.name}'.{did_you_mean(key, self.options)} "
                    f"Valid options: {valid}"
                )
            choices = self.option_choices.get(key)
            if choices and value not in choices:
                raise EdgeMTLError(
                    f"option {key}={value!r} for target '{self.name}': valid values are "
                    f"{', '.join(map(str, choices))}"
                )
            out[key] = value
        return out

    def check_support(self, precision: str, scheme: str) -> None:
        if precision not in PRECISIONS:
            raise EdgeMTLError(
                f"unknown --precision '{precision}'.{did_you_mean(precision, PRECISIONS)} "
                f"Valid: {', '.join(PRECISIONS)}"
            )
        if precision not in self.precisions:
            why = self.unsupported_why.get(precision, "")
            raise UnsupportedError(
                f"target '{self.name}' does not support --precision {precision}{why}; "
                f"supported: {', '.join(self.precisions)}"
            )
        if scheme not in self.task_inputs:
            why = self.unsupported_why.get(scheme, "")
            raise UnsupportedError(
                f"target '{self.name}' does not support --task-input {scheme}{why}; "
                f"supported: {', '.join(self.task_inputs)}"
            )


def check_io(found: dict[str, dict[str, Any]], expected: dict[str, Any], where: str) -> list[str]:
    """Compare ``{method: {"inputs": [...], "outputs": [...]}}`` name/dtype/shape specs."""
    problems = []
    for method, spec in expected.items():
        if method not in found:
            problems.append(
                f"{where}: method/function '{method}' missing (found: {', '.join(found) or 'none'})"
            )
            continue
        for kind in ("inputs", "outputs"):
            want = [(s["name"], s["dtype"], list(s["shape"])) for s in spec[kind]]
            got = [(s["name"], s["dtype"], list(s["shape"])) for s in found[method][kind]]
            if want != got:
                problems.append(f"{where}: '{method}' {kind} are {got}, expected {want}")
    return problems
