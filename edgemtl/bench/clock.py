"""Stage timing with a progress bar and time estimates (quickstart and bench).

Estimates come from a reference run's stage times (``estimates``: stage key -> seconds), scaled
by how fast this machine has been so far relative to that reference.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from edgemtl.log import get_logger


def _fmt(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class StageClock:
    def __init__(
        self,
        planned: list[str] | None = None,
        estimates: dict[str, float] | None = None,
        progress: bool = True,
        stream: Any = None,
    ) -> None:
        self.planned = list(planned or [])
        self.estimates = dict(estimates or {})
        self.progress = progress
        self.stream = stream  # None: the edgemtl logger (edgemtl.log)
        self.records: list[dict[str, Any]] = []
        self.start = time.perf_counter()

    def _speed(self) -> float:
        """Actual / estimated time over the finished stages that had an estimate (1 = as the reference)."""
        # Stages that took under a second were cached or skipped (a rendered dataset, a reused
        # run): they say nothing about this machine's speed.
        done = [
            (r["seconds"], self.estimates[r["key"]])
            for r in self.records
            if r["key"] in self.estimates and r["seconds"] >= 1.0
        ]
        est = sum(e for _, e in done)
        return min(max(sum(a for a, _ in done) / est, 0.25), 8.0) if est > 0 else 1.0

    def remaining(self, after: str | None = None) -> float | None:
        finished = {r["key"] for r in self.records}
        todo = [k for k in self.planned if k not in finished and k != after]
        if not todo or not all(k in self.estimates for k in todo):
            return None
        return sum(self.estimates[k] for k in todo) * self._speed()

    def _bar(self, index: int, total: int, width: int = 24) -> str:
        filled = int(width * index / total) if total else 0
        return "[" + "#" * filled + "." * (width - filled) + "]"

    @contextmanager
    def stage(self, key: str, label: str):
        total = max(len(self.planned), len(self.records) + 1)
        index = len(self.records)
        if self.progress:
            est = self.estimates.get(key)
            est_txt = f"est. {_fmt(est * self._speed())}" if est is not None else "no estimate"
            left = self.remaining()
            left_txt = f", ~{_fmt(left)} left in all" if left is not None else ""
            self._say(
                f"{self._bar(index, total)} stage {index + 1}/{total}: {label} ({est_txt}; "
                f"{_fmt(time.perf_counter() - self.start)} elapsed{left_txt})"
            )
        t0 = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - t0
            self.records.append({"key": key, "label": label, "seconds": round(seconds, 2)})
            if self.progress:
                self._say(f"    done: {label} in {_fmt(seconds)}")

    def _say(self, message: str) -> None:
        if self.stream is None:
            get_logger(__name__).info(message)
        else:
            print(message, file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
