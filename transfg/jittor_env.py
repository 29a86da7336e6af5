"""Make `import jittor` work on any machine, before jittor is imported.

Jittor decides four things at import time that break on ordinary machines:

1. CUDA. Where `nvcc` exists but no CUDA runtime or GPU does, the import crashes
   (`libcudart.so: cannot open shared object file`). Jittor skips CUDA when the environment
   variable `nvcc_path` is the empty string.
2. oneDNN ("mkl"). Jittor downloads oneDNN 2.2 from its own server into
   `<jittor home>/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp/` unless that folder already holds
   `include/` and `lib/libmkldnn.so`. Offline that download fails and the import dies. Debian's
   `libdnnl-dev` (oneDNN 2.6, API-compatible for the operators jittor builds) can fill the folder
   with links, so jittor compiles its oneDNN operators against it and downloads nothing. Where no
   system oneDNN exists, `use_mkl=0` keeps jittor working with slower matrix products.
3. python3.X-config, which jittor runs for Python's headers and extension suffix. A virtualenv
   over a Python outside /usr has none where jittor looks, and Debian and Ubuntu ship the headers
   apart from the script: `prepare_python_config()` finds the base interpreter's, or writes a
   stand-in that answers from sysconfig.

4. CUDA 13, which Jittor 1.3 predates: where CUDA is on and the CUDA Jittor would use is 13 or
   newer, `transfg/jittor_cuda13.py` builds the compatibility layer its sources need and points
   Jittor at it (`nvcc_path`, `cc_flags`); below 13 nothing changes.

`prepare_jittor()` does all four, changes nothing the user set explicitly (`nvcc_path`,
`use_mkl`, `python_config_path`, `log_silent`), and reports what it chose. It also quiets
jittor's start-up log (a dozen info lines per process; `log_silent=0` brings them back); jittor's
errors still arrive as exceptions.

Jittor can also compute garbage without an error. Jittor 1.3 reads numpy's arrays through its own
copy of numpy 1.x's structures (`jittor/src/pyjt/numpy.h`: `PyArrayDescr_Proxy`, whose `elsize`
numpy 2.0 moved and widened), so beside numpy 2 every array that crosses between numpy and Jittor
is read from the wrong bytes. Hence two guards: `check_numpy()` refuses a numpy that the installed
Jittor cannot read before jittor is imported, and `check_round_trip(jt)` checks, once per process,
that an array and a small matrix product come back right, so that any future incompatibility
fails loudly too. Where an environment needs numpy 2 for everything else (scipy and pandas built
against it), `TRANSFG_JITTOR_SITE` names a folder with a numpy Jittor can read, and every launcher
of a Jittor process puts it at the front of that process's PYTHONPATH (`site_env()`), so Jittor
processes, and only they, import numpy from there.

Every module that imports jittor goes through `transfg.jittor`, which runs all of this first.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfg.jittor_cuda13 import prepare_cuda

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
    cuda_detail: str = "off"  # one line: the CUDA found, and whether the CUDA 13 layer is active


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


def jittor_python_configs() -> list[Path]:
    """Where jittor looks for python3.X-config when `python_config_path` is unset (as
    jittor_utils.get_py3_config_path does on Linux)."""
    minor, folder = sys.version_info.minor, Path(sys.executable).parent
    return [folder / f"python3.{minor}-config", Path(sys.executable + "-config"),
            Path(f"/usr/bin/python3.{minor}-config"),
            Path(f"/usr/local/bin/python3.{minor}-config"), folder / "python3-config"]


def python_config_standin(python: str = sys.executable) -> str:
    """A python3.X-config that answers the two questions jittor asks (`--includes`,
    `--extension-suffix`) from this interpreter's sysconfig."""
    paths = sysconfig.get_paths()
    includes = " ".join(f"-I{folder}" for folder in dict.fromkeys(
        (paths["include"], paths["platinclude"])))
    return (f"#!/bin/sh\n# Written by transfg/jittor_env.py for {python}: jittor asks only these.\n"
            f'case "$1" in\n'
            f"  --includes) echo '{includes}' ;;\n"
            f"  --extension-suffix) echo '{sysconfig.get_config_var('EXT_SUFFIX')}' ;;\n"
            f'  *) echo "python-config stand-in: $1 is not answered" >&2; exit 2 ;;\n'
            f"esac\n")


def prepare_python_config(env: os._Environ | dict) -> str:
    """Make sure jittor finds a python3.X-config, which it runs for the Python headers' folder
    and the extension suffix; one line saying what was chosen.

    A virtualenv made from a Python outside /usr (pyenv, uv, conda) has none where jittor looks,
    and an image may carry the headers without the script (Debian and Ubuntu put Python.h in
    libpython3.X-dev and python3.X-config in python3.X-dev): then jittor's import fails. The
    base interpreter's script is taken where it exists; otherwise, where the headers exist, a
    stand-in written into jittor's cache folder answers from sysconfig.
    """
    if "python_config_path" in env:
        return f"python_config_path={env['python_config_path']} was set by the user"
    found = next((path for path in jittor_python_configs() if path.is_file()), None)
    if found is not None:
        return f"jittor finds {found}"
    base = Path(sys.base_prefix) / "bin" / f"python3.{sys.version_info.minor}-config"
    if base.is_file():
        env["python_config_path"] = str(base)
        return f"the base interpreter's {base}"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return (f"no python3.{sys.version_info.minor}-config and no Python.h: jittor cannot "
                f"compile (install python3.{sys.version_info.minor}-dev)")
    script = python_config_standin()
    target = (jittor_home(env) / ".cache" / "jittor" / "python-config"
              / hashlib.sha256(script.encode()).hexdigest()[:16]
              / f"python3.{sys.version_info.minor}-config")
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
        staging.write_text(script)
        staging.chmod(0o755)
        staging.replace(target)  # atomic: a killed process never leaves half a script
    env["python_config_path"] = str(target)
    return f"a stand-in answering from sysconfig ({target})"


def prepare_jittor(environ: os._Environ | dict | None = None) -> JittorSetup:
    """Set the environment so that a later `import jittor` works here; see the module docstring."""
    env = os.environ if environ is None else environ
    log.debug("jittor: python-config: %s", prepare_python_config(env))
    if "nvcc_path" in env:
        cuda = env["nvcc_path"] != ""
    else:
        cuda = cuda_usable()
        if not cuda:
            env["nvcc_path"] = ""
    cuda_detail = prepare_cuda(env, jittor_home(env) / ".cache" / "jittor") if cuda else "off"
    log.debug("jittor: cuda: %s", cuda_detail)
    env.setdefault("log_silent", "1")

    if env.get("use_mkl", "1") != "1":
        return JittorSetup(cuda, "off", None, f"use_mkl={env['use_mkl']} was set by the user",
                           cuda_detail)
    target = jittor_home(env) / ".cache" / "jittor" / "mkl" / onednn_folder_name()
    if (target / "lib" / "libmkldnn.so").exists() and (target / "include").is_dir():
        library = (target / "lib" / "libmkldnn.so").resolve()
        return JittorSetup(cuda, "existing", target, f"{target} -> {library}", cuda_detail)
    system = find_system_onednn()
    if system is not None:
        try:
            if target.is_dir():  # incomplete (a download cut short, a dangling link): useless
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            link_system_onednn(target, *system)
            return JittorSetup(cuda, "system", target, f"linked system oneDNN {system[1]}",
                               cuda_detail)
        except OSError as error:
            reason = f"cannot write {target.parent} ({error.strerror})"
    else:
        reason = "no system oneDNN (install Debian's libdnnl-dev)"
    env["use_mkl"] = "0"
    log.warning("jittor: oneDNN unavailable, %s; using use_mkl=0 (slower matrix products)", reason)
    return JittorSetup(cuda, "off", None, reason, cuda_detail)


# Where a numpy that Jittor can read lies when the environment's own numpy is one it cannot.
SITE_VARIABLE = "TRANSFG_JITTOR_SITE"
NUMPY_FIX = ("install numpy<2 here (pip install 'numpy>=1.24,<2'), or, where this environment "
             "needs numpy 2 for other packages, install numpy 1.26 into a folder of its own "
             "(pip install --target DIR numpy==1.26.4) and set " + SITE_VARIABLE + "=DIR: the "
             "audit then starts its Jittor processes, and only those, with DIR first on "
             "PYTHONPATH")


class JittorUnusable(RuntimeError):
    """Jittor would compute wrong numbers in this process, so nothing may run in it."""


def major_minor(version: str) -> tuple[int, int] | None:
    """(1, 3) from "1.3.11.0", (2, 0) from "2.0.0rc1"; None when it does not start so."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def installed_jittor_version() -> str | None:
    """The installed jittor's version from its package metadata, without importing it."""
    try:
        return importlib.metadata.version("jittor")
    except importlib.metadata.PackageNotFoundError:
        return None


def numpy_problem(numpy_version: str, numpy_path: str, jittor_version: str | None,
                  environ: os._Environ | dict) -> str | None:
    """Why Jittor cannot read this numpy, in one line with what to do, or None when it can.

    Jittor 1.3.x and older read numpy 1.x's structures, which numpy 2 changed (module
    docstring); a later Jittor is trusted to say what it needs, and the round trip checks it.
    """
    jittor = major_minor(jittor_version or "")
    if jittor is not None and jittor > (1, 3):
        return None
    numpy = major_minor(numpy_version)
    if numpy is None or numpy < (2, 0):
        return None
    message = (f"numpy {numpy_version} ({numpy_path}) cannot be used with Jittor "
               f"{jittor_version or '1.3'}: Jittor 1.3 reads numpy arrays through numpy 1.x's "
               "memory layout, which numpy 2 changed, so every array passed between numpy and "
               "Jittor would be garbage, with no error. ")
    site = environ.get(SITE_VARIABLE)
    if site:
        found = (Path(site) / "numpy").is_dir()
        message += (f"{SITE_VARIABLE}={site} is set, but " +
                    (f"the numpy there is {numpy_version}: install numpy==1.26.4 into it instead"
                     if Path(numpy_path).is_relative_to(Path(site).resolve()) else
                     "this process did not import numpy from there (" +
                     ("it was started without that folder first on PYTHONPATH" if found else
                      "the folder holds no numpy") + ")") + ". Otherwise: ")
    else:
        message += "To fix it: "
    return message + NUMPY_FIX + "."


def check_numpy(environ: os._Environ | dict | None = None) -> None:
    """Raise JittorUnusable when the numpy this process imported is one Jittor cannot read.
    Call it before importing jittor: nothing is computed."""
    problem = numpy_problem(np.__version__, str(Path(np.__file__).resolve().parent),
                            installed_jittor_version(),
                            os.environ if environ is None else environ)
    if problem:
        raise JittorUnusable(problem)


def check_round_trip(jt) -> None:
    """Raise JittorUnusable unless arrays make the numpy -> Jittor -> numpy round trip intact and
    a small matrix product is right (all values exact in float32). `jt` is the jittor module."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)  # (2, 3)
    labels = np.array([3, 0, 2], dtype=np.int64)  # labels cross as int64 in training
    a = jt.array(x)
    cases = {"a (2, 3) float32 array": (lambda: a.numpy(), x),
             "its product with its transpose": (lambda: jt.matmul(a, a.transpose()).numpy(),
                                                x @ x.T),
             "an int64 label array": (lambda: jt.array(labels).numpy(), labels)}
    wrong = []
    for name, (compute, expected) in cases.items():
        got = np.asarray(compute())
        if got.shape != expected.shape or not np.array_equal(got, expected):
            wrong.append(f"{name} came back as {np.array2string(got.ravel(), precision=3)} "
                         f"instead of {np.array2string(expected.ravel())}")
    if wrong:
        raise JittorUnusable(
            f"Jittor {getattr(jt, '__version__', '?')} computes wrong numbers in this process "
            f"(numpy {np.__version__}, {Path(np.__file__).resolve().parent}): "
            f"{'; '.join(wrong)}. Every Jittor result here would be wrong, so nothing runs. "
            f"If numpy is 2.x: {NUMPY_FIX}.")


def site_env(environ: os._Environ | dict | None = None) -> dict[str, str]:
    """What a child process that runs Jittor needs beyond its parent's environment: PYTHONPATH
    with the folder TRANSFG_JITTOR_SITE names at its front, when that is set ({} otherwise).
    Every launcher of a Jittor process merges it in; other processes keep the parent's numpy."""
    env = os.environ if environ is None else environ
    site = env.get(SITE_VARIABLE)
    if not site:
        return {}
    rest = env.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join([site, *([rest] if rest else [])])}
