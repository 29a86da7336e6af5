"""`python -m transfg.train RUN_DIR` on the bundled digits with the tiny config: it learns, the two
frameworks track each other, accumulation is exact, a killed run resumes to the same result, and
failures are recorded as such."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from audit.executors.common import launcher_env, train_command
from transfg.config import tiny
from transfg.data.bundled import ROOT as DIGITS
from transfg.run_files import read_json, read_metrics
from transfg.spec import RunSpec, Seeds, TrainConfig
from transfg.train import main
from transfg.weights import load_checkpoint


def make_run(folder, framework="torch", seed=0, model=None, subset=None, **train):
    settings = dict(steps=200, warmup_steps=20, learning_rate=0.03, batch_size=16,
                    eval_every=100, checkpoint_every=100, workers=0, eval_batch_size=64)
    spec = RunSpec(framework, model or tiny(), TrainConfig(**(settings | train)), "digits",
                   str(DIGITS), Seeds.from_seed(seed), subset=subset)
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    return folder


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_tiny_model_learns_the_bundled_digits(tmp_path, framework):
    run = make_run(tmp_path / framework, framework)
    assert main([str(run)]) == 0
    result = read_json(run / "result.json")
    # Measured: 0.43 (torch) and 0.45 (jittor) after 200 updates; chance is 0.10.
    assert result["final_accuracy"] > 0.25
    assert result["test_images"] == 599 and result["final_step"] == 200
    assert [e["step"] for e in result["evaluations"]] == [100, 200]
    assert read_json(run / "status.json")["status"] == "finished"
    with np.load(run / "eval-200.npz") as data:
        assert sorted(data["index"]) == list(range(599))  # every test image exactly once
        assert data["top5_classes"].shape == (599, 5)
        assert np.all(np.diff(data["top5_scores"], axis=1) <= 0)
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 201))
    assert rows[0]["lr"] == pytest.approx(0.03 / 20)  # the schedule steps before the optimizer
    assert rows[-1]["lr"] == 0.0


def test_frameworks_track_each_other_over_the_first_updates(tmp_path):
    losses = {}
    for framework in ("torch", "jittor"):
        run = make_run(tmp_path / framework, framework, steps=6, warmup_steps=2, eval_every=6,
                       checkpoint_every=6)
        assert main([str(run)]) == 0
        losses[framework] = [r["loss"] for r in read_metrics(run / "metrics.jsonl")]
    assert losses["torch"][0] == pytest.approx(losses["jittor"][0], abs=1e-5)
    np.testing.assert_allclose(losses["jittor"], losses["torch"], atol=1e-3)


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_accumulating_four_micro_batches_is_one_update_of_four_contrastive_losses(framework):
    """4 micro-batches of 8 through the engine == by hand: the mean of four separate TransFG
    losses (each with its own contrastive term over its 8 images), one clip, one SGD step."""
    from transfg.torch.losses import transfg_loss
    from transfg.torch.model import VisionTransformer
    from transfg.torch.weights import export_state, load_state
    from transfg.train import make_engine
    from transfg.weights import init_state

    config = tiny()
    spec = RunSpec(framework, config, TrainConfig(batch_size=8, accumulation=4, momentum=0.9,
                                                  max_grad_norm=0.5), "digits", str(DIGITS),
                   Seeds.from_seed(1))
    state = init_state(config, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    images = rng.normal(size=(32, 3, 64, 64)).astype(np.float32)
    labels = rng.integers(0, 3, 32)  # few classes: positive pairs in every micro-batch
    if framework == "torch":
        wrap = torch.from_numpy
    else:
        import transfg.jittor  # noqa: F401
        import jittor as jt  # isort: skip

        wrap = jt.array
    engine = make_engine(spec, state)
    micro = [(wrap(images[i:i + 8]), wrap(labels[i:i + 8]), None) for i in range(0, 32, 8)]
    engine.train_step(micro, lr=0.1)
    got = engine.export()[0]

    model = VisionTransformer(config)
    load_state(model, state)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    logits, out = model(torch.from_numpy(images))
    y = torch.from_numpy(labels)
    loss = sum(transfg_loss(logits[i:i + 8], out["cls_feature"][i:i + 8], y[i:i + 8],
                            config)["loss"] for i in range(0, 32, 8)) / 4
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    optimizer.step()
    # The reference is PyTorch: float32 rounding across frameworks allows a little more.
    atol = 2e-6 if framework == "torch" else 1e-5
    for name, value in export_state(model).items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=atol, err_msg=name)


def run_process(run, timeout=600):
    return subprocess.run([sys.executable, "-m", "transfg.train", str(run)], capture_output=True,
                          text=True, timeout=timeout)


KILL_AFTER_FIRST_CHECKPOINT = """
import signal, subprocess, sys, time
from pathlib import Path
run = Path(sys.argv[1])
process = subprocess.Popen([sys.executable, "-m", "transfg.train", str(run)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 300
while not (run / "checkpoints" / "last.npz").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
process.send_signal(signal.SIGKILL)
process.wait()
"""


def test_a_killed_torch_run_resumes_to_the_identical_result(tmp_path):
    whole = make_run(tmp_path / "whole", steps=120, checkpoint_every=30, eval_every=40)
    assert run_process(whole).returncode == 0
    killed = make_run(tmp_path / "killed", steps=120, checkpoint_every=30, eval_every=40)
    # Launched and killed from a helper process: this test process may have imported jittor,
    # whose SIGCHLD handler ends the whole process when any child dies of a signal.
    killer = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT, str(killed)],
                            timeout=600)
    assert killer.returncode == 0
    status = read_json(killed / "status.json")
    assert status["status"] == "running" and not (killed / "result.json").exists()
    assert status["step"] < 120
    assert run_process(killed).returncode == 0
    for name in ("eval-40.npz", "eval-80.npz", "eval-120.npz"):
        with np.load(whole / name) as a, np.load(killed / name) as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    final_whole = load_checkpoint(whole / "checkpoints" / "last.npz")[0]
    final_killed = load_checkpoint(killed / "checkpoints" / "last.npz")[0]
    for name, value in final_whole.items():
        np.testing.assert_array_equal(final_killed[name], value)
    a, b = read_metrics(whole / "metrics.jsonl"), read_metrics(killed / "metrics.jsonl")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_divergence_is_recorded_with_its_step(tmp_path):
    run = make_run(tmp_path / "nan", steps=50, learning_rate=1e6, warmup_steps=0, max_grad_norm=1e9)
    done = run_process(run)
    status = read_json(run / "status.json")
    assert done.returncode == 3 and status["status"] == "diverged"
    assert status["step"] >= 1 and not (run / "result.json").exists()


def test_a_bad_spec_fails_with_a_named_field(tmp_path):
    run = make_run(tmp_path / "bad")
    data = json.loads((run / "spec.json").read_text())
    data["train"]["decay"] = "exponential"
    (run / "spec.json").write_text(json.dumps(data))
    done = run_process(run)
    assert done.returncode == 1
    status = read_json(run / "status.json")
    assert status["status"] == "failed"
    assert "train.decay='exponential', allowed: cosine, linear" in status["message"]


def test_a_killed_jittor_run_resumes_to_the_same_result(tmp_path):
    """Measured here: bit-identical too (max difference 0 in every parameter and prediction);
    the assertion allows 1e-6, what Jittor's kernels could differ by between processes."""
    whole = make_run(tmp_path / "whole", "jittor", steps=60, checkpoint_every=20, eval_every=60)
    assert run_process(whole).returncode == 0
    killed = make_run(tmp_path / "killed", "jittor", steps=60, checkpoint_every=20, eval_every=60)
    assert subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT, str(killed)],
                          timeout=600).returncode == 0
    assert not (killed / "result.json").exists()
    assert run_process(killed).returncode == 0
    final_whole = load_checkpoint(whole / "checkpoints" / "last.npz")[0]
    final_killed = load_checkpoint(killed / "checkpoints" / "last.npz")[0]
    worst = max(np.abs(final_killed[n] - v).max() for n, v in final_whole.items())
    assert worst <= 1e-6
    assert read_json(whole / "result.json")["final_accuracy"] == \
        read_json(killed / "result.json")["final_accuracy"]


def test_kills_at_random_moments_never_leave_half_written_files(tmp_path):
    run = make_run(tmp_path / "run", steps=400, checkpoint_every=7, eval_every=13)
    rng = np.random.default_rng(0)
    script = """
import signal, subprocess, sys, time
process = subprocess.Popen([sys.executable, "-m", "transfg.train", sys.argv[1]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(float(sys.argv[2]))
process.send_signal(signal.SIGKILL)
process.wait()
"""
    for delay in rng.uniform(2.0, 6.0, size=4):
        subprocess.run([sys.executable, "-c", script, str(run), str(delay)], timeout=600)
        # On a slow machine a kill may come before a file's first write: check what exists.
        if (run / "status.json").exists():
            assert read_json(run / "status.json")["status"] in ("running", "finished")
        for path in run.glob("eval-*.npz"):
            with np.load(path) as data:
                assert len(data["label"]) == 599
        if (run / "checkpoints" / "last.npz").exists():
            load_checkpoint(run / "checkpoints" / "last.npz")  # complete, or it would not load
        if (run / "metrics.jsonl").exists():
            lines = (run / "metrics.jsonl").read_text().splitlines()
            for line in lines[:-1]:
                json.loads(line)  # only the very last line may have been cut by the kill
    assert run_process(run).returncode == 0
    assert not list(run.rglob(".*.tmp"))  # temporaries a kill left behind are cleared
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl")]
    assert steps == list(range(1, 401))  # resumed runs left neither gaps nor duplicates


def test_two_process_ddp_equals_one_process_accumulating_two_micro_batches(tmp_path):
    """torchrun, gloo on the CPU: 2 processes x 1 micro-batch of 8 == 1 process x 2 micro-batches
    of 8, update for update (the same images, the same averaged gradient). Tolerance 1e-6: the
    all-reduce sums the two gradients in another order than accumulation does."""
    settings = dict(steps=5, warmup_steps=1, batch_size=8, eval_every=5, checkpoint_every=5)
    single = make_run(tmp_path / "single", accumulation=2, **settings)
    assert run_process(single).returncode == 0
    ddp = make_run(tmp_path / "ddp", **settings)
    data = json.loads((ddp / "spec.json").read_text())
    data["devices"] = 2
    (ddp / "spec.json").write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "transfg.train", str(ddp)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_checkpoint(single / "checkpoints" / "last.npz")[0]
    b = load_checkpoint(ddp / "checkpoints" / "last.npz")[0]
    for name, value in a.items():
        np.testing.assert_allclose(b[name], value, rtol=0, atol=1e-6, err_msg=name)
    losses = [[r["loss"] for r in read_metrics(run / "metrics.jsonl")] for run in (single, ddp)]
    np.testing.assert_allclose(losses[1], losses[0], atol=1e-6)
    with np.load(ddp / "eval-5.npz") as data:
        assert list(data["index"]) == list(range(599))  # each test image exactly once
    assert read_json(ddp / "result.json")["effective_batch"] == 16


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_loader_workers_give_the_same_run(tmp_path, framework):
    """Jittor's Dataset workers reseed numpy from jittor's signed 32-bit seed: an unchecked seed
    killed every worker and hung the run. Workers must change nothing but speed."""
    runs = []
    for workers in (0, 2):
        run = make_run(tmp_path / f"w{workers}", framework, steps=20, warmup_steps=2,
                       eval_every=20, checkpoint_every=20, workers=workers)
        assert run_process(run, timeout=300).returncode == 0
        runs.append([r["loss"] for r in read_metrics(run / "metrics.jsonl")])
    assert runs[0] == runs[1]


# Six updates of batch 8 on a subset, seed 4: the runs that compare two training options.
SIX_UPDATES = dict(seed=4, subset={"train": 64, "test": 32}, steps=6, warmup_steps=1,
                   eval_every=6, checkpoint_every=6, batch_size=8)


def test_activation_checkpointing_changes_nothing_but_memory(tmp_path):
    """PyTorch with activation checkpointing: the same losses and weights, bit for bit (dropout
    on, so its random state must be replayed in the recomputation)."""
    runs = {}
    for on in (False, True):
        runs[on] = make_run(tmp_path / f"checkpointing-{on}", model=tiny(dropout_rate=0.1),
                            activation_checkpointing=on, **SIX_UPDATES)
        assert main([str(runs[on])]) == 0
    assert [r["loss"] for r in read_metrics(runs[False] / "metrics.jsonl")] == \
        [r["loss"] for r in read_metrics(runs[True] / "metrics.jsonl")]
    off, _, _ = load_checkpoint(runs[False] / "checkpoints" / "last.npz")
    on, _, _ = load_checkpoint(runs[True] / "checkpoints" / "last.npz")
    for name in off:
        np.testing.assert_array_equal(off[name], on[name], err_msg=name)


def test_jittor_refuses_activation_checkpointing(tmp_path):
    run = make_run(tmp_path / "run", "jittor", steps=2, warmup_steps=1,
                   activation_checkpointing=True)
    assert main([str(run)]) == 1
    assert "activation_checkpointing" in read_json(run / "status.json")["message"]


def test_fused_attention_trains_the_same_model(tmp_path):
    """PyTorch with fused attention: the explicit run's losses and weights up to float32
    rounding (6 updates of TransFG, whose PSM reads the detached maps)."""
    runs = {}
    for attention in ("explicit", "fused"):
        runs[attention] = make_run(tmp_path / attention, attention=attention, **SIX_UPDATES)
        assert main([str(runs[attention])]) == 0
    losses = {a: [r["loss"] for r in read_metrics(runs[a] / "metrics.jsonl")] for a in runs}
    np.testing.assert_allclose(losses["fused"], losses["explicit"], rtol=1e-5)
    explicit, _, _ = load_checkpoint(runs["explicit"] / "checkpoints" / "last.npz")
    fused, _, _ = load_checkpoint(runs["fused"] / "checkpoints" / "last.npz")
    for name in explicit:
        np.testing.assert_allclose(fused[name], explicit[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_jittor_refuses_fused_attention(tmp_path):
    run = make_run(tmp_path / "run", "jittor", steps=2, warmup_steps=1, attention="fused")
    assert main([str(run)]) == 1
    assert "train.attention='fused'" in read_json(run / "status.json")["message"]


needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None,
                                  reason="mpirun not installed (bash .ci/setup installs Open MPI)")


@needs_mpirun
def test_two_process_mpi_jittor_equals_one_process_accumulating_two_micro_batches(tmp_path):
    """mpirun, Jittor on the CPU: 2 processes x 2 micro-batches of 4 == 1 process x 4
    micro-batches of 4, update for update (each process accumulates its own two, the processes
    average once), and the evaluation counts each test image once. Tolerance 1e-6: the
    all-reduce sums the gradients in another order than accumulation does."""
    settings = dict(steps=5, warmup_steps=1, batch_size=4, eval_every=5, checkpoint_every=5)
    single = make_run(tmp_path / "single", "jittor", accumulation=4, **settings)
    assert run_process(single).returncode == 0
    mpi = make_run(tmp_path / "mpi", "jittor", accumulation=2, **settings)
    data = json.loads((mpi / "spec.json").read_text())
    data["devices"] = 2
    (mpi / "spec.json").write_text(json.dumps(data))
    command = train_command(data, mpi)
    assert command[1:3] == ["-np", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **launcher_env(data)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    a = load_checkpoint(single / "checkpoints" / "last.npz")[0]
    b = load_checkpoint(mpi / "checkpoints" / "last.npz")[0]
    for name, value in a.items():
        np.testing.assert_allclose(b[name], value, rtol=0, atol=1e-6, err_msg=name)
    losses = [[r["loss"] for r in read_metrics(run / "metrics.jsonl")] for run in (single, mpi)]
    np.testing.assert_allclose(losses[1], losses[0], atol=1e-6)
    with np.load(mpi / "eval-5.npz") as data, np.load(single / "eval-5.npz") as alone:
        assert list(data["index"]) == list(range(599))  # each test image exactly once
        np.testing.assert_array_equal(data["label"], alone["label"])
        np.testing.assert_allclose(data["top5_scores"], alone["top5_scores"], atol=1e-5)
    assert read_json(mpi / "result.json")["effective_batch"] == 16


def test_a_multi_device_jittor_spec_started_alone_says_how_to_launch_it(tmp_path):
    run = make_run(tmp_path / "run", "jittor", steps=2, warmup_steps=1)
    data = json.loads((run / "spec.json").read_text())
    data["devices"] = 2
    (run / "spec.json").write_text(json.dumps(data))
    assert main([str(run)]) == 1
    assert "launch with mpirun -np 2" in read_json(run / "status.json")["message"]


def test_bf16_mixed_precision_trains_close_to_fp32_and_fp16_needs_a_gpu(tmp_path):
    """PyTorch autocast with bf16 runs the same loop on the CPU (fp16 needs CUDA's loss
    scaling): its losses stay within 2% of float32's over the first updates."""
    losses = {}
    for precision in ("fp32", "bf16"):
        run = make_run(tmp_path / precision, steps=6, warmup_steps=1, eval_every=6,
                       checkpoint_every=6, batch_size=8, precision=precision)
        assert main([str(run)]) == 0
        losses[precision] = [r["loss"] for r in read_metrics(run / "metrics.jsonl")]
        assert read_json(run / "spec.json")["train"]["precision"] == precision
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=0.02)
    assert losses["bf16"] != losses["fp32"]  # autocast did run in bf16
    if not torch.cuda.is_available():
        run = make_run(tmp_path / "fp16", steps=2, warmup_steps=1, precision="fp16")
        assert main([str(run)]) == 1
        assert "precision=fp16 needs a GPU" in read_json(run / "status.json")["message"]
