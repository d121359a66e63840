"""Argument types shared by subcommands."""

from __future__ import annotations

import argparse


def size_arg(text: str) -> tuple[int, int]:
    """``HxW`` -> (H, W), with an error that shows the expected form."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like HxW, e.g. 128x128 (got '{text}')") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"height and width must be at least 1 (got '{text}')")
    return h, w


def sizes_arg(text: str) -> tuple[int, int] | list[tuple[int, int]]:
    """``HxW`` or ``HxW,HxW,...`` (mixed sizes) -> (H, W) or a list of them."""
    parts = [size_arg(t) for t in text.split(",")]
    return parts[0] if len(parts) == 1 else parts


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got '{text}')") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be at least {low} (got {v})")
    return v


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (e.g. a number of warm-up calls)."""
    return _int_at_least(text, 0)


def check_output_file(flag: str, path: str | None) -> None:
    """Refuse an output path that cannot be written before any work is done (a folder, a file where
    a folder has to be, a read-only folder): the error names the flag and the path."""
    import os
    from pathlib import Path

    from edgemtl.data.layout import file_in_the_way
    from edgemtl.errors import EdgeMTLError

    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise EdgeMTLError(f"{flag} {path}: is a folder; name a file")
    blocker = file_in_the_way(p.parent)
    if blocker is not None:
        raise EdgeMTLError(f"{flag} {path}: {blocker} is a file, not a folder; choose another path")
    folder = next((q for q in [p.parent, *p.parent.parents] if q.exists()), None)
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise EdgeMTLError(f"{flag} {path}: {folder} is not writable; choose another path")


def check_input_file(flag: str, path: str | None, what: str = "a file") -> None:
    """An input file that must exist (checked before the work that needs it at the end); ``what``
    the folder refusal asks for instead ("one image file")."""
    from pathlib import Path

    from edgemtl.errors import EdgeMTLError

    if not path:
        return
    if Path(path).is_dir():
        raise EdgeMTLError(f"{flag} {path}: is a folder; name {what}")
    if not Path(path).is_file():
        raise EdgeMTLError(f"{flag} {path}: file not found")
