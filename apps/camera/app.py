"""The camera/video app: frames from a camera, a video or images through one exported model.

Keys (window mode): 1-9 pick a task, n / p next / previous task, o cycles the overlay opacity,
[ and ] change it by 10 %, space pauses a video (or shows the next image of a folder), s saves a
snapshot PNG, q or Esc quits. The overlay is also a slider in the window.

Problems never end the app with a traceback: a model that is missing, corrupt or lacks the task,
an unreadable image or a failing frame are drawn on the frame and printed once as one line.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from edgemtl import runtime
from edgemtl.errors import EdgeMTLError

from . import hud
from .sources import FolderSource, Frame, open_source

WINDOW = "edgemtl camera"
OVERLAY_STEPS = (0.0, 0.3, 0.6, 1.0)
LATENCY_WINDOW = 30
WRITERS = {".mp4": "mp4v", ".avi": "MJPG"}  # what opencv-python-headless's FFmpeg can write here


class CameraApp:
    """State (model, task, overlay, timings) and the annotation of one frame; no I/O."""

    def __init__(
        self,
        model_path: str | Path,
        task: str | None = None,
        threads: int | None = None,
        overlay: float = 0.6,
    ) -> None:
        self.model = None
        self.model_error: str | None = None
        self.notice: str | None = None
        try:
            self.model = runtime.load(model_path, threads=threads)
        except EdgeMTLError as e:
            self.model_error = f"cannot use the model: {e}"
        except Exception as e:  # noqa: BLE001 (a runtime's own exception: still a message, not a crash)
            self.model_error = f"cannot use the model {model_path}: {type(e).__name__}: {e}"
        self.tasks: list[str] = list(self.model.tasks) if self.model else []
        self.index = 0
        if task is not None and self.model is not None:
            if task in self.tasks:
                self.index = self.tasks.index(task)
            else:
                have = ", ".join(self.tasks)
                self.notice = f"this model has no task '{task}' (it has: {have}); showing {self.tasks[0]}"
        self.alpha = float(overlay)
        self.latency: dict[str, deque] = {t: deque(maxlen=LATENCY_WINDOW) for t in self.tasks}
        self.frame_times: deque = deque(maxlen=LATENCY_WINDOW)
        self.size: tuple[int, int] | None = (
            None  # display size, fixed by the first frame so a video's frames match
        )
        self.backend = (
            f"{self.model.backend.name}, {Path(model_path).name}" if self.model else Path(model_path).name
        )

    @property
    def task(self) -> str | None:
        return self.tasks[self.index] if self.tasks else None

    def select(self, index: int) -> None:
        if self.tasks:
            self.index = index % len(self.tasks)
            self.notice = None

    def handle_key(self, key: int) -> bool:
        """Apply a key press; False means quit."""
        if key in (ord("q"), 27):
            return False
        if ord("1") <= key <= ord("9"):
            i = key - ord("1")
            if i < len(self.tasks):
                self.select(i)
        elif key == ord("n"):
            self.select(self.index + 1)
        elif key == ord("p"):
            self.select(self.index - 1)
        elif key == ord("o"):
            self.alpha = next((a for a in OVERLAY_STEPS if a > self.alpha + 1e-6), OVERLAY_STEPS[0])
        elif key == ord("["):
            self.alpha = max(0.0, round(self.alpha - 0.1, 2))
        elif key == ord("]"):
            self.alpha = min(1.0, round(self.alpha + 0.1, 2))
        return True

    def fps(self) -> float | None:
        if len(self.frame_times) < 2:
            return None
        span = self.frame_times[-1] - self.frame_times[0]
        return (len(self.frame_times) - 1) / span if span > 0 else None

    def medians(self) -> dict[str, float | None]:
        return {t: float(np.median(v)) if v else None for t, v in self.latency.items()}

    def annotate(self, frame: Frame, tick: bool = True) -> tuple[np.ndarray, str | None]:
        """The annotated BGR image for ``frame`` and the message drawn on it (None when all is well)."""
        if tick:
            self.frame_times.append(time.perf_counter())
        if self.size is None:
            self.size = (
                hud.display_size(frame.image.shape[1], frame.image.shape[0])
                if frame.image is not None
                else (640, 480)
            )
        shown = frame.image
        error = frame.error or self.model_error
        info = prediction = None
        if frame.image is None:
            shown = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        elif self.model is not None:
            try:
                t0 = time.perf_counter()
                pred = self.model.predict(np.ascontiguousarray(frame.image[..., ::-1]), self.task)
                self.latency[self.task].append(1000 * (time.perf_counter() - t0))
                info = self.model.metadata["task_info"][self.task]
                if info.get("decoding") == "boxes":  # boxes are drawn on the frame, not blended
                    rgb = np.ascontiguousarray(frame.image[..., ::-1])
                    shown = np.ascontiguousarray(self.model.visualize(pred, image=rgb)[..., ::-1])
                else:
                    shown = hud.blend(frame.image, self.model.visualize(pred), self.alpha)
                info = self.model.metadata["task_info"][self.task]
                prediction = pred["prediction"]
            except EdgeMTLError as e:
                error = str(e)
            except Exception as e:  # noqa: BLE001 (one bad frame must not end a live demo)
                error = f"{type(e).__name__}: {e}"
        error = error or self.notice
        image = hud.compose(
            shown,
            self.size,
            self.tasks,
            self.task,
            self.medians(),
            self.fps(),
            self.alpha,
            self.backend,
            info,
            prediction,
            error,
        )
        return image, error


class Reporter:
    """Prints each distinct message once, as one line."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, message: str | None, level: str = "warning") -> None:
        if message and message not in self.seen:
            self.seen.add(message)
            print(f"edgemtl demo camera: {level}: {message}", file=sys.stderr, flush=True)


def open_writer(out: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*WRITERS[out.suffix.lower()]), fps, size)
    if not writer.isOpened():
        raise EdgeMTLError(f"--out {out}: OpenCV cannot write this file (does the folder exist?)")
    return writer


def run_headless(
    app: CameraApp,
    source,
    out: Path,
    cycle: int = 0,
    max_frames: int | None = None,
    report: Reporter | None = None,
) -> tuple[int, tuple[int, int]]:
    """Annotate every frame into a video; ``cycle`` > 0 moves to the next task every that many frames."""
    report = report or Reporter()
    writer = None
    n = 0
    size = (0, 0)
    try:
        for frame in source:
            if max_frames is not None and n >= max_frames:
                break
            if cycle and n and n % cycle == 0:
                app.select(app.index + 1)
            image, message = app.annotate(frame)
            report(message)
            if writer is None:
                size = (image.shape[1], image.shape[0])
                writer = open_writer(out, source.fps or 10.0, size)
            writer.write(image)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n, size


def _open_window(app: CameraApp) -> None:
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        cv2.createTrackbar(
            "overlay %", WINDOW, round(app.alpha * 100), 100, lambda v: setattr(app, "alpha", v / 100)
        )
    except cv2.error:
        raise EdgeMTLError(
            "this OpenCV build has no window support (opencv-python-headless, which edgemtl pins): run with "
            "--headless --out annotated.mp4, or install a GUI build of the same version in its place "
            "(pip uninstall -y opencv-python-headless && pip install opencv-python==" + cv2.__version__ + ")"
        ) from None


def run_window(app: CameraApp, source, max_frames: int | None = None, report: Reporter | None = None) -> int:
    """Show the annotated frames in a window until the source ends or q is pressed."""
    report = report or Reporter()
    _open_window(app)
    frames = iter(source)
    folder = isinstance(source, FolderSource)
    frame = image = drawn_alpha = None
    n = snapshots = 0
    paused = False
    wait_ms = 1 if source.live or not source.fps else max(1, int(1000 / source.fps))
    try:
        while True:
            # A folder image or a paused video stays on screen and is redrawn only when a key or
            # the slider changes something, instead of rerunning the model 30 times a second.
            still = frame is not None and (folder or paused)
            if not still:
                if max_frames is not None and n >= max_frames:
                    break
                frame = next(frames, None)
                if frame is None:
                    break
                n += 1
                image = None
            if image is None or drawn_alpha != app.alpha:
                image, message = app.annotate(frame, tick=not still)
                drawn_alpha = app.alpha
                report(message)
                cv2.imshow(WINDOW, image)
            key = cv2.waitKey(30 if still else wait_ms) & 0xFF
            if key == 255:
                continue
            if key == ord("s"):
                snapshots += 1
                path = Path(f"edgemtl_snapshot_{snapshots}.png")
                cv2.imwrite(str(path), image)
                print(f"saved {path}", flush=True)
                continue
            image = None
            if key == ord(" "):
                if folder:
                    frame = None  # the next image
                else:
                    paused = not paused
            elif not app.handle_key(key):
                break
    finally:
        cv2.destroyAllWindows()
    return n


def run_cli(args) -> int:
    """``edgemtl demo camera``; returns the exit code (1 when the model could not be used)."""
    headless = args.headless or bool(args.out)
    out = Path(args.out) if args.out else None
    if headless and out is None:
        raise EdgeMTLError("--headless writes a video: add --out annotated.mp4 (or .avi)")
    if out is not None and out.suffix.lower() not in WRITERS:
        raise EdgeMTLError(f"--out {out}: use a .mp4 (mp4v) or .avi (MJPG) file name")
    if not 0.0 <= args.overlay <= 1.0:
        raise EdgeMTLError(f"--overlay {args.overlay}: must be between 0 and 1")
    if args.cycle < 0:
        raise EdgeMTLError(f"--cycle {args.cycle}: must be 0 (never) or a number of frames")
    source = open_source(args.source)
    report = Reporter()
    try:
        app = CameraApp(args.model, args.task, args.threads, args.overlay)
        report(app.model_error, "error")
        if headless:
            n, (w, h) = run_headless(app, source, out, args.cycle, args.max_frames, report)
            if n == 0:
                raise EdgeMTLError(f"--source {args.source}: no frames could be read")
            print(f"wrote {n} annotated frames ({w}x{h}) to {out}")
        else:
            run_window(app, source, args.max_frames, report)
    finally:
        source.close()
    return 1 if app.model is None else 0
