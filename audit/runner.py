"""`audit run` (and what `audit plan` and `audit status` share with it): runs what the matrix of
protocols against the store still needs, and says how it ended. The matrix itself is read by
`audit.records`; its tables for the terminal are `audit.cli.tables`."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from audit.executors.progress import Reporter, duration
from audit.plan import FINGERPRINTS, Inputs
from audit.protocol import Protocol
from audit.records import Row, count_states, matrix, tally, unavailable_reasons
from audit.store import Store
from transfg.run_files import LOG

if TYPE_CHECKING:  # the executors are imported when a run starts
    from audit.executors.common import Outcome, WorkItem

BAD_STATES = ("failed", "diverged", "corrupt", "interrupted")


def print_inputs(rows: list[Row], out) -> None:
    """The inputs the runs depend on: each missing one that makes runs unavailable, and which
    identity of the official code the run ids use (its commit, or its content)."""
    for reason in unavailable_reasons(rows):
        print(f"unavailable: {reason}", file=out)
    for checkout in sorted({r.run.spec.official_checkout for r in rows
                            if r.run.spec is not None and r.run.spec.official_checkout}):
        print(f"official code: {checkout}: "
              f"{FINGERPRINTS.official_identity(checkout).describe()}", file=out)


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
    the matrix's seeds per protocol (`records.matrix`); `submitted`: filled with the (item, job)
    pairs submitted to Slurm."""
    out = out or sys.stderr
    if rows is None:
        rows = matrix(store, protocols, inputs, arms, frameworks, seeds, max_seeds)
    repair_statuses(store, rows, out)
    items = work_items(rows, retry_failed, keep_corrupt)
    print(f"{len(rows)} runs: " + tally(count_states(r.state for r in rows))
          + f"; {len(items)} to run", file=out)
    print_inputs(rows, out)
    started = time.monotonic()
    submit_error: Exception | None = None
    if executor == "local":
        outcomes = run_locally(store, items, jobs, retry_failed, keep_corrupt, out)
    elif executor in ("slurm", "submitit-local"):
        submission = submit_to_slurm(store, items, executor, slurm, retry_failed, keep_corrupt,
                                     out)
        if submission is None:  # no srun: not on a Slurm cluster
            return 2
        jobs_submitted, submit_error = submission
        if submitted is not None:
            submitted.extend(jobs_submitted)
        if not wait:
            print(f"{len(jobs_submitted)} jobs submitted; `audit status` follows them",
                  file=out)
            return 2 if submit_error else 0
        outcomes = wait_for_slurm(jobs_submitted, out)
    else:
        raise ValueError(f"executor {executor!r}; allowed: local, slurm, submitit-local")
    status = finish(store, protocols, inputs, outcomes, started, out,
                    arms=arms, frameworks=frameworks, seeds=seeds, max_seeds=max_seeds)
    return 2 if submit_error else status


def repair_statuses(store: Store, rows: list[Row], out) -> None:
    """Rewrite the status.json of each done run whose status disagrees with its result."""
    for row in rows:
        if row.state == "done" and row.notes:
            inspection = store.inspect(row.run_id)
            if inspection.state == "done" and inspection.notes:
                store.repair_status(row.run_id, inspection)
                print(f"repaired: {'; '.join(inspection.notes)} (status.json rewritten from "
                      "result.json)", file=out)


def run_locally(store: Store, items: list[WorkItem], jobs: int | None, retry_failed: bool,
                keep_corrupt: bool, out) -> list[Outcome]:
    """The items in a pool over this machine's GPUs or CPU slots, with the progress lines."""
    from audit.executors.local import run_local, slots

    devices = max((i["spec"]["devices"] for i in items), default=1)
    reporter = Reporter(len(items), len(slots(devices, jobs)) if items else 1, out)
    try:
        return run_local(store, items, jobs=jobs, retry_failed=retry_failed,
                         keep_corrupt=keep_corrupt, reporter=reporter)
    finally:
        reporter.close()


def submit_to_slurm(store: Store, items: list[WorkItem], executor: str, slurm: dict | None,
                    retry_failed: bool, keep_corrupt: bool, out
                    ) -> tuple[list, Exception | None] | None:
    """Submit each item not running already as a Slurm job (submitit's local executor for
    "submitit-local"), saying so: (the (item, job) pairs submitted, the error that stopped the
    submission or None), or None when there is no Slurm to submit to."""
    from audit.executors import slurm as slurm_executor

    cluster = "local" if executor == "submitit-local" else None
    items = [i for i in items if not store.is_claimed(i["run_id"])]
    options = dict(slurm or {})
    if options.get("gpus") is None and items:  # each job gets the GPUs its run needs,
        devices = max(i["spec"]["devices"] for i in items)  # none on a CPU-only partition
        options["gpus"] = devices if cluster == "local" else \
            slurm_executor.default_gpus(options.get("partition"), devices, out)
    try:
        submitter = slurm_executor.make_executor(store, cluster=cluster, **options) \
            if items else None
    except RuntimeError as no_slurm:  # no srun: not on a Slurm cluster
        print(f"error: --executor {executor}: {no_slurm}", file=out)
        return None
    error: Exception | None = None
    try:
        jobs = [] if submitter is None else slurm_executor.submit(
            submitter, store, items, retry_failed=retry_failed, keep_corrupt=keep_corrupt)
    except slurm_executor.SubmitError as submit_error:
        error, jobs = submit_error, submit_error.jobs
    for item, job in jobs:
        print(f"submitted job {job.job_id}: {item['label']} ({item['run_id']})", file=out)
    if error is not None:
        print(f"error: {error}; {len(items) - len(jobs)} runs not submitted", file=out)
    return jobs, error


def wait_for_slurm(jobs: list, out) -> list[Outcome]:
    """Wait for the submitted jobs, with the progress lines."""
    from audit.executors import slurm as slurm_executor

    reporter = Reporter(len(jobs), len(jobs), out)
    try:
        return slurm_executor.wait(jobs, reporter)
    finally:
        reporter.close()


def finish(store: Store, protocols, inputs, outcomes, started: float, out, **subset) -> int:
    """The matrix after the run: what happened now, what is still wrong (now or from before),
    and the exit status (1 when anything is)."""
    rows = matrix(store, protocols, inputs, **subset)
    print(f"finished in {duration(time.monotonic() - started, minutes=True)}: "
          + tally(count_states(r.state for r in rows)), file=out)
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
