"""Executing one run: the part the local and the Slurm executor share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from audit import provenance
from audit.store import RunLease, Store
from transfg.jittor_env import site_env
from transfg.launch import RUNNER_VARIABLE, die_with_parent
from transfg.run_files import LOG, OUTPUT


class WorkItem(TypedDict):
    """One run for an executor to execute (`audit.runner.work_items`)."""
    run_id: str
    spec: dict[str, Any]  # RunSpec.to_dict()
    fingerprints: dict[str, str | None]  # data, weights_sha256 (and official_commit)
    label: str  # arm / framework / seed, for people


def train_command(spec: dict, run_dir: Path) -> list[str]:
    """The training command: one process, or one per device through the framework's launcher
    (torchrun for PyTorch, mpirun for Jittor)."""
    train = [sys.executable, "-m", "transfg.train", str(run_dir)]
    if spec["devices"] == 1 or spec["framework"] == "official":
        return train
    if spec["framework"] == "torch":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={spec['devices']}", *train[1:]]
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise RuntimeError(f"devices={spec['devices']} with jittor needs mpirun, which is not on "
                           "PATH: install Open MPI (Debian: apt-get install openmpi-bin "
                           "libopenmpi-dev) or use devices=1 with accumulation")
    # Open MPI binds each process to one core by default (at 2 processes or fewer): a rank's
    # threads and its loader workers would then share that core.
    return [mpirun, "-np", str(spec["devices"]), "--bind-to", "none", *train]


def launcher_env(spec: dict) -> dict[str, str]:
    """What a launcher and its processes need from the runner: this process's pid (so each
    training process can tell that its launcher is still the one this runner started,
    transfg/launch.py); as root, Open MPI's permission to start (containers often run as
    root); for Jittor runs, the numpy Jittor can read where TRANSFG_JITTOR_SITE names one
    (transfg/jittor_env.py)."""
    env = {RUNNER_VARIABLE: str(os.getpid())}
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    if spec["framework"] == "jittor":
        env |= site_env()
    return env


@dataclass
class Outcome:
    run_id: str
    # done, failed, diverged, interrupted, corrupt, skipped-done, skipped-running,
    # skipped-failed, skipped-corrupt
    state: str
    seconds: float = 0.0
    message: str = ""


def execute(store: Store, run_id: str, spec: dict, fingerprints: dict, *, owner: str = "",
            env: dict | None = None, retry_failed: bool = False, keep_corrupt: bool = False,
            on_start=None) -> Outcome:
    """Run (or resume) one run in its own process, unless it is done, running elsewhere, or
    failed before (retried only with retry_failed). A corrupt run's folder is moved aside and the
    run starts again (unless keep_corrupt); so is one whose training found a damaged file when it
    resumed. `on_start()` is called once the run is claimed and about to start.

    Whatever goes wrong here fails this run alone: its traceback goes into the run's log.txt, and
    the caller goes on with the other runs."""
    try:
        return _execute(store, run_id, spec, fingerprints, owner, env, retry_failed,
                        keep_corrupt, on_start)
    except Exception as error:
        message = f"{type(error).__name__}: {error} (in the runner, before or after training)"
        try:
            with open(store.path(run_id) / LOG, "a") as log:
                log.write(f"audit run: {message}\n{traceback.format_exc()}")
        except OSError:
            message += f"; its log could not be written either ({store.path(run_id)})"
        return Outcome(run_id, "failed", message=message)


def _execute(store, run_id, spec, fingerprints, owner, env, retry_failed, keep_corrupt,
             on_start) -> Outcome:
    try:
        command = train_command(spec, store.path(run_id))
    except RuntimeError as error:  # the launcher the run needs is missing: nothing to start
        return Outcome(run_id, "failed", message=str(error))
    moved = ""
    for _ in range(3):  # at most: move a corrupt folder aside, run, find damage on resume
        lease = store.claim(run_id, owner)
        if lease is None:
            return Outcome(run_id, "skipped-running", message="claimed by another runner")
        try:
            inspection = store.inspect(run_id, claimed=True)
            if inspection.state == "corrupt" and not moved and not keep_corrupt:
                moved = (f"{inspection.problem}; moved aside to "
                         f"{store.move_aside(run_id, inspection.problem)} and run again")
                continue  # (the claim went with the folder; the finally releases it)
            if inspection.state == "corrupt":
                return Outcome(run_id, "skipped-corrupt" if keep_corrupt else "corrupt",
                               message=inspection.problem or "")
            if inspection.state == "done":
                if inspection.notes:
                    store.repair_status(run_id, inspection)
                return Outcome(run_id, "skipped-done", message="; ".join(inspection.notes))
            if inspection.state in ("failed", "diverged"):
                if not retry_failed:
                    return Outcome(run_id, "skipped-failed",
                                   message=inspection.status.get("message", ""))
                store.reset_failed(run_id)
            outcome = run_process(store, run_id, spec, fingerprints, command, lease, env,
                                  on_start)
        finally:
            lease.release()
        if outcome.state != "corrupt" or moved:
            if moved:
                outcome.message = "; ".join(m for m in (moved, outcome.message) if m)
            return outcome
        # the training process found a damaged file of this run when it resumed: go around once
    raise AssertionError(f"run {run_id}: still corrupt after it was moved aside and run again")


def run_process(store: Store, run_id: str, spec: dict, fingerprints: dict, command: list[str],
                lease: RunLease, env: dict | None, on_start) -> Outcome:
    """Start the training process for a claimed run, wait for it, and say how it ended."""
    folder = store.path(run_id)
    for stale in folder.rglob(".*.tmp"):  # a write cut short by a kill; we hold the claim
        stale.unlink()
    store.prepare(run_id, spec)
    if on_start is not None:
        on_start()
    provenance.start(folder, spec, command, fingerprints)
    started = time.monotonic()
    with open(folder / OUTPUT, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, pass_fds=(lease.fd,),
                                   preexec_fn=die_with_parent,
                                   env={**os.environ, **launcher_env(spec), **(env or {})})
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C or the job being stopped: stop the run with us
            process.terminate()
            process.wait()
            try:  # (a Slurm job requeued on its time limit ends here: the attempt says so)
                provenance.finish(folder, "interrupted", time.monotonic() - started,
                                  spec["devices"])
            except Exception:
                pass
            raise
    seconds = time.monotonic() - started
    status = store.status(run_id)
    if code == 0 and store.inspect(run_id, claimed=True).state == "done":
        state = "done"
    elif status.get("damaged"):
        state = "corrupt"
    else:
        state = {"failed": "failed", "diverged": "diverged"}.get(status.get("status") or "",
                                                                  "interrupted")
    provenance.finish(folder, state, seconds, spec["devices"])
    if state == "done":
        store.record_summary(run_id)
    message = "" if state == "done" else status.get("message") or f"exit status {code}"
    return Outcome(run_id, state, seconds, message)
