"""Serve the web demo with one exported model (``edgemtl demo web``), or write it as a static bundle.

The page needs no build step: this server hands out ``apps/web`` as it is, onnxruntime-web's
files from ``apps/web/node_modules`` under ``/ort/``, the model under ``/model/`` and a
``config.json`` naming it. It sends cross-origin isolation headers so ONNX Runtime Web may use
WebAssembly threads, and no-store so a re-exported model is picked up on reload.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from edgemtl.errors import EdgeMTLError

WEB = Path(__file__).resolve().parent
ORT_ENTRY = "ort.min.mjs"
# Only what the page loads: the entry module and the WebAssembly builds it may pick.
ORT_SUFFIXES = (".mjs", ".wasm")
STATIC = ("index.html", "bench.html", "style.css", "js")


def ort_dist(web: Path = WEB) -> Path:
    """onnxruntime-web's dist folder, or an error that says how to install it."""
    dist = web / "node_modules" / "onnxruntime-web" / "dist"
    if not (dist / ORT_ENTRY).is_file():
        # First use: the package install does not need node; the web demo installs its one npm
        # dependency (pinned by package-lock.json) when it is first served.
        import shutil
        import subprocess

        if not (web / "package-lock.json").is_file():
            raise EdgeMTLError(
                f"onnxruntime-web is not installed ({dist / ORT_ENTRY} is missing) and {web} has no "
                "package-lock.json to install it from: run npm ci --prefix apps/web in an edgemtl checkout"
            )
        npm = shutil.which("npm")
        if npm is None:
            raise EdgeMTLError(
                "the web demo needs onnxruntime-web from npm, and npm is not installed: install "
                "Node.js (e.g. apt-get install nodejs npm, or brew install node), then run "
                f"npm ci --prefix {web}"
            )
        print(f"installing onnxruntime-web (first use): npm ci --prefix {web}", flush=True)
        done = subprocess.run([npm, "ci", "--prefix", str(web)], capture_output=True, text=True)
        if done.returncode != 0 or not (dist / ORT_ENTRY).is_file():
            raise EdgeMTLError(
                f"npm ci --prefix {web} failed ({(done.stderr or done.stdout).strip()[-300:]}); "
                "run it yourself and retry"
            )
    return dist


def check_model(model: str | Path) -> Path:
    path = Path(model)
    if not path.is_file():
        raise EdgeMTLError(f"--model {model}: file not found")
    return path


def _handler(model: Path, dist: Path):
    manifest = Path(f"{model}.json")
    routes = {f"/model/{model.name}": model}
    if manifest.is_file():
        routes[f"/model/{manifest.name}"] = manifest
    config = json.dumps({"model": f"model/{model.name}"}).encode()

    class Handler(SimpleHTTPRequestHandler):
        extensions_map: ClassVar[dict[str, str]] = {
            **SimpleHTTPRequestHandler.extensions_map,
            ".mjs": "text/javascript",
            ".js": "text/javascript",
            ".wasm": "application/wasm",
            ".onnx": "application/octet-stream",
            ".json": "application/json",
        }

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(WEB), **kwargs)

        def end_headers(self) -> None:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def translate_path(self, path: str) -> str:
            url = unquote(urlsplit(path).path)
            if url in routes:
                return str(routes[url])
            if url.startswith("/ort/"):
                name = url[len("/ort/") :]
                if "/" not in name and name.endswith(ORT_SUFFIXES):
                    return str(dist / name)
                return str(dist / "__not_served__")
            top = url.lstrip("/").split("/", 1)[0]
            if url == "/" or top in STATIC:
                return super().translate_path(path)
            return str(WEB / "__not_served__")  # node_modules, tests, this file: 404

        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/config.json":
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(config)))
                self.end_headers()
                self.wfile.write(config)
                return
            super().do_GET()

        def log_message(self, format: str, *args) -> None:
            pass  # one line per file request would bury the URL the user needs

    return Handler


def make_server(
    model: str | Path, host: str = "127.0.0.1", port: int = 8000, web: Path = WEB
) -> ThreadingHTTPServer:
    """A server for the page and ``model`` (not started). ``port=0`` picks a free port."""
    model = check_model(model)
    dist = ort_dist(web)
    if not 0 <= int(port) <= 65535:
        raise EdgeMTLError(f"--port {port}: a port is 0..65535 (0 picks a free one)")
    try:
        server = ThreadingHTTPServer((host, port), _handler(model.resolve(), dist))
    except OSError as e:
        raise EdgeMTLError(
            f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); "
            "choose another port, or --port 0 for a free one"
        ) from None
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1") else host
    return f"http://{shown}:{port}/"


def start_background(
    model: str | Path, host: str = "127.0.0.1", port: int = 0
) -> tuple[ThreadingHTTPServer, str]:
    """Serve from a daemon thread (tests, scripts); ``server.shutdown()`` stops it."""
    server = make_server(model, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url_of(server)


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    server = make_server(model, host, port)
    # "Ctrl+C stops" must hold even when the parent started us with SIGINT ignored (a shell's
    # background job, a pytest-xdist worker): Python then installs no KeyboardInterrupt handler.
    # SIGTERM (service managers, `kill`) stops the server cleanly too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"edgemtl web demo: {url_of(server)}  (model {Path(model).name}; Ctrl+C stops)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            "note: browsers open the camera only on https:// or localhost; from another device over "
            "plain http, use Photo (or write a bundle with --bundle and host it over https)",
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def write_bundle(model: str | Path, out: str | Path, web: Path = WEB) -> Path:
    """Copy the page, onnxruntime-web and the model into ``out``: a folder any static host can serve."""
    model = check_model(model)
    dist = ort_dist(web)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeMTLError(f"--bundle {out}: that is a file; give a new or empty folder")
    if out.exists() and any(out.iterdir()):
        raise EdgeMTLError(f"--bundle {out}: folder exists and is not empty")
    final, out = out, out.parent / f".{out.name}.partial-{os.getpid()}"
    # Assembled beside the destination and renamed into place: an interrupted copy leaves no
    # half bundle that a static host would serve.
    shutil.rmtree(out, ignore_errors=True)
    try:
        (out / "ort").mkdir(parents=True, exist_ok=True)
        (out / "model").mkdir(exist_ok=True)
        shutil.copytree(web / "js", out / "js")
        for name in STATIC:
            if name != "js":
                shutil.copy2(web / name, out / name)
        for f in dist.iterdir():
            # The entry module and the JSEP WebAssembly build it loads (WASM and WebGPU providers).
            if f.name == ORT_ENTRY or f.name.startswith("ort-wasm-simd-threaded.jsep."):
                shutil.copy2(f, out / "ort" / f.name)
        shutil.copy2(model, out / "model" / model.name)
        if Path(f"{model}.json").is_file():
            shutil.copy2(f"{model}.json", out / "model" / f"{model.name}.json")
        (out / "config.json").write_text(json.dumps({"model": f"model/{model.name}"}))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        final.rmdir()  # empty (checked above)
    os.replace(out, final)
    return final
