"""The web app (apps/web) end to end in real headless Chromium with onnxruntime-web (WebAssembly).

One node run (apps/web/tests/drive.mjs, playwright-core driving Debian's chromium) covers every
scenario; the tests below check what it recorded against the Python runtime (edgemtl.runtime on
ONNX Runtime) for the same images. Nothing is mocked and nothing downloads a browser: chromium
and apps/web/node_modules come from the README's install command, and their absence is a failure.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from apps_support import ALL_TASKS, PHOTO, TWO_TASKS, artifact, read_rgb, scene, write_png

from edgemtl import runtime
from edgemtl.cli import main as cli_main
from edgemtl.cli.demo import load_app
from edgemtl.errors import EdgeMTLError

# A real Chromium driving the demo: minutes, so not in the daily tier (`-m "not slow"`).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "apps" / "web"
LARGE_TASKS = ("parts", "depth", "normals", "edges")  # each decoding, after resizing back
INSTALL = (
    "install them with the README's install command (npm ci --prefix apps/web, and apt-get install -y "
    "chromium)"
)


def browser_tools() -> tuple[str, str]:
    """Paths of chromium and node; a test failure (not a skip) naming what is missing."""
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    node = shutil.which("node")
    missing = [] if chromium else ["Debian's chromium (apt-get install -y chromium)"]
    if not node:
        missing.append("node and npm (apt-get install -y nodejs npm)")
    for pkg in ("onnxruntime-web", "playwright-core"):
        if not (WEB / "node_modules" / pkg / "package.json").is_file():
            missing.append(f"{pkg} in apps/web/node_modules (npm ci --prefix apps/web)")
    if missing:
        pytest.fail(f"the web app test needs {'; '.join(missing)}: {INSTALL}", pytrace=False)
    return chromium, node


def png_rgb(data_url: str) -> np.ndarray:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def static_server(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A plain static server (no special headers), as a phone would get from any web host."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://localhost:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web_run(tmp_path_factory):
    """Everything the browser does, in one node run; returns the inputs, servers' models and the records."""
    chromium, node = browser_tools()
    tmp = tmp_path_factory.mktemp("web")
    model = artifact(tmp_path_factory, "astmt.onnx")
    hs = artifact(tmp_path_factory, "hs.onnx")
    images = {
        "small": scene(11, (32, 32)),
        "large": scene(12, (72, 96)),  # model size; area-shrunk 2.25x / 3x
        "photo": read_rgb(PHOTO),
    }  # a real photo (72x96), every task
    paths = {k: write_png(tmp / f"{k}.png", v) for k, v in images.items()}
    (tmp / "not_an_image.png").write_text("this is text, not a PNG")
    # Corrupt artifacts: cut in half without a manifest (the ONNX reader sees it), and cut in half
    # beside the real manifest (the sha256 in the manifest sees it).
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "truncated.onnx").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    (bad / "replaced.onnx").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    shutil.copy(f"{model}.json", bad / "replaced.onnx.json")
    bundle = tmp / "bundle"
    assert cli_main(["demo", "web", "--model", str(model), "--bundle", str(bundle)]) == 0

    web = load_app("web")
    servers = [web.start_background(m) for m in (model, hs, bad / "truncated.onnx", bad / "replaced.onnx")]
    servers.append(static_server(bundle))
    url, hs_url, trunc_url, repl_url, bundle_url = (u for _, u in servers)
    shots = tmp / "screenshots"
    shots.mkdir()
    # The CI box has 2 cores: one WASM thread leaves one for the rest. WebAssembly is asked for by
    # name here; the "webgpu" scenario takes the default choice, which finds SwiftShader's adapter.
    t1 = "?threads=1&ep=wasm"
    main_steps = [{"goto": url + t1}, {"message": "loaded"}, {"upload": str(paths["small"])}]
    for i, task in enumerate(ALL_TASKS):
        if i:
            main_steps.append({"task": task})
        main_steps.append({"collect": f"small/{task}"})
    main_steps += [{"screenshot": str(shots / "web_parts.png")}]
    main_steps += [{"upload": str(paths["large"])}]
    for task in LARGE_TASKS:
        main_steps += [{"task": task}, {"collect": f"large/{task}"}]
    main_steps += [{"upload": str(paths["photo"])}]
    for task in ALL_TASKS:
        main_steps += [{"task": task}, {"collect": f"photo/{task}"}]
    main_steps += [
        {"upload": str(tmp / "not_an_image.png")},
        {"message": "not_an_image"},
        {"collect": "after_bad_image"},
        {"camera": 3, "screenshot_while": str(shots / "web_camera.png")},
        {"message": "after_camera"},
    ]
    plan = {
        "chromium": chromium,
        "out": str(tmp / "results.json"),
        "timeout_ms": 90000,
        "scenarios": [
            {"name": "main", "steps": main_steps},
            {
                "name": "unknown_task",
                "steps": [
                    {"goto": url + t1 + "&task=sky"},
                    {"message": "m"},
                    {"screenshot": str(shots / "web_unknown_task.png")},
                ],
            },
            {
                "name": "missing_model",
                "steps": [{"goto": url + t1 + "&model=model/missing.onnx"}, {"message": "m"}],
            },
            {
                "name": "truncated_model",
                "steps": [
                    {"goto": trunc_url + t1},
                    {"message": "m"},
                    {"screenshot": str(shots / "web_corrupt_model.png")},
                ],
            },
            {"name": "replaced_model", "steps": [{"goto": repl_url + t1}, {"message": "m"}]},
            {
                "name": "scheme_all",
                "steps": [
                    {"goto": hs_url + t1},
                    {"message": "loaded"},
                    {"upload": str(paths["small"])},
                    {"collect": "semseg"},
                    {"task": "depth"},
                    {"collect": "depth"},
                ],
            },
            {
                "name": "bundle",
                "steps": [
                    {"goto": bundle_url + "?ep=wasm"},
                    {"message": "loaded"},
                    {"upload": str(paths["small"])},
                    {"collect": "semseg"},
                    {"bench": bundle_url + "bench.html?ep=wasm&runs=2&warmup=0&warmup_ms=0", "key": "bench"},
                ],
            },
            {  # the benchmark page (benchmarks/export_latency.py web): WASM threads, WebGPU, one call
                "name": "bench",
                "steps": [
                    {
                        "bench": url + "bench.html?ep=wasm&threads=2&runs=3&warmup=1&warmup_ms=400",
                        "key": "wasm2",
                    },
                    {"bench": url + "bench.html?ep=webgpu&runs=2&warmup=1&warmup_ms=0", "key": "webgpu"},
                    {
                        "bench": hs_url + "bench.html?ep=wasm&threads=1&runs=2&warmup=0&warmup_ms=0",
                        "key": "all",
                    },
                    {"bench": url + "bench.html?ep=wasm&runs=0", "key": "bad_runs"},
                ],
            },
            {
                "name": "webgpu",
                "steps": [
                    {"goto": url + "?threads=1"},
                    {"message": "loaded"},
                    {"upload": str(paths["small"])},
                    {"collect": "semseg"},
                ],
            },
        ],
        # WebGPU on the CPU (SwiftShader), so the WebGPU path runs without a GPU.
        "args": [
            "--enable-unsafe-webgpu",
            "--enable-unsafe-swiftshader",
            "--use-webgpu-adapter=swiftshader",
            "--enable-features=Vulkan",
            "--use-angle=swiftshader",
        ],
    }
    (tmp / "plan.json").write_text(json.dumps(plan))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [node, str(WEB / "tests" / "drive.mjs"), str(tmp / "plan.json")],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
    finally:
        for server, _ in servers:
            server.shutdown()
    assert proc.returncode == 0, f"browser run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((tmp / "results.json").read_text())
    print(f"browser run: {time.perf_counter() - t0:.1f} s; screenshots in {shots}")
    return {"results": results, "images": images, "model": model, "hs": hs, "shots": shots}


def _tol(ref: np.ndarray) -> float:
    return 1e-3 + 1e-4 * float(np.abs(ref).max())  # edgemtl.export.verify's fp32 rule


def test_no_page_crashed(web_run):
    for name, rec in web_run["results"].items():
        assert rec["page_errors"] == [], f"{name}: uncaught errors in the page: {rec['page_errors']}"


def test_every_task_matches_the_python_runtime(web_run):
    rec = web_run["results"]["main"]
    assert rec["messages"]["loaded"]["state"] == "ready" and rec["messages"]["loaded"]["tasks"] == list(
        ALL_TASKS
    )
    rt = runtime.load(web_run["model"], threads=1)
    image = web_run["images"]["small"]
    for task in ALL_TASKS:
        got = rec["collected"][f"small/{task}"]
        res = got["result"]
        assert got["task"] == task and res["task"] == task
        pred = rt.predict(image, task)
        raw = np.asarray(res["raw"], np.float32).reshape(res["C"], res["h"], res["w"])
        assert raw.shape == pred["raw"].shape
        diff = np.abs(raw - pred["raw"]).max()
        assert diff <= _tol(pred["raw"]), f"{task}: browser raw output differs from ONNX Runtime by {diff}"
        if task == "detection":  # the page decodes boxes as edgemtl.artifact.boxes does; draws them
            _same_boxes(res, pred, image.shape[:2], iou=0.99, share=0.98)
            assert (png_rgb(got["prediction_png"]) > 0).any(), "no box drawn"
            continue
        canvas = png_rgb(got["prediction_png"])
        same = (canvas == rt.visualize(pred)).all(-1).mean()
        assert same >= 0.995, (
            f"{task}: only {same:.1%} of the canvas pixels equal edgemtl.runtime's visualize()"
        )
        assert res["ms"] > 0 and got["backend"] == "wasm"
        row = next(r for r in got["latency"] if r[0] == task)
        assert float(row[1]) > 0 and int(row[3]) >= 1  # the latency readout shows this task's runs


def _same_boxes(res: dict, pred: dict, hw: tuple[int, int], iou: float, share: float) -> None:
    """The page's detections (fractions of the image) against edgemtl.runtime's (pixels)."""
    from edgemtl.artifact import boxes

    dets = res["detections"]
    assert dets, "the page decoded no boxes"
    page = boxes.to_pixels(
        {
            "boxes": np.asarray([d["box"] for d in dets], np.float32),
            "scores": np.asarray([d["score"] for d in dets], np.float32),
            "labels": np.asarray([d["label"] for d in dets], np.int64),
        },
        hw,
    )
    ref = pred["prediction"]
    assert abs(len(page["boxes"]) - len(ref["boxes"])) <= max(2, 0.02 * len(ref["boxes"]))
    got = boxes.matched_fraction(page, ref, iou=iou)
    assert got >= share, f"only {got:.1%} of the page's boxes match edgemtl.runtime's"


def test_canvases_differ_between_tasks(web_run):
    rec = web_run["results"]["main"]["collected"]
    canv = {t: png_rgb(rec[f"small/{t}"]["prediction_png"]).astype(np.int16) for t in ALL_TASKS}
    tasks = list(canv)
    for i, a in enumerate(tasks):
        for b in tasks[i + 1 :]:
            assert np.abs(canv[a] - canv[b]).mean() > 1.0, f"{a} and {b} look the same"
    comp = {t: png_rgb(rec[f"small/{t}"]["composite_png"]).astype(np.int16) for t in ("semseg", "depth")}
    assert np.abs(comp["semseg"] - comp["depth"]).mean() > 1.0


def test_legends(web_run):
    rec = web_run["results"]["main"]["collected"]
    semseg = rec["small/semseg"]["legend"]
    assert any(name in semseg for name in ALL_TASKS["semseg"]["class_names"]) and "%" in semseg
    assert "depth (metres)" in rec["small/depth"]["legend"] and "10.0 m" in rec["small/depth"]["legend"]
    assert "RGB" in rec["small/normals"]["legend"]
    assert "saliency probability" in rec["small/saliency"]["legend"]
    assert "boxes (score >= 0.3)" in rec["small/detection"]["legend"]


@pytest.mark.parametrize("kind, tasks", [("large", LARGE_TASKS), ("photo", ALL_TASKS)])
def test_larger_image_agrees_loosely(web_run, kind, tasks):
    """72x96 -> 32x32 (area) and back (bilinear): the page reproduces OpenCV's resizing in JS, on a
    rendered scene and on a real photo."""
    rec = web_run["results"]["main"]["collected"]
    rt = runtime.load(web_run["model"], threads=1)
    image = web_run["images"][kind]
    outs = []
    for task in tasks:
        res = rec[f"{kind}/{task}"]["result"]
        assert (res["height"], res["width"]) == image.shape[:2]
        pred = rt.predict(image, task)
        raw = np.asarray(res["raw"], np.float32).reshape(res["C"], res["h"], res["w"])
        assert np.abs(raw - pred["raw"]).max() <= 10 * _tol(pred["raw"]), task
        shown = png_rgb(rec[f"{kind}/{task}"]["prediction_png"])
        if task == "detection":  # the page's resize differs slightly from OpenCV's: boxes nearly agree
            _same_boxes(res, pred, image.shape[:2], iou=0.8, share=0.8)
            outs.append(shown)
            continue
        same = (shown == rt.visualize(pred)).all(-1).mean()
        assert same >= 0.98, f"{task}: {same:.1%} of the pixels agree"
        outs.append(shown)
    assert all((a != b).any() for a, b in zip(outs, outs[1:])), "every task draws something different"


def test_error_messages_on_screen(web_run):
    res = web_run["results"]
    m = res["unknown_task"]["messages"]["m"]
    assert m["state"] == "ready" and "no task 'sky'" in m["message"] and "semseg" in m["message"]
    m = res["missing_model"]["messages"]["m"]
    assert m["state"] == "error" and "model file not found" in m["message"] and "missing.onnx" in m["message"]
    m = res["truncated_model"]["messages"]["m"]
    assert m["state"] == "error" and "truncated.onnx" in m["message"] and "truncated" in m["message"]
    m = res["replaced_model"]["messages"]["m"]
    assert m["state"] == "error" and "sha256" in m["message"] and "replaced.onnx" in m["message"]
    m = res["main"]["messages"]["not_an_image"]
    assert m["state"] == "ready" and "cannot read not_an_image.png as an image" in m["message"]
    # the page still holds the previous image and result after the unreadable one
    assert (
        res["main"]["collected"]["after_bad_image"]["result"]["task"] == list(ALL_TASKS)[-1]
    )  # the photo's last task


def test_camera_frames_run_through_the_model(web_run):
    cam = web_run["results"]["main"]["camera"]
    assert cam["message"] == "" and cam["runs"] >= 3
    assert cam["result"]["task"] == list(ALL_TASKS)[-1] and cam["result"]["width"] > 0
    assert web_run["results"]["main"]["messages"]["after_camera"]["state"] == "ready"


def test_multi_output_model(web_run):
    """A hard-sharing export (task input scheme 'all': one output per task, no task input)."""
    rec = web_run["results"]["scheme_all"]
    assert rec["messages"]["loaded"]["tasks"] == list(TWO_TASKS)
    rt = runtime.load(web_run["hs"], threads=1)
    for task in TWO_TASKS:
        res = rec["collected"][task]["result"]
        pred = rt.predict(web_run["images"]["small"], task)
        raw = np.asarray(res["raw"], np.float32).reshape(res["C"], res["h"], res["w"])
        assert np.abs(raw - pred["raw"]).max() <= _tol(pred["raw"]), task


def test_webgpu_when_available(web_run):
    """With an adapter (here SwiftShader's), the default choice is WebGPU, and it agrees with Python."""
    rec = web_run["results"]["webgpu"]["collected"]["semseg"]
    assert rec["backend"] == "webgpu"
    pred = runtime.load(web_run["model"], threads=1).predict(web_run["images"]["small"], "semseg")
    res = rec["result"]
    raw = np.asarray(res["raw"], np.float32).reshape(res["C"], res["h"], res["w"])
    assert np.abs(raw - pred["raw"]).max() <= _tol(pred["raw"])


def test_benchmark_page(web_run):
    """bench.html measures load, every task and all tasks; the demo server's COOP/COEP headers make
    the page cross-origin isolated, so WebAssembly runs the threads asked for."""
    got = web_run["results"]["bench"]["collected"]
    wasm, gpu, one_call = (got[k]["result"] for k in ("wasm2", "webgpu", "all"))
    assert got["wasm2"]["error"] is None and wasm["backend"] == "wasm"
    assert wasm["cross_origin_isolated"] is True and wasm["threads"] == 2
    assert list(wasm["tasks"]) == list(ALL_TASKS) and wasm["graphs"] == "conditional"
    for r in [*wasm["tasks"].values(), wasm["all_tasks"]]:
        assert 0 < r["median_ms"] <= r["p90_ms"] and r["runs"] == len(r["times_ms"]) == 3
        assert min(r["times_ms"]) <= r["median_ms"] <= max(r["times_ms"])
    assert wasm["session_ms"] > 0 and wasm["bytes"] == web_run["model"].stat().st_size
    # The warm-up: at least one round over the tasks and at least warmup_ms (V8's optimised code).
    assert wasm["warmup_ms"] >= 400 and wasm["warmup_calls"] >= len(ALL_TASKS)
    assert wasm["warmup_calls"] % len(ALL_TASKS) == 0 and one_call["warmup_calls"] == 0
    # T calls for a one-hot graph: slower than any one of them.
    assert wasm["all_tasks"]["median_ms"] > max(r["median_ms"] for r in wasm["tasks"].values())
    assert gpu["backend"] == "webgpu" and gpu["threads"] is None and set(gpu["tasks"]) == set(ALL_TASKS)
    assert one_call["task_input"] == "all" and one_call["threads"] == 1
    assert got["bad_runs"]["result"] is None and "give runs >= 1" in got["bad_runs"]["error"]
    # A plain static host sends no isolation headers: one WebAssembly thread, and the page says so.
    plain = web_run["results"]["bundle"]["collected"]["bench"]["result"]
    assert plain["cross_origin_isolated"] is False and plain["threads"] == 1


def test_static_bundle_runs_without_the_server(web_run):
    """``--bundle`` output served by a plain static server (no isolation headers: one WASM thread)."""
    rec = web_run["results"]["bundle"]
    assert rec["messages"]["loaded"]["state"] == "ready"
    main = web_run["results"]["main"]["collected"]["small/semseg"]["result"]["raw"]
    assert np.allclose(rec["collected"]["semseg"]["result"]["raw"], main, atol=1e-4)


def test_screenshots_saved(web_run):
    for name in ("web_parts.png", "web_camera.png", "web_unknown_task.png", "web_corrupt_model.png"):
        shot = cv2.imread(str(web_run["shots"] / name))
        assert shot is not None and shot.shape[1] >= 700, name


def test_turbo_table_matches_matplotlib():
    from edgemtl.artifact.decoding import colormap

    text = (WEB / "js" / "turbo.js").read_text()
    values = [
        int(v) for v in text.split("[", 1)[1].split("]", 1)[0].replace("\n", " ").split(",") if v.strip()
    ]
    lut = np.asarray(values, np.uint8).reshape(256, 3)
    centres = (np.arange(256, dtype=np.float32) + 0.5) / 256
    assert (colormap(centres, 0.0, 1.0) == lut).all()


def test_cli_serves_page_model_and_runtime(tmp_path_factory):
    model = artifact(tmp_path_factory, "astmt.onnx")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgemtl", "demo", "web", "--model", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "http://localhost:" in line, line + proc.stderr.read()
        url = line.split()[3]

        def get(path: str):
            try:
                with urllib.request.urlopen(url + path, timeout=10) as r:
                    return r.status, r.read(), r.headers  # case-insensitive names
            except urllib.error.HTTPError as e:
                return e.code, b"", e.headers

        status, body, headers = get("")
        assert (
            status == 200 and b"edgemtl" in body and headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        )
        assert json.loads(get("config.json")[1]) == {"model": f"model/{model.name}"}
        assert get(f"model/{model.name}")[1] == model.read_bytes()
        assert json.loads(get(f"model/{model.name}.json")[1])["tasks"] == list(ALL_TASKS)
        status, _, headers = get("ort/ort.min.mjs")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert get("node_modules/onnxruntime-web/package.json")[0] == 404
        assert get("serve.py")[0] == 404
    finally:
        proc.send_signal(signal.SIGINT)
        # Generous: on a loaded 2-core CI box the interpreter may take a while to get scheduled.
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_cli_user_errors(tmp_path, capsys, tmp_path_factory):
    assert cli_main(["demo", "web", "--model", str(tmp_path / "nope.onnx")]) == 2
    err = capsys.readouterr().err
    assert (
        "nope.onnx: file not found" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    )
    web = load_app("web")
    model = artifact(tmp_path_factory, "astmt.onnx")
    with pytest.raises(EdgeMTLError, match=r"npm ci --prefix apps/web"):
        web.make_server(model, port=0, web=tmp_path)
    server, _ = web.start_background(model)
    try:
        port = server.server_address[1]
        assert cli_main(["demo", "web", "--model", str(model), "--port", str(port)]) == 2
        assert f"--port {port}" in capsys.readouterr().err
    finally:
        server.shutdown()
    assert cli_main(["demo", "web", "--model", str(model), "--port", "70000"]) == 2
    assert "--port 70000: a port is 0..65535" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli_main(["demo", "web", "--model", str(model), "--bundle", str(tmp_path / "afile")]) == 2
    assert "that is a file" in capsys.readouterr().err
    out = web.write_bundle(model, tmp_path / "sub" / "bundle")
    assert (out / "config.json").is_file() and not [
        p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")
    ]
