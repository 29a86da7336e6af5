"""Jittor's Dataset workers over the shared, deterministic views of `transfg.data.pipeline`."""

from __future__ import annotations

from collections.abc import Sequence

import jittor as jt
import numpy as np
from jittor.dataset import Dataset


class ViewDataset(Dataset):
    """Batches of (images (B, 3, C, C) float32, labels (B,) int32, indices (B,) int32) as jittor
    Vars, in the view's order (no jittor shuffling: the order is the view's)."""

    def __init__(self, view: Sequence, batch: int, workers: int = 0, *, drop_last: bool):
        # Each worker's shared ring buffer must hold a few batches.
        buffer = max(64 << 20, 4 * batch * view[0][0].nbytes) if len(view) else 64 << 20
        super().__init__(batch_size=batch, shuffle=False, drop_last=drop_last,
                         num_workers=workers, buffer_size=buffer)
        self.view = view
        self.set_attrs(total_len=len(view))

    def __getitem__(self, position: int) -> tuple[np.ndarray, int, int]:
        return self.view[position]

    def _get_index_list(self):
        # Under MPI, jittor's Dataset splits every batch among the processes by itself; our views
        # are already one process's share (transfg.data.pipeline), so that split is turned off.
        in_mpi = jt.in_mpi
        jt.in_mpi = False
        try:
            return super()._get_index_list()
        finally:
            jt.in_mpi = in_mpi


def make_loader(view: Sequence, batch: int, workers: int = 0, *,
                drop_last: bool) -> ViewDataset:
    """See transfg/torch/data.py: the same batches, as jittor Vars (labels int32)."""
    return ViewDataset(view, batch, workers, drop_last=drop_last)
