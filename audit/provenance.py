"""provenance.json: where a run's result came from. Written when a run starts and again when it
ends (atomically both times):

- this project: git commit, dirty flag and the SHA-256 of `git diff HEAD` (so two dirty trees can
  be told apart), package versions (read from installed metadata, without importing jittor or
  torch: the runner never imports them);
- the machine: Python, OS, CPU model and count, GPUs with driver and CUDA versions (nvidia-smi,
  through transfg/machine.py);
- the run: data and weights fingerprints (and, for the official code, its checkout's identity:
  commit or content hash, transfg.official.identity), the command line, start and end time, wall
  and compute seconds (wall x devices), the final status.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shlex
import socket
import sys
import time
from importlib import metadata
from pathlib import Path

from transfg.git import git
from transfg.jittor_env import SITE_VARIABLE
from transfg.machine import cpu_model, gpus
from transfg.run_files import (
    PROVENANCE,
    PROVENANCE_DAMAGED,
    RunFileError,
    read_provenance,
    write_json,
)

PACKAGES = ("transfg-audit", "jittor", "torch", "numpy", "scipy", "pandas", "pillow", "jinja2",
            "weasyprint", "submitit")
PROJECT = Path(__file__).resolve().parent.parent


@functools.cache
def code() -> dict:
    commit = git(PROJECT, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff_sha256": None,
                "note": "not a git checkout (installed from a package?)"}
    diff = git(PROJECT, "diff", "HEAD") or ""
    untracked = git(PROJECT, "ls-files", "--others", "--exclude-standard") or ""
    return {"commit": commit.strip(), "dirty": bool(diff.strip() or untracked.strip()),
            "diff_sha256": hashlib.sha256((diff + untracked).encode()).hexdigest()}


@functools.cache
def packages(site: str | None = None) -> dict:
    """Installed versions as a training process finds them: `site` (a Jittor run's
    TRANSFG_JITTOR_SITE, transfg/jittor_env.py) ahead of this process's own path."""
    path = ([site] if site else []) + sys.path
    versions = {}
    for name in PACKAGES:
        found = next(iter(metadata.distributions(name=name, path=path)), None)
        versions[name] = found.version if found is not None else None
    return versions


@functools.cache
def machine() -> dict:
    return {"host": socket.gethostname(), "python": sys.version.split()[0],
            "os": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(), **gpus()}


def start(run_dir: Path, spec: dict, command: list[str], fingerprints: dict) -> None:
    """Record a new attempt. An earlier provenance.json that cannot be read (a write cut short
    on a filesystem without atomic renames, an edit) is kept as provenance.damaged.json, and the
    record starts again with a note saying so."""
    path = run_dir / PROVENANCE
    try:
        previous = read_provenance(run_dir) if path.exists() else {}
        note = None
    except RunFileError as error:
        os.replace(path, run_dir / PROVENANCE_DAMAGED)
        previous, note = {}, f"{error}; kept as {PROVENANCE_DAMAGED}, earlier attempts lost"
    attempts = previous.get("attempts", [])
    site = os.environ.get(SITE_VARIABLE) if spec["framework"] == "jittor" else None
    attempts.append({"started": time.time(), "command": shlex.join(command),
                     "host": socket.gethostname(),
                     "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                     **({"jittor_site": site} if site else {}), **slurm_job()})
    write_json(run_dir / PROVENANCE, {
        "code": code(), "packages": packages(site), "machine": machine(),
        "fingerprints": fingerprints, "framework": spec["framework"],
        "devices": spec["devices"], "attempts": attempts,
        "compute_seconds": previous.get("compute_seconds", 0.0)}
        | ({"note": note} if note else {}))


def slurm_job() -> dict:
    """The Slurm job an attempt ran in, and how many times Slurm had requeued it (preemption,
    time limit, `scontrol requeue`): {} outside Slurm."""
    if "SLURM_JOB_ID" not in os.environ:
        return {}
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    return {"slurm_job": os.environ["SLURM_JOB_ID"],
            "slurm_restarts": int(restarts) if restarts.isdigit() else restarts}


def finish(run_dir: Path, status: str, wall_seconds: float, devices: int) -> None:
    data = read_provenance(run_dir)
    data["attempts"][-1] |= {"ended": time.time(), "wall_seconds": wall_seconds,
                             "status": status}
    data["compute_seconds"] = data.get("compute_seconds", 0.0) + wall_seconds * devices
    write_json(run_dir / PROVENANCE, data)
