"""FLOPs of TransFG's and ViT's matrix products, for model-FLOPs utilisation (MFU).

Counted (2 FLOPs per multiply-add), per image, forward, with T tokens (patches + CLS), width D,
MLP width M, L blocks, patch size P, K = the heads (one selected token each), C classes:
  patch embedding   2 (T-1) 3 P^2 D
  one block on n tokens   2 n (4 D^2 + 2 D M) + 4 n^2 D     (q, k, v, out; MLP; QK^T and AV)
  ViT:      L blocks on T tokens, head 2 D C
  TransFG:  L-1 blocks on T tokens, part_layer on K+1 tokens, head 2 D C, and the Part
            Selection Module's chain: (L-2) products of a (H x 1 x T) row with (H x T x T) maps,
            2 H T^2 each (no gradient).
A training step counts the differentiable part three times (forward, and backward's two
products per forward product) and the PSM once. Elementwise work (softmax, LayerNorm, GELU,
losses) is not counted, as is usual for MFU.
"""

from __future__ import annotations

from audit.calibrate import forward_flops  # one count of the model's FLOPs, shared
from transfg.config import ModelConfig

# Dense peak FLOP/s by GPU name fragment and precision (vendor datasheets, without sparsity).
PEAKS = {
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
}


def train_step_flops(config: ModelConfig, batch: int) -> int:
    differentiable, psm = forward_flops(config)
    return batch * (3 * differentiable + psm)


def peak_flops(gpu_name: str | None, precision: str) -> float | None:
    for fragment, peaks in PEAKS.items():
        if gpu_name and fragment in gpu_name:
            return peaks.get(precision)
    return None
