"""``edgemtl predict``: run an exported artifact on one image and write the visualised prediction."""

from __future__ import annotations

import argparse

from edgemtl.cli._args import positive_int

NAME = "predict"
HELP = "run an exported .onnx/.pte model on an image for one task and write the visualisation (PNG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="an artifact from 'edgemtl export' (.onnx or .pte, manifest beside it)"
    )
    p.add_argument("--image", required=True, help="input image (PNG/JPEG/BMP)")
    p.add_argument("--task", required=True, help="task name (see the manifest's 'tasks')")
    p.add_argument("--out", required=True, help="output PNG (the task's colouring, same size as the image)")
    p.add_argument("--raw-out", help="also save the decoded prediction as .npy")
    p.add_argument("--threads", type=positive_int, help="runtime CPU threads (default: the runtime's choice)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2
    import numpy as np

    from edgemtl import runtime
    from edgemtl.data.layout import atomic_write_bytes, encode_png
    from edgemtl.errors import EdgeMTLError

    if not Path(args.image).is_file():
        raise EdgeMTLError(f"--image {args.image}: file not found")
    model = runtime.load(args.model, threads=args.threads)
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise EdgeMTLError(f"--image {args.image}: cannot read it as an image")
    pred = model.predict(np.ascontiguousarray(bgr[..., ::-1]), args.task)
    atomic_write_bytes(args.out, encode_png(model.visualize(pred)))
    if args.raw_out:
        import io

        buf = io.BytesIO()
        np.save(buf, pred["prediction"])
        atomic_write_bytes(args.raw_out, buf.getvalue())
    unit = f" ({pred['unit']})" if pred.get("unit") else ""
    print(f"{args.task}{unit}: wrote {args.out} [{model.backend.name}, {model.path.name}]")
    return 0
