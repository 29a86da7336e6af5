"""The interface `transfg.train`'s loop drives: one per framework (`transfg/torch/engine.py`,
`transfg/jittor/engine.py`), both satisfying `TrainingEngine`.

An engine owns the model, the optimizer and the devices of one run. The loop owns everything
framework-neutral: data order and augmentation, the learning-rate schedule, evaluation files,
checkpoints and the run folder. Arrays cross the boundary as numpy, so both engines read and
write the same checkpoint and evaluation formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from transfg.weights import State


class TrainingEngine(Protocol):
    framework: str  # "torch" or "jittor"
    rank: int  # this process's place among `world` processes (0 writes the run folder)
    world: int

    def seed(self, seed: int) -> None:
        """Seed the framework's generator for the next update's dropout masks."""

    def train_step(self, micro_batches: Sequence, lr: float) -> dict[str, float]:
        """One optimizer update over the micro-batches (each contributing loss / count to the
        gradient), gradients clipped, SGD at `lr`: the losses as Python floats ("loss", "ce",
        "contrastive"), so the device has finished when it returns."""

    def predict(self, images: Any) -> np.ndarray:
        """Logits (B, classes) of one batch, in evaluation mode."""

    def loader(self, view: Sequence, batch: int, *, drop_last: bool) -> Iterable:
        """Batches of (images, labels, indices) over `view`, in its order."""

    def export(self) -> tuple[State, dict[str, np.ndarray]]:
        """The model's parameters (checkpoint names) and the optimizer's buffers, as numpy."""

    def restore(self, state: State, optimizer: dict[str, np.ndarray]) -> None:
        """Load what `export` gave (resuming a run)."""

    def gather(self, value: Any) -> list:
        """Every process's `value`, in rank order."""

    def close(self) -> None:
        """Release the devices and process groups."""

    def memory_mb(self) -> float | None:
        """Peak device memory of the run so far, where the framework can tell."""
