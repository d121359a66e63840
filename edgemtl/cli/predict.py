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
    p.add_argument(
        "--raw-out", help="also save the decoded prediction: .npy (maps), .json (detection: boxes in pixels)"
    )
    p.add_argument("--threads", type=positive_int, help="runtime CPU threads (default: the runtime's choice)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from edgemtl import runtime
    from edgemtl.cli._args import check_input_file
    from edgemtl.data.layout import atomic_write_bytes, encode_png, read_rgb
    from edgemtl.errors import EdgeMTLError

    check_input_file("--image", args.image, what="one image file")
    # Checked before the model loads: PNG bytes behind a .jpg name, or an .npy behind .txt, would be
    # files that other tools misread.
    if Path(args.out).suffix.lower() != ".png":
        raise EdgeMTLError(f"--out {args.out}: the visualisation is written as PNG; name a .png file")
    if args.raw_out and Path(args.raw_out).suffix.lower() not in (".npy", ".json"):
        raise EdgeMTLError(
            f"--raw-out {args.raw_out}: name a .npy file (maps) or a .json file (detection boxes)"
        )
    model = runtime.load(args.model, threads=args.threads)
    rgb = read_rgb(args.image, apply_orientation=True, what="--image")  # a photo, shown as viewers show it
    # (an unknown task is refused by predict() below, in one line)
    boxes = args.task in model.tasks and model.task_info(args.task).get("decoding") == "boxes"
    raw_suffix = Path(args.raw_out).suffix.lower() if args.raw_out else None
    if boxes and raw_suffix and raw_suffix != ".json":
        raise EdgeMTLError(f"--raw-out {args.raw_out}: detection predictions are boxes; name a .json file")
    if not boxes and raw_suffix and raw_suffix != ".npy" and args.task in model.tasks:
        raise EdgeMTLError(f"--raw-out {args.raw_out}: {args.task} predicts a map; name a .npy file")
    pred = model.predict(rgb, args.task)
    # boxes are drawn on the photo; maps are drawn on their own (as the task colours them)
    atomic_write_bytes(args.out, encode_png(model.visualize(pred, image=rgb if boxes else None)))
    if args.raw_out and boxes:
        from edgemtl.data.layout import json_text

        det = pred["prediction"]
        names = pred.get("class_names") or []
        items = [
            {"box": [round(float(v), 2) for v in b], "score": float(sc), "class": int(c),
             "name": names[int(c)] if int(c) < len(names) else None}
            for b, sc, c in zip(det["boxes"], det["scores"], det["labels"])
        ]  # fmt: skip
        atomic_write_bytes(args.raw_out, (json_text({"objects": items}, indent=1) + "\n").encode())
    elif args.raw_out:
        import io

        buf = io.BytesIO()
        np.save(buf, pred["prediction"])
        atomic_write_bytes(args.raw_out, buf.getvalue())
    unit = f" ({pred['unit']})" if pred.get("unit") else ""
    print(f"{args.task}{unit}: wrote {args.out} [{model.backend.name}, {model.path.name}]")
    return 0
