"""User-facing errors.

Everything a user can cause (bad flag, bad file, bad value) raises :class:`EdgeMTLError` with a
message that names the culprit and how to fix it. The CLI prints these without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeMTLError(Exception):
    """An error caused by user input; the message says what and how to fix it."""


class UnsupportedError(EdgeMTLError):
    """A combination that edgemtl deliberately does not support (e.g. a target x precision)."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return a ' Did you mean ...?' suffix for a mistyped name, or ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_choice(kind: str, value: str, choices: Iterable[str]) -> EdgeMTLError:
    """Build the standard 'unknown X' error listing valid choices and a suggestion."""
    choices = sorted(str(c) for c in choices)
    return EdgeMTLError(
        f"unknown {kind} '{value}'.{did_you_mean(value, choices)} Valid choices: {', '.join(choices)}"
    )
