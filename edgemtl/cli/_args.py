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


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got '{text}')") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {v})")
    return v
