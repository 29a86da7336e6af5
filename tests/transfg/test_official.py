"""transfg/official.py against a stand-in for the official train.py (official_standin/train.py):
the spec maps onto the official command line, the code runs under torch.distributed.run with its
portability breaks worked around, and its log becomes our result.json."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from transfg.config import vit_b16
from transfg.data.bundled import ROOT as DIGITS
from transfg.official import command, unsupported
from transfg.run_files import read_json, read_metrics
from transfg.spec import RunSpec, Seeds, SpecError, TrainConfig
from transfg.train import main

STANDIN = Path(__file__).parent / "official_standin"


def accuracy_at(step):  # the stand-in's known accuracies
    return ((step * 37) % 100) / 100


def official_spec(tmp_path, **changes):
    weights = tmp_path / "ViT-B_16.npz"
    weights.write_bytes(b"not read by the stand-in")
    checkout = tmp_path / "TransFG"
    shutil.copytree(STANDIN, checkout)
    train = TrainConfig(steps=6, warmup_steps=1, eval_every=2, batch_size=4, accumulation=2,
                        learning_rate=0.01)
    # The bundled digits are in CUB's layout; the official code knows them as CUB_200_2011.
    spec = RunSpec("official", vit_b16(num_classes=200), train, "cub", str(DIGITS),
                   Seeds.from_seed(7), weights=str(weights), official_checkout=str(checkout))
    return replace(spec, **changes)


def write_run(folder, spec):
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    return folder


def test_the_official_code_runs_and_its_log_becomes_our_result(tmp_path):
    spec = official_spec(tmp_path)
    run = write_run(tmp_path / "run", spec)
    assert main([str(run)]) == 0
    args = read_json(run / "official-output" / "args.json")
    # The spec's settings on the official command line.
    assert args["dataset"] == "CUB_200_2011" and args["test_count"] == 599
    assert Path(args["data_root"]).resolve() == DIGITS.resolve()
    assert args["train_batch_size"] == 8 and args["gradient_accumulation_steps"] == 2
    assert args["learning_rate"] == 0.01 and args["num_steps"] == 6 and args["eval_every"] == 2
    assert args["seed"] == spec.seeds.init and args["split"] == "overlap"
    assert args["slide_step"] == 12 and args["img_size"] == 448 and not args["fp16"]
    # Launched distributed even for one process: --local_rank given, barrier() works.
    assert args["local_rank"] == 0 and args["world_size"] == 1
    result = read_json(run / "result.json")
    assert [e["step"] for e in result["evaluations"]] == [2, 4, 6]
    assert [e["accuracy"] for e in result["evaluations"]] == [accuracy_at(s) for s in (2, 4, 6)]
    assert result["final_accuracy"] == accuracy_at(6) and result["final_step"] == 6
    best = max((2, 4, 6), key=accuracy_at)
    assert result["best_accuracy"] == accuracy_at(best) and result["best_step"] == best
    assert result["official_best_accuracy"] == pytest.approx(accuracy_at(best))
    assert result["test_images"] == 599 and result["correct"] == round(accuracy_at(6) * 599)
    assert result["deviations"]
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 7))
    assert [r["loss"] for r in rows if "loss" in r][2] == pytest.approx(5.0 / 3, abs=1e-5)
    assert [r["step"] for r in rows if "eval_accuracy" in r] == [2, 4, 6]
    assert read_json(run / "status.json")["status"] == "finished"
    assert "Valid Accuracy" in (run / "log.txt").read_text()


def test_a_run_folder_given_relative_to_the_current_folder_works(tmp_path, monkeypatch):
    """The runner names run folders relative to where it was started (--store runs); the
    official code runs inside its run folder, where those paths would point nowhere."""
    run = write_run(tmp_path / "store" / "run", official_spec(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["store/run"]) == 0
    assert Path(read_json(run / "official-output" / "args.json")["data_root"]).resolve() == \
        DIGITS.resolve()
    assert any("no CUDA" in d for d in read_json(run / "result.json")["deviations"])


def test_a_crash_of_the_official_code_is_a_failed_run_without_result(tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_FAIL_AT", "3")
    run = write_run(tmp_path / "run", official_spec(tmp_path))
    assert main([str(run)]) == 1
    status = read_json(run / "status.json")
    assert status["status"] == "failed" and "exited with status" in status["message"]
    assert status["step"] == 3  # the last step its log showed
    assert not (run / "result.json").exists()


def test_what_the_official_code_cannot_do_is_refused_by_name(tmp_path):
    spec = official_spec(tmp_path)
    assert unsupported(spec) == []
    bad = replace(spec, model=replace(spec.model, variant="vit", alpha=0.2), subset={"test": 5},
                  weights=None, train=replace(spec.train, steps=7, precision="bf16"))
    reasons = " ".join(unsupported(bad))
    for field in ("model.variant", "model.alpha", "subset", "weights=None", "train.steps=7",
                  "train.precision"):
        assert field in reasons
    run = write_run(tmp_path / "run", bad)
    assert main([str(run)]) == 1
    assert "model.variant" in read_json(run / "status.json")["message"]
    assert not (run / "official-output").exists()  # nothing was launched


def test_the_command_runs_one_process_per_device_through_the_compatibility_shim(tmp_path):
    spec = replace(official_spec(tmp_path), devices=4)
    argv = command(spec, tmp_path)
    assert argv[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert argv[5:7] == ["-m", "transfg.official_compat"]
    assert argv[argv.index("--train_batch_size") + 1] == "8"  # per process, before accumulation


def test_an_official_spec_needs_a_checkout():
    with pytest.raises(SpecError, match="official_checkout"):
        RunSpec("official", vit_b16(), TrainConfig(), "cub", "/data", Seeds.from_seed(0)
                ).validate()


def test_log_lines_cut_between_chunks_are_read_whole(tmp_path):
    from transfg.official import LogReader
    from transfg.run_files import MetricsLog

    metrics = MetricsLog(tmp_path / "metrics.jsonl", 0)
    reader = LogReader(metrics, tmp_path, 8)
    log = "x - Global Steps: 100\nx - Valid Accuracy: 0.91234\nx - Best Accuracy: \t0.91234\n"
    for i in range(0, len(log), 7):  # 7-character chunks cut every line somewhere
        reader.feed(log[i:i + 7])
    reader.feed("", final=True)
    metrics.close()
    assert reader.evaluations == [{"step": 100, "accuracy": 0.91234}]
    assert reader.best == 0.91234


def test_the_official_code_is_refused_a_model_its_data_would_not_fit(tmp_path):
    """It hard-codes each dataset's transforms (resize 600, crop 448; iNat2017 400, 304) and
    class count, whatever --img_size says: a model of another size or head fails before launch."""
    spec = official_spec(tmp_path)
    assert unsupported(spec) == []
    bad = replace(spec, model=replace(spec.model, image_size=304, num_classes=196))
    reasons = unsupported(bad)
    assert ("model.image_size=304: the official code's transforms for cub resize to 600 and crop "
            "448, whatever --img_size says") in reasons
    assert "model.num_classes=196: the official code hard-codes 200 classes for cub" in reasons
    assert unsupported(replace(bad, dataset="inat2017", model=replace(
        spec.model, image_size=304, num_classes=5089))) == []
