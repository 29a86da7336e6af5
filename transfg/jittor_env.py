"""Make `import jittor` work on any machine, before jittor is imported.

Jittor decides two things at import time that break on ordinary machines:

1. CUDA. Where `nvcc` exists but no CUDA runtime or GPU does, the import crashes
   (`libcudart.so: cannot open shared object file`). Jittor skips CUDA when the environment
   variable `nvcc_path` is the empty string.
2. oneDNN ("mkl"). Jittor downloads oneDNN 2.2 from its own server into
   `<jittor home>/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp/` unless that folder already holds
   `include/` and `lib/libmkldnn.so`. Offline that download fails and the import dies. Debian's
   `libdnnl-dev` (oneDNN 2.6, API-compatible for the operators jittor builds) can fill the folder
   with links, so jittor compiles its oneDNN operators against it and downloads nothing. Where no
   system oneDNN exists, `use_mkl=0` keeps jittor working with slower matrix products.

`prepare_jittor()` does both, changes nothing the user set explicitly (`nvcc_path`, `use_mkl`,
`log_silent`), and reports what it chose. It also quiets jittor's start-up log (a dozen info lines
per process; `log_silent=0` brings them back); jittor's errors still arrive as exceptions.
Every module that imports jittor goes through `transfg.jittor`, which calls it first.
"""

from __future__ import annotations

import ctypes
import glob
import json
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("transfg")

# Where Debian's libdnnl-dev puts its files; the headers jittor's operators include.
SYSTEM_INCLUDE = Path("/usr/include")
ONEDNN_HEADERS = ("dnnl*.h", "dnnl*.hpp", "oneapi")


@dataclass(frozen=True)
class JittorSetup:
    cuda: bool  # jittor will compile for CUDA and the entry point should set flags.use_cuda
    onednn: str  # "system" (linked Debian's oneDNN), "existing" (folder already there), "off"
    onednn_dir: Path | None
    reason: str  # one line: why this choice


def cuda_usable() -> bool:
    """True when the CUDA driver loads and reports at least one device."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0:
            return False
        return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    return False


def jittor_home(environ: os._Environ | dict) -> Path:
    """The folder under which jittor keeps `.cache/jittor`, resolved as jittor_utils.home() does."""
    if "JITTOR_HOME" in environ:
        return Path(environ["JITTOR_HOME"])
    config = Path.home() / ".cache" / "jittor" / "config.json"
    if config.is_file():
        try:
            return Path(json.loads(config.read_text()).get("JITTOR_HOME", Path.home()))
        except (OSError, ValueError):
            pass
    return Path.home()


def onednn_folder_name() -> str:
    """The folder name jittor expects (it also names the archive it would download)."""
    suffix = "_aarch64" if platform.machine() == "aarch64" else ""
    return f"dnnl_lnx_2.2.0_cpu_gomp{suffix}"


def find_system_onednn(include_dir: Path = SYSTEM_INCLUDE) -> tuple[Path, Path] | None:
    """(include dir, shared library) of a system oneDNN, or None."""
    if not (include_dir / "dnnl.hpp").is_file():
        return None
    for folder in (f"/usr/lib/{platform.machine()}-linux-gnu", "/usr/lib64", "/usr/lib"):
        for candidate in sorted(glob.glob(f"{folder}/libdnnl.so*"), key=len):
            if Path(candidate).is_file():
                return include_dir, Path(candidate)
    return None


def link_system_onednn(target: Path, include_dir: Path, library: Path) -> None:
    """Fill jittor's oneDNN folder with links to the system's headers and library.

    Only the oneDNN headers are linked (not all of /usr/include): `-I/usr/include` on a C++ command
    line reorders the system include path and breaks libstdc++'s `#include_next`.
    The folder is built under a temporary name and renamed, so a killed process never leaves a
    half-made folder that jittor would trust.
    """
    staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed process with our pid
    (staging / "include").mkdir(parents=True)
    (staging / "lib").mkdir()
    for pattern in ONEDNN_HEADERS:
        for header in include_dir.glob(pattern):
            (staging / "include" / header.name).symlink_to(header)
    (staging / "lib" / "libmkldnn.so").symlink_to(library)
    try:
        staging.rename(target)
    except OSError:  # another process made it first; theirs is as good as ours
        shutil.rmtree(staging)  # removes the links, never what they point to


def prepare_jittor(environ: os._Environ | dict | None = None) -> JittorSetup:
    """Set the environment so that a later `import jittor` works here; see the module docstring."""
    env = os.environ if environ is None else environ
    if "nvcc_path" in env:
        cuda = env["nvcc_path"] != ""
    else:
        cuda = cuda_usable()
        if not cuda:
            env["nvcc_path"] = ""
    env.setdefault("log_silent", "1")

    if env.get("use_mkl", "1") != "1":
        return JittorSetup(cuda, "off", None, f"use_mkl={env['use_mkl']} was set by the user")
    target = jittor_home(env) / ".cache" / "jittor" / "mkl" / onednn_folder_name()
    if (target / "lib" / "libmkldnn.so").exists() and (target / "include").is_dir():
        library = (target / "lib" / "libmkldnn.so").resolve()
        return JittorSetup(cuda, "existing", target, f"{target} -> {library}")
    system = find_system_onednn()
    if system is not None:
        try:
            if target.is_dir():  # incomplete (a download cut short, a dangling link): useless
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            link_system_onednn(target, *system)
            return JittorSetup(cuda, "system", target, f"linked system oneDNN {system[1]}")
        except OSError as error:
            reason = f"cannot write {target.parent} ({error.strerror})"
    else:
        reason = "no system oneDNN (install Debian's libdnnl-dev)"
    env["use_mkl"] = "0"
    log.warning("jittor: oneDNN unavailable, %s; using use_mkl=0 (slower matrix products)", reason)
    return JittorSetup(cuda, "off", None, reason)
