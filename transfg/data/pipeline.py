"""Deterministic data order and augmentation, independent of framework, worker and process.

- Order: epoch e's permutation of the training set comes from Generator([order_seed, e]); with the
  official code's quirk (`order="fixed"`: DistributedSampler without set_epoch) every epoch
  uses epoch 0's permutation.
- Augmentation: sample i in epoch e is transformed with Generator([augment_seed, e, i]), so it is
  the same image whichever worker, process or framework asks for it, and in whatever order.
- Resume: update s (0-based) reads epoch s // steps_per_epoch, from update s % steps_per_epoch
  of it; a RunView (the epochs of a run end to end, for one loader) that starts at update s
  yields exactly the batches an uninterrupted run would have.

Views are plain sequences of (image (3, C, C) float32, label, index) that each framework's own
parallel loader wraps (`transfg/torch/data.py`, `transfg/jittor/data.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from transfg.config import ModelConfig

from .readers import DatasetSpec, Sample
from .transforms import EvalTransform, TrainTransform, load_rgb, resize_for

Order = Literal["reshuffle", "fixed"]
ORDERS = ("reshuffle", "fixed")


def make_transforms(dataset: DatasetSpec, config: ModelConfig,
                    autoaugment: bool | None = None) -> tuple[TrainTransform, EvalTransform]:
    """The official transforms for `dataset` at the model's input size: the dataset's own resize
    when the model uses its crop size (600 for 448, 400 for 304), else the same ratio
    (tiny configs). AutoAugment follows the official code per dataset unless set (AutoAugment on
    CUB is a deviation the paper's text implies)."""
    crop = config.image_size
    size = dataset.resize if crop == dataset.crop else resize_for(crop)
    augment = dataset.autoaugment if autoaugment is None else autoaugment
    return TrainTransform(size, crop, augment), EvalTransform(size, crop)


def sample_rng(augment_seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([augment_seed, epoch, index])


def epoch_order(n: int, order_seed: int, epoch: int, order: Order = "reshuffle") -> np.ndarray:
    """The training-set permutation of `epoch`."""
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; allowed: {', '.join(ORDERS)}")
    return np.random.default_rng([order_seed, epoch if order == "reshuffle" else 0]).permutation(n)


@dataclass(frozen=True)
class TrainStream:
    """Where each optimizer update reads: whole updates only (the official loader drops the last,
    incomplete batch of an epoch)."""

    n: int  # training images
    batch: int  # images per update, all devices and micro-batches together

    def __post_init__(self):
        if self.n < self.batch:
            raise ValueError(f"{self.n} training images cannot fill one batch of {self.batch}")

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch


class TrainView(Sequence):
    """One device's training samples of one epoch, in training order, to the end of the epoch's
    whole updates.

    An update reads `batch * accumulation * world` consecutive images of the epoch's order, split
    into micro-batches of `batch`; device `rank` takes micro-batches rank, rank + world, ...
    So one device accumulating `accumulation * world` micro-batches sees exactly the micro-batches
    that `world` devices accumulating `accumulation` each see together.
    """

    def __init__(self, samples: Sequence[Sample], transform: TrainTransform, *, epoch: int,
                 order_seed: int, augment_seed: int, batch: int, accumulation: int = 1,
                 world: int = 1, rank: int = 0, order: Order = "reshuffle",
                 loader: Callable = load_rgb):
        per_update = batch * accumulation * world
        stream = TrainStream(len(samples), per_update)
        self.samples, self.transform, self.loader = samples, transform, loader
        self.epoch, self.augment_seed = epoch, augment_seed
        end = stream.steps_per_epoch * per_update
        chunk = epoch_order(len(samples), order_seed, epoch, order)[:end]
        micro = chunk.reshape(-1, accumulation * world, batch)[:, rank::world]
        self.indices = micro.reshape(-1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int  # type: ignore[override]  # positions, no slices
                    ) -> tuple[np.ndarray, int, int]:
        index = int(self.indices[position])
        sample = self.samples[index]
        rng = sample_rng(self.augment_seed, self.epoch, index)
        return self.transform(self.loader(sample.path), rng), sample.label, index


class RunView(Sequence):
    """One device's training samples for updates `first` (0-based) to `last` (excluded), epoch
    after epoch: the TrainViews of those epochs end to end. One loader over it serves a whole
    run, so loader workers start once, not at every epoch."""

    def __init__(self, samples: Sequence[Sample], transform: TrainTransform, *, first: int,
                 last: int, order_seed: int, augment_seed: int, batch: int,
                 accumulation: int = 1, world: int = 1, rank: int = 0,
                 order: Order = "reshuffle", loader: Callable = load_rgb):
        self.stream = TrainStream(len(samples), batch * accumulation * world)
        if not 0 <= first <= last:
            raise ValueError(f"updates {first} to {last}: need 0 <= first <= last")
        self.first, self.last = first, last
        self.per_update = batch * accumulation  # this device's images per update
        self.samples, self.transform = samples, transform
        self.settings: dict[str, Any] = dict(
            order_seed=order_seed, augment_seed=augment_seed, batch=batch,
            accumulation=accumulation, world=world, rank=rank, order=order, loader=loader)
        self.cached: tuple[int, TrainView] | None = None  # each worker process keeps its own

    def epoch_view(self, epoch: int) -> TrainView:
        return TrainView(self.samples, self.transform, epoch=epoch, **self.settings)

    def __len__(self) -> int:
        return (self.last - self.first) * self.per_update

    def __getitem__(self, position: int  # type: ignore[override]  # positions, no slices
                    ) -> tuple[np.ndarray, int, int]:
        if not 0 <= position < len(self):
            raise IndexError(f"position {position} outside 0..{len(self) - 1}")
        update = self.first + position // self.per_update
        epoch, in_epoch = divmod(update, self.stream.steps_per_epoch)
        if self.cached is None or self.cached[0] != epoch:
            self.cached = epoch, self.epoch_view(epoch)
        return self.cached[1][in_epoch * self.per_update + position % self.per_update]


class EvalView(Sequence):
    """Test samples in file order; device `rank` of `world` takes samples rank, rank + world, ...
    so that the devices together see every test image exactly once (no padding: the official
    DistributedSampler repeats images to even out the shards)."""

    def __init__(self, samples: Sequence[Sample], transform: EvalTransform,
                 loader: Callable = load_rgb, rank: int = 0, world: int = 1):
        self.samples, self.transform, self.loader = samples, transform, loader
        self.indices = range(rank, len(samples), world)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int  # type: ignore[override]  # positions, no slices
                    ) -> tuple[np.ndarray, int, int]:
        index = self.indices[position]
        sample = self.samples[index]
        return self.transform(self.loader(sample.path)), sample.label, index
