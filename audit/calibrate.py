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
bench/flops.py, which grows with the tokens' number and its square), and `from runs` when no
calibration is at hand but finished runs of the group measured their images/s.
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
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

if TYPE_CHECKING:  # imported where they are used: the worker process loads one framework
    from audit.runner import Row
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
    engine_class: type[JittorEngine] | type[TorchEngine]
    if job["framework"] == "jittor":
        import transfg.jittor  # noqa: F401  (prepares Jittor for this machine, as a run does)
        import jittor as jt  # isort: skip

        from transfg.jittor.engine import Engine as JittorEngine

        engine_class = JittorEngine

        batch = (jt.array(images), jt.array(labels), None)
        eval_batch = jt.array(eval_images)

        def sync():
            jt.sync_all(True)
    else:
        import torch

        from transfg.torch.engine import Engine as TorchEngine

        engine_class = TorchEngine
        batch = (torch.from_numpy(images), torch.from_numpy(labels), None)
        eval_batch = torch.from_numpy(eval_images)

        def sync():
            if torch.cuda.is_available():
                torch.cuda.synchronize()

    started = time.perf_counter()
    engine = engine_class(spec, state)
    setup = time.perf_counter() - started
    times = []
    for step in range(job["steps"] + 1):
        engine.seed(step)
        tick = time.perf_counter()
        engine.train_step([batch], 0.01)
        sync()
        times.append(time.perf_counter() - tick)
    eval_times = []
    for _ in range(2):
        tick = time.perf_counter()
        engine.predict(eval_batch)
        sync()
        eval_times.append(time.perf_counter() - tick)
    engine.close()
    return {"train_seconds": float(np.median(times[1:])), "warmup_seconds": times[0],
            "eval_seconds": eval_times[1], "eval_warmup_seconds": eval_times[0],
            "setup_seconds": setup, "steps_timed": job["steps"],
            "device": _device(job["framework"])}


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


def plan_command(store, protocols, inputs, subset: dict, *, image_size: int | None = None,
                 steps: int | None = None, out=None) -> int:
    """Print the matrix with device-hours per run, per arm and in total."""
    from audit.runner import matrix, unavailable_reasons
    from transfg.data.readers import DATASETS
    from transfg.spec import RunSpec, Seeds

    out = out or sys.stdout
    steps = steps or STEPS
    rows = matrix(store, protocols, inputs, **subset)
    machine, info = machine_key()
    print(f"calibrating on {info['host']} ({info['cpu']}, {info['cpus']} CPUs"
          + (f", {', '.join(g['name'] for g in info['gpus'])}" if info["gpus"] else ", no GPU")
          + f"); figures cached in {Path(store.root) / CALIBRATION / machine}/", file=out)
    by_protocol = {p.name: p for p in protocols}
    results: dict[str, dict] = {}
    lines: list[tuple[Row, float | None, str]] = []
    for row in rows:
        protocol = by_protocol[row.run.protocol]
        arm = protocol.arms[row.run.arm]
        train = arm.train
        if inputs.smoke:
            from audit.plan import smoke_train

            train = smoke_train(train, protocol)
        # an unavailable run (an input is missing) is priced all the same, from a stand-in spec
        # (`protocol.py` checked the framework is one of RunSpec's)
        framework = cast(Literal["torch", "jittor", "official"], row.run.framework)
        spec = row.run.spec or RunSpec(framework, arm.model, train, protocol.dataset,
                                       "(calibration)", Seeds.from_seed(0),
                                       devices=protocol.devices)
        subset = spec.subset or ({"test": protocol.smoke.test} if inputs.smoke else {})
        test_images = DATASETS[protocol.dataset].counts["test"]
        if subset.get("test"):
            test_images = min(subset["test"], test_images)
        if row.run.framework == "official":
            lines.append((row, None, "not calibrated (the official code's own loop: "
                                     "`audit run` measures it)"))
            continue
        config = Config(row.run.framework, spec.model, spec.train, protocol.dataset)
        size = image_size if image_size and image_size != spec.model.image_size else None
        job = config.job(size, steps)
        key = config_key(job)
        if key not in results:
            label = (f"{row.run.framework} {spec.model.variant} {spec.model.split} "
                     f"{spec.model.image_size if size is None else size} px "
                     f"{spec.train.precision} batch {spec.train.batch_size}")
            print(f"  {label}: ", end="", file=out, flush=True)
            figures = calibrate(store, job, machine, info, out)
            results[key] = figures
            if "failed" in figures:
                print(figures["failed"], file=out)
            else:
                print(f"{figures['train_seconds']:.3f} s per training batch, "
                      f"{figures['eval_seconds']:.3f} s per evaluation batch"
                      + (" (cached)" if figures["cached"] else
                         f" (warm-up {figures['warmup_seconds']:.1f} s)"), file=out)
        figures = results[key]
        if "failed" in figures:
            lines.append((row, None, "calibration failed"))
            continue
        measured_model = spec.model if size is None else spec.model.replace(image_size=size)
        seconds, factor = run_seconds(spec, figures, measured_model, test_images)
        how = "measured" if size is None else \
            f"extrapolated from {size} px (x{factor:.3g} FLOPs)"
        lines.append((row, seconds, how))
    print_costs(lines, protocols, out)
    for reason in unavailable_reasons(rows):
        print(f"unavailable (priced all the same; `audit run` needs it): {reason}", file=out)
    return 0


def hours_text(seconds: float) -> str:
    """Device-hours, readable at any size: 12,345 / 12.3 / 0.0123."""
    hours = seconds / 3600
    if hours >= 100:
        return f"{hours:,.0f}"
    return f"{hours:.1f}" if hours >= 1 else f"{hours:.3g}"


def print_costs(lines, protocols, out) -> None:
    header = ["arm", "framework", "seed", "state", "device-hours", "figure"]
    body = []
    for row, seconds, how in lines:
        body.append([row.run.arm, row.run.framework, row.run.seed_label, row.state,
                     "-" if seconds is None else hours_text(seconds), how])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]
    for line in [header, *body]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip(),
              file=out)
    for protocol in protocols:
        mine = [(r, s, h) for r, s, h in lines if r.run.protocol == protocol.name]
        arms: dict[str, list] = {}
        for row, seconds, how in mine:
            arms.setdefault(row.run.arm, []).append((row, seconds, how))
        total, todo, kinds = 0.0, 0.0, set()
        print(f"{protocol.name}: device-hours per arm", file=out)
        for arm, items in arms.items():
            known = [s for _, s, _ in items if s is not None]
            kinds |= {h.split(" ")[0] for _, s, h in items if s is not None}
            hours = sum(known) / 3600
            total += sum(known)
            todo += sum(s for r, s, _ in items if s is not None and r.state != "done")
            missing = len(items) - len(known)
            print(f"  {arm}: {hours_text(hours * 3600)} ({len(known)} runs"
                  + (f"; {missing} without a figure" if missing else "") + ")", file=out)
        print(f"{protocol.name}: total {hours_text(total)} device-hours, "
              f"{hours_text(todo)} of them for runs not done yet ("
              + " and ".join(sorted(kinds)) + " figures; compute only: training updates and "
              "evaluations, without data loading, start-up, checkpoints or communication "
              "between devices)", file=out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(worker(json.loads(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
