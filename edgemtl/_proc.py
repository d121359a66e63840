"""Process helpers shared by the run lock, the export staging clean-up and the native runtimes."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (stale locks and staging files are
    recognised by their owner's pid being gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class NativeStderr:
    """Capture what native code writes to file descriptor 2 (ExecuTorch's cpuinfo probes print eight
    lines of "Failed to open midr file" on every x86 host the first time XNNPACK starts). ``text``
    holds it, and a failed load puts it into its error; with EDGEMTL_VERBOSE=1 nothing is captured."""

    def __enter__(self) -> NativeStderr:
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
