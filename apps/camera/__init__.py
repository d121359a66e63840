"""The camera/video demo app (``edgemtl demo camera``): OpenCV frames through an exported .onnx or .pte.

Loaded as a package by edgemtl.cli.demo.load_app("camera"); see apps/README.md.
"""

from .app import CameraApp, run_cli, run_headless, run_window
from .sources import Frame, open_source

__all__ = ["CameraApp", "Frame", "open_source", "run_cli", "run_headless", "run_window"]
