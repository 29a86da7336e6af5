"""`audit doctor`: what this machine has, and whether the audit can run here.

Each framework is probed in its own process (as every training run is), so a framework that
crashes on import is reported rather than taking the doctor down with it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

from transfg.jittor_env import JittorUnusable, site_env
from transfg.machine import SmiError, cpu_model, gpu_lines

PROBE_TIMEOUT_S = 1200  # jittor's first import compiles its core: about 2 minutes on 2 cores

TORCH_PROBE = """
import json, torch
cuda = torch.cuda.is_available()
print(json.dumps({"version": torch.__version__, "cuda": cuda,
                  "cuda_version": torch.version.cuda,
                  "devices": [torch.cuda.get_device_name(i)
                              for i in range(torch.cuda.device_count())] if cuda else []}))
"""

# Importing transfg.jittor runs its guards: a numpy Jittor cannot read is refused, and an array's
# round trip and a matrix product are checked (transfg/jittor_env.py); on CUDA that import also
# builds Jittor's CUDA core, and the product is cuBLAS's. On the device, a fused elementwise
# kernel and cub's argmax (the Part Selection Module's) are compiled and run too.
JITTOR_PROBE = """
import json
from pathlib import Path
import numpy as np
import transfg.jittor as tj
import jittor as jt
from jittor import compile_extern
kernels = None
if jt.flags.use_cuda:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::-1].copy()  # (3, 4)
    elementwise = (jt.array(x) * 2 + 1).numpy()
    index = jt.argmax(jt.array(x), dim=1)[0].numpy()
    kernels = {"elementwise": bool(np.array_equal(elementwise, x * 2 + 1)),
               "argmax": bool(np.array_equal(index, x.argmax(1)))}
print(json.dumps({"version": jt.__version__, "cuda": bool(jt.flags.use_cuda),
                  "numpy": np.__version__, "numpy_path": str(Path(np.__file__).parent),
                  "onednn": tj.SETUP.onednn, "reason": tj.SETUP.reason,
                  "onednn_active": bool(compile_extern.use_mkl and compile_extern.mkl_ops),
                  "cuda_detail": tj.SETUP.cuda_detail, "kernels": kernels}))
"""


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn" (works, but slower or less complete), "fail" (the audit needs it)
    detail: str


def run_probe(code: str, env: dict[str, str] | None = None) -> dict:
    """Run `code` in a fresh interpreter, with `env` added to this process's environment; its
    last stdout line is JSON. Raises RuntimeError."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"no answer within {PROBE_TIMEOUT_S} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit status {done.returncode}: {error}")
    return json.loads(lines[-1])


def check_python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 11)
    return Check("python", "ok" if ok else "fail",
                 f"{version} ({sys.executable})" + ("" if ok else "; the audit needs 3.11+"))


def check_torch(probe=run_probe) -> Check:
    try:
        info = probe(TORCH_PROBE)
    except RuntimeError as error:
        return Check("torch", "fail", f"import failed: {error}")
    where = (f"CUDA {info['cuda_version']}: {', '.join(info['devices'])}" if info["cuda"]
             else "CPU only")
    return Check("torch", "ok", f"{info['version']}, {where}")


def check_jittor(probe=run_probe) -> Check:
    """Jittor as a training run gets it: in its own process, with TRANSFG_JITTOR_SITE's numpy
    where that is set, through transfg.jittor's guards."""
    try:
        info = probe(JITTOR_PROBE, site_env())
    except RuntimeError as error:
        refused = str(error).partition(f"{JittorUnusable.__name__}: ")[2]
        return Check("jittor", "fail", f"refused: {refused}" if refused
                     else f"import failed: {error}")
    where = f"CUDA ({info['cuda_detail']})" if info["cuda"] else "CPU"
    detail = (f"{info['version']}, {where}, numpy {info['numpy']} ({info['numpy_path']}; round "
              "trip and matrix product checked)")
    if info["cuda"]:
        wrong = [name for name, right in info["kernels"].items() if not right]
        if wrong:
            return Check("jittor", "fail", f"{detail}; wrong results from the device's "
                         f"{', '.join(wrong)} kernels")
        return Check("jittor", "ok", f"{detail}; device kernels compiled and run: matrix product "
                     f"(cuBLAS), {', '.join(info['kernels'])} (cub)")
    if info["onednn_active"]:
        return Check("jittor", "ok", f"{detail}, oneDNN active ({info['reason']})")
    return Check("jittor", "warn", f"{detail}, oneDNN inactive: {info['reason']}"
                 " (matrix products several times slower)")


def check_cpu() -> Check:
    return Check("cpu", "ok", f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
                              f"{platform.release()}")


def check_gpu() -> Check:
    try:
        lines = gpu_lines()
    except SmiError as error:
        return Check("gpu", "warn", f"nvidia-smi failed: {error}")
    if lines is None:
        return Check("gpu", "ok", "none (no nvidia-smi); training runs on the CPU")
    return Check("gpu", "ok", "; ".join(lines))


def check_pdf() -> Check:
    try:
        import weasyprint

        pdf = weasyprint.HTML(string="<p>audit doctor</p>").write_pdf()
    except Exception as error:  # any failure here means reports cannot be rendered
        return Check("pdf", "fail", f"WeasyPrint cannot render: {type(error).__name__}: {error}")
    if not pdf.startswith(b"%PDF"):
        return Check("pdf", "fail", "WeasyPrint returned something that is not a PDF")
    return Check("pdf", "ok", f"WeasyPrint {weasyprint.__version__} renders PDF")


def check_program(name: str, package: str, without: str) -> Check:
    """An optional program on PATH; `without` says what cannot be done without it."""
    path = shutil.which(name)
    return Check(name, "ok", path) if path else Check(name, "warn",
                                                      f"missing ({package}): {without}")


def run_checks(probe=run_probe) -> list[Check]:
    return [check_python(), check_torch(probe), check_jittor(probe), check_cpu(), check_gpu(),
            check_pdf(),
            check_program("pdftoppm", "Debian's poppler-utils",
                          "PDF pages cannot be checked as images"),
            check_program("mpirun", "Debian's openmpi-bin, libopenmpi-dev",
                          "Jittor runs on several devices cannot start")]


def main(as_json: bool = False, probe=run_probe) -> int:
    if not as_json:
        print("checking the frameworks in fresh processes (a first jittor import compiles "
              "for about 2 minutes)...", file=sys.stderr, flush=True)
    checks = run_checks(probe)
    failed = [c.name for c in checks if c.status == "fail"]
    if as_json:
        print(json.dumps({"checks": [asdict(c) for c in checks], "ok": not failed}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"  {c.status:<4}  {c.name:<{width}}  {c.detail}")
        print(f"missing what the audit needs: {', '.join(failed)}" if failed
              else "everything the audit needs is here")
    return 1 if failed else 0
