"""How a training process learns where it stands among its launcher's processes, and makes sure
it never outlives the process that started it.

A run on several devices is started by a launcher (torchrun, mpirun) that the runner starts and
watches. If the runner is killed, the kernel kills the launcher (PDEATHSIG, set by the runner);
each training process asks the same of its own parent here, so no orphaned process goes on
writing into a run folder that a restarted runner may already be resuming.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")  # torchrun, Open MPI, MPICH
RUNNER_VARIABLE = "TRANSFG_RUNNER_PID"  # set by the runner for the launcher it starts


def runner_pid() -> int | None:
    """The pid of the runner that started this process's launcher, when a runner did."""
    value = os.environ.get(RUNNER_VARIABLE)
    return int(value) if value and value.isdigit() else None


def launcher_rank() -> int | None:
    """This process's rank as its launcher set it, or None when no launcher started it."""
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return None


def die_with_parent(grandparent: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing).
    Safe between fork and exec, and in a running process. If the parent is already gone the
    process exits at once: its parent changed during the call, or (when `grandparent`, the pid
    that started the parent, is given) the parent is no longer the process that pid started:
    this process was handed to another while it was starting up."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError, TypeError):  # not Linux: the run's claim still guards it
        return
    if os.getppid() != parent or (grandparent is not None
                                  and parent_of(parent) not in (grandparent, None)):
        os.write(2, f"process {os.getpid()}: the process that started it is gone (expected "
                    f"parent {parent}, started by {grandparent}); exiting\n".encode())
        os._exit(1)


def parent_of(pid: int) -> int | None:
    """The parent of process `pid` (from /proc), or None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (name)": state, ppid, ...
