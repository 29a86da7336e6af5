"""The training loop's own overhead as a share of update time, for both frameworks.

Runs `transfg.train` on the bundled digits (tiny config) in a fresh process per framework, with
the engine's train_step and predict timed from outside. Overhead = loop wall time minus time in
train_step and evaluation: data loading not hidden by the loader workers, the schedule, metrics
lines, status files and checkpoints. Target: under 5% of the loop.

    .venv/bin/python bench/train_overhead.py [--steps 150] [--workers 2] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, write_results

WORKER = """
import json, sys, time
from pathlib import Path
import transfg.train as T
from transfg.config import tiny
from transfg.data.bundled import ROOT
from transfg.spec import RunSpec, Seeds, TrainConfig

framework, folder, steps, workers, batch = sys.argv[1:6]
spec = RunSpec(framework, tiny(), TrainConfig(steps=int(steps), warmup_steps=10,
               batch_size=int(batch), workers=int(workers), eval_every=int(steps),
               checkpoint_every=50, eval_batch_size=128), "digits", str(ROOT), Seeds.from_seed(0))
run = Path(folder)
run.mkdir()
(run / "spec.json").write_text(json.dumps(spec.to_dict()))
spent = {"train_step": 0.0, "evaluate": 0.0}
make_engine, evaluate = T.make_engine, T.evaluate

def timed_engine(spec, state):
    engine = make_engine(spec, state)
    step = engine.train_step
    def train_step(*args):
        start = time.perf_counter()
        try:
            return step(*args)
        finally:
            spent["train_step"] += time.perf_counter() - start
    engine.train_step = train_step
    return engine

def timed_evaluate(*args):
    start = time.perf_counter()
    try:
        return evaluate(*args)
    finally:
        spent["evaluate"] += time.perf_counter() - start

T.make_engine, T.evaluate = timed_engine, timed_evaluate
start = time.perf_counter()
T.train(run)
print(json.dumps(spent | {"total": time.perf_counter() - start}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    results = {}
    for framework in ("torch", "jittor"):
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run([sys.executable, "-c", WORKER, framework, f"{folder}/run",
                                   str(args.steps), str(args.workers), str(args.batch)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{framework} failed:\n{done.stderr[-3000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
        # The first updates include one-off costs (jittor compiles operators): they are loop
        # time spent in train_step, so they do not inflate the overhead.
        loop = r["total"] - r["evaluate"]
        r["overhead_share"] = (loop - r["train_step"]) / loop
        results[framework] = r
    table = "\n".join([
        f"tiny config on the bundled digits, batch {args.batch}, {args.steps} updates, "
        f"{args.workers} loader workers, checkpoint every 50, one evaluation at the end\n",
        "| framework | loop s | in train_step s | overhead share |", "|---|---|---|---|",
        *(f"| {fw} | {r['total'] - r['evaluate']:.2f} | {r['train_step']:.2f} | "
          f"{100 * r['overhead_share']:.1f}% |" for fw, r in results.items())])
    print(table)
    path = write_results(f"train-overhead-w{args.workers}",
                         {"steps": args.steps, "workers": args.workers, "batch": args.batch,
                          "results": results}, table, args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
