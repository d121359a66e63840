"""One writer per run folder: ``<out>/.lock`` holds the pid and host of the ``edgemtl train`` using it.

Two runs with the same ``--out`` would overwrite each other's checkpoints and interleave
``metrics.jsonl``. The second one is refused; a lock left by a dead process (kill -9, power loss) is
recognised by its pid and taken over.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from edgemtl._proc import pid_alive
from edgemtl.errors import EdgeMTLError


class RunLock:
    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / ".lock"
        self.held = False

    def acquire(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner.get("pid") == me["pid"] and owner.get("host") == me["host"]:
                    self.held = True  # re-entrant within one process (e.g. a Trainer built twice)
                    return self
                if owner is not None and (
                    owner.get("host") != me["host"] or pid_alive(int(owner.get("pid", -1)))
                ):
                    raise EdgeMTLError(
                        f"{self.path.parent} is in use by another edgemtl run (pid {owner.get('pid')} on "
                        f"{owner.get('host')}): wait for it to finish, or choose another --out. If that run "
                        "is "
                        f"gone, delete {self.path}"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process died without releasing it
                continue
            except PermissionError:
                raise EdgeMTLError(
                    f"--out {self.path.parent}: cannot write there (permission denied); "
                    "choose a writable folder"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise EdgeMTLError(f"cannot take the lock {self.path}; delete it if no edgemtl run uses that folder")

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
        except (OSError, ValueError):
            return None  # half-written or unreadable: treat as stale

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner is None or owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False
