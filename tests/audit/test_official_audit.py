"""The authors' own code run for real by `audit run` (--official), beside our two ports, on a tiny
CUB-layout folder at the official 448 px with a random ViT-B_16 checkpoint; then `audit report`
with the official column and an equivalence verdict for each pair of frameworks. Minutes on 2 CPU
cores (three ViT-B_16 runs at 1370 tokens), so slow."""

import json
import subprocess
import sys

import numpy as np
import official_code
import pytest
from dataset_layouts import write_cub, write_jpeg
from google_npz import google_checkpoint

from transfg.run_files import read_json, read_metrics

PROTOCOL = """\
version = 1
name = "official-e2e"
title = "The official code beside our ports"
frameworks = ["torch", "jittor", "official"]
seeds = [0]

[paper]
title = "TransFG"

[data]
dataset = "cub"
weights = "ViT-B_16.npz"

[model]
preset = "vit_b16"
image_size = 448
num_classes = 200

[train]
steps = 2
warmup_steps = 1
batch_size = 2
eval_every = 2
eval_batch_size = 3
checkpoint_every = 2
workers = 0

[arms.transfg]

[[claims]]
id = "three-frameworks-agree"
kind = "equivalence"
text = "The official code and our two ports reach the same accuracy within 50 points."
arm = "transfg"
frameworks = ["torch", "jittor", "official"]
margin = 50.0
"""

def audit(*args):
    return subprocess.run([sys.executable, "-m", "audit.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=3600)

@pytest.mark.slow
def test_audit_runs_the_official_code_beside_ours_and_reports_every_pair(tmp_path):
    checkout = official_code.checkout()
    data = tmp_path / "cub"
    write_cub(data)
    # The official CUB reader cannot read a CMYK JPEG (tests/transfg/data/test_official_data.py);
    # the real CUB has none.
    write_jpeg(data / "images" / "003.Cowbird" / "c_1.jpg", 5, "RGB")
    weights = tmp_path / "ViT-B_16.npz"
    np.savez(weights, **google_checkpoint(np.random.default_rng(0), classes=7))
    protocol = tmp_path / "official-e2e.toml"
    protocol.write_text(PROTOCOL)
    store = tmp_path / "runs"

    done = audit("run", protocol, "--data-root", data, "--weights", weights, "--official",
                 checkout, "--store", store)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finished = {read_json(p / "spec.json")["framework"]: p for p in store.iterdir()
                if (p / "result.json").exists()}
    assert sorted(finished) == ["jittor", "official", "torch"]

    official = finished["official"]
    log = (official / "log.txt").read_text()
    assert "Valid Accuracy" in log and "train.py" in log  # the real code's own log
    result = read_json(official / "result.json")
    assert result["evaluations"][-1]["step"] == 2 and result["test_images"] == 3
    assert any("no CUDA" in d for d in result["deviations"])
    assert any(d.startswith("stand-in for torchvision") for d in result["deviations"])
    rows = read_metrics(official / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]  # read from its progress bar
    assert read_json(official / "status.json")["status"] == "finished"

    out = tmp_path / "report"
    done = audit("report", protocol, "--data-root", data, "--weights", weights, "--official",
                 checkout, "--store", store, "-o", out, "--format", "html,json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "official-e2e.json").read_text())
    (claim,) = report["verdicts"]
    pairs = sorted(part["framework"] for part in claim["parts"])
    assert pairs == ["jittor - official", "torch - jittor", "torch - official"]
    html = (out / "official-e2e.html").read_text()
    assert "How the official code ran here" in html and "stand-in for torchvision" in html
    section = report["sections"][0]
    assert {a["framework"] for a in section["arms"] if a["seeds"]} == {"torch", "jittor",
                                                                      "official"}

def test_official_checkout_is_found_or_the_skip_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(official_code.VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(pytest.skip.Exception, match=official_code.VARIABLE):
        official_code.checkout()
    monkeypatch.delenv(official_code.VARIABLE)
    if official_code.BESIDE.exists():
        assert (official_code.checkout() / "models" / "modeling.py").is_file()
        assert len(official_code.commit(official_code.checkout())) == 40
