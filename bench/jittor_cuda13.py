"""Jittor's CUDA 13 build rehearsed on a machine without a GPU: every CUDA source Jittor compiles
for the TransFG model, compiled with nvcc 13 for sm_90 with the compatibility layer of
transfg/jittor_cuda13.py and without it; what fails, and why.

    PYTHONPATH=. .venv/bin/python bench/jittor_cuda13.py --cuda-site /tmp/cuda13 [--jobs 2]

It needs nvcc 13 (a toolkit, or pip's nvidia-cuda-nvcc) and CUDA 13's other headers, which pip
installs: `pip install --target DIR nvidia-cublas nvidia-curand nvidia-cufft nvidia-cusparse
nvidia-cudnn-cu13` (the headers are all it reads: their wheels' include/ folders are enough), and
--cuda-site DIR. Not a default test: nothing here runs without those.

What is compiled, in the order Jittor compiles it:
1. core: Jittor's core with CUDA on (its .cc files by g++ with CUDA's headers, its .cu file by
   nvcc), built by Jittor itself, in a process of its own with the layer on. Jittor's machinery
   ends there on a machine without a GPU: loading the core creates a CUDA stream (array_op.cc),
   which needs a driver. The commands Jittor ran (the .key files beside its objects) are then run
   again without the layer.
2. extern: what Jittor compiles next at import (compile_extern.py), with the flags it would give:
   its CUDA helpers (extern/cuda/src) and the operator libraries of cub, cuBLAS, cuDNN, cuRAND,
   cuFFT and cuSPARSE (all built at import, whatever the model uses).
3. kernels: the code Jittor generates when operators first run on the device
   (bench/jittor_cuda13_kernels.py), compiled by nvcc for sm_90.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import RESULTS, write_results

from transfg.jittor_cuda13 import Layer, build_layer, find_toolkit, nvidia_roots

PROJECT = Path(__file__).resolve().parents[1]
EXTERN_LIBS = ("cub", "cublas", "cudnn", "curand", "cufft", "cusparse")


@dataclass
class Compiled:
    ok: bool
    seconds: float
    errors: list[str] = field(default_factory=list)  # the compiler's error lines, paths cut short


@dataclass
class Source:
    group: str  # core, extern, kernels
    name: str
    compiler: str  # g++ or nvcc
    command: str  # with the layer, as Jittor runs it
    with_layer: Compiled | None = None
    without_layer: Compiled | None = None


def jittor_dir() -> Path:
    return Path(importlib.util.find_spec("jittor").origin).parent


def versions(toolkit, site: Path) -> dict:
    """The compilers and libraries compiled against."""
    def run(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()

    def define(header: Path, *names) -> str | None:
        text = header.read_text(errors="replace") if header.is_file() else ""
        found = [re.search(rf"#define {n}\s+(\d+)", text) for n in names]
        return ".".join(m[1] for m in found if m) or None

    include = toolkit.include_dirs
    first = {name: next((d / name for d in include if (d / name).is_file()), Path("-"))
             for name in ("cublas_api.h", "curand.h", "cufft.h", "cusparse.h",
                          "cuda_runtime_api.h")}
    cccl_h = Path("cccl/cuda/std/__cccl/version.h")  # CCCL_VERSION: MMMmmmppp
    cccl = next((d / cccl_h for d in include if (d / cccl_h).is_file()), Path("-"))
    cccl_version = define(cccl, "CCCL_VERSION")
    return {"nvcc": run(str(toolkit.nvcc), "--version").splitlines()[-2:],
            "nvcc_path": str(toolkit.nvcc), "cuda": ".".join(map(str, toolkit.version)),
            "g++": run("g++", "--version").splitlines()[0],
            "cudart": define(first["cuda_runtime_api.h"], "CUDART_VERSION"),
            "cublas": define(first["cublas_api.h"], "CUBLAS_VER_MAJOR", "CUBLAS_VER_MINOR",
                             "CUBLAS_VER_PATCH"),
            "curand": define(first["curand.h"], "CURAND_VER_MAJOR", "CURAND_VER_MINOR",
                             "CURAND_VER_PATCH"),
            "cufft": define(first["cufft.h"], "CUFFT_VER_MAJOR", "CUFFT_VER_MINOR",
                            "CUFFT_VER_PATCH"),
            "cusparse": define(first["cusparse.h"], "CUSPARSE_VER_MAJOR", "CUSPARSE_VER_MINOR",
                               "CUSPARSE_VER_PATCH"),
            "cudnn": toolkit.cudnn,
            "cccl": cccl_version and (f"{int(cccl_version) // 1000000}."
                                      f"{int(cccl_version) // 1000 % 1000}."
                                      f"{int(cccl_version) % 1000}"),
            "jittor": importlib.metadata.version("jittor"),
            "cuda_site": str(site)}


def rehearsal_env(work: Path, site: Path, nvcc: Path) -> dict[str, str]:
    """A Jittor process of the rehearsal's own: its cache under `work`, the CUDA site's
    packages importable (so that the layer finds them as on a machine that pip-installed them),
    CUDA on although no GPU is here."""
    path = os.pathsep.join([str(PROJECT), str(site), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "JITTOR_HOME": str(work / "jittor-home"), "PYTHONPATH": path,
            "nvcc_path": str(nvcc), "log_silent": "0"}


CORE_BUILD = """
import transfg.jittor_env as env
setup = env.prepare_jittor()
print("LAYER", setup.cuda_detail, flush=True)
import jittor
"""


def build_core(env: dict[str, str], log: Path) -> dict:
    """Jittor's own build of its core with CUDA on and the layer; tried twice, since Jittor exits
    after rebuilding its compiled utilities for new flags."""
    start = time.perf_counter()
    tries = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CORE_BUILD], env=env, capture_output=True,
                              text=True, cwd=PROJECT)
        tries.append(done)
        if "jit_utils updated" not in done.stdout + done.stderr:
            break
    log.write_text("\n\n".join(d.stdout + d.stderr for d in tries))
    last = tries[-1]
    output = last.stdout + last.stderr
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return {"seconds": round(time.perf_counter() - start, 1), "exit": last.returncode,
            "layer": next((ln[6:] for ln in output.splitlines() if ln.startswith("LAYER ")),
                          None),
            "end": strip_colour(next((ln for ln in reversed(lines) if "error" in ln.lower()),
                                     lines[-1] if lines else "")),
            "compiled_all": "Compiling jittor_core" in output and "/151" in output}


def strip_colour(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def core_sources(cache: Path, layer: Layer) -> list[Source]:
    """Jittor's core: the commands its build ran, from the .key files beside its objects."""
    sources = []
    for key in sorted((cache / "obj_files").glob("*.o.key")):
        command = key.read_text().splitlines()[0]
        compiler = "nvcc" if command.startswith(f'"{layer.nvcc}"') else "g++"
        source = re.search(r'^"[^"]+"\s+"([^"]+)"', command)[1]
        sources.append(Source("core", short(source), compiler, command))
    return sources


def short(path: str) -> str:
    """A source's path from Jittor's folder or the build's cache on."""
    for marker in ("site-packages/jittor/", "/main/cu"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail if marker.startswith("site") else "gen/" + tail.split("/gen/", 1)[-1]
    return Path(path).name


def extern_sources(core: list[Source], jittor: Path) -> list[Source]:
    """What compile_extern.py compiles with g++ at import: the CUDA helpers with the core's
    flags and extern/cuda/inc; each library's sources with compile_custom_ops's flags (the
    library's own include folders first, then the core's flags, then its operators' folders)."""
    base = next(s.command for s in core if s.compiler == "g++" and s.name == "src/ops/array_op.cc")
    flags = re.sub(r'^"[^"]+"\s+"[^"]+"', "", base)
    flags = re.sub(r'\s-c -o "[^"]+"\s*$', "", flags)
    compiler = re.match(r'^"([^"]+)"', base)[1]
    cuda_inc = jittor / "extern" / "cuda" / "inc"
    sources = [Source("extern", short(str(src)), "g++",
                      f'"{compiler}" "{src}" {flags} -I"{cuda_inc}" -c -o "out.o"')
               for src in sorted((jittor / "extern" / "cuda" / "src").glob("*.cc"))]
    for lib in EXTERN_LIBS:
        folder = jittor / "extern" / "cuda" / lib
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        includes = sorted({str(p.parent) for p in files if p.suffix == ".h" and (
            p.stem.endswith("_op") or p.parent.name == "inc")})
        extra = f'-I"{cuda_inc}" -I"{folder / "inc"}"'
        tail = " ".join(f'-I"{i}"' for i in includes)
        sources += [Source("extern", short(str(src)), "g++",
                           f'"{compiler}" "{src}" {extra} {flags} {tail} -c -o "out.o"')
                    for src in files if src.suffix == ".cc"]
    return sources


def without(command: str, layer: Layer, toolkit) -> str:
    """The same command as Jittor would run it without the layer: the real nvcc, no overlay,
    and the CUDA headers on the include path where the layer's links were (so that what fails is
    what CUDA 13 changed, not a header that cannot be found)."""
    real = " ".join(f'-I"{d}"' for d in toolkit.include_dirs
                    if not str(d).startswith("/usr/include"))
    return (command.replace(f'"{layer.nvcc}"', f'"{toolkit.nvcc}"')
            .replace(layer.cc_flag, "")
            .replace(f'-I"{layer.folder / "include"}"', real))


def errors(output: str, limit: int = 6) -> list[str]:
    """The compiler's distinct error lines, in order, with folders cut from the paths."""
    seen = []
    for line in strip_colour(output).splitlines():
        if re.match(r"^\s*\d*\s*\|", line):  # g++ quoting the source line at fault
            continue
        if re.search(r"\berror\b", line) and not re.search(r"\berrors? detected\b", line):
            line = re.sub(r"(/[^\s:()\"']+/)([^/\s:()\"']+)", r"\2", line.strip())
            if line not in seen:
                seen.append(line)
    return seen[:limit]


def compile_one(command: str, out: Path) -> Compiled:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = re.sub(r'-c -o "[^"]+"', f'-c -o "{out}"', command)
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 2)
    return Compiled(done.returncode == 0, seconds,
                    [] if done.returncode == 0 else errors(done.stdout + done.stderr)
                    or [strip_colour(done.stderr).strip()[-300:]])


def compile_all(sources: list[Source], work: Path, layer: Layer, toolkit, jobs: int) -> None:
    def both(i_source):
        i, source = i_source
        stem = f"{source.group}-{i:03d}-{Path(source.name).name}.o"
        source.with_layer = compile_one(source.command, work / "with" / stem)
        source.without_layer = compile_one(without(source.command, layer, toolkit),
                                           work / "without" / stem)
        mark = lambda c: "ok" if c.ok else "FAILS"  # noqa: E731
        print(f"  {source.group:8} {source.name:60} with {mark(source.with_layer):5} "
              f"without {mark(source.without_layer)}", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(both, enumerate(sources)))


def cub_overlay_off(sources: list[Source], layer: Layer, work: Path) -> dict:
    """What the comparison without the layer cannot show, since an earlier failure hides it:
    CCCL 3 has no cub::Max, which matters only once the layer's C++17 lets CCCL's headers in.
    The sources that use it are compiled again with the layer but CCCL's own cub/cub.cuh (the
    wrapper without its first -I, the layer's cub overlay)."""
    wrapper = layer.nvcc.read_text()
    nvcc = work / "cub-overlay-off" / "nvcc"
    nvcc.parent.mkdir(parents=True, exist_ok=True)
    nvcc.write_text(wrapper.replace(f'-I"{layer.cub_overlay}" ', ""))
    nvcc.chmod(0o755)
    users = [s for s in sources if s.compiler == "nvcc" and "cub::Max" in Path(
        re.search(r'^"[^"]+"\s+"([^"]+)"', s.command)[1]).read_text(errors="replace")]
    compiled = {s.name: compile_one(s.command.replace(f'"{layer.nvcc}"', f'"{nvcc}"'),
                                    nvcc.parent / f"{i:03d}.o")
                for i, s in enumerate(users)}
    return {"sources": len(users), "fail": sum(not c.ok for c in compiled.values()),
            "errors": sorted({re.sub(r"^.*?error:?\s*", "", e)
                              for c in compiled.values() for e in c.errors}),
            "names": list(compiled)}


def summary(sources: list[Source]) -> dict:
    groups = {}
    for s in sources:
        g = groups.setdefault(s.group, {"sources": 0, "nvcc": 0, "with_layer_ok": 0,
                                        "without_layer_fail": 0, "seconds_with": 0.0})
        g["sources"] += 1
        g["nvcc"] += s.compiler == "nvcc"
        g["with_layer_ok"] += s.with_layer.ok
        g["without_layer_fail"] += not s.without_layer.ok
        g["seconds_with"] = round(g["seconds_with"] + s.with_layer.seconds, 1)
    return groups


def causes(sources: list[Source]) -> list[tuple[str, int, list[str]]]:
    """Each distinct error without the layer: how many sources, which (first five)."""
    found: dict[str, list[str]] = {}
    for s in sources:
        for line in (s.without_layer.errors if not s.without_layer.ok else []):
            message = re.sub(r"^.*?error:?\s*", "", line)
            if s.name not in found.setdefault(message, []):
                found[message].append(s.name)
    return sorted(((m, len(names), names[:5]) for m, names in found.items()),
                  key=lambda item: -item[1])


def table(result: dict, sources: list[Source]) -> str:
    v = result["versions"]
    lines = [f"Compilers: {' / '.join(v['nvcc'])} ({v['nvcc_path']}); {v['g++']} as nvcc's "
             f"host compiler and for Jittor's .cc files. Headers: CUDA runtime {v['cudart']}, "
             f"CCCL {v['cccl']}, cuBLAS {v['cublas']}, cuRAND {v['curand']}, cuFFT "
             f"{v['cufft']}, cuSPARSE {v['cusparse']}, cuDNN {v['cudnn']}. Jittor {v['jittor']}."
             f" Target: sm_90 (H200).", "",
             f"The whole rehearsal: {result['seconds']} s. Jittor's own build of its core with "
             f"the layer: {result['core_build']['seconds']} s"
             f", exit status {result['core_build']['exit']}, last line: "
             f"`{result['core_build']['end'][:200]}`", "",
             "| group | sources | by nvcc | compile with the layer | fail without | "
             "compile seconds (with) |", "|---|---|---|---|---|---|"]
    for group, g in result["summary"].items():
        lines.append(f"| {group} | {g['sources']} | {g['nvcc']} | {g['with_layer_ok']} | "
                     f"{g['without_layer_fail']} | {g['seconds_with']} |")
    lines += ["", "Why they fail without the layer (distinct errors, number of sources):", ""]
    lines += [f"- {n} x `{m[:180]}` ({', '.join(names)}{', ...' if n > 5 else ''})"
              for m, n, names in causes(sources)]
    off = result.get("cub_overlay_off")
    if off:
        lines += ["", f"With the layer but CCCL's own cub/cub.cuh (no cub::Max in CCCL 3): "
                  f"{off['fail']} of the {off['sources']} sources that use cub::Max fail: "
                  + "; ".join(f"`{e[:160]}`" for e in off["errors"])]
    capture = result.get("kernels_capture")
    if capture:
        lines += ["", f"Kernels captured from Jittor on the pretend sm_90 device: "
                  f"{capture['kernels']} by nvcc ({capture['host_operators_by_g++']} host "
                  f"operators by g++ left out); {'; '.join(capture['printed'])}"]
    failing = [s for s in sources if not s.with_layer.ok]
    lines += ["", f"Failing with the layer: {len(failing)}"]
    lines += [f"- {s.group} {s.name}: {'; '.join(s.with_layer.errors)[:300]}" for s in failing]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuda-site", type=Path, required=True,
                        help="the folder CUDA 13's pip packages were installed into (--target)")
    parser.add_argument("--nvcc", type=Path, help="nvcc 13 (default: found as Jittor would)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/jittor-cuda13-rehearsal"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--groups", default="core,extern,kernels")
    parser.add_argument("--name", default="jittor-cuda13-rehearsal")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    start = time.perf_counter()
    site = args.cuda_site.resolve()
    sys.path.insert(0, str(site))  # the nvidia namespace packages, as pip would install them
    search = {"PATH": os.environ.get("PATH", ""),
              **({"nvcc_path": str(args.nvcc)} if args.nvcc else {})}
    toolkit = find_toolkit(search, nvidia_roots())
    if toolkit is None or not toolkit.needs_layer:
        sys.exit(f"jittor_cuda13: needs nvcc 13 or newer (found: {toolkit})")
    work = args.work.resolve()
    layer = build_layer(toolkit, work / "jittor-home" / ".cache" / "jittor")
    env = rehearsal_env(work, site, toolkit.nvcc)
    result = {"versions": versions(toolkit, site), "layer": str(layer.folder)}
    groups = args.groups.split(",")
    print(f"jittor_cuda13: {' / '.join(result['versions']['nvcc'])}; layer {layer.folder}")

    stale = cpu_cores(work)
    if stale:
        sys.exit(f"jittor_cuda13: {stale[0]} is a Jittor core built without CUDA in the "
                 "rehearsal's Jittor home; Jittor puts that folder on sys.path before the CUDA "
                 "build's (main/cu13...), so its CUDA import would load it and fail ('Flags' "
                 "object has no attribute 'cuda_archs'). Remove it, or give another --work")
    print("jittor_cuda13: Jittor builds its core with CUDA and the layer (minutes)...")
    result["core_build"] = build_core(env, work / "core-build.log")
    cache = core_cache(work)
    sources = core_sources(cache, layer) if "core" in groups else []
    if "extern" in groups:
        sources += extern_sources(core_sources(cache, layer), jittor_dir())
    if "kernels" in groups:
        from jittor_cuda13_kernels import kernel_sources

        kernels, result["kernels_capture"] = kernel_sources(toolkit, work, site, layer)
        sources += kernels
    print(f"jittor_cuda13: {len(sources)} sources, each with and without the layer")
    compile_all(sources, work / "objects", layer, toolkit, args.jobs)
    if "kernels" in groups:
        result["cub_overlay_off"] = cub_overlay_off(sources, layer, work)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["summary"] = summary(sources)
    result["causes"] = [{"error": m, "sources": n, "examples": e} for m, n, e in causes(sources)]
    result["sources"] = [asdict(s) for s in sources]
    path = write_results(args.name, result, table(result, sources), args.results)
    print(json.dumps(result["summary"], indent=1))
    print(f"jittor_cuda13: results in {path}")
    complete = result.get("kernels_capture", {}).get("complete", True)
    return 0 if complete and all(s.with_layer.ok for s in sources) else 1


def cpu_cores(work: Path) -> list[Path]:
    """Cores built without CUDA (nvcc_path='') in the rehearsal's Jittor home."""
    return sorted((work / "jittor-home" / ".cache" / "jittor").glob(
        "jt*/**/main/jittor_core*.so"))


def core_cache(work: Path) -> Path:
    """The build's cache folder (Jittor names it after the compiler, Python, OS, CPU and CUDA)."""
    found = sorted((work / "jittor-home" / ".cache" / "jittor").glob("jt*/**/main/cu*/obj_files"))
    if not found:
        sys.exit(f"jittor_cuda13: Jittor's build left no objects under {work} (see "
                 f"{work / 'core-build.log'})")
    return found[-1].parent


if __name__ == "__main__":
    raise SystemExit(main())
