"""Jittor 1.3 on CUDA 13: the compatibility layer `prepare_jittor` applies where the CUDA it finds
is 13 or newer, from the outside (the installed Jittor is never edited).

Jittor 1.3.11 (2023) predates CUDA 13. Compiling its CUDA sources with nvcc 13.0 for sm_90
(`bench/jittor_cuda13.py`, results in `bench/results/`) fails in these ways, each answered here:

1. CUDA 13 removed `cudaDeviceProp::clockRate` and `::computeMode`, which Jittor's copy of
   NVIDIA's `helper_cuda.h` reads (in device-choosing helpers Jittor never calls); 39 of Jittor's
   sources include it. Stand-in: an overlay `helper_cuda.h`, found first through the host
   compiler's quote-include path (`-iquote`, ahead of every `-I`), that includes Jittor's own with
   a `cudaDeviceProp` that has both fields back, filled from `cudaDeviceGetAttribute`
   (`cudaDevAttrClockRate`, `cudaDevAttrComputeMode`), which CUDA 13 keeps.
2. CUDA 13's CCCL 3 (cub, thrust, libcu++) refuses C++ older than 17; Jittor compiles with C++14
   and rewrites any C++17 in its flags back to C++14 for nvcc. Stand-in: Jittor's nvcc is a
   wrapper script that passes C++17 instead.
3. CUDA 13 moved cub and thrust under `include/cccl`, which only a full toolkit's
   `nvcc.profile` puts on the include path (the pip packages' nvcc finds none). The wrapper
   adds it.
4. cuDNN 9, the only cuDNN for CUDA 13, removed the v6/v7 RNN API that Jittor's cuDNN RNN
   operators call, and Jittor builds all its cuDNN operators as one library, so the convolutions
   would be lost with them (and Jittor's import dies: a cuDNN that fails to build is fatal).
   Stand-in: the layer's `cudnn.h` (the first on Jittor's include path; one of Jittor's
   generated sources includes its RNN header by absolute path, past any overlay) is cuDNN's,
   plus stand-ins for the removed functions that answer `CUDNN_STATUS_NOT_SUPPORTED`: cuDNN
   convolutions work, and a Jittor RNN, LSTM or GRU on CUDA fails with cuDNN's "not supported"
   (the TransFG model has none).
   cuDNN 9 also split its library differently: Jittor preloads cuDNN 8's
   `libcudnn_{ops,cnn}_{infer,train}.so`, which the layer links to cuDNN 9's `libcudnn_ops` and
   `libcudnn_cnn`.
5. CCCL 3 also removed cub's own functors `cub::Max`, `cub::Min`, `cub::Sum` (deprecated since
   CCCL 2.8 for `cuda::maximum`, `cuda::minimum`, `cuda::std::plus`); the softmax kernel Jittor
   generates (jittor/other/code_softmax.py, behind the model's attention) reduces with
   `cub::Max()`. Stand-in: a `cub/cub.cuh` ahead of CCCL's on nvcc's include path (the wrapper's
   `-I`) that includes CCCL's and names `cub::Max` again, as `cuda::maximum<>`.
6. Every fused kernel Jittor generates for CUDA (its elementwise, broadcast and reduce operators
   fused into one; 108 of the 150 CUDA kernels of a TransFG training step and prediction) includes
   its `misc/cuda_limits.h`, which takes eight integer limits (`NPP_MAX_32S` and the like) from
   NPP's `npp.h`. CUDA 13's pip packages have no NPP unless `nvidia-npp` is installed (none on this
   machine, none in the GPU machines' package list), so each of those kernels fails. Stand-in,
   only where no `npp.h` is found: an `npp.h` in the layer's `include/` with those eight
   constants alone (each the limit of its integer type).
7. Jittor finds headers and libraries beside nvcc only (`<nvcc>/../include`, `../lib64`,
   unversioned `libcublas.so` and the like). CUDA 13's pip packages put everything under
   `site-packages/nvidia/cu13/{bin,include,lib}` and cuDNN under `nvidia/cudnn/`, with versioned
   library names only, and a toolkit may keep cuDNN elsewhere. The layer assembles a CUDA home of
   links (`bin/nvcc` the wrapper, `include/`, `lib64/`) that Jittor's own search then finds.

All of it lives in one folder under Jittor's cache, named by a hash of its contents, and reaches
Jittor through its own settings: `nvcc_path` (the wrapper) and `cc_flags` (the `-iquote`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LAYER_FROM = (13, 0)  # the first CUDA that needs the layer
MANIFEST = "layer.json"  # in the layer's folder: marks a wrapper nvcc as ours, says what it wraps

# Where Jittor 1.3 looks for nvcc when `nvcc_path` is unset (jittor/compiler.py), after PATH.
JITTOR_NVCC_PLACES = (Path("/usr/local/cuda/bin/nvcc"), Path("/usr/bin/nvcc"),
                      Path("/opt/cuda/bin/nvcc"))

# cuDNN 8's sub-libraries that Jittor preloads for any CUDA >= 11 (compile_extern.setup_cuda_lib),
# and the cuDNN 9 library that holds what each held.
CUDNN8_NAMES = {"libcudnn_ops_infer.so": "libcudnn_ops.so", "libcudnn_ops_train.so":
                "libcudnn_ops.so", "libcudnn_cnn_infer.so": "libcudnn_cnn.so",
                "libcudnn_cnn_train.so": "libcudnn_cnn.so"}

HELPER_CUDA_H = """\
// Written by transfg/jittor_cuda13.py. CUDA 13 removed cudaDeviceProp::clockRate and
// ::computeMode, which Jittor's helper_cuda.h (NVIDIA's sample helpers) reads; its
// cudaDeviceProp and cudaGetDeviceProperties are replaced here, for that header only, by a
// cudaDeviceProp with both fields, filled from cudaDeviceGetAttribute, which CUDA 13 keeps.
#pragma once
#include <cuda_runtime.h>

struct transfg_cuda12_device_prop : cudaDeviceProp {
    int clockRate;
    int computeMode;
};

static inline cudaError_t transfg_get_device_properties(transfg_cuda12_device_prop* prop,
                                                        int device) {
    cudaError_t status = cudaGetDeviceProperties(prop, device);
    if (status == cudaSuccess)
        status = cudaDeviceGetAttribute(&prop->clockRate, cudaDevAttrClockRate, device);
    if (status == cudaSuccess)
        status = cudaDeviceGetAttribute(&prop->computeMode, cudaDevAttrComputeMode, device);
    return status;
}

#define cudaDeviceProp transfg_cuda12_device_prop
#define cudaGetDeviceProperties transfg_get_device_properties
#include_next "helper_cuda.h"
#undef cudaGetDeviceProperties
#undef cudaDeviceProp
"""

CUDNN_H = """\
// Written by transfg/jittor_cuda13.py: cuDNN's header, and stand-ins for the v6/v7 RNN API that
// cuDNN 9 removed and Jittor's cuDNN RNN operators call. Jittor builds those into one library
// with its cuDNN convolutions, so each removed function takes any arguments here and answers
// CUDNN_STATUS_NOT_SUPPORTED: the library builds, convolutions work, an RNN fails when it runs.
#pragma once
#include "{cudnn_h}"

#define TRANSFG_CUDNN9_REMOVED(name) \\
    template <class... Args> static inline cudnnStatus_t name(Args...) {{ \\
        return CUDNN_STATUS_NOT_SUPPORTED; \\
    }}
TRANSFG_CUDNN9_REMOVED(cudnnSetRNNDescriptor_v6)
TRANSFG_CUDNN9_REMOVED(cudnnGetRNNParamsSize)
TRANSFG_CUDNN9_REMOVED(cudnnGetRNNWorkspaceSize)
TRANSFG_CUDNN9_REMOVED(cudnnGetRNNTrainingReserveSize)
TRANSFG_CUDNN9_REMOVED(cudnnGetRNNLinLayerMatrixParams)
TRANSFG_CUDNN9_REMOVED(cudnnGetRNNLinLayerBiasParams)
TRANSFG_CUDNN9_REMOVED(cudnnRNNForwardInference)
TRANSFG_CUDNN9_REMOVED(cudnnRNNForwardTraining)
TRANSFG_CUDNN9_REMOVED(cudnnRNNBackwardData)
TRANSFG_CUDNN9_REMOVED(cudnnRNNBackwardWeights)
#undef TRANSFG_CUDNN9_REMOVED
"""

OVERLAY = {"helper_cuda.h": HELPER_CUDA_H}

CUB_CUH = """\
// Written by transfg/jittor_cuda13.py: cub's header, found ahead of CCCL's through nvcc's -I.
// CUDA 13's CCCL 3 removed cub::Max (deprecated since CCCL 2.8), with which the softmax kernel
// Jittor generates reduces; cuda::maximum<> stands in for it. Jittor uses no other of the removed
// cub functors (Min, Sum, Equality...).
#pragma once
#include_next <cub/cub.cuh>
#include <cuda/functional>
CUB_NAMESPACE_BEGIN
using Max = ::cuda::maximum<>;
CUB_NAMESPACE_END
"""

# Jittor's misc/cuda_limits.h includes npp.h for these limits alone; where no NPP is installed
# (CUDA 13's pip packages without nvidia-npp), the layer's include/ gets this npp.h.
NPP_H = """\
// Written by transfg/jittor_cuda13.py: no NPP is installed beside this CUDA, and Jittor's
// misc/cuda_limits.h includes npp.h for these eight integer limits only (NPP's nppdefs.h has the
// same values: the limits of the 32- and 64-bit integer types). Nothing of NPP itself is here.
#pragma once
#define NPP_MIN_32U (0U)
#define NPP_MAX_32U (4294967295U)
#define NPP_MIN_32S (-2147483647 - 1)
#define NPP_MAX_32S (2147483647)
#define NPP_MIN_64U (0ULL)
#define NPP_MAX_64U (18446744073709551615ULL)
#define NPP_MIN_64S (-9223372036854775807LL - 1)
#define NPP_MAX_64S (9223372036854775807LL)
"""


# Jittor downloads these sources from GitHub at its first CUDA import (compile_extern.py: cutt,
# a faster transpose; cutlass, which it does not use; NCCL 2.8.4 where mpicc exists) and dies
# where that fails, as on the offline GPU machines; none of the three has been built against
# CUDA 13. Off, Jittor transposes with its own kernels and reduces across processes through MPI.
DOWNLOADS_OFF = ("use_cutt", "use_cutlass", "use_nccl")


class CudaLayerError(RuntimeError):
    """The CUDA found cannot be prepared for Jittor; the message says what to install or set."""


@dataclass(frozen=True)
class CudaToolkit:
    """A CUDA toolkit as Jittor would use it, wherever its parts were installed."""

    nvcc: Path  # the real compiler
    version: tuple[int, int]
    layout: str  # "toolkit" (nvcc beside include/ and lib64/), "pip" (site-packages/nvidia/...)
    include_dirs: tuple[Path, ...]  # searched in order, the first file of a name wins
    library_dirs: tuple[Path, ...]
    cudnn: str | None = None  # cuDNN's version, from cudnn_version.h, when its headers exist
    notes: tuple[str, ...] = field(default=())

    @property
    def needs_layer(self) -> bool:
        return self.version >= LAYER_FROM


def parse_nvcc_version(output: str) -> tuple[int, int] | None:
    """(13, 0) from `nvcc --version`'s "Cuda compilation tools, release 13.0, V13.0.88"."""
    match = re.search(r"release (\d+)\.(\d+)", output)
    return (int(match[1]), int(match[2])) if match else None


def nvcc_version(nvcc: Path) -> tuple[int, int]:
    try:
        done = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True,
                              timeout=60)
    except OSError as error:
        raise CudaLayerError(f"cannot run {nvcc} --version: {error}") from None
    version = parse_nvcc_version(done.stdout)
    if done.returncode != 0 or version is None:
        raise CudaLayerError(f"{nvcc} --version answered no CUDA release (exit status "
                             f"{done.returncode}): {(done.stdout + done.stderr).strip()[-300:]}")
    return version


def nvidia_roots() -> list[Path]:
    """The folders of the `nvidia` namespace package that NVIDIA's pip packages install into
    (one per site-packages that has some), without importing anything."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(p) for p in spec.submodule_search_locations if Path(p).is_dir()]


def pip_nvcc(roots: list[Path]) -> Path | None:
    """nvcc from the pip packages (`nvidia/cu13/bin/nvcc`; the newest CUDA first)."""
    found = [p for root in roots for p in root.glob("cu*/bin/nvcc") if p.is_file()]
    return max(found, key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0),
               default=None)


def layer_manifest(nvcc: Path) -> dict | None:
    """The manifest of the layer whose wrapper `nvcc` is, or None for any other nvcc."""
    manifest = nvcc.parent.parent / MANIFEST
    try:
        return json.loads(manifest.read_text()) if manifest.is_file() else None
    except (OSError, ValueError):
        return None


def find_nvcc(env: os._Environ | dict, roots: list[Path]) -> Path | None:
    """The nvcc Jittor would take (compiler.py: `nvcc_path`, then PATH, then its three places),
    or else the pip packages' one, which Jittor never looks for. A layer's wrapper (set by this
    module in a parent process) stands for the nvcc it wraps."""
    path = env.get("nvcc_path")
    found: Path | None
    if path:
        found = Path(path)
    else:
        on_path = shutil.which("nvcc", path=env.get("PATH", os.defpath))
        found = next((p for p in [*([Path(on_path)] if on_path else []), *JITTOR_NVCC_PLACES]
                      if p.is_file()), None) or pip_nvcc(roots)
    if found is None:
        return None
    manifest = layer_manifest(found)
    return Path(manifest["nvcc"]) if manifest else found


def real_nvcc(nvcc: Path) -> Path:
    """Through links and one-line `exec` wrappers (as /usr/local/bin/nvcc may be) to the binary,
    whose folder's parent is the toolkit."""
    nvcc = nvcc.resolve()
    try:
        head = nvcc.read_bytes()[:400]
    except OSError:
        return nvcc
    if head.startswith(b"#!"):
        match = re.search(rb'exec\s+"?([^"\s]+/nvcc)"?', head)
        if match and Path(match[1].decode()).is_file():
            return real_nvcc(Path(match[1].decode()))
    return nvcc


def cudnn_version(include_dirs: tuple[Path, ...]) -> str | None:
    for folder in include_dirs:
        header = folder / "cudnn_version.h"
        if header.is_file():
            text = header.read_text(errors="replace")
            parts = [re.search(rf"#define CUDNN_{name}\s+(\d+)", text)
                     for name in ("MAJOR", "MINOR", "PATCHLEVEL")]
            return ".".join(p[1] for p in parts if p) or None
    return None


def find_toolkit(env: os._Environ | dict | None = None,
                 roots: list[Path] | None = None) -> CudaToolkit | None:
    """The CUDA toolkit Jittor would use here, with the folders its headers and libraries lie in
    (nvcc's own, the pip packages' for the same CUDA, cuDNN's, the system's cuDNN), or None
    where there is no nvcc."""
    env = os.environ if env is None else env
    roots = nvidia_roots() if roots is None else roots
    found = find_nvcc(env, roots)
    if found is None:
        return None
    nvcc = real_nvcc(found)
    version = nvcc_version(nvcc)
    home = nvcc.parent.parent
    if any(home == s.parent for s in SYSTEM_FOLDERS):
        raise CudaLayerError(f"{nvcc} is CUDA {version[0]}.{version[1]} installed into {home}, "
                             "whose headers the layer cannot tell from the system's: install "
                             "the CUDA toolkit into a folder of its own (/usr/local/cuda) or "
                             "from pip (cuda-toolkit), and set nvcc_path to its nvcc")
    layout = "pip" if any(home.parent == root for root in roots) else "toolkit"
    includes = [home / "include"]
    libraries = [home / "lib64", home / "lib"]
    # The same CUDA's pip packages (cuBLAS, cuRAND, ... beside a toolkit that lacks them) and
    # cuDNN's; another CUDA's packages (cu12 beside cu13) would bring headers of the wrong CUDA.
    for root in roots:
        for package in (f"cu{version[0]}", "cudnn"):
            includes.append(root / package / "include")
            libraries.append(root / package / "lib")
    machine = f"{platform.machine()}-linux-gnu"
    includes += [Path("/usr/include"), Path("/usr/include") / machine]
    libraries += [Path("/usr/lib") / machine, Path("/usr/lib64"), Path("/usr/lib")]
    include_dirs = tuple(dict.fromkeys(p.resolve() for p in includes if p.is_dir()))
    library_dirs = tuple(dict.fromkeys(p.resolve() for p in libraries if p.is_dir()))
    return CudaToolkit(nvcc=nvcc, version=version, layout=layout, include_dirs=include_dirs,
                       library_dirs=library_dirs, cudnn=cudnn_version(include_dirs))


# From the system's folders only CUDA's own files are linked: linking all of /usr/include would
# put the C library's headers on an -I path, which breaks libstdc++'s #include_next.
SYSTEM_FOLDERS = (Path("/usr/include"), Path("/usr/lib"), Path("/usr/lib64"))
SYSTEM_NAMES = re.compile(r"^(lib)?cudnn")


def entries(folder: Path) -> list[Path]:
    """What of `folder` the layer links: everything, or cuDNN's files in a system folder."""
    system = any(folder.is_relative_to(s) for s in SYSTEM_FOLDERS)
    return sorted(p for p in folder.iterdir() if not system or SYSTEM_NAMES.match(p.name))


def merged(folders: tuple[Path, ...]) -> dict[str, Path]:
    """name -> path over `folders`, the first folder's file winning."""
    out: dict[str, Path] = {}
    for folder in folders:
        for path in entries(folder):
            out.setdefault(path.name, path)
    return out


def library_links(files: dict[str, Path]) -> dict[str, Path]:
    """The library folder's links: every file, plus the names Jittor asks for that pip packages
    lack: `libX.so` for each `libX.so.N` (Jittor links -lX and searches libX.so), and cuDNN 8's
    sub-libraries, which Jittor preloads, pointing at cuDNN 9's."""
    links = dict(files)
    for name in sorted(files):
        match = re.match(r"^(lib[\w+-]+\.so)\.\d", name)
        if match and match[1] not in links:
            links[match[1]] = files[name]
    for old, new in CUDNN8_NAMES.items():
        if old not in links and new in links:
            links[old] = links[new]
    return links


def wrapper_script(nvcc: Path, cccl: Path, cub_overlay: Path) -> str:
    return f"""#!/bin/sh
# Written by transfg/jittor_cuda13.py: the nvcc Jittor 1.3 runs on CUDA 13 ({nvcc}).
# C++17 where Jittor asks for C++14: CUDA 13's cub and thrust (CCCL 3) refuse older C++, and
# Jittor turns a C++17 in its flags back into C++14 for nvcc. nvcc has no -iquote; the host
# compiler, which preprocesses for nvcc, gets it. CCCL's folder, where CUDA 13 moved cub and
# thrust, is on the include path only with a full toolkit's nvcc.profile: added here. The first
# -I is the layer's cub/cub.cuh, which gives back the cub::Max that CCCL 3 removed.
for arg do
  shift
  case $arg in
    -std=c++14) set -- "$@" -std=c++17 ;;
    -iquote*) set -- "$@" -Xcompiler "$arg" ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec "{nvcc}" -I"{cub_overlay}" -isystem "{cccl}" "$@"
"""


@dataclass(frozen=True)
class Layer:
    folder: Path
    nvcc: Path  # the wrapper: Jittor's nvcc_path
    overlay: Path  # the quote-include folder: -iquote in Jittor's cc_flags
    cub_overlay: Path  # cub/cub.cuh ahead of CCCL's: the wrapper's first -I

    @classmethod
    def at(cls, folder: Path) -> Layer:
        return cls(folder, folder / "bin" / "nvcc", folder / "overlay", folder / "cub-overlay")

    @property
    def cc_flag(self) -> str:
        return f'-iquote"{self.overlay}"'


def layer_plan(toolkit: CudaToolkit) -> dict:
    """Everything the layer's folder holds, as data: its hash names the folder."""
    include = merged(toolkit.include_dirs)
    if "cudnn.h" not in include:
        raise CudaLayerError(f"no cudnn.h in {', '.join(map(str, toolkit.include_dirs))}: "
                             "Jittor's CUDA import fails without cuDNN. pip install "
                             "nvidia-cudnn-cu13, or run Jittor on the CPU with nvcc_path=''")
    return {"nvcc": str(toolkit.nvcc), "cuda": ".".join(map(str, toolkit.version)),
            "cudnn": toolkit.cudnn, "layout": toolkit.layout,
            "include": {k: str(v) for k, v in include.items() if k != "cudnn.h"},
            "cudnn.h": CUDNN_H.format(cudnn_h=include["cudnn.h"].resolve()),
            "npp.h": None if "npp.h" in include else NPP_H,  # a stand-in only where NPP is not
            "lib64": {k: str(v) for k, v in library_links(merged(toolkit.library_dirs)).items()},
            "overlay": OVERLAY, "cub/cub.cuh": CUB_CUH}


def build_layer(toolkit: CudaToolkit, cache: Path) -> Layer:
    """The layer's folder under `cache` (Jittor's `.cache/jittor`), made if missing. Built under
    a temporary name and renamed, so a killed process never leaves half a layer."""
    plan = layer_plan(toolkit)
    key = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]
    target = cache / f"cuda{toolkit.version[0]}-layer" / key
    layer = Layer.at(target)
    if (target / MANIFEST).is_file():
        return layer
    staging = target.with_name(f"{key}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for folder in ("bin", "include", "lib64", "overlay", "cub-overlay/cub"):
        (staging / folder).mkdir(parents=True)
    for folder in ("include", "lib64"):
        for name, source in plan[folder].items():
            (staging / folder / name).symlink_to(source)
    (staging / "include" / "cudnn.h").write_text(plan["cudnn.h"])
    if plan["npp.h"] is not None:
        (staging / "include" / "npp.h").write_text(plan["npp.h"])
    for name, text in OVERLAY.items():
        (staging / "overlay" / name).write_text(text)
    (staging / "cub-overlay" / "cub" / "cub.cuh").write_text(plan["cub/cub.cuh"])
    wrapper = staging / "bin" / "nvcc"
    wrapper.write_text(wrapper_script(toolkit.nvcc, target / "include" / "cccl",
                                      layer.cub_overlay))
    wrapper.chmod(0o755)
    (staging / MANIFEST).write_text(json.dumps(plan, indent=1, sort_keys=True))
    try:
        staging.rename(target)
    except OSError:  # another process made it first; theirs is the same
        shutil.rmtree(staging)
    return layer


def apply_layer(env: os._Environ | dict, layer: Layer) -> None:
    """Point Jittor at the layer: nvcc_path and one cc_flags entry, kept beside the user's; and
    keep Jittor from downloading what it cannot build offline (DOWNLOADS_OFF)."""
    env["nvcc_path"] = str(layer.nvcc)
    flags = env.get("cc_flags", "")
    if layer.cc_flag not in flags:
        env["cc_flags"] = f"{flags} {layer.cc_flag}".strip()
    for name in DOWNLOADS_OFF:
        env.setdefault(name, "0")




def prepare_cuda(env: os._Environ | dict, cache: Path) -> str:
    """Prepare Jittor's CUDA build where CUDA is on: apply the layer when the CUDA Jittor would
    use is 13 or newer. One line saying what was found and done; raises CudaLayerError."""
    inherited = layer_manifest(Path(env["nvcc_path"])) if env.get("nvcc_path") else None
    if inherited is not None:  # a parent process (or the user) applied a layer: keep it
        layer = Layer.at(Path(env["nvcc_path"]).parent.parent)
        apply_layer(env, layer)
        return (f"CUDA {inherited['cuda']} ({inherited['nvcc']}, {inherited['layout']}), cuDNN "
                f"{inherited['cudnn']}: CUDA 13 layer active ({layer.folder}, from nvcc_path)")
    toolkit = find_toolkit(env)
    if toolkit is None:
        return ("no nvcc found (nvcc_path, PATH, /usr/local/cuda, or the pip packages' "
                "nvidia/cu13): Jittor would try to download its own CUDA")
    cuda = f"CUDA {toolkit.version[0]}.{toolkit.version[1]} ({toolkit.nvcc}, {toolkit.layout})"
    if not toolkit.needs_layer:
        return f"{cuda}: the CUDA 13 layer is not needed"
    if toolkit.cudnn is None:
        raise CudaLayerError(f"{cuda} without cuDNN's headers (cudnn.h): Jittor's CUDA import "
                             "fails without cuDNN. pip install nvidia-cudnn-cu13, or run Jittor "
                             "on the CPU with nvcc_path=''")
    try:
        layer = build_layer(toolkit, cache)
    except OSError as error:
        raise CudaLayerError(f"cannot write the CUDA 13 layer for Jittor under {cache} "
                             f"({error}): set JITTOR_HOME to a writable folder") from None
    apply_layer(env, layer)
    return f"{cuda}, cuDNN {toolkit.cudnn}: CUDA 13 layer active ({layer.folder})"
