"""Make the screenshots in apps/README.md: both apps on one photo through one exported model.

    python apps/make_screenshots.py --model model.onnx --image photo.jpg --out apps/screenshots

The web app runs in headless Chromium (apps/web/tests/drive.mjs, as in tests/test_apps_web.py);
the camera app annotates the photo once per task, exactly as its video frames are drawn.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def web_shots(model: Path, image: Path, out: Path, tasks: list[str]) -> list[Path]:
    from edgemtl.cli.demo import load_app

    server, url = load_app("web").start_background(model)
    shots = []
    steps = [{"goto": url + "?threads=1"}, {"upload": str(image)}, {"overlay": 65}]
    for i, task in enumerate(tasks):
        if i:
            steps.append({"task": task})
        shots.append(out / f"web_{task}.png")
        steps.append({"screenshot": str(shots[-1])})
    errors = [
        {
            "name": "unknown_task",
            "steps": [
                {"goto": url + "?threads=1&task=saliency"},
                {"screenshot": str(out / "web_error_unknown_task.png")},
            ],
        }
    ]
    shots.append(out / "web_error_unknown_task.png")
    with tempfile.TemporaryDirectory() as tmp:
        plan = {
            "chromium": shutil.which("chromium") or "/usr/bin/chromium",
            "out": f"{tmp}/results.json",
            "viewport": {"width": 720, "height": 900},
            "scenarios": [{"name": "tasks", "steps": steps}, *errors],
        }
        Path(tmp, "plan.json").write_text(json.dumps(plan))
        try:
            subprocess.run(
                ["node", str(REPO / "apps/web/tests/drive.mjs"), f"{tmp}/plan.json"], check=True, cwd=REPO
            )
        finally:
            server.shutdown()
    return shots


def camera_shots(model: Path, image: Path, out: Path, tasks: list[str]) -> list[Path]:
    from edgemtl.cli.demo import load_app

    cam = load_app("camera")
    app = cam.CameraApp(model, threads=1)
    frame = cam.Frame(cv2.imread(str(image), cv2.IMREAD_COLOR), image.name)
    shots = []
    for task in tasks:
        app.select(app.tasks.index(task))
        for _ in range(5):  # a few runs, so FPS and the latency medians have numbers
            picture, _ = app.annotate(frame)
        shots.append(out / f"camera_{task}.png")
        cv2.imwrite(str(shots[-1]), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return shots


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path, help="an exported .onnx (manifest beside it)")
    p.add_argument("--image", required=True, type=Path, help="a photo")
    p.add_argument("--out", type=Path, default=REPO / "apps" / "screenshots")
    p.add_argument("--tasks", help="comma-separated tasks (default: all the model's)")
    args = p.parse_args(argv)
    from edgemtl import runtime

    tasks = args.tasks.split(",") if args.tasks else runtime.load(args.model).tasks
    args.out.mkdir(parents=True, exist_ok=True)
    shots = web_shots(args.model, args.image, args.out, tasks) + camera_shots(
        args.model, args.image, args.out, tasks[:2]
    )
    for s in shots:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
