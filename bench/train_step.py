"""Training-step throughput and peak memory, Jittor vs PyTorch, on the same config and batch.

Each framework runs in its own process (one after the other, so they never share the cores):
SGD with momentum, gradient clipping at 1.0, the TransFG loss (cross-entropy + contrastive),
float32, synthetic data. Prints images/s and peak memory for both and their ratios; writes
bench/results/train-step-<preset>-<device>.{json,md}.

    .venv/bin/python bench/train_step.py [--preset tiny|small] [--batch 16] [--steps 20]

Peak memory: the process's peak resident set (ru_maxrss), as measured and as growth over the
resident set after the model is built; PyTorch's peak GPU allocation is recorded too on a GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import RESULTS, median_seconds, worker_env, write_results

from transfg.config import tiny
from transfg.weights import init_state

PRESETS = {
    "tiny": {},  # the parity tests' config: 64 px, width 32, 4 layers
    "small": {"image_size": 112, "hidden_size": 192, "mlp_dim": 768, "num_heads": 3,
              "num_layers": 6},
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torch_worker(config, batch, steps, precision="fp32", checkpointing=False,
                 attention="explicit"):
    import contextlib

    import torch

    from transfg.torch import losses, model
    from transfg.torch.weights import load_state

    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = model.VisionTransformer(config)
    net.transformer.encoder.checkpointing = checkpointing
    model.use_fused_attention(net, attention == "fused")  # as the engine does
    if config.variant == "vit":
        net.transformer.encoder.return_attention = False
    load_state(net, init_state(config, np.random.default_rng(0)))
    net.to(device).train()
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(batch, 3, config.image_size, config.image_size))
                         .astype(np.float32)).to(device)
    y = torch.from_numpy(rng.integers(0, config.num_classes, batch)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    built_rss = rss_mb()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")

    def autocast():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device, dtype=dtype)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits, out = net(x)
            del out["attn_weights"]  # as the engine: checkpointing can then free them
            loss = losses.transfg_loss(logits.float(), out["cls_feature"].float(), y,
                                       config)["loss"]
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        if device == "cuda":
            torch.cuda.synchronize()

    seconds = median_seconds({"step": step}, warmup=3, repeats=steps)["step"]
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return {"version": torch.__version__, "device": device, "step_seconds": seconds,
            "gpu_peak_mb": gpu_peak, "rss_peak_mb": rss_mb(), "rss_built_mb": built_rss}


def jittor_worker(config, batch, steps, precision="fp32", checkpointing=False,
                  attention="explicit"):
    """Jittor's one attention is explicit: `attention` is accepted and ignored."""
    if checkpointing:
        return {"skipped": "the Jittor engine has no activation checkpointing"}
    if precision != "fp32":
        return {"skipped": "the Jittor engine trains in fp32 only (jittor 1.3 has no autocast "
                           "with loss scaling to match PyTorch's)"}
    import transfg.jittor  # noqa: F401  (prepares jittor for this machine)
    import jittor as jt  # isort: skip

    from transfg.jittor import losses, model
    from transfg.jittor.weights import load_state

    net = model.VisionTransformer(config)
    load_state(net, init_state(config, np.random.default_rng(0)))
    net.train()
    rng = np.random.default_rng(1)
    x = jt.array(rng.normal(size=(batch, 3, config.image_size, config.image_size))
                 .astype(np.float32))
    y = jt.array(rng.integers(0, config.num_classes, batch))
    opt = jt.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    jt.sync_all()
    built_rss = rss_mb()

    def step():
        logits, out = net(x)
        opt.backward(losses.transfg_loss(logits, out["cls_feature"], y, config)["loss"])
        opt.clip_grad_norm(1.0)
        opt.step()
        jt.sync_all(True)

    seconds = median_seconds({"step": step}, warmup=3, repeats=steps)["step"]
    # Jittor has no cheap peak-allocation counter; GPU memory side by side is bench work of the
    # performance suite. Here memory is compared as resident set (meaningful on the CPU).
    return {"version": jt.__version__, "device": "cuda" if jt.flags.use_cuda else "cpu",
            "step_seconds": seconds, "gpu_peak_mb": None, "rss_peak_mb": rss_mb(),
            "rss_built_mb": built_rss}


def run_worker(framework: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", framework, "--preset", args.preset,
               "--batch", str(args.batch), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env(framework))
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.exit(f"{framework} worker failed (exit status {done.returncode}"
                 f"{'' if lines else ', no result'}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up)")
    parser.add_argument("--worker", choices=("torch", "jittor"), help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    config = tiny(**PRESETS[args.preset])
    if args.worker:
        worker = torch_worker if args.worker == "torch" else jittor_worker
        print(json.dumps(worker(config, args.batch, args.steps)))
        return

    results = {fw: run_worker(fw, args) for fw in ("torch", "jittor")}
    for r in results.values():
        r["images_per_s"] = args.batch / r["step_seconds"]
        r["rss_growth_mb"] = r["rss_peak_mb"] - r["rss_built_mb"]
    t, j = results["torch"], results["jittor"]
    memory = "gpu_peak_mb" if t["gpu_peak_mb"] and j["gpu_peak_mb"] else "rss_peak_mb"
    ratios = {"jittor_over_torch_throughput": j["images_per_s"] / t["images_per_s"],
              f"jittor_over_torch_{memory}": j[memory] / t[memory]}
    rows = [f"| {fw} {r['version']} ({r['device']}) | {r['images_per_s']:.1f} | "
            f"{r['step_seconds'] * 1000:.1f} | {r[memory]:.0f} | {r['rss_growth_mb']:.0f} |"
            for fw, r in results.items()]
    table = "\n".join([
        f"preset {args.preset} ({config.image_size} px {config.split}, width {config.hidden_size},"
        f" {config.num_layers} layers, {config.num_tokens} tokens), batch {args.batch}, float32;"
        f" median of {args.steps} steps after 3 warm-up\n",
        f"| framework | images/s | ms/step | {memory} | RSS growth MB |", "|---|---|---|---|---|",
        *rows, "", "| ratio | value |", "|---|---|",
        *(f"| {name} | {value:.2f} |" for name, value in ratios.items())])
    print(table)
    device = t["device"]
    path = write_results(f"train-step-{args.preset}-{device}",
                         {"config": config.to_dict(), "batch": args.batch, "steps": args.steps,
                          "results": results, "ratios": ratios}, table, args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
