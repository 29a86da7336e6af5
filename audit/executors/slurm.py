"""The Slurm executor: each run one Slurm job, submitted through submitit.

A job claims its run, starts `python -m transfg.train RUN_DIR` and waits for it (the same code
path as the local executor). Jobs are Checkpointable: when Slurm preempts a job or its time runs
out, submitit requeues it and the run resumes from its last checkpoint. A job that Slurm killed
outright leaves its run interrupted; the next `audit run --executor slurm` submits it again and
it resumes. submitit's own folder (job scripts, pickled job arguments, logs) is
`<store>/.submitit/`: the pickles there are ours, written and read by this program only.

`cluster="local"` runs the same jobs as local processes through submitit's LocalExecutor (for
tests and for trying a protocol before a cluster is at hand).
"""

from __future__ import annotations

import time

import submitit

from audit.executors.common import Outcome, execute
from audit.executors.progress import Reporter
from audit.store import Store


class RunJob(submitit.helpers.Checkpointable):
    """The callable a Slurm job executes (pickled by submitit)."""

    def __init__(self, store_root: str, run_id: str, spec: dict, fingerprints: dict,
                 retry_failed: bool = False, keep_corrupt: bool = False):
        self.store_root, self.run_id = store_root, run_id
        self.spec, self.fingerprints = spec, fingerprints
        self.retry_failed, self.keep_corrupt = retry_failed, keep_corrupt

    def __call__(self) -> dict:
        outcome = execute(Store(self.store_root), self.run_id, self.spec, self.fingerprints,
                          owner="slurm job", retry_failed=self.retry_failed,
                          keep_corrupt=self.keep_corrupt)
        return outcome.__dict__


def make_executor(store: Store, *, cluster: str | None = None, partition: str | None = None,
                  time_minutes: int = 24 * 60, gpus: int = 1, account: str | None = None,
                  cpus: int | None = None) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=str(store.root / ".submitit" / "%j"),
                                     cluster=cluster)
    params = {"timeout_min": time_minutes, "name": "transfg-audit"}
    if cluster != "local":
        params |= {"gpus_per_node": gpus, "tasks_per_node": 1}
        if cpus:
            params["cpus_per_task"] = cpus
        if partition:
            params["slurm_partition"] = partition
        if account:
            params["slurm_account"] = account
    executor.update_parameters(**params)
    return executor


def submit(executor: submitit.AutoExecutor, store: Store, items: list[dict], *,
           retry_failed: bool = False, keep_corrupt: bool = False) -> list:
    jobs = []
    for item in items:
        job = executor.submit(RunJob(str(store.root), item["run_id"], item["spec"],
                                     item["fingerprints"], retry_failed, keep_corrupt))
        jobs.append((item, job))
    return jobs


def wait(jobs: list, reporter: Reporter | None = None, poll: float = 2.0) -> list[Outcome]:
    """Wait for submitted jobs; one Outcome each (a job that died: its run is interrupted)."""
    pending, outcomes = list(jobs), []
    while pending:
        still = []
        for item, job in pending:
            if not job.done():
                still.append((item, job))
                continue
            try:
                outcome = Outcome(**job.result())
            except Exception as error:  # the job itself died (killed, node failure...)
                outcome = Outcome(item["run_id"], "interrupted",
                                  message=f"job {job.job_id}: {str(error).splitlines()[0]}")
            outcomes.append(outcome)
            if reporter:
                reporter.finished(item["run_id"], item["label"], outcome.state,
                                  outcome.seconds, outcome.message if outcome.state != "done"
                                  else f"job {job.job_id}")
        pending = still
        if pending:
            time.sleep(poll)
    return outcomes

