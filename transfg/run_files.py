"""The files a training run writes into its folder, each written so that a kill at any moment
leaves either the old or the new version, never half of one (DESIGN.md, "Contracts").

- JSON files (status.json, result.json): temporary file in the same folder, fsync, rename.
- metrics.jsonl: one JSON line per update, appended and flushed; a reader ignores a last line
  cut short by a kill, and a resumed run first drops the lines past its checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Call write(file) on a temporary file beside `path`, fsync it, rename it onto `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; results and reports are for others to read
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_status(run_dir: Path, status: str, step: int, message: str = "") -> None:
    """status: running, finished, diverged or failed."""
    write_json(run_dir / "status.json", {"status": status, "step": step, "message": message,
                                         "updated": time.time(), "pid": os.getpid()})


def read_metrics(path: str | Path) -> list[dict]:
    """Every complete line of a metrics.jsonl (a line cut short by a kill is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


class MetricsLog:
    """Appends one JSON line per update to metrics.jsonl."""

    def __init__(self, path: str | Path, resume_step: int):
        self.path = Path(path)
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= resume_step]
        write_atomic(self.path, lambda f: f.writelines(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a")  # kept open for the whole run

    def append(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
