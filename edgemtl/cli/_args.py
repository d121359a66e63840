"""Argument types shared by subcommands."""

from __future__ import annotations

import argparse


def size_arg(text: str) -> tuple[int, int]:
    """``HxW`` -> (H, W), with an error that shows the expected form."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like HxW, e.g. 128x128 (got '{text}')") from None
    return h, w
