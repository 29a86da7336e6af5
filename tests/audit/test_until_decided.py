"""`audit run --until-decided` end to end (real training runs, PyTorch on the CPU) and `audit plan
--calibrate`: stages from the seed rule with the fixed design's run ids, seeds added only to
the groups of undecided claims, the state derived from the store (a budget stops it after a
stage, a later call goes on; `--no-wait` through submitit's local executor submits one stage
and a later call continues), the design recorded in the store and refused when it would grow,
and the report's stages. Each runs a few dozen short runs: marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from protocol_text import until_decided_text

from audit.plan import Inputs, plan
from audit.protocol import load
from audit.store import Store

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "protocols" / "default.toml"

# A value claim any run meets (ViT at 50% within 60 points: decided at the first look, 3 seeds)
# and a comparison no number of seeds decides: `twin` is TransFG under another name (the same
# runs, the same run ids), so their paired difference is 0 on every seed, which measures no
# spread (inconclusive); its groups get every stage, ViT's only the first.
PROTOCOL = until_decided_text("until-decided-test", "Until decided")


def audit(*args, timeout=1800):
    return subprocess.run([sys.executable, "-m", "audit.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def protocol(tmp_path):
    path = tmp_path / "until-decided.toml"
    path.write_text(PROTOCOL)
    return path


def done_runs(store: Path) -> dict[str, str]:
    """run id -> 'variant / seed s' of every finished run."""
    s = Store(store)
    out = {}
    for run_id in s.run_ids():
        if s.state(run_id) == "done":
            spec = json.loads((store / run_id / "spec.json").read_text())
            out[run_id] = f"{spec['model']['variant']} / seed {spec['notes']['seed']['seed']}"
    return out


@pytest.mark.slow
def test_stages_stop_where_claims_are_decided_and_go_on_from_the_store(protocol, tmp_path):
    store = tmp_path / "runs"
    # a budget below the first stage's measured cost: stage 1 runs (no estimate before it),
    # stage 2 would exceed the budget, so the call stops after the first look
    first = audit("run", protocol, "--smoke", "--until-decided", "--budget", "0.00001",
                  "--store", store)
    assert first.returncode == 0, first.stderr
    assert "stage 1: 6 runs, 3 seeds per group for vit / torch, twin / torch, transfg / torch" \
        in first.stderr
    assert "look after stage 1 (3 seeds per group" in first.stderr
    assert "loose-value reproduced" in first.stderr and "twin-better inconclusive" in \
        first.stderr
    assert "beyond the budget" in first.stderr
    runs = done_runs(store)
    assert sorted(runs.values()) == sorted(f"{a} / seed {s}" for a in ("transfg", "vit")
                                           for s in range(3))
    record = json.loads((store / ".sequential" / "until-decided-test.json").read_text())
    assert record["design"] == {"spending": "pocock", "stages": [3, 5], "alpha": 0.05,
                                "max_seeds": 5}
    # a later call derives the looks from the store and runs stage 2 for the comparison's
    # groups only (not ViT's); seeds 3 and 4 continue the seed list [0, 1, 2]
    second = audit("run", protocol, "--smoke", "--until-decided", "--store", store)
    assert second.returncode == 0, second.stderr
    assert "stage 2: 2 runs, 5 seeds per group for twin / torch, transfg / torch" in \
        second.stderr
    assert "the design's last stage (5 seeds) has run" in second.stderr
    runs = done_runs(store)
    assert sorted(runs.values()) == sorted([f"transfg / seed {s}" for s in range(5)]
                                           + [f"vit / seed {s}" for s in range(3)])
    # the same runs, with the same ids, as a fixed design of 5 seeds
    fixed = {r.run_id for r in plan(load(protocol), Inputs(smoke=True), max_seeds=5)}
    assert set(runs) < fixed and len(fixed) == 10
    # nothing left: a third call runs nothing; the design cannot grow after the first look
    third = audit("run", protocol, "--smoke", "--until-decided", "--store", store)
    assert third.returncode == 0 and "stage 1:" not in third.stderr
    assert "stage 2:" not in third.stderr and "last stage (5 seeds) has run" in third.stderr
    grow = audit("run", protocol, "--smoke", "--until-decided", "--max-seeds", "8",
                 "--store", store)
    assert grow.returncode == 2 and "cannot grow after the first look" in grow.stderr
    # the report: the design, each claim's stages, when it was decided and the fixed design
    out = tmp_path / "report"
    report = audit("report", protocol, "--smoke", "--store", store, "--format", "html,json",
                   "-o", out)
    assert report.returncode == 0, report.stderr
    data = json.loads((out / "until-decided-test.json").read_text())
    section = data["sections"][0]
    assert section["sequential"]["design"]["spending"] == "pocock"
    claims = {c["id"]: c for c in section["claims"]}
    loose = claims["loose-value"]["stages"]
    assert loose["decided_at_stage"] == 1 and len(loose["looks"]) == 2
    assert loose["looks"][0]["verdict"] == "reproduced"
    assert loose["runs"] == 3 and loose["fixed_runs"] == 5
    html = (out / "until-decided-test.html").read_text()
    assert "Decided at stage 1 of 2" in html and "Seeds in stages" in html
    assert "looked at after 3, 5 seeds" in html or "looked at after 3 seeds" in html


@pytest.mark.slow
def test_no_wait_submits_one_stage_and_a_later_call_continues(protocol, tmp_path):
    store = tmp_path / "runs"
    first = audit("run", protocol, "--smoke", "--until-decided", "--executor",
                  "submitit-local", "--no-wait", "--store", store)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("submitted job") == 6 and "stage 1 submitted" in first.stderr
    deadline = time.monotonic() + 1200
    while len(done_runs(store)) < 6 and time.monotonic() < deadline:
        time.sleep(2)
    assert len(done_runs(store)) == 6
    time.sleep(2)  # the jobs' processes end after their runs' results are written
    second = audit("run", protocol, "--smoke", "--until-decided", "--executor",
                   "submitit-local", "--no-wait", "--store", store)
    assert second.returncode == 0, second.stderr
    assert "look after stage 1" in second.stderr
    assert second.stderr.count("submitted job") == 2 and "stage 2 submitted" in second.stderr


@pytest.mark.slow
def test_the_default_protocol_until_decided_stops_adding_seeds_to_decided_claims(tmp_path):
    # the acceptance: the default protocol (smoke size, both frameworks), at most 8 seeds
    store, out = tmp_path / "runs", tmp_path / "report"
    started = time.monotonic()
    run = audit("run", DEFAULT, "--smoke", "--until-decided", "--max-seeds", "8", "--store",
                store, timeout=3600)
    assert run.returncode == 0, run.stderr
    seconds = time.monotonic() - started
    report = audit("report", DEFAULT, "--smoke", "--store", store, "--format", "json,html",
                   "-o", out)
    assert report.returncode == 0, report.stderr
    section = json.loads((out / "default.json").read_text())["sections"][0]
    print(f"default protocol --until-decided --max-seeds 8: {seconds:.0f} s, "
          f"{section['sequential']['runs']} runs; "
          + "; ".join(f"{c['id']}: {c['verdict']} at stage {c['stages']['decided_at_stage']}"
                      for c in section["claims"]))
    # every claim has its stages; a group got seeds at a look only when a claim that reads it
    # was still undecided at the look before
    claims = section["claims"]
    looks = [c["stages"]["looks"] for c in claims]
    assert all(len(ls) == section["sequential"]["looks"] for ls in looks)
    for i in range(1, len(looks[0])):
        grown = {g for ls in looks for g, n in ls[i]["seeds"].items()
                 if n > ls[i - 1]["seeds"][g]}
        undecided = {g for ls in looks if ls[i - 1]["verdict"] == "inconclusive"
                     for g in ls[i - 1]["seeds"]}
        assert grown <= undecided, (i, grown, undecided)
    html = (out / "default.html").read_text()
    for claim in claims:
        decided = claim["stages"]["decided_at_stage"]
        if decided is not None:
            assert claim["stages"]["looks"][decided - 1]["verdict"] != "inconclusive"
            assert f"Decided at stage {decided} of" in html
    assert section["sequential"]["runs"] <= 32
    assert "Seeds in stages" in html


KILL = """
import os, signal, subprocess, sys, time
from pathlib import Path
protocol, store = sys.argv[1], Path(sys.argv[2])
runner = subprocess.Popen([sys.executable, "-m", "audit.cli", "run", protocol, "--smoke",
                           "--until-decided", "--store", str(store)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def mid_run():  # a run finished, and another one past its first checkpoint but not done
    done = list(store.glob("*/result.json"))
    midway = [p for p in store.glob("*/checkpoints/last.npz")
              if not (p.parent.parent / "result.json").exists()]
    return done and midway
deadline = time.monotonic() + 900
while not mid_run() and time.monotonic() < deadline:
    time.sleep(0.02)
runner.send_signal(signal.SIGKILL)
runner.wait()
time.sleep(3)  # its training process dies with it (transfg/launch.py)
"""


@pytest.mark.slow
def test_a_killed_until_decided_resumes_inside_its_stage_and_runs_nothing_twice(protocol,
                                                                               tmp_path):
    store = tmp_path / "runs"
    helper = subprocess.run([sys.executable, "-c", KILL, str(protocol), str(store)],
                            capture_output=True, text=True, timeout=1200)
    assert helper.returncode == 0, helper.stderr
    assert 1 <= len(done_runs(store)) < 6  # killed inside stage 1
    again = audit("run", protocol, "--smoke", "--until-decided", "--store", store)
    assert again.returncode == 0, again.stderr
    runs = done_runs(store)
    assert len(runs) == 8
    for run_id in runs:  # none ran to the end twice (the killed one resumed, or had ended)
        attempts = json.loads((store / run_id / "provenance.json").read_text())["attempts"]
        assert [a.get("status") for a in attempts].count("done") <= 1 and len(attempts) <= 2
