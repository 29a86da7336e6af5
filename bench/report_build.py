"""Report build time on a generated store: by default 1,000 finished runs (2 arms x 2 frameworks
x 250 seeds of a CUB-sized protocol), each with 5,794 stored predictions (eval-<step>.npz) and a
result.json with 100 evaluations.

Times, as the median of a few repeats, building the report's content (collecting the runs,
every verdict with its bootstraps and the per-example tests, the charts) and writing the HTML
and JSON; the PDF separately, since WeasyPrint's layout dominates it. Target: under 10 seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, median_seconds, write_finished_run, write_results

from audit.plan import Inputs, plan
from audit.protocol import load
from audit.report import model, render
from audit.store import Store

PROTOCOL = """
version = 1
name = "bench-report"
title = "Report benchmark"
frameworks = ["torch", "jittor"]
seeds = {{ count = {seeds} }}
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
[arms.vit]
model = {{ variant = "vit", contrastive = false }}
[[published]]
id = "paper"
value = 91.7
setting = "paper"
arm = "transfg"
source = {{ kind = "paper", citation = "He et al. 2022" }}
[[claims]]
id = "value"
kind = "value"
text = "TransFG reaches 91.7%."
arm = "transfg"
paper = 91.7
tolerance = 1.0
source = "paper"
[[claims]]
id = "beats-vit"
kind = "comparison"
text = "TransFG beats ViT."
better = "transfg"
worse = "vit"
[[claims]]
id = "frameworks"
kind = "equivalence"
text = "Jittor equals PyTorch."
arm = "transfg"
frameworks = ["jittor", "torch"]
margin = 0.5
"""
TEST_IMAGES = 5794


def generate(folder: Path, runs: int) -> Path:
    path = folder / "bench.toml"
    path.write_text(PROTOCOL.format(seeds=runs // 4))
    store = Store(folder / "runs")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 200, TEST_IMAGES)
    for planned in plan(load(path), Inputs()):
        run_dir = store.path(planned.run_id)
        run_dir.mkdir(parents=True)
        accuracy = 0.91 + (0.004 if planned.arm == "transfg" else 0) + rng.normal(0, 0.002)
        right = rng.random(TEST_IMAGES) < accuracy
        top5 = rng.integers(0, 200, (TEST_IMAGES, 5))
        top5[:, 0] = np.where(right, labels, (labels + 1) % 200)
        np.savez(run_dir / "eval-10000.npz", index=np.arange(TEST_IMAGES), label=labels,
                 top5_classes=top5, top5_scores=rng.random((TEST_IMAGES, 5)).astype(np.float32))
        correct = int(right.sum())
        evals = [{"step": s, "accuracy": correct / TEST_IMAGES, "correct": correct,
                  "total": TEST_IMAGES} for s in range(100, 10001, 100)]
        write_finished_run(store, planned, {
            "final_accuracy": correct / TEST_IMAGES, "final_step": 10000,
            "best_accuracy": correct / TEST_IMAGES, "best_step": 10000, "correct": correct,
            "test_images": TEST_IMAGES, "evaluations": evals, "steps": 10000,
            "effective_batch": 64, "images_per_s": 100.0}, compute_seconds=3600.0)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        protocol = load(generate(folder, args.runs))
        store, out = Store(folder / "runs"), folder / "reports"

        def html_json():
            report = model.build([protocol], store, Inputs())
            assert len(report.results) == args.runs
            render.write(report, out, "bench", ("html", "json"))

        def with_pdf():
            report = model.build([protocol], store, Inputs())
            render.write(report, out, "bench", ("html", "json", "pdf"))

        times = median_seconds({"build_html_json": html_json, "build_html_json_pdf": with_pdf},
                               warmup=1, repeats=args.repeats)
    target = 10.0
    rows = "\n".join(f"| {name} | {seconds:.2f} | {seconds / target:.2f} |"
                     for name, seconds in times.items())
    table = (f"{args.runs} finished runs, {TEST_IMAGES} stored predictions each; median of "
             f"{args.repeats}.\n\n| build | seconds | share of the 10 s target |\n|---|---|---|\n"
             + rows)
    print(table)
    write_results(f"report-build-{args.runs}", {"runs": args.runs, "seconds": times,
                                                "target_seconds": target}, table, args.results)


if __name__ == "__main__":
    main()
