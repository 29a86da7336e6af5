"""From logits to the top classes: the one softmax and ranking that evaluation files and the demo
share, so a prediction means the same in both."""

from __future__ import annotations

import numpy as np


def softmax_top(logits: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """logits (N, classes) -> the k most probable classes (N, min(k, classes)) int64, in order,
    ties to the lower class, and their softmax probabilities (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return top.astype(np.int64), np.take_along_axis(probs, top, 1)
