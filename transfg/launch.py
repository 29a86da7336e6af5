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

PR_SET_PDEATHSIG = 1  # linux/prctl.h
RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")  # torchrun, Open MPI, MPICH


def launcher_rank() -> int | None:
    """This process's rank as its launcher set it, or None when no launcher started it."""
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return None


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing).
    Safe between fork and exec, and in a running process: if the parent is already gone, the
    process exits at once."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the run's claim still keeps it exclusive
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
