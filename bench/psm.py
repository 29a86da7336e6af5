"""The Part Selection Module's cost, fast chain vs the official full product, at the paper's size.

Prints, side by side from one run: the PSM alone both ways (on the 11 attention maps of a real
forward pass), and the forward time of TransFG (fast PSM), TransFG (literal PSM) and the ViT
baseline at 448 px overlap (1370 tokens), with the TransFG/ViT ratios.

    .venv/bin/python bench/psm.py [--framework torch|jittor] [--batch 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import RESULTS, median_seconds, write_results

from transfg.config import vit_b16
from transfg.weights import init_state


def torch_runner(config, batch):
    import torch

    from transfg.torch import model as tm
    from transfg.torch.weights import load_state

    torch.set_grad_enabled(False)

    class Literal(torch.nn.Module):
        def forward(self, maps):
            return tm.literal_part_selection(maps)

    def build(cfg, literal=False):
        model = tm.VisionTransformer(cfg).eval()
        load_state(model, init_state(cfg, np.random.default_rng(0)))
        if literal:
            model.transformer.encoder.part_select = Literal()
        return model

    x = torch.from_numpy(np.random.default_rng(1).normal(
        size=(batch, 3, config.image_size, config.image_size)).astype(np.float32))
    models = {"transfg": build(config), "transfg_literal": build(config, literal=True),
              "vit": build(config.replace(variant="vit"))}
    maps = models["transfg"](x)[1]["attn_weights"]
    return ({name: (lambda m=m: m(x)) for name, m in models.items()},
            {"fast": lambda: tm.PartAttention()(maps),
             "literal": lambda: tm.literal_part_selection(maps)})


def jittor_runner(config, batch):
    import transfg.jittor  # noqa: F401  (prepares jittor for this machine)
    import jittor as jt  # isort: skip

    from transfg.jittor import model as jm
    from transfg.jittor.weights import load_state

    jt.flags.no_grad = 1

    class Literal(jt.nn.Module):
        def execute(self, maps):
            return jm.literal_part_selection(maps)

    def build(cfg, literal=False):
        model = jm.VisionTransformer(cfg)
        model.eval()
        load_state(model, init_state(cfg, np.random.default_rng(0)))
        if literal:
            model.transformer.encoder.part_select = Literal()
        return model

    x = jt.array(np.random.default_rng(1).normal(
        size=(batch, 3, config.image_size, config.image_size)).astype(np.float32))
    models = {"transfg": build(config), "transfg_literal": build(config, literal=True),
              "vit": build(config.replace(variant="vit"))}
    maps = [m.detach() for m in models["transfg"](x)[1]["attn_weights"]]
    jt.sync_all()

    def synced(fn):
        def run():
            out = fn()
            (out[0] if isinstance(out, tuple) else out).sync()
        return run

    return ({name: synced(lambda m=m: m(x)) for name, m in models.items()},
            {"fast": synced(lambda: jm.PartAttention()(maps)),
             "literal": synced(lambda: jm.literal_part_selection(maps))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=("torch", "jittor"), default="torch")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    config = vit_b16(image_size=args.image_size)
    runner = torch_runner if args.framework == "torch" else jittor_runner
    forwards, psm = runner(config, args.batch)
    t = median_seconds({f"psm_{k}": fn for k, fn in psm.items()}, 1, args.repeats)
    t |= median_seconds({f"forward_{k}": fn for k, fn in forwards.items()}, 1, args.repeats)
    ratios = {"psm_literal_over_fast": t["psm_literal"] / t["psm_fast"],
              "transfg_over_vit": t["forward_transfg"] / t["forward_vit"],
              "transfg_literal_over_vit": t["forward_transfg_literal"] / t["forward_vit"]}
    table = "\n".join([
        f"{args.framework}, ViT-B/16, {args.image_size} px overlap, {config.num_tokens} tokens, "
        f"batch {args.batch}, float32, no grad; median of {args.repeats}\n",
        "| measurement | seconds |", "|---|---|",
        *(f"| {name} | {value:.4f} |" for name, value in t.items()),
        "", "| ratio | value |", "|---|---|",
        *(f"| {name} | {value:.2f} |" for name, value in ratios.items())])
    print(table)
    name = f"psm-{args.framework}-{args.image_size}px-b{args.batch}"
    path = write_results(name, {"framework": args.framework, "config": config.to_dict(),
                                "batch": args.batch, "seconds": t, "ratios": ratios}, table,
                         args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
