"""``edgemtl demo``: the on-device demo apps in ``apps/`` driving one exported artifact.

The apps live beside the package in the source checkout (``apps/web``, ``apps/camera``), not in
the wheel: they are programs to run and read, and the web app needs its npm install.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from edgemtl.errors import EdgeMTLError

NAME = "demo"
HELP = "on-device demo apps: web (ONNX Runtime Web in the browser) | camera (OpenCV, .onnx or .pte)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="app", metavar="APP", required=True, parser_class=type(p))
    w = sub.add_parser("web", help="serve the web app (apps/web) and one .onnx model on localhost")
    w.add_argument(
        "--model",
        required=True,
        help="an .onnx artifact from 'edgemtl export' (its .json manifest beside it is served too)",
    )
    w.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    w.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 reaches phones on the LAN, camera needs "
        "https there)",
    )
    w.add_argument(
        "--bundle",
        metavar="DIR",
        help="instead of serving, write the page, ONNX Runtime Web and the model "
        "to DIR for any static (https) host",
    )
    c = sub.add_parser(
        "camera", help="OpenCV app: webcam, video file or image folder through an .onnx/.pte model"
    )
    c.add_argument(
        "--model", required=True, help="an .onnx or .pte artifact from 'edgemtl export' (manifest beside it)"
    )
    c.add_argument(
        "--source",
        default="0",
        help="camera index (default 0), a video file, an image file or a folder of images",
    )
    c.add_argument("--task", help="task to start with (default: the model's first)")
    c.add_argument("--headless", action="store_true", help="no window: write the annotated frames to --out")
    c.add_argument("--out", help="annotated video (.mp4 or .avi) for --headless")
    c.add_argument(
        "--cycle",
        type=int,
        default=0,
        metavar="N",
        help="switch to the next task every N frames (default 0: never; keys switch tasks in a window)",
    )
    c.add_argument(
        "--max-frames",
        type=int,
        metavar="N",
        help="stop after N frames (default: the whole source; a camera runs until q)",
    )
    c.add_argument(
        "--overlay", type=float, default=0.6, help="prediction opacity over the frame, 0..1 (default 0.6)"
    )
    c.add_argument("--threads", type=int, help="runtime CPU threads (default: the runtime's choice)")


def app_dir(name: str) -> Path:
    folder = Path(__file__).resolve().parents[2] / "apps" / name
    if not folder.is_dir():
        raise EdgeMTLError(
            f"the {name} demo app is not at {folder}: the apps live in the edgemtl source "
            "checkout; install edgemtl from a clone with pip install -e ."
        )
    return folder


def load_app(name: str) -> ModuleType:
    """``web`` -> apps/web/serve.py; ``camera`` -> the apps/camera package."""
    key = f"edgemtl_demo_{name}"
    if key in sys.modules:
        return sys.modules[key]
    folder = app_dir(name)
    if name == "web":
        spec = importlib.util.spec_from_file_location(key, folder / "serve.py")
    else:
        # As a package, so the app's modules import each other relatively.
        spec = importlib.util.spec_from_file_location(
            key, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def run(args: argparse.Namespace) -> int:
    if args.app == "web":
        web = load_app("web")
        if args.bundle:
            out = web.write_bundle(args.model, args.bundle)
            print(
                f"wrote the web app and {Path(args.model).name} to {out}: serve that folder over https "
                "(phones allow the camera only on https or localhost)"
            )
            return 0
        web.serve(args.model, args.host, args.port)
        return 0
    if args.app == "camera":
        return load_app("camera").run_cli(args)
    raise EdgeMTLError(f"unknown app {args.app}")
