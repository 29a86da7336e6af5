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

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, median_seconds, write_finished_run, write_results

from audit.cli.tables import print_store_status
from audit.plan import Inputs, plan
from audit.protocol import load
from audit.records import collect, matrix, store_rows
from audit.store import Store

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
    # A small test set keeps the generated eval files (a done run's evidence) small.
    correct, total = 90, 100
    evals = [{"step": s, "accuracy": correct / total, "correct": correct, "total": total}
             for s in range(100, 10001, 100)]
    result = {"final_accuracy": correct / total, "final_step": 10000,
              "best_accuracy": correct / total, "best_step": 10000, "correct": correct,
              "test_images": total, "evaluations": evals, "steps": 10000,
              "effective_batch": 64, "images_per_s": 100.0}
    labels = np.zeros(total, np.int64)
    top5 = np.tile(np.arange(5), (total, 1))
    top5[correct:, 0] = 7  # the last ten predicted wrong
    with io.BytesIO() as buffer:
        np.savez(buffer, index=np.arange(total), label=labels, top5_classes=top5,
                 top5_scores=np.full((total, 5), 0.2, np.float32))
        predictions = buffer.getvalue()
    for planned in plan(load(protocol_path), Inputs()):
        run_dir = write_finished_run(store, planned, result)
        (run_dir / "eval-10000.npz").write_bytes(predictions)
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
            print_store_status(store_rows(store), out=io.StringIO())

        def whole_matrix():
            matrix(store, [protocol], Inputs())

        def collection():
            table = collect(matrix(store, [protocol], Inputs()))
            assert len(table) == args.runs

        start = time.perf_counter()
        status()  # no cache yet (a store copied from elsewhere): reads every run's files
        cold = time.perf_counter() - start
        times = median_seconds({"status": status, "matrix": whole_matrix, "collect": collection},
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
