"""Frame sources: a camera index, a video file, one image or a folder of images."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgemtl.errors import EdgeMTLError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class Frame:
    """A BGR frame, or ``image=None`` with ``error`` saying why this item could not be read."""

    image: np.ndarray | None
    name: str
    error: str | None = None


class VideoSource:
    def __init__(self, cap: cv2.VideoCapture, name: str, live: bool) -> None:
        self.cap = cap
        self.name = name
        self.live = live  # a camera: no end, and a window should not wait between frames
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else None

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            ok, image = self.cap.read()
            if not ok:
                return
            yield Frame(image, f"{self.name} #{i}")
            i += 1

    def close(self) -> None:
        self.cap.release()


class FolderSource:
    live = False
    fps = None

    def __init__(self, files: list[Path], name: str) -> None:
        self.files = files
        self.name = name

    def __iter__(self) -> Iterator[Frame]:
        for f in self.files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                yield Frame(None, f.name, f"cannot read {f.name} as an image (corrupt or not an image)")
            else:
                yield Frame(image, f.name)

    def close(self) -> None:
        pass


@contextmanager
def _quiet_opencv():
    """OpenCV logs its own warnings for every backend it tries; our one-line error says it better."""
    from cv2.utils import logging as cvlog

    level = cvlog.getLogLevel()
    cvlog.setLogLevel(cvlog.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cvlog.setLogLevel(level)


def open_source(spec: str):
    """``--source``: a camera index (``0``), a video file, an image file or a folder of images."""
    if spec.isdigit():
        with _quiet_opencv():
            cap = cv2.VideoCapture(int(spec))
        if not cap.isOpened():
            raise EdgeMTLError(
                f"--source {spec}: cannot open camera {spec} (no such device, in use, or no permission)"
            )
        return VideoSource(cap, f"camera {spec}", live=True)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EdgeMTLError(f"--source {spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return FolderSource(files, path.name)
    if not path.is_file():
        raise EdgeMTLError(f"--source {spec}: no such file or folder (or give a camera index such as 0)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource([path], path.name)
    with _quiet_opencv():
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EdgeMTLError(f"--source {spec}: cannot open it as a video (unsupported or corrupt)")
    return VideoSource(cap, path.name, live=False)
