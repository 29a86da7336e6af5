"""The read model: the runs of a matrix as the audit reads them from the store, typed.

- `RunResult`: a finished run's figures, the fields of its result.json that the store summarises
  (`store.RESULT_KEYS`), each checked; `SCHEMA_VERSION` is the version of its fields.
- `Row`: one planned run of the matrix (arm x framework x seed of each protocol), its state and
  its `RunResult`; `matrix` makes them from the protocols and the store, and `count_states`,
  `unavailable_reasons`, `to_run`, `throughputs` and `estimate_seconds` read them.
- `collect` (`COLUMNS`): the finished rows as one pandas table, which the statistics read
  (docs/design.md, "Data flow"); besides it, only the paired tests over test examples read a run's
  stored predictions.
- `store_rows`: every run in the store, from its own files, no protocol needed (`audit status`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from audit.plan import Inputs, PlannedRun, plan
from audit.protocol import Protocol
from audit.store import RESULT_KEYS, SUMMARY_VERSION, Store
from transfg.run_files import RESULT, RESULT_FIELDS, RESULT_OPTIONAL, RunFileError
from transfg.spec import RunSpec

# The version of RunResult's fields. They are the store's summary of result.json, cached in the
# store under the summary cache's version: one number for both, so that changing a field (raise
# store.SUMMARY_VERSION) also makes every store rebuild its cached summaries.
SCHEMA_VERSION = SUMMARY_VERSION


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


# field -> (check, what is allowed): result.json's own rules (transfg/run_files.py); an optional
# field may also be absent (None).
_CHECKS = {name: RESULT_FIELDS[name] if name in RESULT_FIELDS else
           (_or_null(RESULT_OPTIONAL[name][0]), f"{RESULT_OPTIONAL[name][1]}, or absent")
           for name in RESULT_KEYS}


@dataclass(frozen=True)
class RunResult:
    """A finished run's figures: result.json's fields that the store summarises (`RESULT_KEYS`,
    in that order), version `SCHEMA_VERSION`."""

    final_accuracy: float  # in [0, 1], at the last update
    final_step: int
    best_accuracy: float  # the best of the evaluations, in [0, 1]
    best_step: int
    correct: int  # test images right at the final step
    test_images: int
    train_images: int | None  # None: not recorded
    steps: int  # updates
    effective_batch: int  # images per update, over devices and micro-batches
    images_per_s: float | None  # median training throughput; None: not measured

    schema_version: ClassVar[int] = SCHEMA_VERSION

    @classmethod
    def from_summary(cls, values: dict[str, Any], path: Path) -> RunResult:
        """From the "result" of a store summary (`Store.summaries`); `path`: the run's
        result.json, named with the run and the field when a value is missing or malformed
        (RunFileError)."""
        fields: dict[str, Any] = {name: values.get(name) for name in RESULT_KEYS}
        for name, value in fields.items():
            check, allowed = _CHECKS[name]
            if not check(value):
                raise RunFileError(path, f"{name}={value!r} in its summary, allowed: {allowed}")
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, in `RESULT_KEYS` order (as the store summarises them)."""
        return {name: getattr(self, name) for name in RESULT_KEYS}


def result_of(summary: dict, store: Store, run_id: str) -> RunResult | None:
    """The RunResult of a store summary (`Store.summaries`), or None where it has none."""
    values = summary.get("result")
    return None if values is None else \
        RunResult.from_summary(values, store.path(run_id) / RESULT)


@dataclass
class Row:
    run: PlannedRun
    state: str  # a store state, or "unavailable" (an input is missing)
    result: RunResult | None
    problem: str | None = None  # corrupt: the file and what is wrong
    notes: list[str] = field(default_factory=list)  # a done run's status.json that disagrees

    @property
    def spec(self) -> RunSpec:
        """The run's spec: every row has one but an "unavailable" row (an input is missing)."""
        if self.run.spec is None:
            raise ValueError(f"{self.run.label}: unavailable, no spec ({self.run.missing})")
        return self.run.spec

    @property
    def run_id(self) -> str:
        """The run's id: every row has one but an "unavailable" row (an input is missing)."""
        if self.run.run_id is None:
            raise ValueError(f"{self.run.label}: unavailable, no run id ({self.run.missing})")
        return self.run.run_id


def matrix(store: Store, protocols: list[Protocol], inputs: Inputs,
           arms: list[str] | None = None, frameworks: list[str] | None = None,
           seeds: list[int] | None = None, max_seeds: dict[str, int] | None = None
           ) -> list[Row]:
    """The matrix of runs and their states; `max_seeds` (protocol name -> seeds): the first
    that many seeds of those protocols' seed rules (a sequential design's horizon)."""
    max_seeds = max_seeds or {}
    planned = [run for protocol in protocols
               for run in plan(protocol, inputs, arms, frameworks, seeds,
                               max_seeds=max_seeds.get(protocol.name))]
    known = set(store.run_ids())
    summaries = store.summaries([r.run_id for r in planned if r.run_id in known])
    rows = []
    for run in planned:
        if run.run_id is None:
            rows.append(Row(run, "unavailable", None))
        elif run.run_id not in summaries:
            rows.append(Row(run, "missing", None))
        else:
            summary = summaries[run.run_id]
            rows.append(Row(run, summary["state"], result_of(summary, store, run.run_id),
                            summary.get("problem"), summary.get("notes") or []))
    return rows


def count_states(states: Iterable[str]) -> dict[str, int]:
    """How many runs are in each state (`[row.state for row in rows]`), by state."""
    return dict(Counter(states))


def tally(counts: dict[str, int]) -> str:
    """Runs by state (`count_states`), as "2 done, 1 failed", states in alphabetical order: the
    terminal's and the report's one way of saying it."""
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def unavailable_reasons(rows: list[Row]) -> list[str]:
    """The missing inputs that make rows unavailable, each once, sorted."""
    return sorted({r.run.missing for r in rows
                   if r.state == "unavailable" and r.run.missing is not None})


def to_run(rows: list[Row]) -> list[Row]:
    """The rows still to run: neither done nor unavailable (so each has its spec and run id)."""
    return [row for row in rows if row.state not in ("done", "unavailable")]


def throughputs(rows: list[Row]) -> dict[tuple, float]:
    """Median measured images/s of finished runs, by (framework, model)."""
    seen: dict[tuple, list[float]] = {}
    for row in rows:
        if row.result and row.result.images_per_s:
            key = (row.run.framework, row.spec.model)
            seen.setdefault(key, []).append(row.result.images_per_s)
    return {key: statistics.median(values) for key, values in seen.items()}


def estimate_seconds(rows: list[Row]) -> tuple[float, int]:
    """(seconds, runs without an estimate) for the runs still to do, from measured throughput."""
    rates = throughputs(rows)
    seconds, unknown = 0.0, 0
    for row in to_run(rows):
        rate = rates.get((row.run.framework, row.spec.model))
        if rate is None:
            unknown += 1
            continue
        seconds += row.spec.train.steps * row.spec.effective_batch / rate
    return seconds, unknown


# ------------------------------------------------------------------------------ results table

COLUMNS = ["protocol", "arm", "framework", "seed", "run_id", *RESULT_KEYS]


def collect(rows: list[Row]) -> pd.DataFrame:
    """One line per finished run of the matrix (`matrix`), seed axes as columns."""
    records: list[dict[str, Any]] = []
    for row in rows:
        if row.state != "done" or not row.result:
            continue
        r = row.run
        record: dict[str, Any] = {"protocol": r.protocol, "arm": r.arm, "framework": r.framework,
                                  "seed": r.seed_label, "run_id": r.run_id}
        record |= {f"seed_{axis}": value for axis, value in r.seed.items()}
        record |= row.result.to_dict()
        records.append(record)
    return pd.DataFrame.from_records(records, columns=None if records else COLUMNS)


# ------------------------------------------------------------------------- the whole store

def store_rows(store: Store) -> list[dict]:
    """Every run in the store, from its own files (no protocol needed)."""
    rows = []
    for run_id, summary in store.summaries().items():
        labels, status = summary["labels"], summary["status"]
        result = result_of(summary, store, run_id)
        rows.append({
            "run_id": run_id, "protocol": labels.get("protocol"), "arm": labels.get("arm"),
            "framework": labels.get("framework"),
            "seed": " ".join(f"{k} {v}" for k, v in (labels.get("seed") or {}).items()),
            "state": summary["state"], "step": status.get("step"),
            "steps": labels.get("steps"),
            "final_accuracy": result.final_accuracy if result else None,
            "best_accuracy": result.best_accuracy if result else None,
            "images_per_s": result.images_per_s if result else None,
            "message": status.get("message") or None, "problem": summary.get("problem"),
            "notes": summary.get("notes") or []})
    return rows
