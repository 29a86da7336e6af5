"""Random checkpoints in the layout of Google's ViT .npz files (ImageNet-21k), which both our
loader and the official one read."""

import numpy as np


def google_checkpoint(rng, hidden=768, mlp=3072, heads=12, layers=12, patch=16, grid=14,
                      classes=21843):
    """Random arrays under every key and shape of Google's ViT-B_16.npz (ImageNet-21k)."""
    hd = hidden // heads

    def r(*shape):
        return rng.normal(0, 0.02, shape).astype(np.float32)

    npz = {"embedding/kernel": r(patch, patch, 3, hidden), "embedding/bias": r(hidden),
           "cls": r(1, 1, hidden), "Transformer/posembed_input/pos_embedding":
           r(1, grid * grid + 1, hidden), "Transformer/encoder_norm/scale": r(hidden),
           "Transformer/encoder_norm/bias": r(hidden), "head/kernel": r(hidden, classes),
           "head/bias": r(classes), "pre_logits/kernel": r(hidden, hidden),
           "pre_logits/bias": r(hidden)}
    for n in range(layers):
        root = f"Transformer/encoderblock_{n}"
        attn = f"{root}/MultiHeadDotProductAttention_1"
        for name in ("query", "key", "value"):
            npz[f"{attn}/{name}/kernel"] = r(hidden, heads, hd)
            npz[f"{attn}/{name}/bias"] = r(heads, hd)
        npz[f"{attn}/out/kernel"] = r(heads, hd, hidden)
        npz[f"{attn}/out/bias"] = r(hidden)
        npz[f"{root}/MlpBlock_3/Dense_0/kernel"] = r(hidden, mlp)
        npz[f"{root}/MlpBlock_3/Dense_0/bias"] = r(mlp)
        npz[f"{root}/MlpBlock_3/Dense_1/kernel"] = r(mlp, hidden)
        npz[f"{root}/MlpBlock_3/Dense_1/bias"] = r(hidden)
        for ln in ("LayerNorm_0", "LayerNorm_2"):
            npz[f"{root}/{ln}/scale"] = r(hidden)
            npz[f"{root}/{ln}/bias"] = r(hidden)
    return npz
