"""The run spec: everything that defines one training run, as `RUN_DIR/spec.json`.

The runner writes it, `python -m transfg.train RUN_DIR` reads it; this module is the one place
that defines the format (versioned: SPEC_VERSION). Defaults are the official code's
(docs/official-code.md, "Training"); each deviation the paper implies is a named field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from transfg.config import ModelConfig
from transfg.run_files import SPEC, RunFileError, load_object

SPEC_VERSION = 1
FRAMEWORKS = ("torch", "jittor", "official")  # official: a user's checkout (transfg/official.py)
DECAYS = ("cosine", "linear")
PRECISIONS = ("fp32", "fp16", "bf16")
ATTENTIONS = ("explicit", "fused")
ORDERS = ("reshuffle", "fixed")
PART_LAYER_INITS = ("random", "pretrained")


class SpecError(ValueError):
    """A spec that cannot run; the message names every bad field and what is allowed."""


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for one source of randomness, derived from the run's seed (stable across versions
    of numpy: SeedSequence's hash is part of its documented contract)."""
    words = [seed, *purpose.encode()]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class Seeds:
    init: int  # part_layer / head initialisation (and everything not loaded from weights)
    order: int  # data order
    augment: int  # crops, flips, AutoAugment
    dropout: int  # dropout masks (reseeded from (dropout, step) at every step)

    @classmethod
    def from_seed(cls, seed: int) -> Seeds:
        return cls(*(derive_seed(seed, name) for name in SEED_AXES))


# The sources of randomness, in order: Seeds' fields (a protocol may vary each on its own axis).
SEED_AXES = tuple(f.name for f in dataclasses.fields(Seeds))


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10_000  # optimizer updates
    warmup_steps: int = 500
    decay: Literal["cosine", "linear"] = "cosine"
    learning_rate: float = 3e-2  # the paper: 3e-3 for Stanford Dogs, 1e-2 for iNat2017
    momentum: float = 0.9
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 16  # images per micro-batch on one device (the official code: per GPU)
    accumulation: int = 1  # micro-batches per update on each device, each its own contrastive loss
    eval_every: int = 100  # evaluate the whole test set every N updates (and at the end)
    eval_batch_size: int = 8
    checkpoint_every: int = 500
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    order: Literal["reshuffle", "fixed"] = "reshuffle"  # "fixed": the official code's quirk
    autoaugment: bool | None = None  # None: as the official code does for the dataset
    workers: int = 2  # data-loader workers per device
    # Recompute each block's activations in the backward pass instead of keeping them: less
    # memory, same numbers (PyTorch engine; tested bit-identical on the CPU).
    activation_checkpointing: bool = False
    # "fused": PyTorch's scaled_dot_product_attention, the PSM's maps recomputed detached (see
    # transfg/torch/model.py, Attention); the same model up to float rounding (tested), less
    # memory. "explicit": the official code's math.
    attention: Literal["explicit", "fused"] = "explicit"

    def errors(self):
        for name in ("steps", "batch_size", "accumulation", "eval_every", "eval_batch_size",
                     "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                yield f"train.{name}={value!r}, allowed: a positive integer"
        if not isinstance(self.warmup_steps, int) or not 0 <= self.warmup_steps < self.steps:
            yield f"train.warmup_steps={self.warmup_steps!r}, allowed: 0 <= warmup < steps"
        for name, allowed in (("decay", DECAYS), ("precision", PRECISIONS), ("order", ORDERS),
                              ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                yield f"train.{name}={getattr(self, name)!r}, allowed: {', '.join(allowed)}"
        if not self.learning_rate > 0:
            yield f"train.learning_rate={self.learning_rate!r}, allowed: > 0"
        if not 0 <= self.momentum < 1:
            yield f"train.momentum={self.momentum!r}, allowed: 0 <= momentum < 1"
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            yield "train.weight_decay must be >= 0 and train.max_grad_norm > 0"
        if not isinstance(self.workers, int) or self.workers < 0:
            yield f"train.workers={self.workers!r}, allowed: an integer >= 0"


@dataclass(frozen=True)
class RunSpec:
    framework: Literal["torch", "jittor", "official"]
    model: ModelConfig
    train: TrainConfig
    dataset: str  # a name from transfg.data.readers.DATASETS
    data_root: str
    seeds: Seeds
    weights: str | None = None  # Google's ViT .npz; None trains from the official random init
    part_layer_init: Literal["random", "pretrained"] = "random"
    devices: int = 1  # processes (GPUs) in the run
    subset: dict[str, int] | None = None  # {"train": n, "test": n}: the first n of each split
    official_checkout: str | None = None  # framework "official": the user's TACJu/TransFG clone
    official_python: str | None = None  # its interpreter (default: this one)
    version: int = SPEC_VERSION
    notes: dict[str, Any] = field(default_factory=dict)  # free text the runner records

    @property
    def effective_batch(self) -> int:
        """Images per optimizer update across all devices and micro-batches."""
        return self.train.batch_size * self.train.accumulation * self.devices

    def errors(self):
        if self.version != SPEC_VERSION:
            yield f"version={self.version!r}, this code reads version {SPEC_VERSION}"
        if self.framework not in FRAMEWORKS:
            yield f"framework={self.framework!r}, allowed: {', '.join(FRAMEWORKS)}"
        from transfg.data.readers import DATASETS

        if self.dataset not in DATASETS:
            yield f"dataset={self.dataset!r}, allowed: {', '.join(DATASETS)}"
        if self.part_layer_init not in PART_LAYER_INITS:
            yield (f"part_layer_init={self.part_layer_init!r}, allowed: "
                   f"{', '.join(PART_LAYER_INITS)}")
        if not isinstance(self.devices, int) or self.devices < 1:
            yield f"devices={self.devices!r}, allowed: a positive integer"
        if self.subset is not None and (set(self.subset) - {"train", "test"} or any(
                not isinstance(v, int) or v < 1 for v in self.subset.values())):
            yield f"subset={self.subset!r}, allowed: {{'train': n, 'test': n}} with n >= 1"
        if self.framework == "official" and not self.official_checkout:
            yield ("official_checkout=None, allowed: the path of a checkout of the official code "
                   "(github.com/TACJu/TransFG) when framework is 'official'")
        yield from self.train.errors()

    def validate(self) -> RunSpec:
        errors = list(self.errors())
        if errors:
            raise SpecError("invalid run spec: " + "; ".join(errors))
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["effective_batch"] = self.effective_batch  # recorded for readers; derived on load
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> RunSpec:
        data = dict(data)
        data.pop("effective_batch", None)
        parts = {"model": ModelConfig, "train": TrainConfig, "seeds": Seeds}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"{source}: unknown field(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(known))}")
        try:
            for name, kind in parts.items():
                if not isinstance(data.get(name), dict):
                    raise SpecError(f"{source}: {name} is {data.get(name)!r}, allowed: an "
                                    f"object of {kind.__name__} fields")
                fields = {f.name for f in dataclasses.fields(kind)}
                extra = sorted(set(data.get(name, {})) - fields)
                if extra:
                    raise SpecError(f"{source}: unknown field(s) {name}.{', '.join(extra)}; "
                                    f"allowed: {', '.join(sorted(fields))}")
                data[name] = kind(**data[name])
            spec = cls(**data)
        except (TypeError, ValueError) as error:
            raise SpecError(f"{source}: {error}") from None
        try:
            return spec.validate()
        except SpecError as error:
            raise SpecError(f"{source}: {error}") from None


def read_spec(run_dir: str | Path) -> RunSpec:
    """spec.json of a run folder; RunFileError (transfg.run_files) naming what is wrong."""
    path = Path(run_dir) / SPEC
    data = load_object(path)
    try:
        return RunSpec.from_dict(data, SPEC)
    except SpecError as error:
        raise RunFileError(path, str(error).removeprefix(f"{SPEC}: ")) from None
