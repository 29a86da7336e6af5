"""`audit status` and results collection on a generated store of many runs (default 10,000).

Generates a store of finished runs with realistic files (spec.json, status.json, a result.json
with 100 evaluations, provenance.json, lock) from a protocol with one arm, one framework and N
seeds, then times, each as the median of a few repeats: the store-wide `audit status` (every
run's state, step and accuracies), the protocol's matrix (planning N run ids and reading their
states), and collecting the results into the pandas table the statistics read. Target: each
under 2 seconds at 10,000 runs. The runner records each finished run's summary in
`<store>/.summaries.json` as it ends; a store without that cache (copied from elsewhere) is read
file by file once, timed separately as `status_without_cache`.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, median_seconds, write_results

from audit import runner
from audit.plan import Inputs
from audit.protocol import load
from audit.results import collect
from audit.store import Store
from transfg.run_files import write_json

PROTOCOL = """
version = 1
name = "bench"
title = "bench"
frameworks = ["torch"]
seeds = {{ count = {count} }}
[paper]
title = "TransFG"
[data]
dataset = "digits"
root = "bundled"
[model]
preset = "tiny"
[train]
steps = 10000
[arms.transfg]
"""


def generate(folder: Path, count: int) -> Path:
    protocol_path = folder / "bench.toml"
    protocol_path.write_text(PROTOCOL.format(count=count))
    store = Store(folder / "runs")
    for planned in runner.plan(load(protocol_path), Inputs()):
        run_dir = store.path(planned.run_id)
        run_dir.mkdir(parents=True)
        write_json(run_dir / "spec.json", planned.spec.to_dict())
        write_json(run_dir / "status.json", {"status": "finished", "step": 10000,
                                             "message": "", "updated": 0, "pid": 1})
        evals = [{"step": s, "accuracy": 0.9, "correct": 5214, "total": 5794}
                 for s in range(100, 10001, 100)]
        write_json(run_dir / "result.json", {
            "final_accuracy": 0.9, "final_step": 10000, "best_accuracy": 0.91,
            "best_step": 9000, "correct": 5214, "test_images": 5794, "evaluations": evals,
            "steps": 10000, "effective_batch": 64, "images_per_s": 100.0})
        write_json(run_dir / "provenance.json", {"attempts": [{"started": 0}]})
        (run_dir / "lock").write_text("{}\n")
    return protocol_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        protocol_path = generate(Path(tmp), args.runs)
        store, protocol = Store(Path(tmp) / "runs"), load(protocol_path)

        def status():
            runner.print_store_status(runner.store_rows(store), out=io.StringIO())

        def matrix():
            runner.matrix(store, [protocol], Inputs())

        def collection():
            table = collect(runner.matrix(store, [protocol], Inputs()))
            assert len(table) == args.runs

        start = time.perf_counter()
        status()  # no cache yet (a store copied from elsewhere): reads every run's files
        cold = time.perf_counter() - start
        times = median_seconds({"status": status, "matrix": matrix, "collect": collection},
                               warmup=1, repeats=args.repeats)
    target = 2.0
    times = {"status_without_cache": cold, **times}
    rows = "\n".join(f"| {name} | {seconds:.2f} | {seconds / target:.2f} |"
                     for name, seconds in times.items())
    table = (f"{args.runs} finished runs in the store; median of {args.repeats}.\n\n"
             "| operation | seconds | share of the 2 s target |\n|---|---|---|\n" + rows)
    print(table)
    write_results(f"store-status-{args.runs}", {"runs": args.runs, "seconds": times,
                                                "target_seconds": target}, table, args.results)


if __name__ == "__main__":
    main()
