"""PyTorch's DataLoader over the shared, deterministic views of `transfg.data.pipeline`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from torch.utils.data import DataLoader, Dataset


def make_loader(view: Sequence, batch: int, workers: int = 0, *, drop_last: bool,
                pin_memory: bool = False) -> DataLoader:
    """Batches of (images (B, 3, C, C) float32, labels (B,) int64, indices (B,) int64), in the
    view's order. Every sample's content is fixed by the view, so the worker count changes only
    the speed. Training drops the last incomplete batch (as the official loader); evaluation
    must not (drop_last=False), or test images go uncounted."""
    return DataLoader(cast(Dataset, view), batch_size=batch, shuffle=False, num_workers=workers,
                      drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=False)
