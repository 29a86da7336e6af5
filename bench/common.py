"""What every benchmark needs: timing with warm-up, the machine's description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from transfg.config import tiny, vit_b16
from transfg.jittor_env import site_env
from transfg.machine import cpu_model, gpus

RESULTS = Path(__file__).parent / "results"

# Model sizes the benchmarks take by name: tiny (the tests' model), small (CPU-sized), the paper's.
PRESETS = {
    "tiny": lambda **kw: tiny(**kw),
    "small": lambda **kw: tiny(**{"hidden_size": 192, "mlp_dim": 768, "num_heads": 3,
                                  "num_layers": 6, **kw}),
    "vit_b16": lambda **kw: vit_b16(**kw),
}


def worker_env(framework: str) -> dict[str, str] | None:
    """The environment of a worker process that runs `framework`: a Jittor worker gets the numpy
    that TRANSFG_JITTOR_SITE names, where it is set (transfg/jittor_env.py); None keeps this
    process's environment."""
    return {**os.environ, **site_env()} if framework == "jittor" else None


def median_seconds(fns: dict[str, Callable[[], object]], warmup: int, repeats: int
                   ) -> dict[str, float]:
    """Median wall time of each `fn()` over `repeats` calls, after `warmup` untimed calls (which
    also absorb jittor's one-off operator compilation). The calls are interleaved (a, b, a, b...)
    so that a machine slowing down or speeding up affects every measurement alike. Each `fn`
    must block until its work is done."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def machine() -> dict:
    names = "\n".join(gpu["name"] for gpu in gpus()["gpus"])
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpu": names or None,
            "os": platform.platform(), "python": platform.python_version()}


def write_results(name: str, payload: dict, table: str, folder: Path = RESULTS) -> Path:
    """<folder>/<name>.json and .md (bench/results/ by default), stamped with the time and the
    machine."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    m = payload["machine"]
    header = (f"# {name}\n\n{payload['when']}; {m['cpu']}, {m['cores']} cores"
              f"{', GPU ' + m['gpu'] if m['gpu'] else ', no GPU'}; Python {m['python']}\n\n")
    path = folder / f"{name}.md"
    path.write_text(header + table + "\n")
    return path


def write_finished_run(store, planned, result: dict, compute_seconds: float = 0.0) -> Path:
    """A finished run's files as the runner and training write them, for benchmarks on generated
    stores: spec.json, status.json, result.json and provenance.json with the fingerprints its run
    id was made from (the store checks a done run's identity with them)."""
    from audit.plan import FINGERPRINTS
    from transfg.run_files import write_json

    spec = planned.spec
    run_dir = store.path(planned.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "spec.json", spec.to_dict())
    write_json(run_dir / "status.json", {"status": "finished", "step": spec.train.steps,
                                         "message": "", "updated": 0, "pid": 1})
    write_json(run_dir / "result.json", result)
    fingerprints = {"data": FINGERPRINTS.of_data(spec.dataset, spec.data_root, spec.subset),
                    "weights_sha256": None}
    write_json(run_dir / "provenance.json", {"fingerprints": fingerprints, "attempts": [],
                                             "compute_seconds": compute_seconds})
    # A stand-in for the final checkpoint: the store opens its zip directory and finds the
    # header; no benchmark here loads its weights.
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    np.savez(run_dir / "checkpoints" / "last.npz", __header__=np.frombuffer(b"{}", np.uint8))
    return run_dir
