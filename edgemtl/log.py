"""edgemtl's progress and status messages go through the ``edgemtl`` logger, never ``print``.

A library must not write to the terminal behind its user's back. Applications can therefore send
these messages anywhere (``logging.getLogger("edgemtl")``: remove our handler, add theirs, raise
the level). By default they appear on standard output, as the CLI shows them. The handler looks
up ``sys.stdout`` at each message, so redirections made later (pytest's capture, a notebook)
still receive them.

Errors are not logged: they are raised as EdgeMTLError, and the CLI prints them as one line.
"""

from __future__ import annotations

import logging
import sys

ROOT = "edgemtl"


class _Stdout(logging.StreamHandler):
    """A StreamHandler bound to whatever ``sys.stdout`` is when a message is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def _configure() -> logging.Logger:
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _Stdout) for h in root.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False  # shown once, not again by an application's root handler
    return root


_configure()


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (pass ``__name__``): a child of ``edgemtl``."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")
