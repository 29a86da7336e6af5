"""Executing one run: the part the local and the Slurm executor share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from audit import provenance
from audit.store import Store
from transfg.jittor_env import site_env
from transfg.launch import RUNNER_VARIABLE, die_with_parent
from transfg.run_files import read_json


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
    state: str  # done, failed, diverged, interrupted, skipped-done, skipped-running, skipped-failed
    seconds: float = 0.0
    message: str = ""


def execute(store: Store, run_id: str, spec: dict, fingerprints: dict, *, owner: str = "",
            env: dict | None = None, retry_failed: bool = False,
            on_start=None) -> Outcome:
    """Run (or resume) one run in its own process, unless it is done, running elsewhere, or
    failed before (retried only with retry_failed). `on_start()` is called once the run is
    claimed and about to start."""
    try:
        command = train_command(spec, store.path(run_id))
    except RuntimeError as error:  # the launcher the run needs is missing: nothing to start
        return Outcome(run_id, "failed", message=str(error))
    claim = store.claim(run_id, owner)
    if claim is None:
        return Outcome(run_id, "skipped-running", message="claimed by another runner")
    try:
        folder = store.path(run_id)
        for stale in folder.rglob(".*.tmp"):  # a write cut short by a kill; we hold the claim
            stale.unlink()
        status = store.status(run_id).get("status")
        if status == "finished" and (folder / "result.json").exists():
            return Outcome(run_id, "skipped-done")
        if status in ("failed", "diverged"):
            if not retry_failed:
                return Outcome(run_id, "skipped-failed", message=store.status(run_id)
                               .get("message", ""))
            store.reset_failed(run_id)
        store.prepare(run_id, spec)
        if on_start is not None:
            on_start()
        provenance.start(folder, spec, command, fingerprints)
        started = time.monotonic()
        with open(folder / "output.txt", "ab") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, pass_fds=(claim.fd,),
                                       preexec_fn=die_with_parent,
                                       env={**os.environ, **launcher_env(spec), **(env or {})})
            try:
                code = process.wait()
            except BaseException:  # Ctrl-C or the job being stopped: stop the run with us
                process.terminate()
                process.wait()
                raise
        seconds = time.monotonic() - started
        try:
            final = read_json(folder / "status.json")
        except (FileNotFoundError, ValueError):
            final = {}
        state = {"finished": "done", "failed": "failed", "diverged": "diverged"}.get(
            final.get("status"), "interrupted")
        if state == "done" and code != 0:
            state = "interrupted"
        provenance.finish(folder, state, seconds, spec["devices"])
        if state == "done":
            store.record_summary(run_id)
        return Outcome(run_id, state, seconds, final.get("message", f"exit status {code}"))
    finally:
        claim.release()
