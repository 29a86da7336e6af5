"""Faults injected into a copy of a finished store of the default protocol (smoke size, seed 0:
four runs, both arms and frameworks), as a hostile tester would: each damaged file is named with
its run, each command that cannot do its job exits non-zero, no finished result is lost or
miscounted, and `audit run` repairs the store to the same results (runs are deterministic)."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.store import DAMAGED, SUMMARY
from transfg.run_files import read_json

DEFAULT = Path(__file__).parents[2] / "protocols" / "default.toml"
MATRIX = ["--smoke"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished store of the default protocol with one seed, made once: (the protocol, the
    store, {run label: run id}, every run's result)."""
    folder = tmp_path_factory.mktemp("finished")
    text = DEFAULT.read_text()
    assert "seeds = [0, 1, 2, 3, 4]" in text
    (folder / "default.toml").write_text(text.replace("seeds = [0, 1, 2, 3, 4]", "seeds = [0]"))
    protocol = str(folder / "default.toml")
    store = folder / "runs"
    assert main(["run", protocol, *MATRIX, "--store", str(store)]) == 0
    ids = {}
    for folder in store.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            spec = read_json(folder / "spec.json")
            ids[f"{spec['notes']['arm']}/{spec['framework']}"] = folder.name
    assert len(ids) == 4
    return protocol, store, ids, {run_id: read_json(store / run_id / "result.json")
                                  for run_id in ids.values()}


@pytest.fixture
def store(finished, tmp_path):
    protocol, source, ids, results = finished
    copy = tmp_path / "runs"
    shutil.copytree(source, copy)
    return Damage(protocol, copy, ids, results)


class Damage:
    def __init__(self, protocol: str, root: Path, ids: dict, results: dict):
        self.protocol, self.root, self.ids, self.results = protocol, root, ids, results

    def folder(self, label: str) -> Path:
        return self.root / self.ids[label]

    def audit(self, capsys, *args) -> tuple[int, str]:
        """Run a command in this process; (exit status, everything it printed)."""
        capsys.readouterr()
        code = main([*args, "--store", str(self.root)])
        out = capsys.readouterr()
        return code, out.out + out.err

    def matrix(self, capsys, command: str) -> tuple[int, str]:
        return self.audit(capsys, command, self.protocol, *MATRIX)

    def assert_repaired(self, capsys) -> str:
        """`audit run` repairs; then every run is done with its original result, and nothing
        that was moved aside was deleted."""
        code, out = self.matrix(capsys, "run")
        assert code == 0, out
        code, status = self.matrix(capsys, "status")
        assert code == 0 and status.count(" done ") == 4, status
        for run_id, result in self.results.items():
            again = read_json(self.root / run_id / "result.json")
            assert again["final_accuracy"] == result["final_accuracy"], run_id
            assert again["evaluations"] == result["evaluations"], run_id
        return out


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def edit_json(path: Path, **changes) -> None:
    data = read_json(path)
    for key, value in changes.items():
        parts = key.split("__")
        target = data
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value
    path.write_text(json.dumps(data))


# --- result.json ---

RESULT_FAULTS = {
    "cut in half": (cut_in_half, "not valid JSON"),
    "empty object": (lambda p: p.write_text("{}"), "no final_accuracy"),
    "accuracy 5.0": (lambda p: edit_json(p, final_accuracy=5.0, evaluations=[
        {"step": 20, "accuracy": 5.0, "correct": 0, "total": 128}]), "allowed: a number in [0, 1]"),
    "accuracy a string": (lambda p: edit_json(p, final_accuracy="0.5"), "final_accuracy='0.5'"),
    "not UTF-8": (lambda p: p.write_bytes(b"\xff\xfe{}"), "not UTF-8"),
    "a list": (lambda p: p.write_text("[0.5]"), "not an object"),
    "counts that disagree": (lambda p: edit_json(p, correct=999), "correct 999 > test_images"),
}


# One of each kind in the default run, the rest with -m slow (each repair runs a run again).
QUICK = ("cut in half", "accuracy 5.0")


@pytest.mark.parametrize("fault", [f if f in QUICK else pytest.param(f, marks=pytest.mark.slow)
                                   for f in RESULT_FAULTS])
def test_a_damaged_result_is_corrupt_named_counted_apart_and_run_again(store, capsys, fault):
    damage, expected = RESULT_FAULTS[fault]
    folder = store.folder("transfg/torch")
    damage(folder / "result.json")
    for command in ("status", "plan"):
        code, out = store.matrix(capsys, command)
        assert code == 1, out
        assert f"run {folder.name}: result.json:" in out and expected in out, out
        assert "corrupt" in out
    code, out = store.audit(capsys, "status")  # the whole store, without a protocol
    assert code == 1 and f"run {folder.name}: result.json:" in out, out
    code, out = store.audit(capsys, "report", store.protocol, *MATRIX, "-o",
                            str(store.root.parent / "report"), "--format", "json,html")
    assert code == 1 and f"run {folder.name}: result.json:" in out, out
    report = read_json(store.root.parent / "report" / "default.json")
    assert len(report["results"]) == 3  # left out, never miscounted as done
    assert report["sections"][0]["states"] == {"corrupt": 1, "done": 3}
    assert "Corrupt runs" in (store.root.parent / "report" / "default.html").read_text()
    out = store.assert_repaired(capsys)
    assert "moved aside" in out
    (aside,) = (store.root / DAMAGED).iterdir()
    assert aside.name.startswith(folder.name) and (aside / "result.json").exists()
    assert expected in (aside / "DAMAGED.txt").read_text() or fault == "not UTF-8"


def test_keep_corrupt_leaves_a_corrupt_run_and_exits_non_zero(store, capsys):
    folder = store.folder("vit/jittor")
    cut_in_half(folder / "result.json")
    code, out = store.audit(capsys, "run", store.protocol, *MATRIX, "--keep-corrupt")
    assert code == 1 and "corrupt (earlier)" in out and f"run {folder.name}: result" in out, out
    assert not (store.root / DAMAGED).exists()


def test_a_spec_changed_after_the_run_is_corrupt(store, capsys):
    folder = store.folder("vit/torch")
    edit_json(folder / "spec.json", train__learning_rate=0.5)
    code, out = store.matrix(capsys, "status")
    assert code == 1 and f"run {folder.name}: spec.json: hashes to" in out, out
    store.assert_repaired(capsys)


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.write_text("{not json"), "not valid JSON"),
    pytest.param(lambda p: edit_json(p, fingerprints={}), "fingerprints without data",
                 marks=pytest.mark.slow),
    pytest.param(lambda p: p.unlink(), "missing", marks=pytest.mark.slow),
])
def test_a_damaged_provenance_of_a_finished_run_is_named(store, capsys, damage, expected):
    folder = store.folder("transfg/jittor")
    damage(folder / "provenance.json")
    code, out = store.matrix(capsys, "status")
    assert code == 1 and f"run {folder.name}: provenance.json: {expected}" in out, out
    store.assert_repaired(capsys)


# --- status.json ---

@pytest.mark.parametrize("damage", [
    cut_in_half, pytest.param(lambda p: edit_json(p, status="running"), marks=pytest.mark.slow)])
def test_a_done_runs_damaged_status_is_a_note_and_rewritten(store, capsys, damage):
    folder = store.folder("transfg/torch")
    damage(folder / "status.json")
    code, out = store.matrix(capsys, "status")
    assert code == 0 and out.count(" done ") == 4 and f"note: run {folder.name}: status" in out
    out = store.assert_repaired(capsys)
    assert "repaired" in out and read_json(folder / "status.json")["status"] == "finished"


def test_a_status_that_says_finished_without_a_result_is_corrupt(store, capsys):
    folder = store.folder("vit/torch")
    (folder / "result.json").unlink()
    code, out = store.matrix(capsys, "status")
    assert code == 1 and "result.json: missing, although status.json says" in out, out
    store.assert_repaired(capsys)


# --- the summary cache ---

def test_an_edited_summary_cache_changes_no_result(store, capsys):
    assert store.matrix(capsys, "status")[0] == 0  # the cache is written
    cache = read_json(store.root / SUMMARY)
    for entry in cache["runs"].values():
        entry["result"]["final_accuracy"] = 0.99
    (store.root / SUMMARY).write_text(json.dumps(cache))
    code, out = store.matrix(capsys, "status")
    assert code == 0 and "99.00%" not in out
    code, out = store.audit(capsys, "status", "--json")
    rows = json.loads(out[:out.rindex("]") + 1])
    assert sorted(r["final_accuracy"] for r in rows) == sorted(
        r["final_accuracy"] for r in store.results.values())


@pytest.mark.parametrize("content", [b"[1, 2]", b"{\"version\": 3, \"runs\": [", b"\xff",
                                     b"{\"version\": 3, \"runs\": {\"r1-x\": 5}}"])
def test_a_damaged_summary_cache_is_rebuilt_with_one_warning(store, capsys, content):
    (store.root / SUMMARY).write_bytes(content)
    code, out = store.matrix(capsys, "status")
    assert code == 0 and out.count(" done ") == 4
    assert out.count("warning:") == 1 and SUMMARY in out, out
    code, out = store.matrix(capsys, "status")
    assert "warning" not in out  # rebuilt


# --- predictions and checkpoints ---

@pytest.mark.parametrize("damage, expected", [
    pytest.param(lambda p: p.unlink(), "eval-20.npz: missing", marks=pytest.mark.slow),
    (lambda p: p.write_bytes(b"garbage"), "eval-20.npz: unreadable"),
    pytest.param(cut_in_half, "eval-20.npz: unreadable", marks=pytest.mark.slow),
    pytest.param(lambda p: np.savez(p.with_suffix(""),
                                    **{k: v[:50] for k, v in np.load(p).items()}),
                 "eval-20.npz: 50 test examples, the run evaluated 128", marks=pytest.mark.slow),
])
def test_damaged_predictions_are_named_and_the_run_is_run_again(store, capsys, damage, expected):
    folder = store.folder("vit/torch")
    damage(folder / "eval-20.npz")
    code, out = store.matrix(capsys, "status")
    assert code == 1 and f"run {folder.name}: {expected}" in out, out
    code, out = store.audit(capsys, "report", store.protocol, *MATRIX, "-o",
                            str(store.root.parent / "report"), "--format", "json")
    assert code == 1 and expected in out
    store.assert_repaired(capsys)


def test_a_damaged_checkpoint_of_a_finished_run_is_named(store, capsys):
    folder = store.folder("transfg/jittor")
    cut_in_half(folder / "checkpoints" / "last.npz")
    code, out = store.matrix(capsys, "status")
    assert code == 1 and f"run {folder.name}: checkpoints/last.npz: unreadable" in out, out
    store.assert_repaired(capsys)


# --- resuming an interrupted run ---

def interrupt(folder: Path) -> None:
    """As a kill after the last checkpoint and before the result: the run resumes there."""
    (folder / "result.json").unlink()
    edit_json(folder / "status.json", status="running")


@pytest.mark.parametrize("damage", [
    lambda p: p.open("ab").write(b"\xff\xfe cut"),
    pytest.param(lambda p: p.open("a").write('"a string"\n'), marks=pytest.mark.slow),
    pytest.param(lambda p: p.open("a").write('{"no step": 1}\n'), marks=pytest.mark.slow),
])
def test_a_bad_last_metrics_line_is_skipped_on_resume(store, capsys, damage):
    folder = store.folder("transfg/torch")
    interrupt(folder)
    damage(folder / "metrics.jsonl")
    code, out = store.matrix(capsys, "status")
    assert code == 0 and " interrupted " in out
    out = store.assert_repaired(capsys)
    assert "moved aside" not in out  # resumed, not run again


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.unlink(), "metrics.jsonl: missing, although the checkpoint is at update 20"),
    pytest.param(lambda p: p.write_text("\n".join(p.read_text().splitlines()[5:]) + "\n"),
                 "metrics.jsonl: without 5 of updates 1..20", marks=pytest.mark.slow),
    pytest.param(lambda p: p.write_text("not json\n" + p.read_text()), "metrics.jsonl: line 1",
                 marks=pytest.mark.slow),
])
def test_a_damaged_history_is_found_on_resume_and_the_run_starts_again(store, capsys, damage,
                                                                       expected):
    folder = store.folder("vit/jittor")
    interrupt(folder)
    damage(folder / "metrics.jsonl")
    out = store.assert_repaired(capsys)
    assert f"run {folder.name}: {expected}" in out and "moved aside" in out, out


@pytest.mark.slow
def test_a_damaged_checkpoint_is_found_on_resume_and_the_run_starts_again(store, capsys):
    folder = store.folder("transfg/torch")
    interrupt(folder)
    cut_in_half(folder / "checkpoints" / "last.npz")
    out = store.assert_repaired(capsys)
    assert f"run {folder.name}: checkpoints/last.npz: unreadable" in out, out


# --- the runner ---

def test_a_failure_around_one_run_fails_it_alone_and_the_queue_goes_on(store, capsys):
    """A lock that is a folder breaks claiming that run: it fails with the reason in its log,
    the other run still runs, and the exit status says a run failed."""
    broken, other = store.folder("transfg/torch"), store.folder("vit/torch")
    for folder in (broken, other):
        shutil.rmtree(folder)
    broken.mkdir()
    (broken / "lock").mkdir()
    code, out = store.matrix(capsys, "run")
    assert code == 1 and f"failed: {broken.name}: IsADirectoryError" in out, out
    assert "Traceback" in (broken / "log.txt").read_text()
    assert read_json(other / "result.json")["final_accuracy"] == \
        store.results[other.name]["final_accuracy"]
    (broken / "lock").rmdir()
    store.assert_repaired(capsys)


def test_a_half_written_provenance_of_an_interrupted_run_is_kept_aside(store, capsys):
    folder = store.folder("vit/torch")
    interrupt(folder)
    cut_in_half(folder / "provenance.json")
    store.assert_repaired(capsys)
    assert (folder / "provenance.damaged.json").exists()
    assert "provenance.json: not valid JSON" in read_json(folder / "provenance.json")["note"]


def test_runs_that_failed_earlier_keep_the_exit_status_non_zero(store, capsys):
    folder = store.folder("transfg/jittor")
    interrupt(folder)
    edit_json(folder / "status.json", status="failed", message="CUDA error")
    code, out = store.matrix(capsys, "run")
    assert code == 1 and "failed (earlier)" in out and folder.name in out, out
    code, out = store.audit(capsys, "run", store.protocol, *MATRIX, "--retry-failed")
    assert code == 0, out


def test_a_dataset_error_in_the_report_is_a_message(store, capsys, tmp_path):
    code, out = store.audit(capsys, "report", store.protocol, *MATRIX, "--data-root",
                            str(tmp_path / "nowhere"), "-o", str(tmp_path / "report"))
    assert code != 0 and "nowhere" in out and "Traceback" not in out, out


def test_a_store_folder_that_is_not_a_run_is_left_alone(store, capsys):
    (store.root / "notes").mkdir()
    (store.root / "notes" / "README").write_text("mine")
    code, out = store.audit(capsys, "status")
    assert code == 0 and "notes" in out and out.count(" done ") == 4
    assert os.listdir(store.root / "notes") == ["README"]
