"""The camera/video app (apps/camera) headless, on real exported .onnx and .pte artifacts.

The input is a short generated video of rendered scenes; the output video is read back with
OpenCV. Each scene is held for 4 frames and the app switches task every 2, so two neighbouring
frames with the same scene and different tasks show whether the task switch changes the picture.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from apps_support import ALL_TASKS, TWO_TASKS, artifact, scene, write_png

from edgemtl.cli import main as cli_main
from edgemtl.cli.demo import load_app

FRAMES = 12


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "scenes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(FRAMES):
        writer.write(np.ascontiguousarray(scene(20 + i // 4, (48, 64))[..., ::-1]))
    writer.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def view(frame: np.ndarray) -> np.ndarray:
    """The picture area of an annotated frame (below the task tabs, left of the side panel)."""
    hud = load_app("camera").app.hud
    return frame[hud.TOP + 2 : -2, 2 : frame.shape[1] - hud.PANEL - 2].astype(np.int16)


def red_banner(frame: np.ndarray) -> bool:
    """The error banner: its red (apart from the text) across the bottom of the picture area."""
    red = np.array(load_app("camera").app.hud.ERROR_RED, np.int16)
    bottom = view(frame)[-12:]
    return (np.abs(bottom - red).max(-1) < 30).mean() > 0.6


def camera(*args: str) -> int:
    return cli_main(["demo", "camera", *args])


@pytest.mark.slow
def test_headless_onnx_switches_tasks(tmp_path, tmp_path_factory, video, capsys):
    model = artifact(tmp_path_factory, "astmt.onnx")
    out = tmp_path / "annotated.mp4"
    assert (
        camera("--model", str(model), "--source", str(video), "--headless", "--out", str(out), "--cycle", "2")
        == 0
    )
    assert f"wrote {FRAMES} annotated frames" in capsys.readouterr().out
    frames = read_video(out)
    assert len(frames) == FRAMES
    # frames 1 and 2: same scene, semseg then depth; 5 and 6: normals then edges (tasks cycle every 2 frames)
    for a, b in ((1, 2), (5, 6), (9, 10)):
        assert np.abs(view(frames[a]) - view(frames[b])).mean() > 8, (a, b)
    # same scene and task, consecutive frames: only compression noise and the FPS readout change
    assert np.abs(view(frames[0]) - view(frames[1])).mean() < 3
    assert not any(red_banner(f) for f in frames)
    cv2.imwrite(str(tmp_path / "frame_depth.png"), frames[2])  # a look at the output, in the test's tmp dir


@pytest.mark.slow
def test_headless_pte_multi_output_model(tmp_path, tmp_path_factory, video):
    model = artifact(tmp_path_factory, "hs.pte")
    out = tmp_path / "annotated.avi"
    assert (
        camera(
            "--model",
            str(model),
            "--source",
            str(video),
            "--out",
            str(out),
            "--task",
            "depth",
            "--max-frames",
            "6",
            "--cycle",
            "3",
        )
        == 0
    )
    frames = read_video(out)
    assert len(frames) == 6
    # frame 2 (depth) and 3 (semseg, after one cycle: hs has 2 tasks) share a scene, so do 4 and 5
    assert np.abs(view(frames[4]) - view(frames[5])).mean() < 3
    assert np.abs(view(frames[2]) - view(frames[3])).mean() > 8
    assert list(TWO_TASKS) == ["semseg", "depth"]


@pytest.mark.slow
def test_image_folder_with_an_unreadable_image(tmp_path, tmp_path_factory, capsys):
    model = artifact(tmp_path_factory, "astmt.onnx")
    folder = tmp_path / "images"
    folder.mkdir()
    write_png(folder / "a.png", scene(30, (40, 40)))
    (folder / "b.png").write_bytes(b"not a png at all")
    write_png(folder / "c.png", scene(31, (60, 80)))  # another size: letterboxed into the first frame's
    out = tmp_path / "folder.mp4"
    assert (
        camera("--model", str(model), "--source", str(folder), "--out", str(out), "--task", "saliency") == 0
    )
    err = capsys.readouterr().err
    assert "cannot read b.png as an image" in err and "Traceback" not in err
    frames = read_video(out)
    assert len(frames) == 3
    assert [red_banner(f) for f in frames] == [False, True, False]


def test_model_without_the_task(tmp_path, tmp_path_factory, video, capsys):
    model = artifact(tmp_path_factory, "astmt.onnx")
    out = tmp_path / "t.mp4"
    assert (
        camera(
            "--model",
            str(model),
            "--source",
            str(video),
            "--out",
            str(out),
            "--task",
            "sky",
            "--max-frames",
            "2",
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "has no task 'sky'" in err and "semseg" in err and len(err.strip().splitlines()) == 1
    frames = read_video(out)
    assert len(frames) == 2 and all(red_banner(f) for f in frames)


@pytest.mark.parametrize("damage", ["missing", "truncated", "truncated_without_manifest"])
def test_broken_model_is_shown_not_raised(tmp_path, tmp_path_factory, video, capsys, damage):
    good = artifact(tmp_path_factory, "astmt.onnx")
    model = tmp_path / "model.onnx"
    if damage != "missing":
        model.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    if damage == "truncated":
        model.with_name("model.onnx.json").write_bytes(Path(f"{good}.json").read_bytes())
    out = tmp_path / "broken.mp4"
    assert camera("--model", str(model), "--source", str(video), "--out", str(out), "--max-frames", "3") == 1
    err = capsys.readouterr().err
    assert err.startswith("edgemtl demo camera: error: cannot use the model") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    frames = read_video(out)
    assert len(frames) == 3 and all(red_banner(f) for f in frames)  # the source still plays, with the message


def test_source_and_flag_errors(tmp_path, tmp_path_factory, capsys):
    model = str(artifact(tmp_path_factory, "astmt.onnx"))
    empty = tmp_path / "empty"
    empty.mkdir()
    not_video = tmp_path / "clip.mp4"
    not_video.write_bytes(b"\0" * 100)
    cases = [
        (["--source", str(tmp_path / "nope.mp4"), "--out", "x.mp4"], "no such file or folder"),
        (["--source", str(empty), "--out", "x.mp4"], "no images"),
        (["--source", str(not_video), "--out", str(tmp_path / "x.mp4")], "cannot open it as a video"),
        (["--source", "7", "--out", "x.mp4"], "cannot open camera 7"),
        (["--source", "0", "--headless"], "--out"),
        (["--source", "0", "--out", "x.gif"], "use a .mp4"),
        (["--source", "0", "--out", "x.mp4", "--overlay", "2"], "--overlay"),
    ]
    for extra, expected in cases:
        assert camera("--model", model, *extra) == 2, extra
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (extra, err)


def test_window_mode_without_gui_says_what_to_do(tmp_path_factory, video, capsys):
    """The pinned opencv-python-headless has no windows: the app says so and how to get one."""
    model = artifact(tmp_path_factory, "astmt.onnx")
    assert camera("--model", str(model), "--source", str(video)) == 2
    err = capsys.readouterr().err
    assert "--headless --out" in err and "opencv-python" in err and len(err.strip().splitlines()) == 1


def test_keys(tmp_path_factory):
    app = load_app("camera").CameraApp(
        artifact(tmp_path_factory, "astmt.onnx"), task="depth", threads=1, overlay=0.6
    )
    tasks = list(ALL_TASKS)
    assert app.task == "depth"
    assert app.handle_key(ord("n")) and app.task == "normals"
    assert app.handle_key(ord("p")) and app.handle_key(ord("p")) and app.task == "semseg"
    assert app.handle_key(ord("p")) and app.task == tasks[-1]  # wraps around
    assert app.handle_key(ord("5")) and app.task == tasks[4]
    assert app.handle_key(ord("9")) and app.task == tasks[4]  # no 9th task: unchanged
    assert app.handle_key(ord("o")) and app.alpha == 1.0
    assert app.handle_key(ord("o")) and app.alpha == 0.0
    assert app.handle_key(ord("]")) and app.alpha == pytest.approx(0.1)
    assert not app.handle_key(ord("q")) and not app.handle_key(27)
