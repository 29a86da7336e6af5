"""The kernels Jittor generates for the TransFG model on CUDA, captured on a machine without a GPU
(part 3 of bench/jittor_cuda13.py).

Jittor writes a kernel's source and compiles it the first time its operator runs on the device,
so capturing them takes Jittor running with CUDA on; here it runs on a pretend device. Stand-in
libraries take the place of the CUDA runtime and of cuBLAS, cuDNN, cuRAND, cuFFT and cuSPARSE
(made here from the runtime's exported symbols and the libraries' headers): every function
succeeds without doing anything, except that the runtime reports one sm_90 device, host memory is
real and device memory cannot be had. So Jittor imports with CUDA, takes use_cuda=1, builds a
training step of the paper's model (forward, both losses, gradients, clipping, SGD with momentum)
and a prediction, and compiles every kernel of each with its own code generation and its own
nvcc command (it compiles all of a graph's operators before it allocates memory for the first);
then it stops at the first device allocation. The sources it wrote and the commands it ran (the
.key files beside its kernels) are what bench/jittor_cuda13.py compiles again, with and without
the layer. The stand-ins only ever serve this capture; nothing computes here.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from jittor_cuda13 import PROJECT, Source, rehearsal_env

from transfg.jittor_cuda13 import Layer, build_layer

# The runtime's behaviour on the pretend device; every other exported function returns 0
# (cudaSuccess) and does nothing.
RUNTIME_SPECIALS = r"""
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#define GIB (1ull << 30)

cudaError_t cudaGetDeviceCount(int* count) { *count = 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int* device) { *device = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
    memset(prop, 0, sizeof *prop);
    strcpy(prop->name, "pretend sm_90 (bench/jittor_cuda13_kernels.py)");
    prop->major = 9;
    prop->minor = 0;
    prop->totalGlobalMem = 141 * GIB;
    prop->multiProcessorCount = 132;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsPerMultiProcessor = 2048;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->sharedMemPerBlock = 48 << 10;
    prop->regsPerBlock = 65536;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attr, int device) {
    switch (attr) {
        case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
        case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
        case cudaDevAttrMultiProcessorCount: *value = 132; break;
        case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
        case cudaDevAttrWarpSize: *value = 32; break;
        default: *value = 0;
    }
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
    *free_bytes = *total = 141 * GIB;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void** ptr, size_t size) { *ptr = NULL; return cudaErrorMemoryAllocation; }
cudaError_t cudaMallocManaged(void** ptr, size_t size, unsigned int flags) {
    *ptr = NULL;
    return cudaErrorMemoryAllocation;
}
cudaError_t cudaMallocHost(void** ptr, size_t size) {
    *ptr = malloc(size ? size : 1);
    return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned int flags) {
    return cudaMallocHost(ptr, size);
}
cudaError_t cudaFreeHost(void* ptr) { free(ptr); return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t error) {
    return error == cudaErrorMemoryAllocation ? "pretend device: no device memory"
                                              : "pretend device";
}
const char* cudaGetErrorName(cudaError_t error) { return cudaGetErrorString(error); }
cudaError_t cudaRuntimeGetVersion(int* version) { *version = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* version) { *version = CUDART_VERSION; return cudaSuccess; }
"""

# Stand-in libraries: (file name, header prefix, header file patterns).
LIBRARIES = (("libcublas.so", "cublas", ("cublas*.h",)),
             ("libcublasLt.so", "cublasLt", ("cublasLt.h",)),
             ("libcudnn.so", "cudnn", ("cudnn*.h",)),
             ("libcudnn_ops.so", "cudnn", ("cudnn*.h",)),
             ("libcudnn_cnn.so", "cudnn", ("cudnn*.h",)),
             ("libcurand.so", "curand", ("curand.h",)),
             ("libcufft.so", "cufft", ("cufft*.h",)),
             ("libcusparse.so", "cusparse", ("cusparse.h",)))


def stub_source(names: list[str]) -> str:
    return "".join(f"int {name}(void) {{ return 0; }}\n" for name in sorted(set(names)))


def exported(library: Path) -> list[str]:
    done = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True,
                          text=True, check=True)
    return [line.split()[-1].split("@")[0] for line in done.stdout.splitlines()
            if line.split()[1:2] == ["T"]]


def declared(include: Path, prefix: str, patterns: tuple[str, ...]) -> list[str]:
    """Every name a library's headers call like a function (a superset of its symbols)."""
    names = set()
    for pattern in patterns:
        for header in include.glob(pattern):
            names |= set(re.findall(rf"\b({prefix}[A-Za-z0-9_]*)\s*\(",
                                    header.read_text(errors="replace")))
    return sorted(names)


def make_stand_ins(layer: Layer, folder: Path) -> Path:
    """The stand-in libraries, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    include = layer.folder / "include"
    runtime = (layer.folder / "lib64" / "libcudart.so").resolve()
    specials = set(re.findall(r"^\S.*?\b(cuda\w+)\(", RUNTIME_SPECIALS, re.M))
    (folder / "runtime_specials.c").write_text(RUNTIME_SPECIALS)
    (folder / "runtime_rest.c").write_text(
        stub_source([n for n in exported(runtime) if n not in specials]))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", f"-I{include}", "-o",
                    str(folder / "libcudart.so.13"), "-Wl,-soname,libcudart.so.13",
                    str(folder / "runtime_specials.c"), str(folder / "runtime_rest.c")],
                   check=True)
    # Jittor loads libcudart.so by that name before anything links it: the stand-in's, or the
    # real one would hold the soname for the whole process.
    (folder / "libcudart.so").unlink(missing_ok=True)
    (folder / "libcudart.so").symlink_to("libcudart.so.13")
    for name, prefix, patterns in LIBRARIES:
        source = folder / f"{name}.c"
        source.write_text(stub_source(declared(include, prefix, patterns)))
        subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-o", str(folder / name),
                        f"-Wl,-soname,{name}", str(source)], check=True)
    return folder


# The training step of transfg/jittor/engine.py (forward, losses, gradients, clipping, SGD),
# built as one graph and run once: Jittor's Engine syncs in between (the losses' .item(), the
# optimizer's sync of its parameters), and on the pretend device the first sync is the last.
# The gradients come from jt.grad, as the optimizer's backward takes them.
CAPTURE = """
import numpy as np
import transfg.jittor_env as jittor_env

jittor_env.check_round_trip = lambda jt: None  # nothing can be computed on a pretend device
import transfg.jittor  # noqa: E402  (CUDA on: use_cuda=1)
import jittor as jt  # noqa: E402

from transfg.config import ModelConfig  # noqa: E402
from transfg.jittor.losses import transfg_loss  # noqa: E402
from transfg.jittor.model import VisionTransformer  # noqa: E402

print("CUDA", jt.flags.use_cuda, "archs", list(jt.flags.cuda_archs), flush=True)
config = ModelConfig()  # the paper's TransFG: 448 px, overlapping patches, CUB's 200 classes
model = VisionTransformer(config)
model.train()
sgd = jt.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=0.0)
images = jt.array(np.zeros((2, 3, 448, 448), np.float32))
labels = jt.array(np.array([3, 7], np.int64))


def run(name, vars):
    # Only a stop at the first device allocation means every kernel of the graph was compiled;
    # any other error (a kernel that failed to compile) stops the capture short.
    try:
        jt.sync(vars)
    except Exception as error:
        text = str(error)
        if "Unable to alloc cuda device memory" in text:
            print(name, "stopped at its first device allocation, as expected", flush=True)
        else:
            lines = [ln.strip() for ln in text.splitlines() if "rror" in ln] or [text.strip()]
            print(name, "STOPPED SHORT by an error:", lines[0][:300], flush=True)
    else:
        print(name, "ran (unexpected on a pretend device)", flush=True)


logits, out = model(images)
parts = transfg_loss(logits, out["cls_feature"], labels, config)
params = [p for g in sgd.param_groups for p in g["params"]]
grads = jt.grad(parts["loss"], params)
total = jt.norm(jt.concat([g.flatten() for g in grads]))
coefficient = jt.minimum(1.0 / (total + 1e-6), 1.0)
for group in sgd.param_groups:
    group["grads"] = [g * coefficient for g in grads[:len(group["params"])]]
sgd.step()
run("training step", [*params, *[v for g in sgd.param_groups for v in g["values"]], total])
model.eval()
with jt.no_grad():
    run("prediction", [model(images)[0]])
"""


def capture(toolkit, work: Path, site: Path) -> tuple[Layer, Path, str]:
    """Jittor on the pretend device; its layer, its cache folder and what it printed."""
    home = work / "pretend-home"
    lib = make_stand_ins(build_layer(toolkit, work / "jittor-home" / ".cache" / "jittor"),
                         work / "pretend-libs")
    pretend = dataclasses.replace(toolkit, library_dirs=(lib, *toolkit.library_dirs))
    layer = build_layer(pretend, home / ".cache" / "jittor")
    env = {**rehearsal_env(work, site, layer.nvcc), "JITTOR_HOME": str(home)}
    output = []
    for _ in range(2):  # Jittor exits after rebuilding its compiled utilities for new flags
        done = subprocess.run([sys.executable, "-c", CAPTURE], env=env, capture_output=True,
                              text=True, cwd=PROJECT)
        output.append(done.stdout + done.stderr)
        if "jit_utils updated" not in output[-1]:
            break
    (work / "kernels-capture.log").write_text("\n\n".join(output))
    caches = sorted((home / ".cache" / "jittor").glob("jt*/**/main/cu*/jit"))
    if not caches:
        sys.exit(f"jittor_cuda13: the capture left no kernels (see {work}/kernels-capture.log)")
    return layer, caches[-1], output[-1]


def object_command(command: str) -> str:
    """A kernel's command as Jittor ran it (to a shared library), made to compile an object:
    no link flags (as Jittor's own compile() drops them for objects)."""
    command = re.sub(r'\s-o\s+"[^"]+"\s*$', "", command.strip())
    words = re.findall(r'(?:[^\s"]+|"[^"]*")+', command)
    kept = [w for w in words if not re.match(r'^"?(-l|-L|-Wl,|-shared$)', w)]
    return " ".join(kept) + ' -c -o "out.o"'


def kernel_sources(toolkit, work: Path, site: Path, layer: Layer) -> tuple[list[Source], dict]:
    """The captured kernels as sources to compile; and what the capture saw."""
    pretend, jit, output = capture(toolkit, work, site)
    sources, host = [], 0
    for key in sorted(jit.glob("*.so.key")):
        command = key.read_text().splitlines()[0].replace(str(pretend.folder), str(layer.folder))
        match = re.match(r'^"([^"]+)"\s+"([^"]+)"', command)
        if match is None or match[1] != str(layer.nvcc):  # a host operator, by g++
            host += 1
            continue
        sources.append(Source("kernels", kernel_name(Path(match[2]).name), "nvcc",
                              object_command(command)))
    printed = [ln for ln in output.splitlines()
               if ln.startswith(("CUDA ", "training step", "prediction"))]
    complete = sum("as expected" in ln for ln in printed) == 2
    if not complete:
        print(f"jittor_cuda13: the capture stopped short (see {work}/kernels-capture.log): "
              + "; ".join(printed), file=sys.stderr)
    seen = {"printed": printed, "complete": complete, "kernels": len(sources),
            "host_operators_by_g++": host}
    return sources, seen


def kernel_name(file: str) -> str:
    """The operators of a kernel, from Jittor's file name (its jit key, cut and hashed)."""
    ops = re.findall(r"(?:^|__)opkey\d+_([a-z_]+?)__", file) or [re.split(r"__", file)[0]]
    digest = re.search(r"hash_([0-9a-f]+)", file)
    return f"{'+'.join(dict.fromkeys(ops))} [{digest[1][:8] if digest else file[:40]}]"

