"""`audit run --executor slurm` against a real Slurm cluster: one node, started on this machine
for these tests (tests/slurm_cluster.py: munged, slurmctld and slurmd with a minimal config in
a temporary folder, stopped after). The runs finish and equal local runs; a job cancelled with
`scancel` mid-run is submitted again by the next `audit run` and resumes; a job requeued with
`scontrol requeue` resumes from its checkpoint within the same job; `--no-wait` returns at once
and `audit status` follows the jobs; `--until-decided --no-wait` submits one stage per call.
Skipped, with the reason, where Slurm cannot start (no root, slurm-wlm or munge not installed,
a daemon failing: its last log lines)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import slurm_cluster
from protocol_text import STOPPABLE_SMOKE, STOPPABLE_TRAIN, protocol_text, until_decided_text

from audit.plan import Inputs, plan
from audit.protocol import load
from audit.store import Store
from transfg.run_files import read_json, read_metrics

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "protocols" / "default.toml"

# One run of 60 steps with a checkpoint every 20 per seed: long enough to be stopped midway.
PROTOCOL = protocol_text("slurm-test", "Slurm test", train=STOPPABLE_TRAIN, arms={"transfg": {}},
                         smoke=STOPPABLE_SMOKE)


@pytest.fixture(scope="module")
def cluster():
    try:
        started = slurm_cluster.start()
    except slurm_cluster.SlurmUnavailable as error:
        pytest.skip(f"no Slurm cluster: {error}")
    # The tests' commands (and the jobs, which inherit their environment) talk to this cluster;
    # variables of an enclosing Slurm job would confuse submitit.
    saved = {k: v for k, v in os.environ.items() if k.startswith("SLURM_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(started.env)
    yield started
    for name in started.env:
        os.environ.pop(name, None)
    os.environ.update(saved)
    started.stop()


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    path = tmp_path_factory.mktemp("protocol") / "slurm-test.toml"
    path.write_text(PROTOCOL)
    return path


@pytest.fixture(scope="module")
def reference(protocol, tmp_path_factory):
    """The run of seed 0, trained locally and never interrupted."""
    store = tmp_path_factory.mktemp("reference") / "store"
    done = audit("run", protocol, "--smoke", "--store", store, "--seeds", "0")
    assert done.returncode == 0, done.stderr
    return store


def audit(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "audit.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def start_audit(log: Path, *args) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-m", "audit.cli", *map(str, args)],
                                stdout=output, stderr=subprocess.STDOUT)


def wait_for(ready, what: str, timeout: float = 300, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f} s")
        time.sleep(poll)


def submitted(text: str) -> dict[str, str]:
    """run id -> job id, from `audit run`'s "submitted job N: LABEL (RUN ID)" lines."""
    return {m.group(2): m.group(1)
            for m in re.finditer(r"submitted job (\d+): .* \((\S+)\)", text)}


def run_ids(protocol, **subset) -> list[str]:
    return [r.run_id for r in plan(load(protocol), Inputs(smoke=True), **subset)]


def assert_same_results(store_a: Path, store_b: Path, ids):
    """Same evaluations, same predictions at every evaluation, same final weights."""
    for run_id in ids:
        a, b = store_a / run_id, store_b / run_id
        assert read_json(a / "result.json")["evaluations"] == \
            read_json(b / "result.json")["evaluations"], run_id
        evals = sorted(p.name for p in a.glob("eval-*.npz"))
        assert evals and evals == sorted(p.name for p in b.glob("eval-*.npz")), run_id
        for name in [*evals, "checkpoints/last.npz"]:
            with np.load(a / name) as x, np.load(b / name) as y:
                assert sorted(x.files) == sorted(y.files), (run_id, name)
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key], err_msg=f"{run_id} {name}")


def attempts(store: Path, run_id: str) -> list[dict]:
    return read_json(store / run_id / "provenance.json")["attempts"]


def assert_each_step_once(store: Path, run_id: str, steps: int = 60):
    assert [r["step"] for r in read_metrics(store / run_id / "metrics.jsonl")] == \
        list(range(1, steps + 1))


def midway(store: Path, run_id: str) -> bool:
    """Past its first checkpoint, not finished."""
    folder = store / run_id
    return (folder / "checkpoints" / "last.npz").exists() and \
        not (folder / "result.json").exists()


def test_the_cluster_stops_leaving_nothing_running():
    try:
        cluster = slurm_cluster.start()
    except slurm_cluster.SlurmUnavailable as error:
        pytest.skip(f"no Slurm cluster: {error}")
    daemons = [p.pid for p in cluster.processes.values()]
    try:
        job = cluster.run("sbatch", "--output=/dev/null", "--wrap", "sleep 600").stdout
        job_id = job.split()[-1]
        wait_for(lambda: cluster.run("squeue", "--noheader", "--format=%T", f"--jobs={job_id}",
                                     check=False).stdout.strip() == "RUNNING", "running job", 60)
        wait_for(cluster.leftovers, "job processes", 30)  # the job's processes are found...
    finally:
        killed = cluster.stop()
    assert killed == []  # ... and ended by cancelling the job, not killed one by one
    assert not cluster.folder.exists()
    for pid in daemons:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    assert cluster.leftovers() == []


def test_smoke_runs_through_slurm_equal_local_runs(cluster, tmp_path):
    """The default protocol's smoke runs (PyTorch, seed 0: TransFG and ViT), as Slurm jobs on a
    node without GPUs, against the same runs on this machine."""
    subset = ("--smoke", "--frameworks", "torch", "--seeds", "0")
    slurm = audit("run", DEFAULT, *subset, "--store", tmp_path / "slurm", "--executor", "slurm")
    assert slurm.returncode == 0, slurm.stderr
    assert "has no GPUs (sinfo): the jobs request none" in slurm.stderr
    jobs = submitted(slurm.stderr)
    ids = run_ids(DEFAULT, frameworks=["torch"], seeds=[0])
    assert sorted(jobs) == sorted(ids) and len(set(jobs.values())) == len(ids)
    local = audit("run", DEFAULT, *subset, "--store", tmp_path / "local")
    assert local.returncode == 0, local.stderr
    assert_same_results(tmp_path / "local", tmp_path / "slurm", ids)
    for run_id, job_id in jobs.items():
        [attempt] = attempts(tmp_path / "slurm", run_id)
        assert attempt["slurm_job"] == job_id and attempt["status"] == "done"
        folder = tmp_path / "slurm" / ".submitit" / job_id  # submitit's files for the job
        script = (folder / f"{job_id}_submission.sh").read_text()
        assert "gpus" not in script and f"--job-name=audit-{run_id}" in script
        assert (folder / f"{job_id}_0_log.err").exists()
        assert (folder / f"{job_id}_0_result.pkl").exists()


def test_a_cancelled_job_is_submitted_again_and_resumes(cluster, protocol, reference,
                                                        tmp_path):
    store = tmp_path / "store"
    [run_id] = run_ids(protocol, seeds=[0])
    log = tmp_path / "first.txt"
    first = start_audit(log, "run", protocol, "--smoke", "--store", store, "--seeds", "0",
                        "--executor", "slurm")
    try:
        job = wait_for(lambda: submitted(log.read_text()).get(run_id), "submitted job", 60)
        wait_for(lambda: midway(store, run_id), "checkpoint")
        cluster.run("scancel", job)
        assert first.wait(timeout=120) == 1  # the runner sees the job end without a result
    finally:
        first.kill()
    output = log.read_text()
    assert f"job {job} ended (CANCELLED) without a result" in output, output
    assert Store(store).state(run_id) == "interrupted"
    again = audit("run", protocol, "--smoke", "--store", store, "--seeds", "0",
                  "--executor", "slurm")
    assert again.returncode == 0, again.stderr
    second = submitted(again.stderr)[run_id]
    assert second != job
    history = attempts(store, run_id)
    assert [(a["slurm_job"], a["status"]) for a in history] == \
        [(job, "interrupted"), (second, "done")]
    assert_each_step_once(store, run_id)  # resumed from its checkpoint, not started over
    assert_same_results(reference, store, [run_id])


def test_a_requeued_job_resumes_from_its_checkpoint(cluster, protocol, reference, tmp_path):
    store = tmp_path / "store"
    [run_id] = run_ids(protocol, seeds=[0])
    log = tmp_path / "run.txt"
    runner = start_audit(log, "run", protocol, "--smoke", "--store", store, "--seeds", "0",
                         "--executor", "slurm")
    try:
        job = wait_for(lambda: submitted(log.read_text()).get(run_id), "submitted job", 60)
        wait_for(lambda: midway(store, run_id), "checkpoint")
        # ("Job is pending execution" while Slurm is still launching it: ask again)
        wait_for(lambda: cluster.run("scontrol", "requeue", job, check=False).returncode == 0,
                 "accepted requeue", 30, 0.5)
        code = runner.wait(timeout=300)  # the same job, started again, finishes the run
    finally:
        runner.kill()
    output = log.read_text()
    assert code == 0, output
    assert list(submitted(output).values()) == [job]  # requeued, not submitted again
    history = attempts(store, run_id)
    assert [(a["slurm_job"], a["slurm_restarts"], a["status"]) for a in history] == \
        [(job, 0, "interrupted"), (job, 1, "done")]
    assert_each_step_once(store, run_id)
    assert_same_results(reference, store, [run_id])


def test_no_wait_returns_at_once_and_status_follows_the_jobs(cluster, protocol, tmp_path):
    store = tmp_path / "store"
    ids = run_ids(protocol)
    started = time.monotonic()
    submit = audit("run", protocol, "--smoke", "--store", store, "--executor", "slurm",
                   "--no-wait")
    seconds = time.monotonic() - started
    assert submit.returncode == 0, submit.stderr
    assert sorted(submitted(submit.stderr)) == sorted(ids)
    assert seconds < 15  # a run takes about 20 s: nothing waited for one
    assert not any((store / r / "result.json").exists() for r in ids)

    seen: dict[str, set] = {r: set() for r in ids}

    def states():
        status = audit("status", protocol, "--smoke", "--store", store, "--json")
        assert status.returncode == 0, status.stderr
        rows = {row["run_id"]: row["state"] for row in json.loads(status.stdout)}
        for run_id in ids:
            seen[run_id].add(rows[run_id])
        return rows

    wait_for(lambda: all(s in ("running", "done") for s in states().values()),
             "runs running or done in `audit status`", 120, 0.5)
    wait_for(lambda: all(s == "done" for s in states().values()),
             "runs done in `audit status`", 300, 1)
    assert all("running" in seen[r] for r in ids), seen  # seen while their jobs ran
    again = audit("run", protocol, "--smoke", "--store", store, "--executor", "slurm")
    assert again.returncode == 0, again.stderr
    assert "0 to run" in again.stderr and "submitted job" not in again.stderr


def test_gpus_the_cluster_lacks_are_refused_with_sbatchs_reason(cluster, protocol, tmp_path):
    refused = audit("run", protocol, "--smoke", "--store", tmp_path / "store", "--seeds", "0",
                    "--executor", "slurm", "--gpus", "1")
    assert refused.returncode == 2, refused.stderr
    assert "could not be submitted: sbatch: error:" in refused.stderr
    assert "Traceback" not in refused.stderr


# A claim decided at the first look and one that never is (tests/audit/test_until_decided.py
# explains the pair): stage 1 is 3 seeds of transfg and vit, stage 2 two more of transfg alone.
SEQUENTIAL = until_decided_text("slurm-until-decided", "Until decided on Slurm")


def test_until_decided_without_waiting_submits_a_stage_and_a_later_call_goes_on(cluster,
                                                                                tmp_path):
    """`audit run --until-decided --executor slurm --no-wait`: one stage's jobs submitted and
    the call returns; a call while they are queued or running submits nothing again; a call
    after they finished looks and submits the next stage to the undecided claim's groups only;
    the last call says the design's last stage has run."""
    protocol, store = tmp_path / "sequential.toml", tmp_path / "store"
    protocol.write_text(SEQUENTIAL)
    args = ("run", protocol, "--smoke", "--until-decided", "--executor", "slurm", "--no-wait",
            "--store", store)
    first = audit(*args)
    assert first.returncode == 0, first.stderr
    stage_1 = submitted(first.stderr)
    assert len(stage_1) == 6 and "stage 1 submitted" in first.stderr, first.stderr
    assert set(stage_1) == set(run_ids(protocol, arms=["transfg", "vit"], seeds=[0, 1, 2]))
    while_queued = audit(*args)
    assert while_queued.returncode == 0, while_queued.stderr
    assert "submitted job" not in while_queued.stderr
    assert "still running or queued" in while_queued.stderr
    store_of = Store(store)
    wait_for(lambda: all(store_of.state(r) == "done" for r in stage_1), "stage 1 done", 600, 1)
    wait_for(lambda: not cluster.run("squeue", "--noheader", check=False).stdout.strip(),
             "an empty queue", 60, 0.5)
    second = audit(*args)
    assert second.returncode == 0, second.stderr
    assert "look after stage 1" in second.stderr and "stage 2 submitted" in second.stderr
    stage_2 = submitted(second.stderr)
    fixed = set(run_ids(protocol, max_seeds=5))
    later = set(run_ids(protocol, arms=["transfg"], seeds=[3, 4], max_seeds=5))
    assert set(stage_2) == later and later <= fixed
    wait_for(lambda: all(store_of.state(r) == "done" for r in stage_2), "stage 2 done", 600, 1)
    wait_for(lambda: not cluster.run("squeue", "--noheader", check=False).stdout.strip(),
             "an empty queue", 60, 0.5)
    last = audit(*args)
    assert last.returncode == 0, last.stderr
    assert "submitted job" not in last.stderr
    assert "the design's last stage (5 seeds) has run" in last.stderr
