"""The Slurm executor: each run one Slurm job, submitted through submitit.

A job claims its run, starts `python -m transfg.train RUN_DIR` and waits for it (the same code
path as the local executor). Jobs are Checkpointable: when Slurm preempts a job or its time runs
out, submitit requeues it and the run resumes from its last checkpoint. A job that Slurm stops
(`scancel`, `scontrol requeue`, preemption: SIGTERM to every process of the job) stops its
training process and ends without a result: a requeued job runs again and resumes the run from
its checkpoint; a cancelled one leaves its run interrupted, and the next `audit run --executor
slurm` submits it again and it resumes. submitit's own folder (job scripts, pickled job
arguments, logs) is `<store>/.submitit/<job id>/`: the pickles there are ours, written and read
by this program only.

Waiting asks Slurm for the jobs' states with `squeue`, and `sacct` for jobs that squeue no
longer lists, so it also works on clusters without accounting storage (where submitit's own
watcher, which asks sacct only, would wait forever for a job that ended without a result).

`cluster="local"` runs the same jobs as local processes through submitit's LocalExecutor (for
tests and for trying a protocol before a cluster is at hand).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import submitit

from audit.executors.common import Outcome, WorkItem, execute
from audit.executors.progress import Reporter
from audit.store import Store

# Slurm job states after which a job never runs again (anything else may still run: pending,
# running, requeued, completing, suspended...).
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
         "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "REVOKED"}


class Stopped(SystemExit):
    """Slurm stopped this job (SIGTERM) while its run trained: no result for submitit to
    record (a SystemExit, so submitit writes none), Slurm requeues or ends the job."""


class RunJob(submitit.helpers.Checkpointable):
    """The callable a Slurm job executes (pickled by submitit)."""

    def __init__(self, store_root: str, run_id: str, spec: dict, fingerprints: dict,
                 retry_failed: bool = False, keep_corrupt: bool = False):
        self.store_root, self.run_id = store_root, run_id
        self.spec, self.fingerprints = spec, fingerprints
        self.retry_failed, self.keep_corrupt = retry_failed, keep_corrupt

    def __call__(self) -> dict:
        # Slurm sends SIGTERM to every process of the job when it cancels, requeues or preempts
        # it: the training process ends (it resumes from its checkpoint next time), and this one
        # must not report the stopped run as the job's result. A requeued job keeps its id and
        # its folder: a result written now would be read as the end of the job.
        stopped: list[int] = []
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
        try:
            outcome = execute(Store(self.store_root), self.run_id, self.spec, self.fingerprints,
                              owner=f"slurm job {os.environ.get('SLURM_JOB_ID', '?')}",
                              retry_failed=self.retry_failed, keep_corrupt=self.keep_corrupt)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if stopped and outcome.state not in ("done", "skipped-done"):
            raise Stopped(128 + signal.SIGTERM)
        return outcome.__dict__


def slurm_gpus(partition: str | None) -> int | None:
    """How many GPUs (gres gpu) the nodes of the partition (the default one when None) have at
    most; None when sinfo cannot say."""
    command = ["sinfo", "--noheader", "--format=%G"]
    if partition:
        command.append(f"--partition={partition}")
    else:  # the default partition is marked with a star in %P
        command = ["sinfo", "--noheader", "--format=%P|%G"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    most = 0
    for line in out.stdout.splitlines():
        if not partition:
            name, _, line = line.partition("|")
            if not name.endswith("*"):
                continue
        for gres in line.split(","):  # gpu:4, gpu:a100:4, gpu:4(S:0-1), (null)
            fields = gres.split("(")[0].split(":")
            if fields[0] == "gpu" and fields[-1].isdigit():
                most = max(most, int(fields[-1]))
    return most


def default_gpus(partition: str | None, devices: int, out=None) -> int:
    """GPUs per job when --gpus is not given: the devices a run needs, or none on a partition
    whose nodes have no GPUs (the runs then train on the CPU, as they do locally)."""
    if shutil.which("sinfo") is None:
        return devices
    gpus = slurm_gpus(partition)
    if gpus == 0:
        if out is not None:
            print(f"partition {partition or '(default)'} has no GPUs (sinfo): the jobs request "
                  "none and train on the CPU (--gpus N asks for N)", file=out)
        return 0
    return devices


def make_executor(store: Store, *, cluster: str | None = None, partition: str | None = None,
                  time_minutes: int = 24 * 60, gpus: int = 1, account: str | None = None,
                  cpus: int | None = None) -> submitit.AutoExecutor:
    """cluster: None for Slurm (refused with a RuntimeError where there is no `srun`: submitit
    would otherwise run the jobs on this machine without a word), "local" for submitit's local
    executor."""
    executor = submitit.AutoExecutor(folder=str(store.root.absolute() / ".submitit" / "%j"),
                                     cluster=cluster or "slurm")
    params = {"timeout_min": time_minutes, "name": "transfg-audit"}
    if cluster != "local":
        params |= {"tasks_per_node": 1}
        if gpus:
            params["gpus_per_node"] = gpus
        if cpus:
            params["cpus_per_task"] = cpus
        if partition:
            params["slurm_partition"] = partition
        if account:
            params["slurm_account"] = account
    executor.update_parameters(**params)
    return executor


class SubmitError(RuntimeError):
    def __init__(self, message: str, jobs: list):
        super().__init__(message)
        self.jobs = jobs  # the jobs submitted before the failure


def submit(executor: submitit.AutoExecutor, store: Store, items: list[WorkItem], *,
           retry_failed: bool = False, keep_corrupt: bool = False
           ) -> list[tuple[WorkItem, submitit.Job]]:
    """One job per item, named after its run; SubmitError (with the jobs submitted so far) when
    the cluster refuses one."""
    jobs: list[tuple[WorkItem, submitit.Job]] = []
    for item in items:
        if executor.cluster != "local":
            executor.update_parameters(name=f"audit-{item['run_id']}")
        try:
            job = executor.submit(RunJob(str(store.root.absolute()), item["run_id"],
                                         item["spec"], item["fingerprints"], retry_failed,
                                         keep_corrupt))
        except (submitit.core.utils.FailedJobError, OSError) as error:
            raise SubmitError(f"{item['label']} ({item['run_id']}) could not be submitted: "
                              f"{str(error).strip()}", jobs) from error
        jobs.append((item, job))
    return jobs


def job_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each job (its first word: CANCELLED, not "CANCELLED by 0"): squeue for
    the jobs the controller still holds, sacct for older ones; "GONE" for a job that neither
    knows (it ended before squeue's MinJobAge, on a cluster without accounting). A job is
    missing from the answer when Slurm could not be asked (the controller is down): unknown."""
    if not job_ids:
        return {}
    states: dict[str, str] = {}
    try:
        squeue = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T",
                                 f"--jobs={','.join(job_ids)}"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    if squeue.returncode != 0 and "Invalid job id" not in squeue.stderr:
        return {}  # the controller did not answer: nothing can be concluded
    for line in squeue.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id in job_ids:
            states[job_id] = state.split()[0] if state.split() else "UNKNOWN"
    missing = [j for j in job_ids if j not in states]
    if missing:
        try:
            sacct = subprocess.run(["sacct", "--noheader", "--parsable2", "--format=JobID,State",
                                    f"--jobs={','.join(missing)}"],
                                   capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            sacct = None
        if sacct is not None and sacct.returncode == 0:
            for line in sacct.stdout.splitlines():
                job_id, _, state = line.strip().partition("|")
                if job_id in missing and state.split():
                    states[job_id] = state.split()[0]
        for job_id in missing:
            states.setdefault(job_id, "GONE")
    return states


def _result_ready(job) -> bool:
    folder = job.paths.folder
    try:  # a shared filesystem may cache a folder's listing: touching it refreshes the cache
        folder.chmod(folder.stat().st_mode)
    except OSError:
        pass
    return job.paths.result_pickle.exists()


def _ended_without_result(item: WorkItem, job, state: str) -> Outcome:
    log = Path(job.paths.stderr)
    return Outcome(item["run_id"], "interrupted",
                   message=f"job {job.job_id} ended ({state}) without a result (cancelled, "
                           "killed or failed; the next `audit run` submits the run again and it "
                           f"resumes); its log: {log}")


def wait(jobs: list, reporter: Reporter | None = None, poll: float = 2.0) -> list[Outcome]:
    """Wait for submitted jobs; one Outcome each (a job that ended without a result: its run is
    interrupted)."""
    pending, outcomes = list(jobs), []
    while pending:
        slurm = [job.job_id for _, job in pending if isinstance(job, submitit.SlurmJob)]
        states = job_states(slurm)  # asked before looking for results: a result is written
        still = []  # before its job ends
        for item, job in pending:
            if not isinstance(job, submitit.SlurmJob):
                ended = job.done()
            else:
                ended = _result_ready(job) or states.get(job.job_id) in ENDED | {"GONE"}
            if not ended:
                still.append((item, job))
                continue
            if not isinstance(job, submitit.SlurmJob) or _result_ready(job):
                try:
                    outcome = Outcome(**job.result())
                except Exception as error:  # the job itself died (killed, node failure...)
                    outcome = Outcome(item["run_id"], "interrupted",
                                      message=f"job {job.job_id}: {str(error).splitlines()[0]}")
            else:
                outcome = _ended_without_result(item, job, states[job.job_id])
            outcomes.append(outcome)
            if reporter:
                reporter.finished(item["run_id"], item["label"], outcome.state,
                                  outcome.seconds, outcome.message if outcome.state != "done"
                                  else f"job {job.job_id}")
        pending = still
        if pending:
            time.sleep(poll)
    return outcomes
