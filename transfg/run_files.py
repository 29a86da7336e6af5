"""The files of a run folder: how each is written, and the one reader of each that checks it.

Written so that a kill at any moment leaves either the old or the new version, never half of one
(docs/design.md, "Atomic writes"):
- JSON files (spec.json, status.json, result.json, provenance.json): temporary file in the same
  folder, fsync, rename.
- metrics.jsonl: one JSON line per update, appended and flushed; a reader skips a last line cut
  short by a kill, and a resumed run first drops the lines past its checkpoint.
- eval-<step>.npz: per test example, index, label, top-5 classes and scores (no pickles).

Read through one reader per file (`read_result`, `read_status`, `read_metrics`, `read_eval`,
`read_provenance`; spec.json: `transfg.spec.read_spec`; checkpoints: `transfg.weights`), each of
which checks what its format promises and raises `RunFileError`, naming the run, the file and what
is wrong, instead of returning something half-right.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------ the files of a run folder
# The only place that names them; everything else asks here.
SPEC = "spec.json"  # the run's whole input (transfg.spec.RunSpec); its hash is the run id
STATUS = "status.json"  # running/finished/failed/diverged and the last step, rewritten as it goes
RESULT = "result.json"  # the finished run's summary (read_result)
PROVENANCE = "provenance.json"  # machine, packages, data fingerprints, one entry per attempt
PROVENANCE_DAMAGED = "provenance.damaged.json"  # an unreadable provenance.json, kept aside
METRICS = "metrics.jsonl"  # one line per update
LOG = "log.txt"  # the training's log lines and, from the runner, a failed attempt's traceback
OUTPUT = "output.txt"  # the training process's stdout and stderr, all attempts
LOCK = "lock"  # held (flock) by the process that runs the run
CHECKPOINT = "checkpoints/last.npz"  # model and optimizer at the last checkpointed update
EVAL_GLOB = "eval-*.npz"
# framework = "official" only: the dataset as the official readers want it (links), the official
# code's own output folder, and the stand-ins it ran with (transfg.official_compat)
OFFICIAL_DATA = "official-data"
OFFICIAL_OUTPUT = "official-output"
OFFICIAL_COMPAT = "official-compat.json"


def eval_name(step: int) -> str:
    """The predictions of the evaluation after update `step`."""
    return f"eval-{int(step)}.npz"


def eval_step(name: str) -> int:
    """The step of an eval file's name (the inverse of `eval_name`)."""
    return int(name.removeprefix("eval-").removesuffix(".npz"))


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


class RunFileError(ValueError):
    """A file of a run folder that is missing, unreadable or not what its format says."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        folder = self.path.parent
        if folder.name == "checkpoints":
            folder = folder.parent
        self.run, self.file = folder.name, str(self.path.relative_to(folder))
        super().__init__(f"run {self.run}: {self.file}: {reason}")


def load_object(path: str | Path) -> dict:
    """A JSON file that must hold one object; RunFileError otherwise."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise RunFileError(path, "missing") from None
    except IsADirectoryError:
        raise RunFileError(path, "a folder where a file should be") from None
    except UnicodeDecodeError as error:
        raise RunFileError(path, f"not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise RunFileError(path, f"unreadable ({error.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        why = "empty" if not text.strip() else f"not valid JSON ({error}; cut short?)"
        raise RunFileError(path, why) from None
    if not isinstance(data, dict):
        raise RunFileError(path, f"holds a JSON {type(data).__name__}, not an object")
    return data


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _proportion(value) -> bool:
    return _number(value) and 0.0 <= value <= 1.0


# result.json: field -> (check, what is allowed)
RESULT_FIELDS = {
    "final_accuracy": (_proportion, "a number in [0, 1]"),
    "final_step": (_count, "a whole number >= 0"),
    "best_accuracy": (_proportion, "a number in [0, 1]"),
    "best_step": (_count, "a whole number >= 0"),
    "correct": (_count, "a whole number >= 0"),
    "test_images": (lambda v: _count(v) and v > 0, "a whole number > 0"),
    "steps": (lambda v: _count(v) and v > 0, "a whole number > 0"),
    "effective_batch": (lambda v: _count(v) and v > 0, "a whole number > 0"),
    "evaluations": (lambda v: isinstance(v, list) and len(v) > 0, "a non-empty list"),
}
RESULT_OPTIONAL = {
    "train_images": (_count, "a whole number >= 0"),
    "images_per_s": (lambda v: v is None or (_number(v) and v >= 0), "null or a number >= 0"),
}
EVALUATION_FIELDS = {"step": _count, "accuracy": _proportion, "correct": _count, "total": _count}


def check_result(data: dict) -> str | None:
    """What is wrong with a result.json's content, or None."""
    for name, (check, allowed) in RESULT_FIELDS.items():
        if name not in data:
            return f"no {name}"
        if not check(data[name]):
            return f"{name}={data[name]!r}, allowed: {allowed}"
    for name, (check, allowed) in RESULT_OPTIONAL.items():
        if name in data and not check(data[name]):
            return f"{name}={data[name]!r}, allowed: {allowed}"
    steps = []
    for i, row in enumerate(data["evaluations"]):
        if not isinstance(row, dict):
            return f"evaluations[{i}] is not an object"
        for name, check in EVALUATION_FIELDS.items():
            if not check(row.get(name)):
                return f"evaluations[{i}].{name}={row.get(name)!r} is not valid"
        if row["correct"] > row["total"]:
            return f"evaluations[{i}]: correct {row['correct']} > total {row['total']}"
        steps.append(row["step"])
    if steps != sorted(set(steps)):
        return f"evaluations are not in increasing step order: {steps}"
    last = data["evaluations"][-1]
    if data["final_step"] != last["step"] or data["final_accuracy"] != last["accuracy"]:
        return (f"final_step {data['final_step']} / final_accuracy {data['final_accuracy']} "
                f"differ from the last evaluation ({last['step']}, {last['accuracy']})")
    if data["best_step"] not in steps:
        return f"best_step {data['best_step']} is not an evaluated step"
    if data["correct"] > data["test_images"]:
        return f"correct {data['correct']} > test_images {data['test_images']}"
    # ours count exactly; the official code reports an accuracy, counts are derived by rounding
    if abs(data["final_accuracy"] - data["correct"] / data["test_images"]) > \
            0.5 / data["test_images"] + 1e-9:
        return (f"final_accuracy {data['final_accuracy']} is not correct / test_images "
                f"({data['correct']} / {data['test_images']})")
    return None


def read_result(run_dir: str | Path) -> dict:
    """result.json, checked: every field its format has, of its type, accuracies in [0, 1], and
    consistent with its evaluations."""
    path = Path(run_dir) / RESULT
    data = load_object(path)
    problem = check_result(data)
    if problem:
        raise RunFileError(path, problem)
    return data


STATUSES = ("running", "finished", "failed", "diverged")


def read_status(run_dir: str | Path) -> dict:
    path = Path(run_dir) / STATUS
    data = load_object(path)
    if data.get("status") not in STATUSES:
        raise RunFileError(path, f"status={data.get('status')!r}, allowed: "
                                 f"{', '.join(STATUSES)}")
    if not _count(data.get("step")):
        raise RunFileError(path, f"step={data.get('step')!r}, allowed: a whole number >= 0")
    return data


def read_provenance(run_dir: str | Path) -> dict:
    path = Path(run_dir) / PROVENANCE
    data = load_object(path)
    for name, kind in (("fingerprints", dict), ("attempts", list)):
        if not isinstance(data.get(name), kind):
            raise RunFileError(path, f"no {name} ({kind.__name__})")
    return data


EVAL_ARRAYS = ("index", "label", "top5_classes", "top5_scores")


def read_eval(run_dir: str | Path, step: int, total: int | None = None) -> dict[str, np.ndarray]:
    """eval-<step>.npz: its four arrays, one row per test example (`total` of them when given)."""
    path = Path(run_dir) / eval_name(step)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise RunFileError(path, "missing") from None
    except Exception as error:  # zip, format or pickle errors of a damaged file
        why = "not an .npz archive" if "pickled" in str(error) else \
            f"{type(error).__name__}: {error}"
        raise RunFileError(path, f"unreadable ({why})") from None
    missing = [key for key in EVAL_ARRAYS if key not in arrays]
    if missing:
        raise RunFileError(path, f"no {', '.join(missing)}")
    n = len(arrays["label"])
    if any(len(arrays[key]) != n for key in EVAL_ARRAYS) or arrays["top5_classes"].ndim != 2:
        raise RunFileError(path, "its arrays differ in length or shape")
    if total is not None and n != total:
        raise RunFileError(path, f"{n} test examples, the run evaluated {total}")
    return arrays


def write_status(run_dir: Path, status: str, step: int, message: str = "",
                 damaged: str | None = None) -> None:
    """status: running, finished, diverged or failed; `damaged`: the file of the run folder
    whose damage failed the run (the runner then moves the folder aside and starts again)."""
    data = {"status": status, "step": step, "message": message, "updated": time.time(),
            "pid": os.getpid()}
    write_json(run_dir / STATUS, data | ({"damaged": damaged} if damaged else {}))


def read_metrics(path: str | Path) -> list[dict]:
    """Every line of a metrics.jsonl ([] when there is none), each an object with a step. A last
    line cut short by a kill (not UTF-8, not JSON, not such an object) is skipped; a bad line
    before it is damage, and raises RunFileError naming it."""
    path = Path(path)
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise RunFileError(path, f"unreadable ({error.strerror})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict) or not _count(row.get("step")):
                raise ValueError("not an object with a step")
        except ValueError as error:  # (UnicodeDecodeError is one)
            if number == len(lines):
                break
            raise RunFileError(path, f"line {number}: {error}") from None
        rows.append(row)
    return rows


class MetricsLog:
    """Appends one JSON line per update to metrics.jsonl. Resumed at an update, it keeps the
    lines up to it (one per update: every one must be there) and drops the rest."""

    def __init__(self, path: str | Path, resume_step: int):
        self.path = Path(path)
        kept = [row for row in read_metrics(self.path) if row["step"] <= resume_step]
        missing = sorted(set(range(1, resume_step + 1)) - {row["step"] for row in kept})
        if missing:
            what = "missing" if not self.path.exists() else \
                f"without {len(missing)} of updates 1..{resume_step} (first: {missing[0]})"
            raise RunFileError(self.path, f"{what}, although the checkpoint is at update "
                                          f"{resume_step}: the run's history is lost")
        write_atomic(self.path, lambda f: f.writelines(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a")  # kept open for the whole run

    def append(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
