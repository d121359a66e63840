"""Every export checks itself: PyTorch (the same wrapper that was exported) vs the artifact, for
every task, on real images.

Numeric rule (fp32, fp16): for each task and image, ``max |artifact - pytorch| <= atol + rtol *
max |pytorch|`` over the task's channels of its output. The relative term keeps the bound
meaningful for outputs in metres or large logits; the absolute term for outputs near zero.

int8 rule: SQNR = 10 log10(sum ref^2 / sum (artifact - ref)^2) >= ``MIN_SQNR_DB`` (3 dB) per
task and image, where ref is the fake-quant model: the quantized PyTorch program (PT2E:
quantize/dequantize simulated in fp32) or, for ONNX Runtime's own quantizer, the same QDQ graph
run by ONNX Runtime with graph optimisations off (QDQ simulated in float). Integer kernels round differently
from the simulation (1 LSB, compounding over depth), so a tight bound would be wrong; SQNR also
stays meaningful across output scales.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemtl.artifact.signature import encode_task, select_output
from edgemtl.errors import EdgeMTLError
from edgemtl.export.wrapper import Graph

# precision -> (atol, rtol). fp32 artifacts differ from eager PyTorch by float re-association
# only (~1e-7 here; 1e-6..1e-5 for deep nets). fp16 applies to CoreML, whose numbers are checked
# through the fp32 program (no CoreML runtime on Linux), so it shares the fp32 bound.
# int8 hook: add ("int8": (atol, rtol)) when a target declares int8 (compare with the quantized
# PyTorch module, not the fp32 one).
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (1e-3, 1e-4), "fp16": (1e-3, 1e-4)}
# int8: the check proves the artifact is the right function (a swapped task or channel order gives
# about -3..0 dB), not that int8 is accurate enough: that is a metric question, answered by
# `edgemtl bench` on the test split through the runtime. Measured: 45-78 dB on the tiny random
# test models; on trained MobileNet-v2 models 6-19 dB (ORT's U8S8 quantizer vs fp32 on semseg
# logits: 6-8 dB; PT2E programs in ORT/ExecuTorch vs their simulation: 10-19 dB).
MIN_SQNR_DB = 3.0

Runner = Callable[[str, list[np.ndarray]], list[np.ndarray]]
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class VerificationError(EdgeMTLError):
    """An exported artifact does not match PyTorch (or its structure is not what was asked for)."""


def sample_images(
    images: str | os.PathLike | None = None, size: tuple[int, int] = (64, 64), n: int = 3
) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 HxWx3 RGB)``: the images in a folder, else ``n`` rendered synthetic scenes."""
    if images is None:
        from edgemtl.data.synth import render_scene

        return [(f"synth_{s}", render_scene(s, size, "pascal")["image"]) for s in range(n)]
    from edgemtl.data.layout import read_rgb

    root = Path(images)
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTS) if root.is_dir() else []
    if not files:
        raise EdgeMTLError(f"--images {root}: no {'/'.join(IMAGE_EXTS)} files in that folder")
    out = []
    for p in files[:n] if n > 0 else files:
        out.append((p.name, read_rgb(p, apply_orientation=True, what="--images")))
    return out


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``got`` against ``ref`` in dB (inf when identical)."""
    ref = ref.astype(np.float64)
    noise = float(((got.astype(np.float64) - ref) ** 2).sum())
    signal = float((ref**2).sum())
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")


def tolerance(precision: str) -> tuple[float, float]:
    if precision == "int8":
        return 0.0, 0.0  # unused: int8 is checked by SQNR
    if precision not in TOLERANCES:
        raise EdgeMTLError(
            f"no verification tolerance for precision '{precision}' (edgemtl.export.verify.TOLERANCES)"
        )
    return TOLERANCES[precision]


def numeric_parity(
    graphs: list[Graph],
    io: dict[str, Any],
    run: Runner,
    images: list[tuple[str, np.ndarray]],
    precision: str,
    runtime: str,
    task_info: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run every task on every image through PyTorch and ``run``; report max |Δ| per task/output
    (and ``boxes_matched`` for a task that decodes boxes, :func:`_boxes_matched`)."""
    from edgemtl.artifact.processing import preprocess

    if not images:
        raise EdgeMTLError(
            "the parity check needs at least one image (--num-images >= 1, --images with image files)"
        )
    modules = {g.method: g.reference if g.reference is not None else g.module for g in graphs}
    size = tuple(io["methods"][graphs[0].method]["inputs"][0]["shape"][2:])
    atol, rtol = tolerance(precision)
    int8 = precision == "int8"
    per_task: dict[str, Any] = {}
    failures = []
    for task in io["tasks"]:
        worst = {"max_abs_diff": 0.0, "tolerance": atol, "image": None}
        if int8:
            worst["sqnr_db"] = float("inf")
        info = (task_info or {}).get(task) or {}
        matched: list[float] = []
        for name, img in images:
            x = preprocess(img, size)
            method, extra = encode_task(io, task)
            with torch.no_grad():
                ref_out = modules[method](torch.from_numpy(x), *(torch.from_numpy(e) for e in extra))
            ref_list = [t.numpy() for t in (ref_out if isinstance(ref_out, tuple) else (ref_out,))]
            ref = select_output(io, task, ref_list)
            got = select_output(io, task, run(method, [x, *extra]))
            if got.shape != ref.shape:
                failures.append(
                    f"task '{task}' output '{io['task_outputs'][task]['output']}': shape "
                    f"{list(got.shape)} != PyTorch {list(ref.shape)}"
                )
                continue
            finite = bool(np.isfinite(got).all())
            diff = float(np.abs(got.astype(np.float64) - ref).max()) if finite else float("inf")
            if info.get("decoding") == "boxes" and finite:
                matched.append(_boxes_matched(got, ref, info))
            if int8:
                sq = sqnr_db(ref, got) if finite else float("-inf")
                if sq <= worst["sqnr_db"]:
                    worst = {"max_abs_diff": diff, "sqnr_db": sq, "min_sqnr_db": MIN_SQNR_DB, "image": name}
                if not sq >= MIN_SQNR_DB:
                    failures.append(
                        f"task '{task}' output '{io['task_outputs'][task]['output']}' "
                        f"(method '{method}'): SQNR {sq:.1f} dB < {MIN_SQNR_DB:g} dB against the "
                        f"PyTorch reference on image {name}"
                    )
                continue
            tol = atol + rtol * float(np.abs(ref).max())
            if diff >= worst["max_abs_diff"]:
                worst = {"max_abs_diff": diff, "tolerance": tol, "image": name}
            if not diff <= tol:
                failures.append(
                    f"task '{task}' output '{io['task_outputs'][task]['output']}' "
                    f"(method '{method}'): max |artifact - pytorch| = {diff:.3g} > tolerance "
                    f"{tol:.3g} on image {name}"
                )
        per_task[task] = {
            "output": io["task_outputs"][task]["output"],
            "method": io["task_outputs"][task]["method"],
            **worst,
            "images": len(images),
        }
        if matched:
            per_task[task]["boxes_matched"] = min(matched)
    if int8 and failures and "onnx" in runtime.lower():
        from edgemtl.profile.cpu import x86_without_vnni

        if x86_without_vnni():
            failures.append(
                "this x86 CPU has no VNNI: ONNX Runtime's int8 kernels sum uint8 x int8 products in "
                "int16 here and saturate with 8-bit weights. The ORT quantizer avoids it with "
                "--option reduce_range=true (the default on such hosts); a PT2E program runs exactly "
                "on ExecuTorch, or in ONNX Runtime on ARM / VNNI CPUs"
            )
    rule = (
        f"SQNR(artifact vs reference) >= {MIN_SQNR_DB:g} dB per task and image"
        if int8
        else "max|artifact-pytorch| <= atol + rtol*max|pytorch| per task and image"
    )
    return {
        "runtime": runtime,
        "precision_checked": precision,
        "atol": atol,
        "rtol": rtol,
        "rule": rule,
        "tasks": per_task,
        "failures": failures,
        "passed": not failures,
    }


def _boxes_matched(got: np.ndarray, ref: np.ndarray, info: dict[str, Any]) -> float:
    """The share of decoded detections the artifact and PyTorch have in common (same class, IoU >= 0.5,
    edgemtl.artifact.boxes.matched_fraction); the worst image's is reported. A figure, not a gate: the
    raw-output rule is the stricter check, and near-tied scores of an untrained head may reorder."""
    from edgemtl.artifact import boxes as box_ops

    n_cls, params = int(info["out_channels"]) - 5, box_ops.params(info)
    a, b = box_ops.decode(got, n_cls, **params), box_ops.decode(ref, n_cls, **params)
    return box_ops.matched_fraction(a, b, iou=0.5)


def raise_if_failed(
    report: dict[str, Any], artifact: str | os.PathLike, kept: str | os.PathLike | None = None
) -> None:
    problems = list(report.get("structure", {}).get("problems", [])) + list(
        report.get("numeric", {}).get("failures", [])
    )
    if problems:
        previous = f"; the previous {kept} is left as it was" if kept else ""
        raise VerificationError(
            f"export verification failed: the new artifact is kept as {artifact} for inspection (its "
            "manifest "
            f"records verification.passed=false){previous}:\n  " + "\n  ".join(problems)
        )
