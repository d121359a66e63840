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


def _library_modules():
    import ast

    for path in sorted((ROOT / "edgemtl").rglob("*.py")):
        tree = ast.parse(path.read_text())
        yield path, tree


def test_the_library_logs_instead_of_printing():
    """Only the CLI writes to the terminal; library modules log through edgemtl.log, which an application
    can redirect or silence."""
    import ast

    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _library_modules()
        if "cli" not in path.relative_to(ROOT).parts
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
        # an explicit stream (file=...) is output the caller asked for, not a message behind its back
        and not any(k.arg == "file" for k in node.keywords)
    ]
    assert not offenders, f"print() in library code (use edgemtl.log.get_logger): {offenders}"


def test_no_function_grows_past_100_lines():
    """Long functions are split into named steps (they were 130-155 lines in sample_scene, run_suite and
    the trainer's setup)."""
    import ast

    long = [
        f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _library_modules()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 100
    ]
    assert not long, f"split these into named steps: {long}"


def test_library_messages_reach_the_current_stdout_and_can_be_silenced(capsys):
    import logging

    from edgemtl.log import get_logger

    log = get_logger("edgemtl.train.trainer")
    log.info("epoch 1/2 semseg=0.5")
    assert capsys.readouterr().out == "epoch 1/2 semseg=0.5\n"  # pytest swapped sys.stdout after import
    root = logging.getLogger("edgemtl")
    level = root.level
    root.setLevel(logging.WARNING)  # what an application does to keep edgemtl quiet
    try:
        log.info("hidden")
        assert capsys.readouterr().out == ""
    finally:
        root.setLevel(level)
