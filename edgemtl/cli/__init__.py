"""The ``edgemtl`` command line.

Each subcommand is one module in this package exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int | None``; modules are discovered, so adding a
subcommand is a one-file change. Heavy imports happen inside ``run`` to keep ``--help`` instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from edgemtl import __version__
from edgemtl.errors import EdgeMTLError, did_you_mean


def _commands() -> dict[str, ModuleType]:
    pkg = sys.modules[__name__]
    mods = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        mods[mod.NAME] = mod
    return dict(sorted(mods.items()))


class Parser(argparse.ArgumentParser):
    """argparse with 'did you mean' suggestions for mistyped subcommands and flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = ""
        if "invalid choice:" in message:
            bad = message.split("invalid choice:")[1].split("'")[1]
            choices = [a for act in self._actions if act.choices for a in act.choices]
            hint = did_you_mean(bad, choices)
        elif "unrecognized arguments:" in message:
            bad = message.split("unrecognized arguments:")[1].split()[0]
            flags = [o for act in self._actions for o in act.option_strings]
            hint = did_you_mean(bad.split("=")[0], flags)
            if "--set" in flags:  # `--epochs 3` is a recipe setting: say how to give it
                hint = _setting_hint(bad.split("=")[0].lstrip("-").replace("-", "_")) or hint
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}.{hint}\nRun '{self.prog} --help' for the full list.\n")


def _setting_hint(name: str) -> str:
    """' Use --set train.epochs=VALUE' when ``name`` is a train or model setting, else ''."""
    import dataclasses

    from edgemtl.models.config import ModelConfig
    from edgemtl.train.config import TrainConfig

    for section, cls in (("train", TrainConfig), ("model", ModelConfig)):
        if name in {f.name for f in dataclasses.fields(cls)}:
            return f" {name} is a recipe setting: use --set {section}.{name}=VALUE"
    return ""


def build_parser() -> Parser:
    parser = Parser(
        prog="edgemtl",
        description="Multi-task dense prediction networks from training to phones.",
    )
    parser.add_argument("--version", action="version", version=f"edgemtl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, mod in _commands().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.set_defaults(_run=mod.run, _parser=p)
        mod.add_arguments(p)
        # Nested parsers (e.g. `data synth`) register themselves as the one to report errors.
        for act in p._actions:
            for child in (act.choices or {}).values() if isinstance(act, argparse._SubParsersAction) else ():
                child.set_defaults(_parser=child)
    return parser


def quiet_third_party() -> None:
    """Keep the user's terminal for edgemtl's own output: torchao's "Failed to load ..._C_mxfp8" (CUDA
    kernels absent on CPU wheels), torch's pytree deprecation notes and ExecuTorch/torchao Python
    warnings say nothing a user can act on. ``--verbose`` or EDGEMTL_VERBOSE=1 shows them."""
    import logging
    import warnings

    for name in ("torchao", "torch.utils._pytree", "executorch", "coremltools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("executorch", "torchao", "torch", "coremltools", "onnxscript", "timm"):
        warnings.filterwarnings("ignore", module=module)
    # torch's pytree deprecation surfaces from copyreg when a TreeSpec is unpickled (CoreML export)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = build_parser()
    parser.add_argument(
        "--verbose", action="store_true", help="show third-party warnings and logs (also EDGEMTL_VERBOSE=1)"
    )
    args, extra = parser.parse_known_args(argv)
    if not (args.verbose or os.environ.get("EDGEMTL_VERBOSE") == "1"):
        quiet_third_party()
    if extra:
        # Report unknown flags from the innermost subcommand so the suggestion uses its flags.
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except EdgeMTLError as e:
        if os.environ.get("EDGEMTL_DEBUG") == "1":  # the chained traceback behind the one-line error
            raise
        print(f"edgemtl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable or missing path deep in a library: one line naming it
        if os.environ.get("EDGEMTL_DEBUG") == "1":
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(
            f"edgemtl {args.command}: error: cannot access{where}: {e.strerror or e} (check the path exists, "
            "is writable and the disk has space)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"edgemtl {args.command}: interrupted{_how_to_continue(args)}", file=sys.stderr)
        return 130


def _how_to_continue(args: argparse.Namespace) -> str:
    """What an interrupted command kept and how to go on from it."""
    if args.command == "train":
        from pathlib import Path

        out = getattr(args, "out", None)
        if out is None:
            return "; if an epoch had finished, the same command with --resume continues from its last.pt"
        if (Path(out) / "last.pt").is_file():
            return (
                f"; {Path(out) / 'last.pt'} holds the last finished epoch: run the same command with "
                "--resume to continue exactly where it stopped"
            )
        return "; no epoch had finished, so there is nothing to resume"
    if args.command == "bench":
        return (
            "; finished runs are kept: run the same command again to continue (a run resumes from "
            "its last.pt)"
        )
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
