"""Style is enforced, not suggested: ruff's lint rules and formatter (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["edgemtl", "tests", "apps", "benchmarks"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("command", [("check",), ("format", "--check")])
def test_ruff(command):
    proc = _ruff(*command)
    assert proc.returncode == 0, (
        f"ruff {' '.join(command)} failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"
    )
