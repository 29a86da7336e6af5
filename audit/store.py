"""The run store: one folder per run (`runs/<run id>/`), the only interface between the runner and
training (docs/design.md, "The run folder"). Files in a run folder: spec.json, provenance.json,
status.json, metrics.jsonl, eval-<step>.npz, checkpoints/, log.txt, output.txt (the process's
terminal output), result.json, and `lock`; transfg/run_files.py reads and checks each.

Claiming: a run is claimed by an exclusive `flock` on its `lock` file, held by the runner and
inherited by the training process it starts. The kernel drops the lock when the last holder
exits, so a runner or job that died leaves no stale lock behind (the stale-lock rule is the
kernel's: a lock whose holders are all dead is free), and a training process that outlives its
runner keeps the run claimed until it ends. `lock` also records who holds it, for people.
Works on local disks and on NFS mounts with working locks (Linux NFS maps flock to POSIX locks).

Run states (`inspect`), one integrity rule:
- done: result.json passes its checks (fields, types, accuracies in [0, 1], consistent with its
  evaluations), the predictions of its final and best evaluations (eval-<step>.npz, which the
  paired tests read) pass theirs, its final checkpoint opens as one, and spec.json still
  hashes, with the fingerprints in provenance.json, to the folder's run id. A status.json that
  disagrees is then only a note (`audit run` rewrites it).
- corrupt: a result.json that fails those checks, a status.json that is unreadable or says
  finished without a result, or damage the training process found when it resumed (a status
  with `damaged`): the file and what is wrong are in `problem`. `audit run` moves the folder
  aside into `.damaged/` (never deletes it) and runs the run again.
- running (claimed), failed, diverged, interrupted (started, not running, not finished), missing
  (no folder, or nothing started).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from transfg.run_files import (
    CHECKPOINT,
    LOCK,
    METRICS,
    PROVENANCE,
    RESULT,
    SPEC,
    STATUS,
    RunFileError,
    eval_name,
    eval_step,
    load_object,
    read_eval,
    read_provenance,
    read_result,
    read_status,
    write_json,
)
from transfg.spec import read_spec

STATES = ("done", "running", "interrupted", "failed", "diverged", "corrupt", "missing")
SUMMARY = ".summaries.json"  # a cache of finished runs' results and labels (see `summaries`)
SUMMARY_VERSION = 3
DAMAGED = ".damaged"  # where corrupt run folders are moved aside
# The files a finished run's summary is made of (and the eval files its result names): a cached
# summary is used only while none of them has changed since (see `file_keys`).
SUMMARISED = (RESULT, SPEC, STATUS, PROVENANCE)
RESULT_KEYS = ("final_accuracy", "final_step", "best_accuracy", "best_step", "correct",
               "test_images", "train_images", "steps", "effective_batch", "images_per_s")


@dataclass
class RunLease:
    """An exclusive claim on one run (its `lock` file held under `flock`); `fd` is passed to the
    training process. (Not `audit.protocol.Claim`, a statement of the paper to verify.)"""
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
    def claim(self, run_id: str, owner: str = "") -> RunLease | None:
        """Claim the run, or None when another process holds it."""
        folder = self.path(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        who = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "owner": owner,
                          "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, who.encode() + b"\n", 0)
        return RunLease(run_id, fd)

    def is_claimed(self, run_id: str) -> bool:
        lock = self.path(run_id) / LOCK
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
    def inspect(self, run_id: str, claimed: bool = False) -> Inspection:
        """The run's state by the integrity rule of the module docstring; `claimed`: the caller
        holds the run's claim (so the claim does not make it `running`)."""
        folder = self.path(run_id)
        if not folder.is_dir():
            return Inspection("missing")
        try:
            status, status_problem = read_status(folder), None
        except RunFileError as error:
            status, status_problem = {}, str(error)
            if error.reason == "missing":
                status_problem = None
        if (folder / RESULT).exists():
            try:
                result = read_result(folder)
                check_identity(folder, run_id)
                for name in evidence_files(result):
                    if name == CHECKPOINT:
                        check_archive(folder / CHECKPOINT)
                        continue
                    step = eval_step(name)
                    total = next(e["total"] for e in result["evaluations"] if e["step"] == step)
                    read_eval(folder, step, total)
            except RunFileError as error:
                return Inspection("corrupt", status=status, problem=str(error))
            notes = [status_problem] if status_problem else []
            if status and status["status"] != "finished":
                notes.append(f"run {run_id}: status.json says {status['status']}, but "
                             "result.json is complete")
            return Inspection("done", result, status, notes=notes)
        if not claimed and self.is_claimed(run_id):
            return Inspection("running", status=status)
        if status_problem:
            return Inspection("corrupt", problem=status_problem)
        state = status.get("status")
        if status.get("damaged"):
            return Inspection("corrupt", status=status, problem=status.get("message"))
        if state == "finished":
            return Inspection("corrupt", status=status, problem=f"run {run_id}: result.json: "
                              "missing, although status.json says the run finished")
        if state in ("failed", "diverged"):
            return Inspection(state, status=status)
        if state is None and not (folder / METRICS).exists():
            return Inspection("missing")
        return Inspection("interrupted", status=status)

    def state(self, run_id: str) -> str:
        return self.inspect(run_id).state

    def status(self, run_id: str) -> dict:
        """status.json, or {} where it is missing or damaged (`inspect` says which)."""
        try:
            return read_status(self.path(run_id))
        except RunFileError:
            return {}

    def result(self, run_id: str) -> dict | None:
        """The checked result.json of a done run, or None."""
        inspection = self.inspect(run_id)
        return inspection.result if inspection.state == "done" else None

    def move_aside(self, run_id: str, reason: str) -> Path:
        """Move a corrupt run's folder into `.damaged/` (kept for people to look at; the run
        starts again from nothing) with the reason beside it; returns where it went."""
        target = self.root / DAMAGED / f"{run_id}-{time.strftime('%Y%m%dT%H%M%S')}"
        target.parent.mkdir(parents=True, exist_ok=True)
        while target.exists():
            target = target.with_name(target.name + "+")
        os.rename(self.path(run_id), target)
        (target / "DAMAGED.txt").write_text(reason + "\n")
        return target

    def repair_status(self, run_id: str, inspection: Inspection) -> None:
        """A done run whose status.json is damaged or disagrees: rewrite it from result.json."""
        if inspection.result is None:
            raise ValueError(f"run {run_id}: only a done run's status is rewritten, this one "
                             f"is {inspection.state}")
        write_json(self.path(run_id) / STATUS,
                   {"status": "finished", "step": inspection.result["steps"],
                    "message": "status rewritten from result.json by the runner",
                    "updated": time.time(), "pid": os.getpid()})

    # ----------------------------------------------------------------------------- writing
    def prepare(self, run_id: str, spec_dict: dict) -> Path:
        """Write spec.json (atomically; paths on this machine may differ from an earlier
        attempt's, the id does not)."""
        folder = self.path(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / SPEC, spec_dict)
        return folder

    def reset_failed(self, run_id: str) -> None:
        """A failed or diverged run is tried again from its last checkpoint: its status goes."""
        (self.path(run_id) / STATUS).unlink(missing_ok=True)

    def _labels(self, run_id: str) -> dict:
        try:
            spec = load_object(self.path(run_id) / SPEC)
        except RunFileError:
            return {}
        notes, train = spec.get("notes"), spec.get("train")
        notes = notes if isinstance(notes, dict) else {}
        train = train if isinstance(train, dict) else {}
        return {"protocol": notes.get("protocol"), "arm": notes.get("arm"),
                "seed": notes.get("seed"), "framework": spec.get("framework"),
                "steps": train.get("steps")}

    def file_keys(self, run_id: str, names) -> dict[str, list[int] | None]:
        """Per file: inode, size, and modification and change times in nanoseconds. Any write
        changes the change time, which no user can set back, so equal keys mean an unchanged
        file (a copied store has new keys everywhere: it is read once more)."""
        folder = str(self.path(run_id))
        keys: dict[str, list[int] | None] = {}
        for name in names:
            try:
                st = os.stat(os.path.join(folder, name))
                keys[name] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
            except OSError:
                keys[name] = None
        return keys

    def _cache(self) -> tuple[dict, bool]:
        """(the summary cache's entries, whether the file must be rewritten); a damaged cache is
        dropped, to be rebuilt, with one warning line (one of an older version silently)."""
        path = self.root / SUMMARY
        if not path.exists():
            return {}, False
        try:
            data = load_object(path)
        except RunFileError as error:
            problem = error.reason
        else:
            if data.get("version") != SUMMARY_VERSION:
                return {}, True
            runs = data.get("runs")
            if isinstance(runs, dict) and all(
                    isinstance(e, dict) and isinstance(e.get("files"), dict)
                    for e in runs.values()):
                return runs, False
            problem = "entries of an unknown shape"
        print(f"warning: {path}: {problem}; the summary cache is rebuilt from the run folders",
              file=sys.stderr)
        return {}, True

    def summaries(self, run_ids: list[str] | None = None, labels: bool = True
                  ) -> dict[str, dict]:
        """{run_id: {"state", "result" (result.json's RESULT_KEYS, or None), "status",
        "labels", "problem", "notes"}} for many runs at once. A finished run never changes, so
        its summary is cached in `<store>/.summaries.json`; a cached summary is used only while
        none of the files it was made from has changed (`file_keys`) and the summary itself is
        as it was made (its `seal`), so a damaged or edited cache can cost time but never change
        a result. The other runs are read live."""
        run_ids = self.run_ids() if run_ids is None else run_ids
        cache, changed = self._cache()
        out = {}
        for run_id in run_ids:
            entry = cache.get(run_id)
            if entry is not None and entry.get("labels") and entry.get("seal") == seal(entry) \
                    and entry["files"] == self.file_keys(run_id, entry["files"]):
                out[run_id] = entry
                continue
            inspection = self.inspect(run_id)
            names = [*SUMMARISED, *evidence_files(inspection.result)]
            entry = {"files": self.file_keys(run_id, names), "state": inspection.state,
                     "status": inspection.status,
                     "result": None if inspection.result is None else
                     {k: inspection.result.get(k) for k in RESULT_KEYS},
                     "labels": self._labels(run_id) if labels else {},
                     "problem": inspection.problem, "notes": inspection.notes}
            entry["seal"] = seal(entry)
            out[run_id] = entry
            if inspection.state == "done" and labels:
                cache[run_id] = entry
                changed = True
            elif cache.pop(run_id, None) is not None:
                changed = True
        if changed and self.root.exists():
            try:
                write_json(self.root / SUMMARY, {"version": SUMMARY_VERSION, "runs": cache})
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


def evidence_files(result: dict | None) -> list[str]:
    """The files of a done run besides its JSON: the predictions the claims read (the final and
    the best step's eval files) and the final checkpoint (the report's gallery and `audit
    explain` read it). The official code writes neither (its counts come from an accuracy)."""
    if not result or result.get("correct_from_accuracy"):
        return []
    return sorted({eval_name(result["final_step"]), eval_name(result["best_step"]), CHECKPOINT})


def check_archive(path: Path) -> None:
    """A cheap check of an .npz that may be hundreds of MB: its zip directory, at the end of the
    file, must read (a file cut short or overwritten fails; flipped bits inside an array are
    found only when it is loaded)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except FileNotFoundError:
        raise RunFileError(path, "missing") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise RunFileError(path, f"unreadable ({error})") from None
    if "__header__.npy" not in names:
        raise RunFileError(path, "not a checkpoint of this project (no header)")


def seal(entry: dict) -> str:
    """A digest of a summary's content: an entry edited by hand no longer matches it."""
    content = {k: v for k, v in entry.items() if k != "seal"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclass
class Inspection:
    state: str
    result: dict | None = None  # the checked result.json of a done run
    status: dict = field(default_factory=dict)
    problem: str | None = None  # corrupt: the run, the file and what is wrong
    notes: list[str] = field(default_factory=list)  # a done run's status.json that disagrees


class RecordedFingerprints:
    """The fingerprints a run recorded in provenance.json, in place of computing them again."""

    def __init__(self, recorded: dict, path: Path):
        self.recorded, self.path = recorded, path

    def _get(self, key: str):
        if key not in self.recorded:
            raise RunFileError(self.path, f"fingerprints without {key}")
        return self.recorded[key]

    def of_data(self, *args) -> str:
        return self._get("data")

    def of_weights(self, *args) -> str:
        return self._get("weights_sha256")

    def of_official(self, *args) -> str:
        return self._get("official_commit")


def check_identity(folder: Path, run_id: str) -> None:
    """spec.json, with the fingerprints provenance.json recorded, must hash to the folder's run
    id; a spec changed after the run (or the wrong folder) raises RunFileError."""
    from audit.plan import run_id as run_id_of

    spec = read_spec(folder)
    provenance = read_provenance(folder)
    # plan.run_id takes any object with of_data, of_weights and of_official, but is annotated
    # with plan.Fingerprints; the ignore goes when plan.py takes a typing.Protocol instead
    found = run_id_of(spec, RecordedFingerprints(  # type: ignore[arg-type]
        provenance["fingerprints"], folder / PROVENANCE))
    if found != run_id:
        raise RunFileError(folder / SPEC, f"hashes to {found}, not to its folder's run "
                                                 "id: changed after the run, or moved")
