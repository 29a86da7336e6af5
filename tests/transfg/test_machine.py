"""The machine's description (transfg/machine.py) read through a stand-in nvidia-smi: the GPU
lines `audit doctor` shows, the GPUs, driver and CUDA version provenance.json records, the GPU
count the local executor divides, and nvidia-smi missing or failing."""

import os
import stat

import pytest

from audit import doctor
from audit.executors.local import visible_gpus
from transfg import machine

SMI = """#!/bin/sh
if [ "$1" = "--query-gpu=name,driver_version,memory.total" ]; then
  printf 'NVIDIA H200, 570.86.15, 143771 MiB\\nNVIDIA H200, 570.86.15, 143771 MiB\\n'
  exit 0
fi
echo "| NVIDIA-SMI 570.86.15    Driver Version: 570.86.15    CUDA Version: 12.8     |"
"""


@pytest.fixture
def smi(tmp_path, monkeypatch):
    """A stand-in nvidia-smi, first on PATH; `write(text)` replaces its script."""
    def write(text: str) -> None:
        path = tmp_path / "nvidia-smi"
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    write(SMI)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    machine.gpus.cache_clear()
    yield write
    machine.gpus.cache_clear()


def test_the_gpus_as_provenance_doctor_and_the_executor_see_them(smi):
    assert machine.gpus() == {"gpus": [{"name": "NVIDIA H200", "memory": "143771 MiB"}] * 2,
                              "driver": "570.86.15", "cuda": "12.8"}
    check = doctor.check_gpu()
    assert check.status == "ok" and check.detail == \
        "NVIDIA H200, 570.86.15, 143771 MiB; NVIDIA H200, 570.86.15, 143771 MiB"
    assert visible_gpus() == ["0", "1"]


def test_a_failing_nvidia_smi_is_a_warning_and_no_gpu(smi):
    smi("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert doctor.check_gpu().status == "warn"
    assert doctor.check_gpu().detail == "nvidia-smi failed: NVIDIA-SMI has failed"
    assert machine.gpus() == {"gpus": [], "driver": None, "cuda": None}


def test_without_nvidia_smi_there_is_no_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    machine.gpus.cache_clear()
    try:
        assert machine.gpu_lines() is None and machine.gpus()["gpus"] == []
        assert doctor.check_gpu().detail == "none (no nvidia-smi); training runs on the CPU"
    finally:
        machine.gpus.cache_clear()
    assert machine.cpu_model()


def test_gpus_count_when_only_the_header_call_fails(smi):
    """The CUDA version comes from a second, bare nvidia-smi call; when that one fails the GPUs
    are still recorded and the executor still divides them."""
    smi(SMI.replace('echo "| NVIDIA-SMI', 'exit 3\necho "| NVIDIA-SMI'))
    assert machine.gpus() == {"gpus": [{"name": "NVIDIA H200", "memory": "143771 MiB"}] * 2,
                              "driver": "570.86.15", "cuda": None}
    assert visible_gpus() == ["0", "1"]
