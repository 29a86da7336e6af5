"""Activation memory of one PyTorch training step, counted exactly on any device, and what it
predicts for the paper's batch on one GPU.

For TransFG and ViT, explicit and fused attention (TrainConfig.attention), it runs one forward
pass and the loss on synthetic data under `torch.autograd.graph.saved_tensors_hooks` and adds up
the distinct storages autograd keeps for the backward pass (parameters, and under autocast their
low-precision copies, counted apart), plus what the Part Selection Module needs beside them (with
explicit attention its maps are the same storages autograd keeps; with fused attention the q and
k its deferred maps keep, and the two T x T arrays it holds while forming one map: the scores and
their softmax). These bytes scale linearly with the batch, so a run at batch b on the CPU
predicts batch 16: activations x 16 / b, plus the model state (weights, gradients, momentum:
3 x parameters x 4 bytes, and autocast's weight copies). A GPU's real peak adds kernels'
workspace and the allocator's slack: `bench/suite.py` measures that on a GPU.

    .venv/bin/python bench/activation_memory.py [--preset vit_b16] [--image-size 448] [--batch 1]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from common import PRESETS, RESULTS, write_results

from transfg.torch import losses, model
from transfg.torch.weights import load_state
from transfg.weights import init_state

GIB, MIB = 2**30, 2**20


def forward_bytes(config, batch: int, attention: str, precision: str) -> dict[str, float]:
    """{"saved": bytes autograd keeps, "held": the most held at once in the forward pass,
    "params": bytes of the parameters}. Held: the saved bytes, the maps kept for the Part
    Selection Module (explicit: the same storages; fused: the q and k its DeferredMaps keep, and
    the scores and softmax of the one map the PSM forms at a time)."""
    net = model.VisionTransformer(config)
    model.use_fused_attention(net, attention == "fused")
    if config.variant == "vit":
        net.transformer.encoder.return_attention = False  # as the training engine
    load_state(net, init_state(config, np.random.default_rng(0)))
    net.train()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    shapes = {tuple(p.shape) for p in net.parameters() if p.dim() > 1}
    saved: dict[int, int] = {}
    cast_weights: dict[int, int] = {}  # autocast's per-step copies: they do not grow with batch

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() in params:
            return tensor
        copy = tensor.dtype != torch.float32 and tuple(tensor.shape) in shapes
        (cast_weights if copy else saved)[storage.data_ptr()] = storage.nbytes()
        return tensor

    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(batch, 3, config.image_size, config.image_size))
                         .astype(np.float32))
    y = torch.from_numpy(rng.integers(0, config.num_classes, batch))
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
            else contextlib.nullcontext())
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), cast:
        logits, out = net(x)
        losses.transfg_loss(logits.float(), out["cls_feature"].float(), y, config)
    held, transient = dict(saved), 0
    for weights in out["attn_weights"]:
        if isinstance(weights, model.DeferredMap):  # q and k kept; one map at a time in the PSM
            tensors = [weights.q, weights.k]
            b, h, t, _ = weights.q.shape
            transient = 2 * b * h * t * t * weights.q.element_size()  # scores and softmax
        else:
            tensors = [] if weights is None else [weights]
        for tensor in tensors:
            held[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return {"saved": sum(saved.values()), "held": sum(held.values()) + transient,
            "params": sum(p.numel() * 4 for p in net.parameters()),
            "cast_weights": sum(cast_weights.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="vit_b16")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--batch", type=int, default=1, help="batch actually run")
    parser.add_argument("--target-batch", type=int, default=16, help="batch to predict for")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: the CPU's autocast, whose policy differs from CUDA's "
                             "(softmax stays bf16 on the CPU)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    results = {}
    for variant, split, attention in itertools.product(
            ("transfg", "vit"), ("overlap", "non-overlap"), ("explicit", "fused")):
        config = PRESETS[args.preset](image_size=args.image_size, variant=variant, split=split,
                                      num_classes=200)
        counted = forward_bytes(config, args.batch, attention, args.precision)
        scale = args.target_batch / args.batch
        results[f"{variant}/{split}/{attention}"] = {
            **counted, "tokens": config.num_tokens,
            "predicted_gib": (counted["held"] * scale + 3 * counted["params"]
                              + counted["cast_weights"]) / GIB}
        print(f"{variant}/{split}/{attention}: {counted['held'] / GIB:.2f} GiB held at batch "
              f"{args.batch}", file=sys.stderr)
    ratios = {}
    for split in ("overlap", "non-overlap"):
        for attention in ("explicit", "fused"):
            ratios[f"transfg_over_vit/{split}/{attention}"] = (
                results[f"transfg/{split}/{attention}"]["held"]
                / results[f"vit/{split}/{attention}"]["held"])
        for variant in ("transfg", "vit"):
            ratios[f"fused_over_explicit/{variant}/{split}"] = (
                results[f"{variant}/{split}/fused"]["held"]
                / results[f"{variant}/{split}/explicit"]["held"])
    table = "\n".join([
        f"preset {args.preset}, {args.image_size} px, {args.precision}, counted at batch "
        f"{args.batch}, predicted for batch {args.target_batch} per device (activations x "
        f"{args.target_batch}/{args.batch} + weights, gradients and momentum in fp32)\n",
        "| model/split/attention | tokens | saved for backward MiB | most held in forward MiB"
        f" | predicted batch {args.target_batch} GiB |", "|---|---|---|---|---|",
        *(f"| {key} | {r['tokens']} | {r['saved'] / MIB:.1f} | {r['held'] / MIB:.1f} | "
          f"{r['predicted_gib']:.2f} |" for key, r in results.items()),
        "", "| ratio (most held in forward) | value |", "|---|---|",
        *(f"| {name} | {value:.2f} |" for name, value in ratios.items())])
    print(table)
    name = f"activation-memory-{args.preset}-{args.image_size}px-{args.precision}"
    path = write_results(name, {"preset": args.preset, "image_size": args.image_size,
                                "batch": args.batch, "target_batch": args.target_batch,
                                "precision": args.precision, "results": results,
                                "ratios": ratios}, table, args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
