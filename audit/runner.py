"""`audit plan`, `audit run` and `audit status`: the run matrix of protocols against the store."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from audit.plan import FINGERPRINTS, Inputs, PlannedRun, plan
from audit.protocol import Protocol
from audit.store import Store
from transfg.run_files import LOG
from transfg.spec import RunSpec

if TYPE_CHECKING:  # the executors are imported when a run starts
    from audit.executors.common import WorkItem


@dataclass
class Row:
    run: PlannedRun
    state: str  # a store state, or "unavailable" (an input is missing)
    result: dict | None
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


def unavailable_reasons(rows: list[Row]) -> list[str]:
    """The missing inputs that make rows unavailable, each once, sorted."""
    return sorted({r.run.missing for r in rows
                   if r.state == "unavailable" and r.run.missing is not None})


def matrix(store: Store, protocols: list[Protocol], inputs: Inputs, arms=None, frameworks=None,
           seeds=None, max_seeds: dict[str, int] | None = None) -> list[Row]:
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
            rows.append(Row(run, summary["state"], summary["result"], summary.get("problem"),
                            summary.get("notes") or []))
    return rows


def throughputs(rows: list[Row]) -> dict[tuple, float]:
    """Median measured images/s of finished runs, by (framework, model)."""
    seen: dict[tuple, list[float]] = {}
    for row in rows:
        if row.result and row.result.get("images_per_s"):
            key = (row.run.framework, row.spec.model)
            seen.setdefault(key, []).append(row.result["images_per_s"])
    return {key: statistics.median(values) for key, values in seen.items()}


def estimate_seconds(rows: list[Row]) -> tuple[float, int]:
    """(seconds, runs without an estimate) for the runs still to do, from measured throughput."""
    rates = throughputs(rows)
    seconds, unknown = 0.0, 0
    for row in rows:
        if row.state in ("done", "unavailable") or row.run.spec is None:
            continue
        rate = rates.get((row.run.framework, row.run.spec.model))
        if rate is None:
            unknown += 1
            continue
        spec = row.run.spec
        seconds += spec.train.steps * spec.effective_batch / rate
    return seconds, unknown


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else
            f"{seconds // 60}m{seconds % 60:02d}s")


def _accuracy(result: dict | None, key: str) -> str:
    if not result or result.get(key) is None:
        return "-"
    return f"{100 * result[key]:.2f}%"


def table(rows: list[Row], *, with_protocol: bool) -> str:
    header = (["protocol"] if with_protocol else []) + ["arm", "framework", "seed", "state",
                                                        "final", "best", "run id"]
    body = []
    for row in rows:
        r = row.run
        body.append(([r.protocol] if with_protocol else []) + [
            r.arm, r.framework, r.seed_label, row.state, _accuracy(row.result, "final_accuracy"),
            _accuracy(row.result, "best_accuracy"), r.run_id or (r.missing or "")])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, *body]]
    return "\n".join(lines)


def counts(rows: list[Row]) -> dict[str, int]:
    result: dict[str, int] = {}
    for row in rows:
        result[row.state] = result.get(row.state, 0) + 1
    return result


def print_plan(rows: list[Row], protocols: list[Protocol], out=None) -> None:
    out = out or sys.stdout  # looked up now: tests and callers may replace sys.stdout
    for protocol in protocols:
        mine = [r for r in rows if r.run.protocol == protocol.name]
        arms = len({r.run.arm for r in mine})
        frameworks = len({r.run.framework for r in mine})
        seeds = len({r.run.seed_label for r in mine})
        print(f"{protocol.name} ({protocol.path}): {len(mine)} runs = {arms} arms x "
              f"{frameworks} frameworks x {seeds} seeds", file=out)
    print(table(rows, with_protocol=len(protocols) > 1), file=out)
    summary = " · ".join(f"{state} {n}" for state, n in sorted(counts(rows).items()))
    print(summary, file=out)
    seconds, unknown = estimate_seconds(rows)
    todo = sum(1 for r in rows if r.state not in ("done", "unavailable"))
    if todo:
        line = f"to run: {todo}"
        if todo > unknown:
            line += (f"; estimated compute {_duration(seconds)} for {todo - unknown} of them "
                     "(from the images/s that finished runs measured on their machines)")
        if unknown:
            line += (f"; no estimate for {unknown} (no finished run of that framework and "
                     "model yet: `audit plan --calibrate` times them on this machine)")
        print(line, file=out)
    for reason in unavailable_reasons(rows):
        print(f"unavailable: {reason}", file=out)
    print_official(rows, out)
    print_problems(rows, out)


def print_official(rows: list[Row], out) -> None:
    """Which identity of the official code the run ids use: its commit, or its content."""
    for checkout in sorted({r.run.spec.official_checkout for r in rows
                            if r.run.spec is not None and r.run.spec.official_checkout}):
        print(f"official code: {checkout}: "
              f"{FINGERPRINTS.official_identity(checkout).describe()}", file=out)


def print_problems(rows: list[Row], out) -> None:
    """Each corrupt run with its file and what is wrong, and each note about a done run."""
    for row in rows:
        if row.state == "corrupt":
            print(f"corrupt: {row.run.label}: {row.problem} (`audit run` moves it aside and "
                  "runs it again)", file=out)
        for note in row.notes:
            print(f"note: {note} (`audit run` rewrites status.json)", file=out)


def work_items(rows: list[Row], retry_failed: bool,
               keep_corrupt: bool = False) -> list[WorkItem]:
    """Runs to execute, each once (two protocols may share a run)."""
    wanted = {"missing", "interrupted"} | ({"failed", "diverged"} if retry_failed else set()) \
        | (set() if keep_corrupt else {"corrupt"})
    items: list[WorkItem] = []
    seen: set[str] = set()
    for row in rows:  # no row in a wanted state is unavailable: each has its spec and run id
        if row.state not in wanted or row.run_id in seen:
            continue
        seen.add(row.run_id)
        spec = row.spec
        fingerprints: dict[str, str | None] = {
            "data": FINGERPRINTS.of_data(spec.dataset, spec.data_root, spec.subset),
            "weights_sha256": FINGERPRINTS.of_weights(spec.weights) if spec.weights else None}
        if spec.framework == "official":  # in the run id too (store.check_identity)
            if spec.official_checkout is None:  # RunSpec.validate requires it
                raise ValueError(f"{row.run.label}: framework official without a checkout")
            official = FINGERPRINTS.official_identity(spec.official_checkout)
            # the key keeps its first name: a clean checkout's value is still its commit
            fingerprints["official_commit"] = official.value
            fingerprints["official_identity"] = official.to_dict()
        items.append({"run_id": row.run_id, "spec": spec.to_dict(),
                      "fingerprints": fingerprints, "label": row.run.label})
    return items


def run(store: Store, protocols: list[Protocol], inputs: Inputs, *, arms=None, frameworks=None,
        seeds=None, executor: str = "local", jobs: int | None = None, retry_failed=False,
        keep_corrupt=False, slurm: dict | None = None, wait: bool = True, out=None,
        rows: list[Row] | None = None, max_seeds: dict[str, int] | None = None,
        submitted: list | None = None) -> int:
    """Run what the matrix still needs; exit status 1 when, at the end, any of its runs is
    failed, diverged, corrupt or interrupted (now or from an earlier `audit run`).

    `rows`: only these rows of the matrix (a sequential stage, `audit.stages`); `max_seeds`:
    the matrix's seeds per protocol (`matrix`); `submitted`: filled with the (item, job) pairs
    submitted to Slurm."""
    out = out or sys.stderr
    from audit.executors.progress import Reporter

    if rows is None:
        rows = matrix(store, protocols, inputs, arms, frameworks, seeds, max_seeds)
    for row in rows:
        if row.state == "done" and row.notes:
            inspection = store.inspect(row.run_id)
            if inspection.state == "done" and inspection.notes:
                store.repair_status(row.run_id, inspection)
                print(f"repaired: {'; '.join(inspection.notes)} (status.json rewritten from "
                      "result.json)", file=out)
    items = work_items(rows, retry_failed, keep_corrupt)
    states = counts(rows)
    print(f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
          + f"; {len(items)} to run", file=out)
    for reason in unavailable_reasons(rows):
        print(f"unavailable: {reason}", file=out)
    print_official(rows, out)
    started = time.monotonic()
    submit_error = None
    if executor == "local":
        from audit.executors.local import run_local, slots

        devices = max((i["spec"]["devices"] for i in items), default=1)
        reporter = Reporter(len(items), len(slots(devices, jobs)) if items else 1, out)
        try:
            outcomes = run_local(store, items, jobs=jobs, retry_failed=retry_failed,
                                 keep_corrupt=keep_corrupt, reporter=reporter)
        finally:
            reporter.close()
    elif executor in ("slurm", "submitit-local"):
        from audit.executors import slurm as slurm_executor

        cluster = "local" if executor == "submitit-local" else None
        running = [i for i in items if store.is_claimed(i["run_id"])]
        items = [i for i in items if i not in running]
        options = dict(slurm or {})
        if options.get("gpus") is None and items:  # each job gets the GPUs its run needs,
            devices = max(i["spec"]["devices"] for i in items)  # none on a CPU-only partition
            options["gpus"] = devices if cluster == "local" else \
                slurm_executor.default_gpus(options.get("partition"), devices, out)
        try:
            submitter = slurm_executor.make_executor(store, cluster=cluster, **options) \
                if items else None
        except RuntimeError as error:  # no srun: not on a Slurm cluster
            print(f"error: --executor {executor}: {error}", file=out)
            return 2
        try:
            jobs_submitted = [] if submitter is None else slurm_executor.submit(
                submitter, store, items, retry_failed=retry_failed, keep_corrupt=keep_corrupt)
        except slurm_executor.SubmitError as error:
            submit_error, jobs_submitted = error, error.jobs
        for item, job in jobs_submitted:
            print(f"submitted job {job.job_id}: {item['label']} ({item['run_id']})", file=out)
        if submitted is not None:
            submitted.extend(jobs_submitted)
        if submit_error is not None:
            print(f"error: {submit_error}; {len(items) - len(jobs_submitted)} runs not "
                  "submitted", file=out)
        if not wait:
            print(f"{len(jobs_submitted)} jobs submitted; `audit status` follows them",
                  file=out)
            return 2 if submit_error else 0
        items = [item for item, _ in jobs_submitted]
        reporter = Reporter(len(items), len(items), out)
        try:
            outcomes = slurm_executor.wait(jobs_submitted, reporter)
        finally:
            reporter.close()
    else:
        raise ValueError(f"executor {executor!r}; allowed: local, slurm, submitit-local")
    status = finish(store, protocols, inputs, outcomes, started, out,
                    arms=arms, frameworks=frameworks, seeds=seeds, max_seeds=max_seeds)
    return 2 if submit_error else status


BAD_STATES = ("failed", "diverged", "corrupt", "interrupted")


def finish(store: Store, protocols, inputs, outcomes, started: float, out, **subset) -> int:
    """The matrix after the run: what happened now, what is still wrong (now or from before),
    and the exit status (1 when anything is)."""
    rows = matrix(store, protocols, inputs, **subset)
    print(f"finished in {_duration(time.monotonic() - started)}: "
          + ", ".join(f"{n} {s}" for s, n in sorted(counts(rows).items())), file=out)
    told = set()
    for outcome in outcomes:
        if outcome.state in BAD_STATES:
            print(f"  {outcome.state}: {outcome.run_id}: {outcome.message}  "
                  f"(see {store.path(outcome.run_id) / LOG})", file=out)
        elif outcome.state == "skipped-corrupt":
            print(f"  left corrupt (--keep-corrupt): {outcome.message}", file=out)
        elif "moved aside" in outcome.message:
            print(f"  repaired ({outcome.state}): {outcome.message}", file=out)
        told.add(outcome.run_id)
    still = [row for row in rows if row.state in BAD_STATES]
    for row in still:
        if row.run.run_id not in told:
            print(f"  {row.state} (earlier): {row.run.label}: {row.run.run_id}"
                  + (f": {row.problem}" if row.problem else "")
                  + ("  (--retry-failed runs it again)" if row.state in ("failed", "diverged")
                     else ""), file=out)
    return 1 if still or any(o.state in BAD_STATES for o in outcomes) else 0


# ------------------------------------------------------------------------------------ status

def store_rows(store: Store) -> list[dict]:
    """Every run in the store, from its own files (no protocol needed)."""
    rows = []
    for run_id, summary in store.summaries().items():
        labels, status = summary["labels"], summary["status"]
        result = summary["result"]
        rows.append({
            "run_id": run_id, "protocol": labels.get("protocol"), "arm": labels.get("arm"),
            "framework": labels.get("framework"),
            "seed": " ".join(f"{k} {v}" for k, v in (labels.get("seed") or {}).items()),
            "state": summary["state"], "step": status.get("step"),
            "steps": labels.get("steps"), "final_accuracy": (result or {}).get("final_accuracy"),
            "best_accuracy": (result or {}).get("best_accuracy"),
            "images_per_s": (result or {}).get("images_per_s"),
            "message": status.get("message") or None, "problem": summary.get("problem"),
            "notes": summary.get("notes") or []})
    return rows


def print_store_status(rows: list[dict], out=None) -> None:
    out = out or sys.stdout
    header = ["run id", "protocol", "arm", "framework", "seed", "state", "step", "final",
              "best"]
    body = [[r["run_id"], r["protocol"] or "?", r["arm"] or "?", r["framework"] or "?",
             r["seed"], r["state"], f"{r['step'] or 0}/{r['steps'] or '?'}",
             _accuracy(r, "final_accuracy"), _accuracy(r, "best_accuracy")] for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]
    for line in [header, *body]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip(),
              file=out)
    total: dict[str, int] = {}
    for r in rows:
        total[r["state"]] = total.get(r["state"], 0) + 1
    print(f"{len(rows)} runs: " + (", ".join(f"{n} {s}" for s, n in sorted(total.items()))
                                   or "none"), file=out)
    for r in rows:
        if r["state"] == "corrupt":
            print(f"corrupt: {r['problem']} (`audit run` moves it aside and runs it again)",
                  file=out)
        for note in r["notes"]:
            print(f"note: {note} (`audit run` rewrites status.json)", file=out)
