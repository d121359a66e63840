"""The command line: help, suggestions, errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgemtl.cli import build_parser, main


def test_help_lists_every_subcommand_with_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    parser = build_parser()
    names = [a for act in parser._actions if getattr(act, "choices", None) for a in act.choices]
    assert {"data", "eval", "profile", "train"} <= set(names)
    for n in names:
        assert f"    {n}" in out


def test_unknown_subcommand_and_flag_suggest(capsys):
    assert (
        subprocess.run([sys.executable, "-m", "edgemtl", "evl"], capture_output=True, text=True).stderr.count(
            "Did you mean 'eval'?"
        )
        == 1
    )
    r = subprocess.run(
        [sys.executable, "-m", "edgemtl", "data", "synth", "--out", "x", "--nmu", "3"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Did you mean '--num'?" in r.stderr


def test_user_errors_have_no_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgemtl",
            "eval",
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "checkpoint not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["profile", "single_task_mnv2", "--size", "0x0", "--no-latency"],
            "--size: height and width must be at least 1",
        ),
        (["profile", "single_task_mnv2", "--threads", "-1"], "--threads: must be at least 1"),
        (["profile", "README.md"], "README.md: not something edgemtl profile reads"),
        (["profile", "model.mlpackage"], "CoreML packages run on Apple platforms only"),
        (
            ["export", "--checkpoint", "m.pt", "--target", "onnx", "--out", "m.onnx", "--num-images", "0"],
            "--num-images: must be at least 1",
        ),
        (["bench", "--suite", "nyud-lik"], "--suite nyud-lik: not a file nor a suite in"),
        (
            ["export", "--checkpoint", "m.pt", "--profile", "onnx_fp3", "--out", "m.onnx"],
            "Did you mean 'onnx_fp32'?",
        ),
        (["profile", "astmt_mnv"], "recipe astmt_mnv: not a file nor a recipe in"),
    ],
)
def test_bad_numbers_and_files_are_named(argv, message):
    r = subprocess.run([sys.executable, "-m", "edgemtl", *argv], capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_parity_check_refuses_an_empty_image_list():
    from edgemtl.errors import EdgeMTLError
    from edgemtl.export.verify import numeric_parity

    with pytest.raises(EdgeMTLError, match="at least one image"):
        numeric_parity([], {}, lambda m, x: x, [], "fp32", "onnxruntime")


@pytest.mark.parametrize(
    "flag_argv, text, message",
    [
        (lambda f: ["bench", "--suite", f], "a: [1", "invalid YAML"),
        (lambda f: ["bench", "--suite", f], "- 1", "a suite is a mapping with keys"),
        (
            lambda f: ["export", "--checkpoint", "m.pt", "--profile", f, "--out", "m.onnx"],
            "- 1",
            "a profile is a mapping of",
        ),
        (lambda f: ["profile", f], "a: [1", "invalid YAML"),
        (lambda f: ["profile", f], "- 1", "a recipe is a mapping with sections"),
    ],
)
def test_broken_yaml_files_are_named(tmp_path, flag_argv, text, message):
    f = tmp_path / "broken.yaml"
    f.write_text(text)
    r = subprocess.run([sys.executable, "-m", "edgemtl", *flag_argv(str(f))], capture_output=True, text=True)
    assert r.returncode == 2 and f"{f}: {message}" in r.stderr and "Traceback" not in r.stderr, r.stderr
