"""Thin, uniform wrappers over the on-device runtimes available on a desktop:
``run(method, inputs) -> outputs`` with numpy arrays in and out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgemtl.errors import EdgeMTLError, UnsupportedError


class OrtBackend:
    """ONNX Runtime, CPU provider. ``threads`` sets intra-op threads (None: ORT's default)."""

    name = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        src = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (ORT raises its own types: InvalidProtobuf, Fail, ...)
            where = "ONNX model" if isinstance(model, bytes) else str(model)
            raise EdgeMTLError(f"cannot load {where} with onnxruntime (truncated or corrupt?): {str(e)[:300]}") from None
        self.threads = threads
        self.methods = ["forward"]
        self._names = [i.name for i in self.session.get_inputs()]

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if method != "forward":
            raise EdgeMTLError(f"an ONNX model has one graph ('forward'), not '{method}'")
        return self.session.run(None, dict(zip(self._names, inputs)))


class _NativeStderr:
    """Capture what native code writes to file descriptor 2 (ExecuTorch's cpuinfo probes print eight
    lines of "Failed to open midr file" on every x86 host the first time XNNPACK starts). ``text``
    holds it, and a failed load puts it into its error; with EDGEMTL_VERBOSE=1 nothing is captured."""

    def __enter__(self) -> _NativeStderr:
        import sys
        import tempfile

        self.text = ""
        self._verbose = os.environ.get("EDGEMTL_VERBOSE") == "1"
        if self._verbose:
            return self
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._verbose:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode(errors="replace").strip()
        self._tmp.close()


def set_executorch_threads(threads: int | None) -> None:
    """ExecuTorch's CPU threadpool is process-wide: this affects every loaded program."""
    if threads:
        from executorch.extension.pybindings import portable_lib

        with _NativeStderr():  # it prints "Resetting threadpool to N threads."
            portable_lib._unsafe_reset_threadpool(int(threads))


class EtBackend:
    """ExecuTorch runtime (portable + XNNPACK kernels). Methods are loaded on first use."""

    name = "executorch"

    def __init__(self, program: str | os.PathLike | bytes, threads: int | None = None) -> None:
        from executorch.runtime import Runtime

        set_executorch_threads(threads)
        self.threads = threads
        src = program if isinstance(program, bytes) else Path(program)
        try:
            self.program = Runtime.get().load_program(src)
        except Exception as e:  # noqa: BLE001 (each runtime raises its own types)
            raise EdgeMTLError(f"cannot load ExecuTorch program {'' if isinstance(program, bytes) else program} "
                               f"(truncated or corrupt?): {str(e)[:300]}") from None
        self.methods = sorted(self.program.method_names)
        self._loaded: dict = {}

    @staticmethod
    def require_backend(name: str) -> None:
        """Fail at load time, not at the first call, when a delegate is not compiled into this runtime."""
        from executorch.runtime import Runtime

        registry = Runtime.get().backend_registry
        if not registry.is_available(name):
            raise UnsupportedError(
                f"this program is delegated to {name}, which this ExecuTorch runtime does not have "
                f"(available: {', '.join(registry.registered_backend_names)}); "
                + ("run it on Apple hardware (iOS/macOS ExecuTorch with the CoreML backend)" if "CoreML" in name else "")
            )

    def run(self, method: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        if method not in self._loaded:
            native = _NativeStderr()
            try:
                with native:
                    self._loaded[method] = self.program.load_method(method)
            except Exception as e:  # noqa: BLE001 (each runtime raises its own types)
                msg = (str(e) + (f" [{native.text[-300:]}]" if native.text else ""))[:600]
                hint = (" (a CoreML-delegated .pte runs on Apple platforms only)" if "CoreML" in msg or "0x:20" in msg
                        else "")
                raise EdgeMTLError(f"cannot load method '{method}' of the ExecuTorch program{hint}: {msg}") from None
        outs = self._loaded[method].execute([torch.from_numpy(np.ascontiguousarray(a)) for a in inputs])
        return [o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in outs]


def open_backend(path: str | os.PathLike, threads: int | None = None, delegate: str | None = None):
    """A backend for the artifact at ``path``; ``delegate`` (e.g. CoreMLBackend) must be available."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return OrtBackend(path, threads)
    if suffix == ".pte":
        if delegate:
            EtBackend.require_backend(delegate)
        return EtBackend(path, threads)
    if suffix == ".mlpackage":
        raise UnsupportedError(
            f"{path}: CoreML packages run on Apple platforms only (coremltools cannot predict on Linux); "
            "use the .onnx or .pte export here, and Core ML / coremltools on macOS or iOS"
        )
    raise EdgeMTLError(f"{path}: unknown artifact type '{suffix}' (expected .onnx, .pte or .mlpackage)")
