"""Learning-rate schedules as plain functions of the update number (docs/official-code.md,
"Training").

The official code steps the scheduler before the optimizer, so update k (1-based) uses
`multiplier(k)`: the first update uses 1/warmup of the base rate, the last uses 0.
"""

from __future__ import annotations

import math


def multiplier(update: int, warmup: int, total: int, decay: str = "cosine") -> float:
    """Warmup `update / warmup`, then cosine `0.5 * (1 + cos(pi * p))` or linear
    `(total - update) / (total - warmup)`, with p = (update - warmup) / (total - warmup)."""
    if update < warmup:
        return update / max(1, warmup)
    progress = (update - warmup) / max(1, total - warmup)
    if decay == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if decay == "linear":
        return max(0.0, (total - update) / max(1.0, total - warmup))
    raise ValueError(f"decay={decay!r}; allowed: cosine, linear")
