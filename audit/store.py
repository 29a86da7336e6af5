"""The run store: one folder per run (`runs/<run id>/`), the only interface between the runner and
training (DESIGN.md). Files in a run folder: spec.json, provenance.json, status.json,
metrics.jsonl, eval-<step>.npz, checkpoints/, log.txt, output.txt (the process's terminal output),
result.json, and `lock`.

Claiming: a run is claimed by an exclusive `flock` on its `lock` file, held by the runner and
inherited by the training process it starts. The kernel drops the lock when the last holder
exits, so a runner or job that died leaves no stale lock behind (the stale-lock rule is the
kernel's: a lock whose holders are all dead is free), and a training process that outlives its
runner keeps the run claimed until it ends. `lock` also records who holds it, for people.
Works on local disks and on NFS mounts with working locks (Linux NFS maps flock to POSIX locks).

Run states: done (result.json and status finished), running (claimed), failed, diverged,
interrupted (started, not running, not finished), missing (no folder or nothing started).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from transfg.run_files import read_json, write_json

STATES = ("done", "running", "interrupted", "failed", "diverged", "missing")
SUMMARY = ".summaries.json"  # a cache of finished runs' results and labels (see `summaries`)
RESULT_KEYS = ("final_accuracy", "final_step", "best_accuracy", "best_step", "correct",
               "test_images", "train_images", "steps", "effective_batch", "images_per_s")


class StoreError(RuntimeError):
    pass


@dataclass
class Claim:
    """An exclusive claim on one run; `fd` is passed to the training process."""
    run_id: str
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing our copy; a child holding its copy keeps the lock
            self.fd = -1


class Store:
    def __init__(self, root: str | Path = "runs"):
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / run_id

    def run_ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and
                      not p.name.startswith("."))

    # ----------------------------------------------------------------------------- claiming
    def claim(self, run_id: str, owner: str = "") -> Claim | None:
        """Claim the run, or None when another process holds it."""
        folder = self.path(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        who = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "owner": owner,
                          "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, who.encode() + b"\n", 0)
        return Claim(run_id, fd)

    def is_claimed(self, run_id: str) -> bool:
        lock = self.path(run_id) / "lock"
        try:
            fd = os.open(lock, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # ----------------------------------------------------------------------------- state
    def state(self, run_id: str) -> str:
        folder = self.path(run_id)
        if not folder.exists():
            return "missing"
        if (folder / "result.json").exists() and self._status(folder) == "finished":
            return "done"
        if self.is_claimed(run_id):
            return "running"
        status = self._status(folder)
        if status in ("failed", "diverged"):
            return status
        if status is None and not (folder / "metrics.jsonl").exists():
            return "missing"
        return "interrupted"

    @staticmethod
    def _status(folder: Path) -> str | None:
        try:
            return read_json(folder / "status.json").get("status")
        except (FileNotFoundError, ValueError):
            return None

    def status(self, run_id: str) -> dict:
        try:
            return read_json(self.path(run_id) / "status.json")
        except (FileNotFoundError, ValueError):
            return {}

    def result(self, run_id: str) -> dict | None:
        try:
            return read_json(self.path(run_id) / "result.json")
        except (FileNotFoundError, ValueError):
            return None

    # ----------------------------------------------------------------------------- writing
    def prepare(self, run_id: str, spec_dict: dict) -> Path:
        """Write spec.json (atomically; paths on this machine may differ from an earlier
        attempt's, the id does not)."""
        folder = self.path(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "spec.json", spec_dict)
        return folder

    def reset_failed(self, run_id: str) -> None:
        """A failed or diverged run is tried again from its last checkpoint: its status goes."""
        (self.path(run_id) / "status.json").unlink(missing_ok=True)

    def _labels(self, run_id: str) -> dict:
        try:
            spec = json.loads((self.path(run_id) / "spec.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        notes = spec.get("notes") or {}
        return {"protocol": notes.get("protocol"), "arm": notes.get("arm"),
                "seed": notes.get("seed"), "framework": spec.get("framework"),
                "steps": (spec.get("train") or {}).get("steps")}

    def summaries(self, run_ids: list[str] | None = None, labels: bool = True
                  ) -> dict[str, dict]:
        """{run_id: {"state", "result" (result.json without its evaluations, or None),
        "status", "labels"}} for many runs at once, fast: a finished run never changes, so its
        summary is cached in `<store>/.summaries.json`, checked against result.json's mtime and
        size (one stat per run); the other runs are read live."""
        run_ids = self.run_ids() if run_ids is None else run_ids
        cache_path = self.root / SUMMARY
        try:
            cache = json.loads(cache_path.read_text())
        except (FileNotFoundError, ValueError):
            cache = {}
        out, changed = {}, False
        root = str(self.root)
        for run_id in run_ids:
            try:
                stat = os.stat(os.path.join(root, run_id, "result.json"))
                key = [stat.st_mtime_ns, stat.st_size]
            except FileNotFoundError:
                key = None
            entry = cache.get(run_id)
            if key is not None and entry is not None and entry["key"] == key:
                out[run_id] = entry
                continue
            state = self.state(run_id)
            result = self.result(run_id) if state == "done" else None
            entry = {"key": key, "state": state, "status": self.status(run_id),
                     "result": None if result is None else
                     {k: result.get(k) for k in RESULT_KEYS},
                     "labels": self._labels(run_id) if labels else {}}
            out[run_id] = entry
            if state == "done" and labels:
                cache[run_id] = entry
                changed = True
        if changed and self.root.exists():
            try:
                write_json(cache_path, cache)
            except OSError:  # a read-only store: the cache is an optimisation only
                pass
        return out

    def record_summary(self, run_id: str) -> None:
        """Add a just-finished run to the summary cache (the runner calls this), so that
        `audit status` never has to read its files. Serialised by a lock on the cache; a lost
        update only costs a re-read later."""
        lock = os.open(self.root / ".summaries.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.summaries([run_id])
        finally:
            os.close(lock)
