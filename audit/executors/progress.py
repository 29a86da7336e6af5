"""The progress view of a whole run matrix: one line per run that starts or ends, and, on a
terminal, a live line with the running runs' steps, the count done and the time left."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from transfg.run_files import METRICS


def _last_step(run_dir: Path) -> int | None:
    try:
        with open(run_dir / METRICS, "rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - 4096, 0))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith('{"step": '):
            try:
                return int(line.split(",")[0].split(":")[1])
            except ValueError:
                continue
    return None


def duration(seconds: float, *, minutes: bool = False) -> str:
    """45s, 3m05s, 2h07m (`minutes`: a time under a minute in minutes too, 0m45s)."""
    seconds = int(seconds)
    if seconds < 60 and not minutes:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class Reporter:
    def __init__(self, total: int, slots: int, stream=None, live: bool | None = None):
        stream = stream or sys.stderr
        self.total, self.slots, self.stream = total, max(slots, 1), stream
        self.live = stream.isatty() if live is None else live
        self.lock = threading.Lock()
        self.running: dict[str, tuple[str, Path, int, float]] = {}
        self.ended = 0
        self.seconds: list[float] = []
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._ticker = None
        if self.live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def _write(self, line: str) -> None:
        with self.lock:
            if self.live:
                self.stream.write("\x1b[2K\r")
            self.stream.write(line + "\n")
            self.stream.flush()

    def note(self, line: str) -> None:
        self._write(line)

    def started(self, run_id: str, label: str, run_dir: Path, steps: int) -> None:
        with self.lock:
            self.running[run_id] = (label, run_dir, steps, time.monotonic())
        self._write(f"[{self.ended:>{len(str(self.total))}}/{self.total}] start  {label}  "
                    f"({run_id})")

    def finished(self, run_id: str, label: str, state: str, seconds: float, detail: str = ""
                 ) -> None:
        with self.lock:
            self.running.pop(run_id, None)
            self.ended += 1
            if state == "done":
                self.seconds.append(seconds)
        self._write(f"[{self.ended:>{len(str(self.total))}}/{self.total}] {state:<11} {label}"
                    f"  {duration(seconds)}" + (f"  {detail}" if detail else ""))

    def time_left(self) -> float | None:
        if not self.seconds:
            return None
        per_run = sum(self.seconds) / len(self.seconds)
        return per_run * (self.total - self.ended) / self.slots

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self.lock:
                running = list(self.running.values())
            parts = []
            for label, run_dir, steps, _ in running[:3]:
                step = _last_step(run_dir)
                parts.append(f"{label} {step or 0}/{steps}")
            if len(running) > 3:
                parts.append(f"+{len(running) - 3} more")
            left = self.time_left()
            line = (f"{self.ended}/{self.total} ended · {duration(time.monotonic() - self.start)}"
                    + (f" · ~{duration(left)} left" if left is not None else "")
                    + (" · running: " + ", ".join(parts) if parts else ""))
            with self.lock:
                self.stream.write("\x1b[2K\r" + line[:200])
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            with self.lock:
                self.stream.write("\x1b[2K\r")
                self.stream.flush()

