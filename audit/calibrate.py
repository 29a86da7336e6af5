"""`audit plan PROTOCOL --calibrate`: the bill before the first run.

For each distinct configuration of the matrix (framework, model, precision, attention, image
size, batch sizes) one worker process (`python -m audit.calibrate`, the training runs' own
environment and engine: `transfg/<framework>/engine.py`, random initial weights, synthetic
images) times a few training updates after one warm-up update (the warm-up takes Jittor's
operator compilation), and one evaluation batch after a warm-up one. The figures are cached in
the store, one file per machine and configuration (`<store>/.calibration/<machine>/<config>.json`,
written atomically, so a kill leaves the old file or the new one), and reused until the
machine (host, CPU, GPUs, Python, torch and Jittor versions) or the configuration changes.

A run's cost is its device-seconds: devices x (updates x micro-batches per update x seconds per
micro-batch + evaluations x batches per evaluation x seconds per evaluation batch); what it
leaves out (data loading, start-up, checkpoints, communication between devices) is said where
the figures are printed. A figure is `measured` when the calibration ran the configuration
itself, `extrapolated` when it ran at another image size (`--image-size`, since 448 px on two
CPU cores is slow): scaled by the ratio of the model's FLOPs at the two sizes (the matrix
products of a training step, forward, or an evaluation's forward: the count of
bench/flops.py, which grows with the tokens' number and its square). Without `--calibrate`,
`audit plan` estimates the time left from the finished runs' measured images/s
(`records.estimate_seconds`) and says how many runs it has no figure for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

if TYPE_CHECKING:  # imported where they are used: the worker process loads one framework
    from audit.protocol import Protocol
    from audit.records import Row
    from transfg.config import ModelConfig
    from transfg.jittor.engine import Engine as JittorEngine
    from transfg.spec import RunSpec, TrainConfig
    from transfg.torch.engine import Engine as TorchEngine

CALIBRATION = ".calibration"
STEPS = 3  # timed training updates (after one warm-up)


# -------------------------------------------------------------------------------------- FLOPs
# bench/flops.py's count (tests/audit/test_calibrate.py checks they agree)

def _block(n: int, d: int, m: int) -> int:
    return 2 * n * (4 * d * d + 2 * d * m) + 4 * n * n * d


def forward_flops(config) -> tuple[int, int]:
    """(differentiable FLOPs, Part Selection Module FLOPs) of one image's forward pass."""
    t, d, m = config.num_tokens, config.hidden_size, config.mlp_dim
    embed = 2 * (t - 1) * 3 * config.patch_size ** 2 * d
    head = 2 * d * config.num_classes
    if config.variant == "vit":
        return embed + config.num_layers * _block(t, d, m) + head, 0
    k = config.num_heads
    body = (config.num_layers - 1) * _block(t, d, m) + _block(k + 1, d, m)
    psm = (config.num_layers - 2) * 2 * config.num_heads * t * t
    return embed + body + head, psm


def train_flops(config) -> int:
    """Per image, a training step: forward and backward of the differentiable part, the PSM
    once."""
    differentiable, psm = forward_flops(config)
    return 3 * differentiable + psm


def eval_flops(config) -> int:
    return sum(forward_flops(config))


# -------------------------------------------------------------------------------- the worker

def worker(job: dict) -> dict:
    """Time `steps` training updates and one evaluation batch of the configuration, in this
    process, through the framework's engine. Prints nothing; returns the figures."""
    from transfg.config import ModelConfig
    from transfg.spec import RunSpec, Seeds, TrainConfig
    from transfg.weights import init_state

    model = ModelConfig.from_dict(job["model"])
    train = TrainConfig(**job["train"])
    spec = RunSpec(job["framework"], model, train, job["dataset"], "(calibration)",
                   Seeds.from_seed(0), devices=1)
    rng = np.random.default_rng(0)
    state = init_state(model, rng)
    images = rng.normal(size=(train.batch_size, 3, model.image_size, model.image_size)) \
        .astype(np.float32)
    labels = rng.integers(0, model.num_classes, train.batch_size)
    eval_images = rng.normal(size=(train.eval_batch_size, 3, model.image_size,
                                   model.image_size)).astype(np.float32)
    engine_class, batch, eval_batch, sync = in_framework(job["framework"], images, labels,
                                                         eval_images)
    started = time.perf_counter()
    engine = engine_class(spec, state)
    setup = time.perf_counter() - started
    times = timed(lambda step: engine.train_step([batch], 0.01), job["steps"] + 1, sync,
                  before=engine.seed)
    eval_times = timed(lambda _: engine.predict(eval_batch), 2, sync)
    engine.close()
    return {"train_seconds": float(np.median(times[1:])), "warmup_seconds": times[0],
            "eval_seconds": eval_times[1], "eval_warmup_seconds": eval_times[0],
            "setup_seconds": setup, "steps_timed": job["steps"],
            "device": _device(job["framework"])}


def in_framework(framework: str, images: np.ndarray, labels: np.ndarray,
                 eval_images: np.ndarray
                 ) -> tuple[type[JittorEngine] | type[TorchEngine], tuple, Any, Callable]:
    """(the framework's engine class, the training batch and the evaluation batch in its
    arrays, a function that waits until its device has finished)."""
    if framework == "jittor":
        import transfg.jittor  # noqa: F401  (prepares Jittor for this machine, as a run does)
        import jittor as jt  # isort: skip

        from transfg.jittor.engine import Engine as JittorEngine

        def sync_jittor():
            jt.sync_all(True)

        return (JittorEngine, (jt.array(images), jt.array(labels), None), jt.array(eval_images),
                sync_jittor)
    import torch

    from transfg.torch.engine import Engine as TorchEngine

    def sync_torch():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return (TorchEngine, (torch.from_numpy(images), torch.from_numpy(labels), None),
            torch.from_numpy(eval_images), sync_torch)


def timed(step: Callable[[int], object], count: int, sync: Callable[[], None],
          before: Callable[[int], object] | None = None) -> list[float]:
    """The seconds of each of `count` calls `step(i)`, each until the device has finished
    (`sync`); `before(i)`, untimed, ahead of each."""
    times = []
    for i in range(count):
        if before is not None:
            before(i)
        tick = time.perf_counter()
        step(i)
        sync()
        times.append(time.perf_counter() - tick)
    return times


def _device(framework: str) -> str:
    if framework == "jittor":
        import jittor as jt

        return "cuda" if jt.flags.use_cuda else "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------ configurations

@dataclasses.dataclass(frozen=True)
class Config:
    """What a run's step time depends on."""

    framework: str
    model: ModelConfig
    train: TrainConfig
    dataset: str

    def job(self, image_size: int | None, steps: int) -> dict:
        model = self.model if image_size is None else self.model.replace(image_size=image_size)
        train = {k: getattr(self.train, k) for k in ("batch_size", "eval_batch_size",
                                                     "precision", "attention", "learning_rate",
                                                     "momentum", "weight_decay",
                                                     "max_grad_norm")}
        return {"framework": self.framework, "model": model.to_dict(), "train": train,
                "dataset": self.dataset, "steps": steps}


def machine_key() -> tuple[str, dict]:
    """A short hash of this machine and its frameworks' versions, and what it hashes."""
    from importlib import metadata

    from transfg.machine import cpu_model, gpus

    info = {"host": os.uname().nodename, "cpu": cpu_model(), "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "gpus": gpus().get("gpus", [])}
    for package in ("torch", "jittor"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    text = json.dumps(info, sort_keys=True, default=str)
    return f"{info['host']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}", info


def config_key(job: dict) -> str:
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(store, machine: str, job: dict) -> Path:
    return Path(store.root) / CALIBRATION / machine / f"{job['framework']}-{config_key(job)}.json"


def read_cached(store, machine: str, job: dict) -> dict | None:
    path = cache_path(store, machine, job)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # none, or damaged: calibrate again (the write below replaces it)
    return data if isinstance(data, dict) and data.get("job") == job and \
        isinstance(data.get("figures"), dict) else None


def calibrate(store, job: dict, machine: str, info: dict, out=None) -> dict:
    """The job's figures: cached, or measured now in a worker process and cached."""
    from transfg.run_files import write_json

    cached = read_cached(store, machine, job)
    if cached is not None:
        return cached["figures"] | {"cached": True}
    env = dict(os.environ)
    if job["framework"] == "jittor":
        from transfg.jittor_env import site_env

        env |= site_env()
    done = subprocess.run([sys.executable, "-m", "audit.calibrate", json.dumps(job)],
                          capture_output=True, text=True, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": f"the calibration process exited with status {done.returncode}: "
                          f"{tail}"}
    figures = json.loads(lines[-1])
    path = cache_path(store, machine, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"job": job, "machine": info, "figures": figures,
                      "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    return figures | {"cached": False}


# ------------------------------------------------------------------------------------- costs

def evaluations(steps: int, every: int) -> int:
    """Evaluations of a run: every `every` updates and at the end (transfg/train.py)."""
    return steps // every + (1 if steps % every else 0)


def run_seconds(spec: RunSpec, figures: dict, measured_model: ModelConfig,
                test_images: int) -> tuple[float, float]:
    """(device-seconds, FLOPs factor) of one run from figures measured on `measured_model`."""
    t = spec.train
    factor_train = train_flops(spec.model) / train_flops(measured_model)
    factor_eval = eval_flops(spec.model) / eval_flops(measured_model)
    per_micro = figures["train_seconds"] * factor_train
    per_eval_batch = figures["eval_seconds"] * factor_eval
    training = t.steps * t.accumulation * per_micro
    batches = math.ceil(test_images / t.eval_batch_size)
    evaluating = evaluations(t.steps, t.eval_every) * batches * per_eval_batch
    # devices work in parallel on their shards: device-seconds = devices x wall time, each
    # device doing one micro-batch per update of batch_size (evaluation split between them)
    return spec.devices * training + evaluating, factor_train


def price(store, protocols, inputs, subset: dict, *, image_size: int | None = None,
          steps: int | None = None, out=None
          ) -> tuple[list[Row], list[tuple[Row, float | None, str]]]:
    """The matrix, and each of its runs with its device-seconds (None without a figure) and how
    they were found; a configuration without figures in the store's cache is calibrated now,
    with one line on `out` (the table is `audit.cli.tables.print_costs`)."""
    from audit.records import matrix

    out = out or sys.stdout
    rows = matrix(store, protocols, inputs, **subset)
    machine, info = machine_key()
    print(f"calibrating on {info['host']} ({info['cpu']}, {info['cpus']} CPUs"
          + (f", {', '.join(g['name'] for g in info['gpus'])}" if info["gpus"] else ", no GPU")
          + f"); figures cached in {Path(store.root) / CALIBRATION / machine}/", file=out)
    pricer = Pricer(store, machine, info, image_size, steps or STEPS, out)
    by_protocol = {p.name: p for p in protocols}
    return rows, [pricer.price(row, by_protocol[row.run.protocol], inputs) for row in rows]


@dataclasses.dataclass
class Pricer:
    """Prices runs from the figures of their configuration, calibrated once each."""

    store: Any
    machine: str
    info: dict
    image_size: int | None  # calibrate at this size (None: each run's own)
    steps: int
    out: Any
    figures: dict[str, dict] = dataclasses.field(default_factory=dict)  # by config_key

    def price(self, row: Row, protocol: Protocol, inputs) -> tuple[Row, float | None, str]:
        """(the row, its device-seconds or None, how they were found)."""
        spec = stand_in_spec(row, protocol, inputs)
        if row.run.framework == "official":
            return row, None, "not calibrated (the official code's own loop: `audit run` " \
                              "measures it)"
        size = self.image_size if self.image_size and self.image_size != spec.model.image_size \
            else None
        figures = self.figures_of(Config(row.run.framework, spec.model, spec.train,
                                         protocol.dataset), spec, size)
        if "failed" in figures:
            return row, None, "calibration failed"
        measured_model = spec.model if size is None else spec.model.replace(image_size=size)
        seconds, factor = run_seconds(spec, figures, measured_model,
                                      evaluated_images(spec, protocol, inputs))
        how = "measured" if size is None else \
            f"extrapolated from {size} px (x{factor:.3g} FLOPs)"
        return row, seconds, how

    def figures_of(self, config: Config, spec: RunSpec, size: int | None) -> dict:
        """The configuration's figures at `size` (None: its own), calibrated on first use."""
        job = config.job(size, self.steps)
        key = config_key(job)
        if key not in self.figures:
            label = (f"{config.framework} {spec.model.variant} {spec.model.split} "
                     f"{spec.model.image_size if size is None else size} px "
                     f"{spec.train.precision} batch {spec.train.batch_size}")
            print(f"  {label}: ", end="", file=self.out, flush=True)
            figures = calibrate(self.store, job, self.machine, self.info, self.out)
            self.figures[key] = figures
            if "failed" in figures:
                print(figures["failed"], file=self.out)
            else:
                print(f"{figures['train_seconds']:.3f} s per training batch, "
                      f"{figures['eval_seconds']:.3f} s per evaluation batch"
                      + (" (cached)" if figures["cached"] else
                         f" (warm-up {figures['warmup_seconds']:.1f} s)"), file=self.out)
        return self.figures[key]


def stand_in_spec(row: Row, protocol: Protocol, inputs) -> RunSpec:
    """The row's spec; for an unavailable run (an input is missing), which is priced all the
    same, one made from its arm (`protocol.py` checked the framework is one of RunSpec's)."""
    if row.run.spec is not None:
        return row.run.spec
    from audit.plan import smoke_train
    from transfg.spec import RunSpec, Seeds

    arm = protocol.arms[row.run.arm]
    train = smoke_train(arm.train, protocol) if inputs.smoke else arm.train
    framework = cast(Literal["torch", "jittor", "official"], row.run.framework)
    return RunSpec(framework, arm.model, train, protocol.dataset, "(calibration)",
                   Seeds.from_seed(0), devices=protocol.devices)


def evaluated_images(spec: RunSpec, protocol: Protocol, inputs) -> int:
    """The test images a run evaluates: the dataset's, or its subset's (the smoke size's)."""
    from transfg.data.readers import DATASETS

    subset = spec.subset or ({"test": protocol.smoke.test} if inputs.smoke else {})
    count = DATASETS[protocol.dataset].counts["test"]
    return min(subset["test"], count) if subset.get("test") else count


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(worker(json.loads(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
