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
