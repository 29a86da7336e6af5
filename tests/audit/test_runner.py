"""`audit run` against the run store: killed with SIGKILL and started again it finishes the
matrix with no run executed twice and the results of an uninterrupted run; two runners on one
store execute each run once; the Slurm executor's code path through submitit's local executor,
including a job killed and resubmitted; plan, status and run ids."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from protocol_text import STOPPABLE_SMOKE, STOPPABLE_TRAIN, protocol_text

from audit.cli import main
from audit.plan import Inputs, plan
from audit.protocol import load
from audit.store import Store
from transfg.run_files import read_json, read_metrics


def runner_protocol(**changes) -> str:
    """The runner tests' protocol (TransFG and ViT in PyTorch, seeds 0 and 1, runs that can be
    stopped midway); `changes`: other arguments of `protocol_text`."""
    return protocol_text(**({"name": "runner-test", "title": "Runner test",
                             "train": STOPPABLE_TRAIN, "smoke": STOPPABLE_SMOKE} | changes))


PROTOCOL = runner_protocol()


@pytest.fixture
def protocol(tmp_path):
    path = tmp_path / "runner-test.toml"
    path.write_text(PROTOCOL)
    return path


def audit(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "audit.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=900, **kwargs)


def run_ids(protocol):
    return [r.run_id for r in plan(load(protocol), Inputs(smoke=True))]


def assert_same_results(store_a: Path, store_b: Path, ids):
    for run_id in ids:
        a, b = read_json(store_a / run_id / "result.json"), read_json(store_b / run_id /
                                                                      "result.json")
        assert a["evaluations"] == b["evaluations"], run_id
        for step in (20, 40, 60):
            with np.load(store_a / run_id / f"eval-{step}.npz") as x, \
                 np.load(store_b / run_id / f"eval-{step}.npz") as y:
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key])


def assert_files_intact(folder: Path, finished: bool):
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())  # no half-written JSON
    for path in folder.rglob("metrics.jsonl"):
        lines = path.read_text().splitlines()
        for line in lines[:-1] if not finished else lines:
            json.loads(line)  # (a kill may cut the last line short; readers skip it)
    if finished:  # temporaries of writes cut short by the kill are cleared on the next start
        assert not list(folder.rglob(".*.tmp"))


KILL_RUNNER = """
import json, os, signal, subprocess, sys, time
from pathlib import Path
from audit.store import Store
protocol, store = sys.argv[1], Path(sys.argv[2])
runner = subprocess.Popen([sys.executable, "-m", "audit.cli", "run", protocol, "--smoke",
                           "--store", str(store)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
def mid_run():  # a run finished, and another one past its first checkpoint but not done
    done = [p for p in store.glob("*/result.json")]
    midway = [p for p in store.glob("*/checkpoints/last.npz")
              if not (p.parent.parent / "result.json").exists()]
    return done and midway
deadline = time.monotonic() + 600
while not mid_run() and time.monotonic() < deadline:
    time.sleep(0.02)
done_before = sorted(p.parent.name for p in store.glob("*/result.json"))
runner.send_signal(signal.SIGKILL)
runner.wait()
s = Store(store)
deadline = time.monotonic() + 60  # the training process dies with its runner
while any(s.is_claimed(r) for r in s.run_ids()) and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"done_before": done_before,
                  "claimed_after": [r for r in s.run_ids() if s.is_claimed(r)]}))
"""


def test_a_killed_runner_resumes_the_matrix_without_running_anything_twice(tmp_path, protocol):
    ids = run_ids(protocol)
    whole = audit("run", protocol, "--smoke", "--store", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    # Killed from a helper process (this process may have imported jittor, whose SIGCHLD
    # handler ends the whole process when a child dies of a signal).
    helper = subprocess.run([sys.executable, "-c", KILL_RUNNER, str(protocol), str(killed)],
                            capture_output=True, text=True, timeout=900)
    assert helper.returncode == 0, helper.stderr
    report = json.loads(helper.stdout)
    assert report["done_before"] and report["claimed_after"] == []
    assert_files_intact(killed, finished=False)
    again = audit("run", protocol, "--smoke", "--store", killed)
    assert again.returncode == 0, again.stderr
    assert f"{len(report['done_before'])} done" in again.stderr  # skipped, not run again
    store = Store(killed)
    assert [store.state(r) for r in ids] == ["done"] * len(ids)
    for run_id in ids:
        attempts = read_json(killed / run_id / "provenance.json")["attempts"]
        if run_id in report["done_before"]:
            assert len(attempts) == 1, run_id
        assert attempts[-1]["status"] == "done"
    resumed = [r for r in ids if len(read_json(killed / r / "provenance.json")["attempts"]) == 2]
    assert resumed  # the run killed midway was resumed from its checkpoint ...
    for run_id in resumed:
        steps = [r["step"] for r in read_metrics(killed / run_id / "metrics.jsonl")]
        assert steps == list(range(1, 61))  # ... each update once in its metrics
    assert_same_results(tmp_path / "whole", killed, ids)  # ... to the identical result
    assert_files_intact(killed, finished=True)


def test_two_runners_on_one_store_execute_each_run_once(tmp_path, protocol):
    store = tmp_path / "store"
    command = [sys.executable, "-m", "audit.cli", "run", str(protocol), "--smoke", "--store",
               str(store)]
    runners = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=900) for r in runners]
    assert [r.returncode for r in runners] == [0, 0], outputs
    for run_id in run_ids(protocol):
        attempts = read_json(store / run_id / "provenance.json")["attempts"]
        assert len(attempts) == 1, run_id
        assert Store(store).state(run_id) == "done"
    starts = sum(err.count(" start ") for _, err in outputs)
    assert starts == len(run_ids(protocol))  # each run started by one of the two runners


SUBMITIT_KILL = """
import json, sys, time
from pathlib import Path
from audit.executors import slurm
from audit.plan import Inputs
from audit.protocol import load
from audit.records import matrix
from audit.runner import work_items
from audit.store import Store
protocol, store = load(sys.argv[1]), Store(sys.argv[2])
rows = matrix(store, [protocol], Inputs(smoke=True), arms=["transfg"], seeds=[0])
item = work_items(rows, False)[0]
executor = slurm.make_executor(store, cluster="local")
[(_, job)] = slurm.submit(executor, store, [item])
checkpoint = store.path(item["run_id"]) / "checkpoints" / "last.npz"
deadline = time.monotonic() + 600
while not checkpoint.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
job.cancel()  # as Slurm killing the job
while not job.done():
    time.sleep(0.1)
deadline = time.monotonic() + 60
while store.is_claimed(item["run_id"]) and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"run_id": item["run_id"], "state": store.state(item["run_id"])}))
"""


def test_slurm_executor_through_submitit_resubmits_a_killed_job(tmp_path, protocol):
    store = tmp_path / "store"
    helper = subprocess.run([sys.executable, "-c", SUBMITIT_KILL, str(protocol), str(store)],
                            capture_output=True, text=True, timeout=900)
    assert helper.returncode == 0, helper.stderr
    report = json.loads(helper.stdout)
    assert report["state"] == "interrupted"
    # Resubmission: the interrupted run resumes, the others run, all as submitit jobs.
    again = audit("run", protocol, "--smoke", "--store", store, "--executor", "submitit-local")
    assert again.returncode == 0, again.stderr
    assert "submitted job" in again.stderr
    attempts = read_json(store / report["run_id"] / "provenance.json")["attempts"]
    assert len(attempts) == 2 and attempts[-1]["status"] == "done"
    assert (store / ".submitit").is_dir()
    whole = audit("run", protocol, "--smoke", "--store", tmp_path / "whole", "--arms",
                  "transfg", "--seeds", "0")
    assert whole.returncode == 0, whole.stderr
    assert_same_results(tmp_path / "whole", store, [report["run_id"]])


def test_plan_and_status_show_the_matrix(tmp_path, protocol, capsys):
    store = tmp_path / "store"
    assert main(["plan", str(protocol), "--smoke", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "4 runs = 2 arms x 1 frameworks x 2 seeds" in out and "missing 4" in out
    assert main(["run", str(protocol), "--smoke", "--store", str(store), "--arms", "vit",
                 "--seeds", "1"]) == 0
    capsys.readouterr()
    assert main(["plan", str(protocol), "--smoke", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "done 1" in out and "missing 3" in out and "estimated compute" in out
    assert main(["status", "--store", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["arm"], r["framework"], r["seed"], r["state"]) for r in rows] == \
        [("vit", "torch", "seed 1", "done")]
    assert 0 < rows[0]["final_accuracy"] <= 1
    provenance = read_json(store / rows[0]["run_id"] / "provenance.json")
    for key in ("code", "packages", "machine", "fingerprints", "attempts", "compute_seconds"):
        assert key in provenance
    assert provenance["code"]["commit"] and provenance["packages"]["torch"]
    assert provenance["compute_seconds"] > 0


def test_run_ids_depend_on_what_changes_results_only(tmp_path, protocol):
    base = plan(load(protocol), Inputs(smoke=True))
    assert len({r.run_id for r in base}) == len(base)
    # Loader workers and checkpoint spacing change nothing (tests in tests/transfg): same ids.
    other = tmp_path / "other.toml"
    other.write_text(runner_protocol(name="renamed", train=STOPPABLE_TRAIN | {"workers": 2}))
    assert [r.run_id for r in plan(load(other), Inputs(smoke=True))] == \
        [r.run_id for r in base]
    changed = tmp_path / "changed.toml"
    changed.write_text(runner_protocol(train=STOPPABLE_TRAIN | {"warmup_steps": 5}))
    assert not {r.run_id for r in plan(load(changed), Inputs(smoke=True))} & \
        {r.run_id for r in base}


def test_run_ids_of_the_default_protocol_stay_those_of_its_example_report():
    """A store's finished runs keep counting across versions: the default protocol's ids are the
    ones recorded in reports/examples/default.json (options added since, such as
    train.attention, stay out of the id at their default), and a non-default value changes
    them."""
    root = Path(__file__).parents[2]
    recorded = set(re.findall(r'"run_id": "(r1-[0-9a-f]{16})"',
                              (root / "reports/examples/default.json").read_text()))
    default = load(root / "protocols/default.toml")
    assert {r.run_id for r in plan(default)} == recorded
    fused = dataclasses.replace(default, arms={
        name: dataclasses.replace(arm, train=dataclasses.replace(arm.train, attention="fused"))
        for name, arm in default.arms.items()})
    assert not {r.run_id for r in plan(fused)} & recorded


def test_the_weights_file_counts_by_its_content_not_its_place(tmp_path):
    """Moving Google's .npz to another folder keeps the run ids (its path is not in them, its
    SHA-256 is); a file with one byte changed gives other ids."""
    from audit.plan import Fingerprints, run_id

    spec = plan(load(Path(__file__).parents[2] / "protocols/default.toml"))[0].spec
    first, moved, changed = tmp_path / "a" / "ViT-B_16.npz", tmp_path / "b" / "vit.npz", \
        tmp_path / "c" / "ViT-B_16.npz"
    for path in (first, moved, changed):
        path.parent.mkdir()
        path.write_bytes(b"\x93NUMPY weights" * 100)
    changed.write_bytes(changed.read_bytes()[:-1] + b"!")
    ids = [run_id(dataclasses.replace(spec, weights=str(path)), Fingerprints())
           for path in (first, moved, changed)]
    assert ids[0] == ids[1] != ids[2]


def test_unknown_subset_names_are_refused(protocol, capsys):
    assert main(["plan", str(protocol), "--arms", "transfgg"]) == 2
    assert "--arms transfgg: not in" in capsys.readouterr().err
    assert main(["plan", str(protocol), "--seeds", "7"]) == 2
    assert "--seeds [7]" in capsys.readouterr().err


def two_devices(frameworks, **changes) -> str:
    """The runner tests' protocol with `devices = 2`, its transfg arm and seed 0 only."""
    return runner_protocol(frameworks=frameworks, top={"devices": 2}, arms={"transfg": {}},
                           seeds=[0], **changes)


@pytest.mark.skipif(shutil.which("mpirun") is None,
                    reason="mpirun not installed (bash .ci/setup installs Open MPI)")
def test_runs_on_two_devices_go_through_each_frameworks_launcher(tmp_path):
    """devices = 2: the runner starts PyTorch runs through torchrun and Jittor runs through
    mpirun (on the CPU here), and both finish with the effective batch of two devices."""
    path = tmp_path / "two-devices.toml"
    path.write_text(two_devices(["torch", "jittor"],
                                smoke={"steps": 6, "train": 96, "test": 40}))
    done = audit("run", path, "--smoke", "--store", tmp_path / "runs")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = {r.framework: r.run_id for r in plan(load(path), Inputs(smoke=True))}
    for framework, run_id in runs.items():
        folder = tmp_path / "runs" / run_id
        assert read_json(folder / "result.json")["effective_batch"] == 32, framework
        command = read_json(folder / "provenance.json")["attempts"][0]["command"]
        launcher = "torch.distributed.run" if framework == "torch" else "mpirun"
        assert launcher in command, (framework, command)
        with np.load(folder / "eval-6.npz") as data:
            assert list(data["index"]) == list(range(40))  # every test image once


KILL_MULTI_DEVICE_RUNNER = """
import json, signal, subprocess, sys, time
from pathlib import Path
from audit.store import Store
protocol, store = sys.argv[1], Path(sys.argv[2])
runner = subprocess.Popen([sys.executable, "-m", "audit.cli", "run", protocol, "--smoke",
                           "--store", str(store)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 600
while not list(store.glob("*/checkpoints/last.npz")) and time.monotonic() < deadline:
    time.sleep(0.02)
runner.send_signal(signal.SIGKILL)
runner.wait()
finished_at_kill = bool(list(store.glob("*/result.json")))
s = Store(store)
deadline = time.monotonic() + 60  # the launcher dies with the runner, its processes with it
while any(s.is_claimed(r) for r in s.run_ids()) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1)
# the training processes (their command names the store) and their loader workers (forked
# from them, with the same command line)
left = subprocess.run(["pgrep", "-f", "transfg.train " + str(store)], capture_output=True,
                      text=True).stdout.split()
print(json.dumps({"finished_at_kill": finished_at_kill, "left": left,
                  "claimed_after": [r for r in s.run_ids() if s.is_claimed(r)]}))
"""


@pytest.mark.skipif(shutil.which("mpirun") is None,
                    reason="mpirun not installed (bash .ci/setup installs Open MPI)")
def test_a_killed_runner_takes_its_mpi_processes_down_and_the_run_resumes(tmp_path):
    """SIGKILL of `audit run` during a 2-process Jittor run: mpirun dies with the runner and its
    processes with mpirun (none goes on writing, the claim is free), and the next `audit run`
    resumes from the checkpoint: every update in the metrics once."""
    path = tmp_path / "mpi.toml"
    path.write_text(two_devices(["jittor"], train=STOPPABLE_TRAIN | {  # with a loader worker,
        "checkpoint_every": 10, "workers": 1}))  # which must not outlive it
    store = tmp_path / "runs"
    killed = subprocess.run([sys.executable, "-c", KILL_MULTI_DEVICE_RUNNER, str(path),
                             str(store)], capture_output=True, text=True, timeout=900)
    state = json.loads(killed.stdout.strip().splitlines()[-1])
    assert not state["finished_at_kill"] and state["left"] == [] and state["claimed_after"] == []
    again = audit("run", path, "--smoke", "--store", store)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    [run_id] = [r.run_id for r in plan(load(path), Inputs(smoke=True))]
    steps = [r["step"] for r in read_metrics(store / run_id / "metrics.jsonl")]
    assert steps == list(range(1, 61))
    assert_files_intact(store / run_id, finished=True)


def test_a_multi_device_jittor_run_without_mpirun_fails_with_the_reason(tmp_path):
    path = tmp_path / "no-mpirun.toml"
    path.write_text(two_devices(["jittor"]))
    done = audit("run", path, "--smoke", "--store", tmp_path / "runs",
                 env={**os.environ, "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 1
    assert "needs mpirun, which is not on PATH" in done.stdout + done.stderr
    assert not list((tmp_path / "runs").glob("r1-*/status.json"))  # nothing was started


def test_weights_for_a_protocol_without_pretrained_weights_are_refused(protocol, tmp_path):
    """--weights would otherwise be ignored without a word and the runs train from scratch."""
    done = audit("plan", protocol, "--weights", tmp_path / "ViT-B_16.npz", "--store",
                 tmp_path / "runs")
    assert done.returncode == 2
    assert "no protocol given declares pretrained weights" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_data_folder_with_more_classes_than_the_model_is_refused_at_plan_time(tmp_path,
                                                                                protocol, capsys):
    """The folder given with --data-root is checked against each arm's class count before
    anything runs: here it lists an 11th class beside the model's 10."""
    from transfg.data.bundled import ROOT

    data = tmp_path / "digits"
    shutil.copytree(ROOT, data)
    with open(data / "classes.txt", "a") as f:
        f.write("11 eleven\n")
    assert main(["plan", str(protocol), "--data-root", str(data), "--store",
                 str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert (f"{protocol}: arms.transfg: model.num_classes = 10, but the folder {data} lists 11 "
            "classes; allowed: a folder of digits with at most model.num_classes classes") in err
    assert main(["run", str(protocol), "--data-root", str(data), "--store",
                 str(tmp_path / "runs")]) == 2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    # a Protocol built in code skips validation; the labels are checked all the same
    from audit.plan import PlanError

    narrow = load(protocol)
    narrow = dataclasses.replace(narrow, arms={name: dataclasses.replace(
        arm, model=arm.model.replace(num_classes=5)) for name, arm in narrow.arms.items()})
    with pytest.raises(PlanError, match=r"arms.transfg: model.num_classes = 5, but the folder "
                                        r".* has labels up to 9 \(10 classes\)"):
        plan(narrow, Inputs())
    fewer = tmp_path / "fewer"  # (another folder: this process keeps what it read)
    shutil.copytree(ROOT, fewer)
    (fewer / "classes.txt").write_text("".join(f"{i} {i}\n" for i in range(1, 10)))  # a subset
    assert main(["plan", str(protocol), "--data-root", str(fewer), "--store",
                 str(tmp_path / "runs")]) == 0
