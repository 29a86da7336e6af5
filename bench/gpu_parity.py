"""Parity on the accelerator: the same weights and inputs through PyTorch (explicit and fused
attention) and Jittor on the GPU (CPU when there is none), against PyTorch on the CPU with
explicit attention as the reference. Logits (relative error),
the Part Selection Module's picks (identical), the TransFG loss and the gradient norm, for the
tiny configs and ViT-B/16 at 448 px overlap (1370 tokens). Exit status 1 when a tolerance fails.

    python bench/gpu_parity.py [--out FOLDER]

Tolerances: float32 with TF32 matmuls off in PyTorch; relative 1e-4 for logits and losses,
1e-3 for the gradient norm (long reductions in a different order on the GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, worker_env

from transfg.config import tiny, vit_b16
from transfg.weights import init_state

CASES = {
    "tiny-transfg-overlap": lambda: tiny(),
    "tiny-vit-non-overlap": lambda: tiny(variant="vit", split="non-overlap"),
    "vit_b16-transfg-448-overlap": lambda: vit_b16(num_classes=200),
}


KINDS = ("torch-cpu", "torch-gpu", "torch-gpu-fused", "jittor")  # the first is the reference


def inputs(config, batch):
    rng = np.random.default_rng(0)
    state = init_state(config, rng)
    x = rng.normal(size=(batch, 3, config.image_size, config.image_size)).astype(np.float32)
    y = np.array([0, 1, 0, 2][:batch])
    return state, x, y


def torch_run(name, device, batch, fused=False):
    import torch

    from transfg.torch import losses, model
    from transfg.torch.weights import load_state

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = CASES[name]()
    state, x, y = inputs(config, batch)
    net = model.VisionTransformer(config)
    load_state(net, state)
    model.use_fused_attention(net, fused)
    net.to(device).train()
    torch.manual_seed(0)
    for m in net.modules():  # dropout off: the frameworks draw different masks
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    logits, out = net(torch.from_numpy(x).to(device))
    loss = losses.transfg_loss(logits, out["cls_feature"], torch.from_numpy(y).to(device),
                               config)["loss"]
    loss.backward()
    grad = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in net.parameters()))
    return {"logits": logits.detach().cpu().numpy().tolist(), "loss": float(loss),
            "grad_norm": float(grad), "parts": out["part_inx"].cpu().numpy().tolist()
            if "part_inx" in out else None}


def jittor_run(name, batch):
    import transfg.jittor  # noqa: F401  (prepares jittor: CUDA when a GPU is there)
    import jittor as jt  # isort: skip

    from transfg.jittor import losses, model
    from transfg.jittor.weights import load_state

    config = CASES[name]().replace(dropout_rate=0.0)
    state, x, y = inputs(config, batch)
    net = model.VisionTransformer(config)
    load_state(net, state)
    net.train()
    logits, out = net(jt.array(x))
    loss = losses.transfg_loss(logits, out["cls_feature"], jt.array(y), config)["loss"]
    grads = jt.grad(loss, net.parameters())
    grad = float(np.sqrt(sum(float((g.float64() ** 2).sum().item()) for g in grads)))
    return {"logits": logits.numpy().tolist(), "loss": float(loss.item()), "grad_norm": grad,
            "parts": out["part_inx"].numpy().tolist() if "part_inx" in out else None,
            "device": "cuda" if jt.flags.use_cuda else "cpu"}


def worker(kind, name, batch):
    if kind == "jittor":
        return jittor_run(name, batch)
    import torch

    device = "cuda" if kind.startswith("torch-gpu") and torch.cuda.is_available() else "cpu"
    return torch_run(name, device, batch, fused=kind.endswith("fused")) | {"device": device}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for gpu-parity.json")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.batch)))
        return 0
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; allowed: {', '.join(CASES)}")
    report, ok = {"machine": machine(), "cases": {}}, True
    for name in cases:
        runs = {}
        for kind in KINDS:
            done = subprocess.run([sys.executable, __file__, "--worker", kind, name,
                                   "--batch", str(args.batch)], capture_output=True, text=True,
                                  env=worker_env(kind))
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                print(f"{name} {kind} failed (exit status {done.returncode}"
                      f"{'' if lines else ', no result'}):\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            runs[kind] = json.loads(lines[-1])
        ref = runs["torch-cpu"]
        rows = {}
        for kind in KINDS[1:]:
            r = runs[kind]
            logits = np.abs(np.subtract(r["logits"], ref["logits"])).max() / \
                np.abs(ref["logits"]).max()
            checks = {"logits_rel": float(logits),
                      "loss_rel": abs(r["loss"] - ref["loss"]) / abs(ref["loss"]),
                      "grad_norm_rel": abs(r["grad_norm"] - ref["grad_norm"]) / ref["grad_norm"],
                      "parts_equal": r["parts"] == ref["parts"], "device": r["device"]}
            checks["ok"] = (checks["logits_rel"] < 1e-4 and checks["loss_rel"] < 1e-4
                            and checks["grad_norm_rel"] < 1e-3 and checks["parts_equal"])
            ok &= checks["ok"]
            rows[kind] = checks
            print(f"{name:<30} {kind:<16} ({r['device']}): logits {checks['logits_rel']:.1e}  "
                  f"loss {checks['loss_rel']:.1e}  grad-norm {checks['grad_norm_rel']:.1e}  "
                  f"parts {'same' if checks['parts_equal'] else 'DIFFER'}  "
                  f"{'ok' if checks['ok'] else 'FAIL'}")
        report["cases"][name] = rows
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu-parity.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
