"""The training loop's own overhead as a share of its time, for both frameworks.

Runs the real `python -m transfg.train RUN_DIR` on the bundled digits, once per framework, and
reads the loop's own clock from result.json (`loop_seconds_this_session`): time in the update
(forward, backward, optimizer, finished on the device), in evaluation, waiting for data, in
checkpoints, and the rest (schedule, metrics lines, progress). Process start-up and model set-up
are outside the loop and reported apart. Overhead = data + checkpoint + other, as a share of the
loop without evaluation. Target: under 5%.

On a CPU the loader workers and the model share the same cores, so the data share depends on how
heavy the model's step is next to decoding and augmenting its images: compare presets.

    .venv/bin/python bench/train_overhead.py [--preset tiny|small] [--steps 150] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PRESETS, RESULTS, worker_env, write_results

from transfg.data.bundled import ROOT
from transfg.spec import RunSpec, Seeds, TrainConfig

PARTS = ("data", "checkpoint", "other")


def run_once(framework: str, args, folder: Path) -> dict:
    """Train the spec twice in fresh processes and time the second: the first fills jittor's
    operator cache (its compilation would otherwise count as update time)."""
    for attempt in ("warm-up", "timed"):
        result = train_in_process(framework, args, folder / f"{framework}-{attempt}")
    clock = result["loop_seconds_this_session"]
    loop = clock["total"] - clock.get("evaluation", 0.0)
    shares = {part: clock.get(part, 0.0) / loop for part in PARTS}
    return {"loop_seconds": clock, "setup_seconds": result["setup_seconds_this_session"],
            "shares": shares, "overhead_share": sum(shares.values())}


def train_in_process(framework: str, args, run: Path) -> dict:
    config = PRESETS[args.preset](image_size=args.image_size, num_classes=10)
    spec = RunSpec(framework, config,
                   TrainConfig(steps=args.steps, warmup_steps=min(10, args.steps - 1),
                               batch_size=args.batch,
                               workers=args.workers, eval_every=args.steps,
                               checkpoint_every=args.checkpoint_every, eval_batch_size=128),
                   "digits", str(ROOT), Seeds.from_seed(0))
    run.mkdir()
    (run / "spec.json").write_text(json.dumps(spec.to_dict()))
    done = subprocess.run([sys.executable, "-m", "transfg.train", str(run)],
                          capture_output=True, text=True, env=worker_env(framework))
    if done.returncode != 0:
        sys.exit(f"{framework} failed:\n{done.stderr[-3000:]}\n{(run / 'log.txt').read_text()}")
    return json.loads((run / "result.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size (default: 64 for tiny, 112 for small)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--frameworks", default="torch,jittor")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    args.image_size = args.image_size or {"tiny": 64, "small": 112}.get(args.preset, 448)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for framework in args.frameworks.split(","):
            results[framework] = run_once(framework, args, Path(folder))
    table = "\n".join([
        f"preset {args.preset}, {args.image_size} px, bundled digits, batch {args.batch}, "
        f"{args.steps} updates, {args.workers} loader worker(s), checkpoint every "
        f"{args.checkpoint_every}, one evaluation at the end\n",
        "| framework | set-up s | loop s (no eval) | update s | data | checkpoint | other | "
        "overhead |", "|---|---|---|---|---|---|---|---|",
        *(f"| {fw} | {r['setup_seconds']:.1f} | "
          f"{r['loop_seconds']['total'] - r['loop_seconds'].get('evaluation', 0):.2f} | "
          f"{r['loop_seconds']['update']:.2f} | "
          + " | ".join(f"{100 * r['shares'][p]:.1f}%" for p in PARTS)
          + f" | {100 * r['overhead_share']:.1f}% |" for fw, r in results.items())])
    print(table)
    name = f"train-overhead-{args.preset}-w{args.workers}"
    path = write_results(name, {"preset": args.preset, "image_size": args.image_size,
                                "steps": args.steps, "workers": args.workers,
                                "batch": args.batch, "results": results}, table, args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
