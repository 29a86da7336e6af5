"""`audit plan --calibrate`: the engine timed in worker processes, figures cached in the store per
machine and configuration (atomic, reused, a damaged file measured again), device-hours per
run, per arm and in total, each marked measured or extrapolated (by FLOPs from another image
size)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from protocol_text import protocol_text

from audit import calibrate
from audit.cli.commands import calibrated_plan
from audit.cli.tables import hours_text
from audit.protocol import load

ROOT = Path(__file__).resolve().parents[2]

PROTOCOL = protocol_text("calibrate-test", "Calibrate", train={
    "steps": 400, "warmup_steps": 10, "eval_every": 100, "batch_size": 8, "eval_batch_size": 16,
    "workers": 0})


def audit(*args):
    return subprocess.run([sys.executable, "-m", "audit.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def test_the_flops_are_the_benchmarks_count():
    spec = importlib.util.spec_from_file_location("bench_flops", ROOT / "bench" / "flops.py")
    flops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flops)
    from transfg.config import tiny, vit_b16

    for config in (vit_b16(image_size=448), vit_b16(image_size=448, split="non-overlap"),
                   tiny(variant="vit"), tiny()):
        assert calibrate.train_flops(config) == flops.train_step_flops(config, 1)
        assert calibrate.eval_flops(config) == sum(flops.forward_flops(config))
    # 448 px overlap against 64 px: tokens 1370 vs 26, and the attention grows with their square
    ratio = calibrate.train_flops(vit_b16(image_size=448)) / calibrate.train_flops(
        vit_b16(image_size=64))
    assert 55 < ratio < 120


def test_a_runs_cost_counts_updates_micro_batches_evaluations_and_devices():
    from transfg.config import tiny
    from transfg.spec import RunSpec, Seeds, TrainConfig

    train = TrainConfig(steps=250, eval_every=100, accumulation=2, eval_batch_size=10)
    spec = RunSpec("torch", tiny(), train, "digits", "x", Seeds.from_seed(0), devices=2)
    figures = {"train_seconds": 0.5, "eval_seconds": 0.1}
    seconds, factor = calibrate.run_seconds(spec, figures, tiny(), test_images=95)
    # 2 devices x 250 updates x 2 micro-batches x 0.5 s + 3 evaluations x 10 batches x 0.1 s
    assert factor == 1.0 and seconds == pytest.approx(2 * 250 * 2 * 0.5 + 3 * 10 * 0.1)


def test_plan_calibrate_caches_per_configuration_and_extrapolates(tmp_path, monkeypatch,
                                                                   capsys):
    # the worker replaced by a stand-in that answers at once (the real one: the slow test below)
    from audit.plan import Inputs
    from audit.store import Store

    protocol_path = tmp_path / "calibrate.toml"
    protocol_path.write_text(PROTOCOL)
    protocol = load(protocol_path)
    jobs = []
    real_run = subprocess.run

    def fake_run(command, **kwargs):
        if command[1:3] != ["-m", "audit.calibrate"]:
            return real_run(command, **kwargs)
        job = json.loads(command[-1])
        jobs.append(job)
        figures = {"train_seconds": 0.25 if job["model"]["variant"] == "transfg" else 0.2,
                   "eval_seconds": 0.1, "warmup_seconds": 1.0, "eval_warmup_seconds": 0.2,
                   "setup_seconds": 0.1, "steps_timed": job["steps"], "device": "cpu"}
        return subprocess.CompletedProcess(command, 0, json.dumps(figures) + "\n", "")

    monkeypatch.setattr(calibrate.subprocess, "run", fake_run)
    store = Store(tmp_path / "runs")

    def plan(**options):
        assert calibrated_plan(store, [protocol], Inputs(), {}, **options) == 0
        return capsys.readouterr().out

    out = plan()
    assert len(jobs) == 2 and {j["model"]["variant"] for j in jobs} == {"transfg", "vit"}
    rows = [line for line in out.splitlines() if line.startswith(("transfg ", "vit "))]
    # 400 updates x 0.25 s + 4 evaluations x ceil(599 / 16) batches x 0.1 s = 115.2 s
    assert len(rows) == 4 and all("measured" in r for r in rows)
    assert any(r.startswith("transfg") and hours_text(115.2) in r for r in rows)
    assert f"transfg: {hours_text(2 * 115.2)} (2 runs)" in out
    assert hours_text(3.3e4 * 3600) == "33,000" and hours_text(36) == \
        "0.01" and hours_text(2.5 * 3600) == "2.5"
    # cached: no process the second time; a damaged file is measured again
    assert plan().count("(cached)") == 2 and len(jobs) == 2
    files = sorted((store.root / calibrate.CALIBRATION).rglob("*.json"))
    files[0].write_text('{"job": ')
    assert plan().count("(cached)") == 1 and len(jobs) == 3
    json.loads(files[0].read_text())
    # calibrated at 32 px, priced at the protocol's 64 px: extrapolated by FLOPs, and said so
    out = plan(image_size=32)
    assert jobs[-1]["model"]["image_size"] == 32
    rows = [line for line in out.splitlines() if line.startswith(("transfg ", "vit "))]
    assert all("extrapolated from 32 px (x" in r for r in rows) and "extrapolated figures" in out


@pytest.mark.slow
def test_plan_calibrate_measures_caches_and_extrapolates(tmp_path):
    protocol = tmp_path / "calibrate.toml"
    protocol.write_text(PROTOCOL)
    store = tmp_path / "runs"
    first = audit("plan", protocol, "--calibrate", "--steps", "2", "--store", store)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "torch transfg overlap 64 px fp32 batch 8:" in out and "warm-up" in out
    assert "torch vit overlap 64 px fp32 batch 8:" in out
    lines = [line for line in out.splitlines() if line.startswith(("transfg ", "vit "))]
    assert len(lines) == 4 and all("measured" in line for line in lines)
    assert "calibrate-test: device-hours per arm" in out
    assert "calibrate-test: total" in out and "measured figures" in out
    files = list((store / calibrate.CALIBRATION).rglob("*.json"))
    assert len(files) == 2
    record = json.loads(files[0].read_text())
    assert record["figures"]["train_seconds"] > 0 and record["machine"]["cpus"]
    # again: from the cache, the same figures
    again = audit("plan", protocol, "--calibrate", "--steps", "2", "--store", store)
    assert again.returncode == 0 and again.stdout.count("(cached)") == 2
    assert [line for line in again.stdout.splitlines() if line.startswith("transfg ")] == \
        [line for line in lines if line.startswith("transfg ")]
    # a damaged cache file is measured again (and rewritten whole)
    files[0].write_text("{")
    repaired = audit("plan", protocol, "--calibrate", "--steps", "2", "--store", store)
    assert repaired.returncode == 0 and repaired.stdout.count("(cached)") == 1
    json.loads(files[0].read_text())
    # at another image size: every figure extrapolated by FLOPs, and said so
    small = audit("plan", protocol, "--calibrate", "--steps", "2", "--image-size", "32",
                  "--store", store)
    assert small.returncode == 0, small.stderr
    rows = [line for line in small.stdout.splitlines() if line.startswith(("transfg ", "vit "))]
    assert len(rows) == 4 and all("extrapolated from 32 px (x" in line for line in rows)
    assert "extrapolated figures" in small.stdout
    # without --calibrate, plan says what it cannot estimate and how to measure it
    plain = audit("plan", protocol, "--store", store)
    assert plain.returncode == 0 and "audit plan --calibrate" in plain.stdout


def test_image_size_without_calibrate_is_refused(tmp_path):
    protocol = tmp_path / "calibrate.toml"
    protocol.write_text(PROTOCOL)
    refused = audit("plan", protocol, "--image-size", "32", "--store", tmp_path / "runs")
    assert refused.returncode == 2 and "go with --calibrate" in refused.stderr
    assert load(protocol).name == "calibrate-test"
