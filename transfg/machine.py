"""This machine as the project describes it: the CPU's model and the GPUs nvidia-smi lists. Read
by a run's provenance.json (audit/provenance.py), `audit doctor`, the calibration's machine key,
the local executor's GPU slots and the benchmarks' result files."""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from pathlib import Path

SMI_TIMEOUT_S = 20  # a hung driver stalls the first run this long, not more
GPU_QUERY = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")


class SmiError(RuntimeError):
    """nvidia-smi is installed but failed or did not answer; the message says how."""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output for `args`; None where nvidia-smi is not installed; SmiError where it
    fails or hangs."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, *args], capture_output=True, text=True,
                              timeout=SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SmiError(f"no answer within {SMI_TIMEOUT_S} s") from None
    except OSError as error:
        raise SmiError(str(error)) from None
    if done.returncode != 0:
        raise SmiError(done.stderr.strip() or str(done.returncode))
    return done.stdout


def gpu_lines() -> list[str] | None:
    """One line per GPU, nvidia-smi's CSV: name, driver version, memory; None without
    nvidia-smi; SmiError where it fails."""
    out = nvidia_smi(*GPU_QUERY)
    return None if out is None else out.strip().splitlines()


@functools.cache
def gpus() -> dict:
    """{"gpus": [{"name", "memory"}...], "driver", "cuda"}; no GPUs and None where nvidia-smi is
    missing or fails."""
    try:
        lines = gpu_lines()
    except SmiError:
        lines = None
    if lines is None:
        return {"gpus": [], "driver": None, "cuda": None}
    try:  # the CUDA version is only in the bare call's header: without it, the GPUs still count
        header = nvidia_smi()
    except SmiError:
        header = None
    rows = [[part.strip() for part in line.split(",")] for line in lines]
    cuda = None
    if header and "CUDA Version:" in header:
        cuda = header.split("CUDA Version:")[1].split()[0]
    return {"gpus": [{"name": r[0], "memory": r[2]} for r in rows if len(r) >= 3],
            "driver": rows[0][1] if rows else None, "cuda": cuda}
