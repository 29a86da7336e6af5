"""`python -m transfg.train RUN_DIR`: train and evaluate one run described by RUN_DIR/spec.json.

The loop is framework-neutral; `transfg/torch/engine.py` and `transfg/jittor/engine.py` do one
update, a prediction and the checkpoint state in their framework. Files written into RUN_DIR
(docs/design.md, "The run folder"): status.json, metrics.jsonl, eval-<step>.npz,
checkpoints/last.npz, log.txt and, only when the run finished, result.json. Started again, a run
resumes from checkpoints/last.npz and ends exactly as it would have without the interruption (data
order, augmentation and dropout are functions of the seeds and the update number, and the
optimizer state is checkpointed).

A spec with framework "official" runs the user's checkout of the official code instead
(transfg/official.py), with the same files as far as that code allows.

Exit status: 0 finished, 1 failed (error, out of memory), 3 diverged (NaN or infinite loss).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transfg.data.pipeline import EvalView, RunView, make_transforms
from transfg.data.readers import dataset_spec, read_split
from transfg.engine import TrainingEngine
from transfg.launch import die_with_parent, launcher_rank, runner_pid
from transfg.run_files import (
    CHECKPOINT,
    EVAL_GLOB,
    LOG,
    METRICS,
    RESULT,
    MetricsLog,
    RunFileError,
    eval_name,
    eval_step,
    read_eval,
    read_metrics,
    read_status,
    write_atomic,
    write_json,
    write_status,
)
from transfg.schedule import multiplier
from transfg.scores import softmax_top
from transfg.spec import RunSpec, derive_seed, read_spec
from transfg.weights import (
    init_state,
    load_checkpoint,
    load_google_npz,
    read_optimizer,
    save_checkpoint,
)

log = logging.getLogger("transfg.train")


class Diverged(RuntimeError):
    def __init__(self, step: int, loss: float):
        super().__init__(f"loss {loss} at update {step}")
        self.step = step


def make_engine(spec: RunSpec, state) -> TrainingEngine:
    if spec.framework == "torch":
        from transfg.torch.engine import Engine as TorchEngine
        return TorchEngine(spec, state)
    from transfg.jittor.engine import Engine as JittorEngine
    return JittorEngine(spec, state)


def initial_state(spec: RunSpec):
    rng = np.random.default_rng(spec.seeds.init)
    if spec.weights:
        return load_google_npz(spec.weights, spec.model, rng, spec.part_layer_init)
    return init_state(spec.model, rng)


def load_samples(spec: RunSpec):
    subset = spec.subset or {}
    train = read_split(spec.dataset, spec.data_root, "train")
    test = read_split(spec.dataset, spec.data_root, "test")
    return train[:subset.get("train")], test[:subset.get("test")]


def update_batches(spec: RunSpec, engine: TrainingEngine, samples, transform, first_update: int):
    """Yield, for each update from `first_update` on, its list of micro-batches (one loader for
    the whole run: its workers start once)."""
    t = spec.train
    view = RunView(samples, transform, first=first_update, last=t.steps,
                   order_seed=spec.seeds.order, augment_seed=spec.seeds.augment,
                   batch=t.batch_size, accumulation=t.accumulation, world=engine.world,
                   rank=engine.rank, order=t.order)
    micro = []
    for batch in engine.loader(view, t.batch_size, drop_last=True):
        micro.append(batch)
        if len(micro) == t.accumulation:
            yield micro
            micro = []


def evaluate(spec: RunSpec, engine: TrainingEngine, samples, transform, run_dir: Path,
             step: int) -> float:
    """Predict every test image once (each process a shard); the first process writes
    eval-<step>.npz (index, label, top-5 classes and softmax scores per example, by index) and
    gets the top-1 accuracy (the others get NaN)."""
    indices, labels, classes, scores = [], [], [], []
    view = EvalView(samples, transform, rank=engine.rank, world=engine.world)
    for images, batch_labels, batch_indices in engine.loader(view, spec.train.eval_batch_size,
                                                             drop_last=False):
        top, top_scores = softmax_top(engine.predict(images))
        classes.append(top)
        scores.append(top_scores.astype(np.float32))
        labels.append(np.asarray(batch_labels).astype(np.int64))
        indices.append(np.asarray(batch_indices).astype(np.int64))
    k = min(5, spec.model.num_classes)  # (a process may get no test image at all)
    shard = {"index": np.concatenate([np.zeros(0, np.int64), *indices]),
             "label": np.concatenate([np.zeros(0, np.int64), *labels]),
             "top5_classes": np.concatenate([np.zeros((0, k), np.int64), *classes]),
             "top5_scores": np.concatenate([np.zeros((0, k), np.float32), *scores])}
    shards = engine.gather(shard)
    if engine.rank != 0:
        return float("nan")
    arrays = {key: np.concatenate([s[key] for s in shards]) for key in shard}
    order = np.argsort(arrays["index"], kind="stable")
    arrays = {key: value[order] for key, value in arrays.items()}
    write_atomic(run_dir / eval_name(step), lambda f: np.savez(f, **arrays), mode="wb")
    return float((arrays["top5_classes"][:, 0] == arrays["label"]).mean())


def evaluations(run_dir: Path, total: int) -> list[dict]:
    """Every evaluation on disk, by step: {step, accuracy, correct, total}."""
    rows = []
    for path in run_dir.glob(EVAL_GLOB):
        step = eval_step(path.name)
        data = read_eval(run_dir, step, total)
        correct = int((data["top5_classes"][:, 0] == data["label"]).sum())
        rows.append({"step": step, "accuracy": correct / total, "correct": correct,
                     "total": total})
    return sorted(rows, key=lambda r: r["step"])


def read_resume_checkpoint(run_dir: Path, spec: RunSpec) -> tuple:
    """(model state, optimizer state, update) of checkpoints/last.npz, or RunFileError."""
    path = run_dir / CHECKPOINT
    try:
        state, _, meta = load_checkpoint(path, spec.model)
        return state, read_optimizer(path), int(meta["step"])
    except Exception as error:  # a damaged file fails in many ways; each one is this run's
        raise RunFileError(path, f"unreadable ({type(error).__name__}: {error})") from None


class Progress:
    """A live line on a terminal; a plain line every ~10% (and at the end) otherwise."""

    def __init__(self, total: int, first: int, stream=None):
        stream = stream or sys.stderr
        self.total, self.first, self.stream = total, first, stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.every = max(1, total // 10)

    def __call__(self, step: int, row: dict) -> None:
        if not self.tty and step % self.every and step != self.total:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / max(step - self.first, 1) * (self.total - step)
        line = (f"step {step}/{self.total}  loss {row['loss']:.4f}  lr {row['lr']:.2e}  "
                f"{row['images_per_s']:.1f} img/s  {left:.0f} s left")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if step == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def checkpoint(spec: RunSpec, engine: TrainingEngine, run_dir: Path, step: int) -> None:
    state, optimizer = engine.export()
    (run_dir / CHECKPOINT).parent.mkdir(exist_ok=True)
    save_checkpoint(run_dir / CHECKPOINT, state, spec.model,
                    meta={"step": step, "framework": spec.framework}, optimizer=optimizer)


class LoopClock:
    """Where the training loop's time goes: `with clock("data"): ...` adds to "data"; the
    breakdown's "other" is the rest of the loop (schedule, metrics lines, progress)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.spent: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, part: str):
        tick = time.monotonic()
        try:
            yield
        finally:
            self.spent[part] = self.spent.get(part, 0.0) + time.monotonic() - tick

    def breakdown(self) -> dict[str, float]:
        """Seconds per part, "other" and "total" since the clock started."""
        total = time.monotonic() - self.start
        return {**self.spent, "other": total - sum(self.spent.values()), "total": total}


@dataclass
class Session:
    """One training process's run: its spec, data, transforms and engine, and where it starts."""
    spec: RunSpec
    engine: TrainingEngine
    train_samples: list
    test_samples: list
    train_transform: Any
    eval_transform: Any
    first: int  # updates already done (a resumed run), 0 for a fresh one

    @property
    def lead(self) -> bool:
        """With several processes, only the first writes files."""
        return self.engine.rank == 0


def set_up(run_dir: Path) -> Session:
    """Read the spec and the data, build the engine, and resume from the checkpoint if any."""
    spec = read_spec(run_dir)
    train_samples, test_samples = load_samples(spec)
    train_transform, eval_transform = make_transforms(dataset_spec(spec.dataset), spec.model,
                                                      spec.train.autoaugment)
    engine = make_engine(spec, initial_state(spec))
    session = Session(spec, engine, train_samples, test_samples, train_transform,
                      eval_transform, first=0)
    if session.lead:
        for stale in run_dir.rglob(".*.tmp"):  # left by a kill during an atomic write
            stale.unlink()
    if (run_dir / CHECKPOINT).exists():
        state, optimizer, session.first = read_resume_checkpoint(run_dir, spec)
        engine.restore(state, optimizer)
        log.info("resuming from update %d", session.first)
    return session


def update_loop(session: Session, run_dir: Path, metrics: MetricsLog | None,
                clock: LoopClock) -> None:
    """Updates first+1 .. steps: schedule, data, update, metrics, evaluations, checkpoints."""
    spec, engine, t = session.spec, session.engine, session.spec.train
    progress = Progress(t.steps, session.first)
    batches = update_batches(spec, engine, session.train_samples, session.train_transform,
                             session.first)
    for step in range(session.first + 1, t.steps + 1):
        tick = time.monotonic()
        lr = t.learning_rate * multiplier(step, t.warmup_steps, t.steps, t.decay)
        engine.seed(derive_seed(spec.seeds.dropout, f"update {step}"))
        with clock("data"):
            micro_batches = next(batches)
        with clock("update"):  # returns Python floats: the device has finished the update
            parts = engine.train_step(micro_batches, lr)
        if not math.isfinite(parts["loss"]):
            raise Diverged(step, parts["loss"])
        row = {"step": step, "lr": lr, **parts,
               "images_per_s": spec.effective_batch / (time.monotonic() - tick),
               "memory_mb": engine.memory_mb()}
        if metrics is not None:  # the lead process
            metrics.append(row)
            progress(step, row)
        if step % t.eval_every == 0 or step == t.steps:
            with clock("evaluation"):
                accuracy = evaluate(spec, engine, session.test_samples, session.eval_transform,
                                    run_dir, step)
            if session.lead:
                log.info("update %d: test accuracy %.4f", step, accuracy)
        if session.lead and (step % t.checkpoint_every == 0 or step == t.steps):
            with clock("checkpoint"):
                checkpoint(spec, engine, run_dir, step)
                write_status(run_dir, "running", step)


def summarise(session: Session, run_dir: Path, times: dict[str, Any]) -> dict:
    """result.json's content, from the evaluation files and this session's metrics."""
    evals = evaluations(run_dir, len(session.test_samples))
    final = evals[-1]
    best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
    rows = [r for r in read_metrics(run_dir / METRICS) if r["step"] > session.first]
    return {"final_accuracy": final["accuracy"], "final_step": final["step"],
            "best_accuracy": best["accuracy"], "best_step": best["step"],
            "correct": final["correct"], "test_images": final["total"],
            "train_images": len(session.train_samples), "evaluations": evals,
            "effective_batch": session.spec.effective_batch, "steps": session.spec.train.steps,
            **times,
            "images_per_s": float(np.median([r["images_per_s"] for r in rows])) if rows else None}


def train(run_dir: Path) -> dict:
    setup_started = time.monotonic()
    session = set_up(run_dir)
    metrics = MetricsLog(run_dir / METRICS, session.first) if session.lead else None
    if session.lead:
        write_status(run_dir, "running", session.first)
    started = time.monotonic()
    clock = LoopClock()
    try:
        update_loop(session, run_dir, metrics, clock)
    finally:
        if metrics is not None:
            metrics.close()
        session.engine.close()
    if not session.lead:
        return {}
    result = summarise(session, run_dir, {
        "wall_seconds_this_session": time.monotonic() - started,
        "setup_seconds_this_session": started - setup_started,
        "loop_seconds_this_session": clock.breakdown()})
    write_json(run_dir / RESULT, result)
    write_status(run_dir, "finished", session.spec.train.steps)
    return result


def run(run_dir: Path) -> dict:
    """Train RUN_DIR's spec: ours in torch or jittor, or the user's official checkout."""
    if read_spec(run_dir).framework == "official":
        from transfg import official

        return official.run(run_dir)
    return train(run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transfg.train", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    run_dir = args.run_dir
    rank = launcher_rank()
    if rank is not None:  # one of a launcher's processes: never outlive the launcher
        die_with_parent(grandparent=runner_pid())
    if rank not in (None, 0):  # another process of a multi-device run
        train(run_dir)
        return 0
    handler = logging.FileHandler(run_dir / LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("transfg").addHandler(handler)
    logging.getLogger("transfg").setLevel(logging.INFO)
    try:
        run(run_dir)
        return 0
    except Diverged as error:
        write_status(run_dir, "diverged", error.step, str(error))
        log.error("diverged: %s", error)
        return 3
    except RunFileError as error:  # a damaged file of the run: the runner starts it afresh
        write_status(run_dir, "failed", 0, str(error), damaged=error.file)
        log.error("failed: %s", error)
        print(f"run failed: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # recorded as the run's failure, its traceback in the log
        message = f"{type(error).__name__}: {error}"
        if "out of memory" in str(error).lower():
            spec = read_spec(run_dir)
            message = (f"out of memory with batch_size={spec.train.batch_size} per device "
                       f"(try a smaller batch_size with a larger accumulation): {error}")
        try:
            step = read_status(run_dir)["step"]  # the last checkpoint
        except RunFileError:
            step = 0
        write_status(run_dir, "failed", step, message)
        log.error("failed: %s\n%s", message, traceback.format_exc())
        print(f"run failed: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
