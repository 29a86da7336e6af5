"""TransFG's forward pass in plain numpy, written from docs/official-code.md alone.

An independent check of semantics: it shares no code with the models (no module classes, its own
patch extraction and attention), works in float64, and forms the Part Selection Module as the
official code literally does (the full product of the attention maps). The parity tests compare
both frameworks with it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf


def layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, state, name):
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def patches(images, size, step):
    """(B, 3, H, W) -> (B, n, 3*size*size), windows in row-major order."""
    B, _, H, W = images.shape
    rows = range(0, H - size + 1, step)
    cols = range(0, W - size + 1, step)
    out = [images[:, :, r:r + size, c:c + size].reshape(B, -1) for r in rows for c in cols]
    return np.stack(out, axis=1)


def block(x, state, name, heads):
    """Pre-norm block; returns (output, attention probabilities (B, heads, T, T))."""
    B, T, D = x.shape
    h = layer_norm(x, state[f"{name}.attention_norm.weight"], state[f"{name}.attention_norm.bias"])

    def split(t):
        return t.reshape(B, T, heads, D // heads).transpose(0, 2, 1, 3)

    q, k, v = (split(linear(h, state, f"{name}.attn.{p}")) for p in ("query", "key", "value"))
    probs = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(D // heads))
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
    x = x + linear(context, state, f"{name}.attn.out")
    h = layer_norm(x, state[f"{name}.ffn_norm.weight"], state[f"{name}.ffn_norm.bias"])
    h = linear(h, state, f"{name}.ffn.fc1")
    h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
    return x + linear(h, state, f"{name}.ffn.fc2"), probs


def forward(images, state, *, variant, heads, layers, patch_size, stride):
    """(logits (B, C), cls feature (B, D), selected patch indices (B, heads) or None)."""
    state = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    images = np.asarray(images, dtype=np.float64)
    w = state["transformer.embeddings.patch_embeddings.weight"]  # (D, 3, P, P)
    tokens = patches(images, patch_size, stride) @ w.reshape(w.shape[0], -1).T
    tokens = tokens + state["transformer.embeddings.patch_embeddings.bias"]
    cls = np.repeat(state["transformer.embeddings.cls_token"], len(images), axis=0)
    x = np.concatenate([cls, tokens], axis=1) + state["transformer.embeddings.position_embeddings"]

    if variant == "vit":
        for i in range(layers):
            x, _ = block(x, state, f"transformer.encoder.layer.{i}", heads)
        x = layer_norm(x, state["transformer.encoder.encoder_norm.weight"],
                       state["transformer.encoder.encoder_norm.bias"])
        return linear(x[:, 0], state, "head"), x[:, 0], None

    maps = []
    for i in range(layers - 1):
        x, probs = block(x, state, f"transformer.encoder.layer.{i}", heads)
        maps.append(probs)
    product = maps[0]
    for probs in maps[1:]:
        product = probs @ product  # later layers on the left
    selected = product[:, :, 0, 1:].argmax(-1)  # (B, heads)
    parts = np.stack([x[b, selected[b] + 1] for b in range(len(x))])  # (B, heads, D)
    x = np.concatenate([x[:, :1], parts], axis=1)
    x, _ = block(x, state, "transformer.encoder.part_layer", heads)
    x = layer_norm(x, state["transformer.encoder.part_norm.weight"],
                   state["transformer.encoder.part_norm.bias"])
    return linear(x[:, 0], state, "part_head"), x[:, 0], selected


def losses(logits, features, labels, *, smoothing=0.0, alpha=0.4):
    """(cross-entropy or label smoothing, contrastive), as docs/official-code.md, 'Losses'."""
    logits = np.asarray(logits, dtype=np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -logp[np.arange(len(labels)), labels]
    ce = ((1 - smoothing) * nll + smoothing * -logp.mean(-1)).mean()
    f = np.asarray(features, dtype=np.float64)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    B = len(f)
    total = 0.0
    for i in range(B):
        for j in range(B):
            cos = f[i] @ f[j]
            total += 1 - cos if labels[i] == labels[j] else max(cos - alpha, 0.0)
    return ce, total / (B * B)
