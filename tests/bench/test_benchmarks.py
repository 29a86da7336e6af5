"""The benchmarks still run and report their side-by-side ratios (at toy sizes; the figures
themselves are recorded in bench/results/, never asserted here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def run(script, *args):
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_psm_benchmark_reports_both_ways_and_the_forward_ratio(tmp_path):
    out = run("psm.py", "--image-size", "64", "--repeats", "1", "--results", str(tmp_path))
    assert "| psm_literal_over_fast |" in out and "| transfg_over_vit |" in out
    result = json.loads((tmp_path / "psm-torch-64px-b1.json").read_text())
    assert result["config"]["image_size"] == 64 and result["machine"]["cores"] >= 1
    assert set(result["ratios"]) == {"psm_literal_over_fast", "transfg_over_vit",
                                     "transfg_literal_over_vit"}


def test_train_step_benchmark_compares_the_frameworks(tmp_path):
    out = run("train_step.py", "--batch", "4", "--steps", "2", "--results", str(tmp_path))
    assert "| jittor_over_torch_throughput |" in out
    result = json.loads((tmp_path / "train-step-tiny-cpu.json").read_text())
    assert {"torch", "jittor"} == set(result["results"])
    assert all(r["images_per_s"] > 0 for r in result["results"].values())


def test_data_pipeline_benchmark_compares_with_plain_pil(tmp_path):
    out = run("data_pipeline.py", "--images", "4", "--repeats", "1", "--gpu-images-per-s", "400",
              "--results", str(tmp_path))
    assert "| ratio pipeline / plain PIL |" in out and "| given (400 img/s) |" in out
    result = json.loads((tmp_path / "data-pipeline.json").read_text())
    assert result["workers_needed"]["given (400 img/s)"] >= 1
    assert set(result["rates"]) == {"pipeline", "plain_pil"}


def test_performance_suite_reports_every_combination_and_its_ratios(tmp_path):
    out = run("suite.py", "--preset", "tiny", "--image-size", "64", "--batch", "2", "--steps",
              "1", "--frameworks", "torch,torch-fused", "--results", str(tmp_path))
    result = json.loads((tmp_path / "suite-tiny-64px-b2-cpu.json").read_text())
    assert len(result["results"]) == 16  # 2 PyTorch attentions x 2 models x 2 splits x 2 precisions
    assert all("images_per_s" in r for r in result["results"].values())
    assert "| transfg_over_vit_step/torch/overlap/fp32 |" in out
    settings = [(s, p) for s in ("overlap", "non-overlap") for p in ("fp32", "bf16")]
    assert set(result["ratios"]) == (
        {f"transfg_over_vit_step/{f}/{s}/{p}" for f in ("torch", "torch-fused")
         for s, p in settings}
        | {f"fused_over_explicit_{m}/{v}/{s}/{p}" for m in ("throughput", "memory")
           for v in ("transfg", "vit") for s, p in settings})


def test_performance_suite_refuses_an_unknown_framework(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--frameworks", "torch,jax",
                           "--results", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown jax; allowed: torch, torch-fused, jittor" in done.stderr


def test_activation_memory_counts_what_fused_attention_saves(tmp_path):
    counts = {}
    for batch in (1, 2):
        folder = tmp_path / f"b{batch}"
        out = run("activation_memory.py", "--preset", "tiny", "--image-size", "64", "--batch",
                  str(batch), "--results", str(folder))
        counts[batch] = json.loads((folder / "activation-memory-tiny-64px-fp32.json")
                                   .read_text())["results"]
    assert len(counts[1]) == 8 and "| fused_over_explicit/vit/overlap |" in out
    for key, r in counts[2].items():
        # Activations only (no parameters): twice the batch holds twice the bytes.
        assert 1.9 < r["held"] / counts[1][key]["held"] < 2.1, key
        assert r["predicted_gib"] > 0
    for variant in ("transfg", "vit"):  # fused attention keeps no T x T map for the backward
        fused, explicit = (counts[2][f"{variant}/overlap/{a}"] for a in ("fused", "explicit"))
        assert fused["saved"] < explicit["saved"] and fused["held"] < explicit["held"], variant


def test_training_overhead_benchmark_reads_the_loop_clock(tmp_path):
    out = run("train_overhead.py", "--steps", "6", "--checkpoint-every", "3", "--workers", "0",
              "--frameworks", "torch", "--results", str(tmp_path))
    result = json.loads((tmp_path / "train-overhead-tiny-w0.json").read_text())
    torch_result = result["results"]["torch"]
    assert set(torch_result["shares"]) == {"data", "checkpoint", "other"}
    assert 0 < torch_result["overhead_share"] < 1
    assert torch_result["loop_seconds"]["update"] > 0 and "| torch |" in out


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_without_a_gpu(tmp_path):
    """bench/gpu_check.sh as far as a CPU takes it (tiny sizes): parity, the official transform
    chains (a "skipped" result where torchvision cannot be imported), the suite, a short audit
    and its report, all written into its output folder, exit status 0."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "PARITY_ARGS": "--cases tiny-transfg-overlap",
           "SUITE_ARGS": "--preset tiny --image-size 64 --batch 2 --steps 1 --frameworks torch"}
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), str(wheels), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    parity = json.loads((out / "gpu-parity.json").read_text())
    assert all(row["ok"] for row in parity["cases"]["tiny-transfg-overlap"].values())
    assert (out / "suite-tiny-64px-b2-cpu.json").exists()
    assert (out / "report" / "default.html").exists() and (out / "report" / "default.json").exists()
    steps = [line.split(":")[0] for line in (out / "timings.txt").read_text().splitlines()]
    assert (out / "official-transforms.json").exists()
    assert steps == ["jittor", "parity", "official-transforms", "suite", "audit-run",
                     "audit-report"]
