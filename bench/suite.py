"""The performance suite: training-step throughput and peak memory for {Jittor, PyTorch} x
{TransFG, ViT} x {overlap, non-overlap} x {fp32, mixed precision}, on synthetic data, each
combination in its own process (one after another, so they never share the device), with
warm-up, timed repeats and the median; the machine and versions recorded; results as JSON and a
markdown table in bench/results/suite-<preset>-<size>px-b<batch>-<device>.{json,md}.

    .venv/bin/python bench/suite.py                       # CPU-sized (small preset, 112 px)
    .venv/bin/python bench/suite.py --preset vit_b16 --image-size 448 --batch 16   # the paper's

Ratios printed side by side (the issue's targets): TransFG / ViT step time per framework, split
and precision (target <= 1.10 at 448 px overlap); Jittor / PyTorch throughput (>= 0.9) and peak
memory (<= 1.2) per model, split and precision. Mixed precision: PyTorch autocast (bf16; fp16
with loss scaling via --mixed fp16); the Jittor engine has none (recorded as skipped).
Frameworks: torch (explicit attention, the official math), torch-fused (TrainConfig.attention =
"fused": scaled_dot_product_attention, the PSM's maps recomputed detached), jittor (explicit
attention, its only kind); ratios fused / explicit and Jittor / each PyTorch.
Memory: peak GPU allocation on a GPU (PyTorch's counter); peak resident set on the CPU.
Model FLOP/s and MFU: the FLOPs of the model's matrix products per training step (formula in
bench/flops.py, equal to PyTorch's FlopCounterMode on the forward pass) over the step time, and
over the GPU's dense peak for the precision when the GPU is known (H100, H200, A100).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import PRESETS, RESULTS, machine, worker_env, write_results
from flops import peak_flops, train_step_flops
from train_step import jittor_worker, torch_worker

from transfg.config import ModelConfig

# --frameworks name -> (worker, PyTorch attention)
WORKERS = {"torch": (torch_worker, "explicit"), "torch-fused": (torch_worker, "fused"),
           "jittor": (jittor_worker, "explicit")}


def config_for(args, variant: str, split: str) -> ModelConfig:
    return PRESETS[args.preset](image_size=args.image_size, variant=variant, split=split,
                                num_classes=200)


def run_combination(args, framework, variant, split, precision) -> dict:
    command = [sys.executable, __file__, "--worker", framework, "--variant", variant, "--split",
               split, "--precision", precision, "--preset", args.preset, "--image-size",
               str(args.image_size), "--batch", str(args.batch), "--steps", str(args.steps)]
    if args.checkpointing:
        command.append("--checkpointing")
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env(framework))
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        return {"failed": f"exit status {done.returncode}, no result: {last}" if not lines
                else last}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up)")
    parser.add_argument("--mixed", choices=("bf16", "fp16"), default="bf16")
    parser.add_argument("--frameworks", default="torch,torch-fused,jittor",
                        help="comma-separated: torch, torch-fused, jittor")
    parser.add_argument("--checkpointing", action="store_true",
                        help="activation checkpointing (PyTorch): the memory it saves")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--split", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker, attention = WORKERS[args.worker]
        print(json.dumps(worker(config_for(args, args.variant, args.split), args.batch,
                                args.steps, args.precision, args.checkpointing, attention)))
        return

    frameworks = args.frameworks.split(",")
    unknown = sorted(set(frameworks) - set(WORKERS))
    if unknown:
        parser.error(f"--frameworks: unknown {', '.join(unknown)}; allowed: {', '.join(WORKERS)}")
    combos = list(itertools.product(frameworks, ("transfg", "vit"), ("overlap", "non-overlap"),
                                    ("fp32", args.mixed)))
    gpu = machine()["gpu"]
    results = {}
    for framework, variant, split, precision in combos:
        key = f"{framework}/{variant}/{split}/{precision}"
        result = run_combination(args, framework, variant, split, precision)
        if "step_seconds" in result:
            result["images_per_s"] = args.batch / result["step_seconds"]
            result["memory_mb"] = result["gpu_peak_mb"] or result["rss_peak_mb"]
            flops = train_step_flops(config_for(args, variant, split), args.batch)
            result["tflops_per_s"] = flops / result["step_seconds"] / 1e12
            peak = peak_flops(gpu, precision) if result["device"] == "cuda" else None
            result["mfu"] = result["tflops_per_s"] * 1e12 / peak if peak else None
        results[key] = result
        state = (f"{result['images_per_s']:.1f} img/s" if "images_per_s" in result
                 else result.get("skipped") or result.get("failed"))
        print(f"{key}: {state}", file=sys.stderr)

    def get(key, field):
        return results.get(key, {}).get(field)

    ratios = {}
    for framework, split, precision in itertools.product(frameworks, ("overlap", "non-overlap"),
                                                         ("fp32", args.mixed)):
        a = get(f"{framework}/transfg/{split}/{precision}", "step_seconds")
        b = get(f"{framework}/vit/{split}/{precision}", "step_seconds")
        if a and b:
            ratios[f"transfg_over_vit_step/{framework}/{split}/{precision}"] = a / b
    for variant, split, precision in itertools.product(("transfg", "vit"),
                                                       ("overlap", "non-overlap"),
                                                       ("fp32", args.mixed)):
        setting = f"{variant}/{split}/{precision}"
        for name, a, b in (("jittor_over_torch", "jittor", "torch"),
                           ("jittor_over_torch-fused", "jittor", "torch-fused"),
                           ("fused_over_explicit", "torch-fused", "torch")):
            if get(f"{a}/{setting}", "images_per_s") and get(f"{b}/{setting}", "images_per_s"):
                ratios[f"{name}_throughput/{setting}"] = \
                    get(f"{a}/{setting}", "images_per_s") / get(f"{b}/{setting}", "images_per_s")
                ratios[f"{name}_memory/{setting}"] = \
                    get(f"{a}/{setting}", "memory_mb") / get(f"{b}/{setting}", "memory_mb")
    config = config_for(args, "transfg", "overlap")
    device = next((r["device"] for r in results.values() if "device" in r), "cpu")
    rows = []
    for key, r in results.items():
        if "images_per_s" in r:
            mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
            rows.append(f"| {key} | {r['images_per_s']:.1f} | {r['step_seconds'] * 1000:.1f} | "
                        f"{r['memory_mb']:.0f} | {r['tflops_per_s']:.3f} | {mfu} |")
        else:
            rows.append(f"| {key} | - | - | - | - | - ({r.get('skipped') or r.get('failed')}) |")
    table = "\n".join([
        f"preset {args.preset}, {args.image_size} px ({config.num_tokens} tokens overlap), "
        f"batch {args.batch}, mixed = {args.mixed}"
        f"{', activation checkpointing' if args.checkpointing else ''}"
        f"; median of {args.steps} "
        f"steps after 3 warm-up; device {device}\n",
        "| framework/model/split/precision | images/s | ms/step | peak memory MB | model TFLOP/s"
        " | MFU |", "|---|---|---|---|---|---|", *rows, "", "| ratio | value |", "|---|---|",
        *(f"| {name} | {value:.2f} |" for name, value in ratios.items())])
    print(table)
    name = (f"suite-{args.preset}-{args.image_size}px-b{args.batch}-{device}"
            + ("-checkpointing" if args.checkpointing else ""))
    path = write_results(name, {"preset": args.preset, "image_size": args.image_size,
                                "batch": args.batch, "steps": args.steps, "mixed": args.mixed,
                                "results": results, "ratios": ratios}, table, args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
