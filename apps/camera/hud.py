"""Drawing the annotated frame: the prediction over the frame, task tabs, FPS and latency, legend, errors.

Layout: a bar of task tabs on top, the frame (prediction blended over it) below it, a side panel
on the right. Everything is drawn with OpenCV into one BGR image, so the window and the headless
video show the same thing.
"""

from __future__ import annotations

import textwrap

import cv2
import numpy as np

from edgemtl.artifact.boxes import box_colour
from edgemtl.artifact.decoding import colormap, palette, visual_spec

TOP = 34
PANEL = 230
MIN_HEIGHT = 360
FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, ACCENT, BLACK = (240, 240, 240), (150, 150, 150), (255, 170, 60), (0, 0, 0)
ERROR_RED = (32, 32, 190)  # opaque: a message must stay readable over any picture
BG = (30, 26, 22)
PALETTE = palette(256)


def ascii_text(s: str) -> str:
    return s.encode("ascii", "replace").decode()  # Hershey fonts draw ASCII only


def text(
    img: np.ndarray, s: str, org: tuple[int, int], colour=WHITE, scale: float = 0.45, thick: int = 1
) -> None:
    cv2.putText(img, ascii_text(s), org, FONT, scale, colour, thick, cv2.LINE_AA)


def display_size(w: int, h: int) -> tuple[int, int]:
    """Frames are shown at least 480 px high (small model-size inputs would be unreadable) and at most
    960 wide."""
    scale = 480 / h
    if w * scale > 960:
        scale = 960 / w
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Letterbox ``img`` into ``size`` (w, h), keeping its aspect ratio."""
    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(
        img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    )
    return out


def blend(frame_bgr: np.ndarray, vis_rgb: np.ndarray, alpha: float) -> np.ndarray:
    vis = np.ascontiguousarray(vis_rgb[..., ::-1])
    return cv2.addWeighted(frame_bgr, 1.0 - alpha, vis, alpha, 0.0)


def error_banner(img: np.ndarray, message: str) -> None:
    """A red box at the bottom of ``img`` with the message wrapped to its width."""
    width = max(20, img.shape[1] // 9)
    lines = textwrap.wrap(ascii_text(message), width)[:6]
    h = 14 + 20 * len(lines)
    y0 = img.shape[0] - h
    img[y0:] = ERROR_RED
    for i, line in enumerate(lines):
        text(img, line, (8, y0 + 22 + 20 * i), WHITE, 0.5, 1)


def tabs(img: np.ndarray, tasks: list[str], current: str | None) -> None:
    x = 6
    for i, t in enumerate(tasks):
        label = f"{i + 1} {t}" if i < 9 else t
        (tw, _), _ = cv2.getTextSize(label, FONT, 0.5, 1)
        on = t == current
        cv2.rectangle(img, (x, 5), (x + tw + 14, TOP - 5), ACCENT if on else (70, 62, 55), -1)
        text(img, label, (x + 7, TOP - 12), BLACK if on else WHITE, 0.5, 1)
        x += tw + 20
    if x < img.shape[1] - 200:
        text(img, "keys: 1-9 n p task  o overlay  q quit", (x + 10, TOP - 12), GREY, 0.42)


def colour_bar(img: np.ndarray, x: int, y: int, w: int, lo: str, hi: str) -> int:
    bar = colormap(np.linspace(0.0, 1.0, w, dtype=np.float32), 0.0, 1.0)[None, :, ::-1]
    img[y : y + 14, x : x + w] = np.repeat(bar, 14, axis=0)
    text(img, lo, (x, y + 30), GREY, 0.42)
    (tw, _), _ = cv2.getTextSize(hi, FONT, 0.42, 1)
    text(img, hi, (x + w - tw, y + 30), GREY, 0.42)
    return y + 52


def legend(
    img: np.ndarray, x: int, y: int, task: str, info: dict, prediction: np.ndarray | dict | None
) -> None:
    """The key to the colours of ``task``, from its manifest entry's visual spec (class swatches, a
    colour bar over the declared range, or the task's legend text)."""
    spec = visual_spec({"name": task, **info})
    w = PANEL - 24
    if spec["style"] == "boxes" and isinstance(prediction, dict):
        names = info.get("class_names") or []
        keep = [i for i, sc in enumerate(prediction["scores"]) if sc >= 0.3]
        for i in keep[:8]:
            c = int(prediction["labels"][i])
            colour = box_colour(c)[::-1]  # BGR
            cv2.rectangle(img, (x, y - 11), (x + 14, y + 3), colour, -1)
            name = names[c] if c < len(names) else f"class {c}"
            text(img, f"{name} {float(prediction['scores'][i]):.2f}", (x + 22, y), WHITE, 0.45)
            y += 20
        text(img, f"{len(keep)} boxes (score >= 0.3)", (x, y), GREY, 0.42)
    elif spec["style"] == "palette" and prediction is not None:
        names = info.get("class_names") or []
        ids, counts = np.unique(prediction, return_counts=True)
        order = np.argsort(-counts)[:8]
        for k in order:
            c = int(ids[k])
            colour = tuple(int(v) for v in PALETTE[c % 256][::-1])
            cv2.rectangle(img, (x, y - 11), (x + 14, y + 3), colour, -1)
            name = names[c] if c < len(names) else f"class {c}"
            text(img, f"{name} {100 * counts[k] / prediction.size:.0f}%", (x + 22, y), WHITE, 0.45)
            y += 20
    elif spec["style"] == "colormap":
        lo, hi = (float(v) for v in spec.get("range", (0.0, 1.0)))
        unit = info.get("unit") or ""
        short = " m" if unit == "metres" else ""
        text(img, f"{task} ({unit})" if short else f"{task} {unit}".strip(), (x, y), WHITE, 0.45)
        y = colour_bar(img, x, y + 8, w, f"{lo:g}{short}", f"{hi:g}{short}")
        if prediction is not None and short:
            text(
                img,
                f"here: {float(prediction.min()):.2f} - {float(prediction.max()):.2f}{short}",
                (x, y),
                GREY,
                0.42,
            )
    else:
        for line in [f"{task}:", *str(spec.get("legend") or spec["style"]).split(", ")]:
            text(img, line, (x, y), WHITE, 0.45)
            y += 20


def panel(
    img: np.ndarray,
    x0: int,
    tasks: list[str],
    current: str | None,
    latency: dict[str, float | None],
    fps: float | None,
    alpha: float,
    backend: str,
    info: dict | None,
    prediction: np.ndarray | dict | None,
) -> None:
    x = x0 + 12
    text(img, f"FPS {fps:.1f}" if fps else "FPS -", (x, TOP + 24), WHITE, 0.6, 2)
    text(img, backend, (x, TOP + 46), GREY, 0.42)
    text(img, "latency, median ms:", (x, TOP + 72), GREY, 0.42)
    y = TOP + 92
    for t in tasks:
        ms = latency.get(t)
        colour = ACCENT if t == current else WHITE
        text(img, t, (x, y), colour, 0.45)
        text(img, f"{ms:.1f}" if ms is not None else "-", (x + 140, y), colour, 0.45)
        y += 18
    text(img, f"overlay {alpha:.0%}", (x, y + 8), GREY, 0.42)
    if current and info is not None:
        legend(img, x, y + 40, current, info, prediction)


def compose(
    frame: np.ndarray,
    size: tuple[int, int],
    tasks: list[str],
    current: str | None,
    latency: dict[str, float | None],
    fps: float | None,
    alpha: float,
    backend: str,
    info: dict | None = None,
    prediction: np.ndarray | dict | None = None,
    error: str | None = None,
) -> np.ndarray:
    """One annotated BGR image: ``frame`` (already blended) letterboxed to ``size`` plus tabs and panel."""
    fw, fh = size
    h = max(fh, MIN_HEIGHT) + TOP
    out = np.full((h, fw + PANEL, 3), BG, np.uint8)
    view = fit(frame, (fw, fh))
    if error:
        error_banner(view, error)
    out[TOP : TOP + fh, :fw] = view
    tabs(out, tasks, current)
    panel(out, fw, tasks, current, latency, fps, alpha, backend, info, prediction)
    return out
