"""Protocol -> the run matrix (arm x framework x seed), each run a RunSpec with its run id.

The run id is a versioned hash of everything that affects a run's result and nothing that does
not: the spec without where the data and weights sit on this machine (data_root, the weights'
path, official_checkout, official_python), without loader workers, checkpoint spacing and
activation checkpointing (tests show they change nothing), plus the fingerprints of the data
(file list, labels, sizes) and of the weights file (SHA-256), and the official checkout's
identity: its commit when it is a clean git checkout, else the SHA-256 of its code files
(transfg.official.identity). Two protocols that ask for the same run share it; moving the data,
the weights or the official code to another folder keeps the ids.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from audit.protocol import Protocol
from transfg.spec import SEED_AXES, RunSpec, Seeds, TrainConfig, derive_seed

ID_VERSION = 1
NOT_IN_ID = ("data_root", "official_checkout", "official_python", "notes", "effective_batch")
TRAIN_NOT_IN_ID = ("workers", "checkpoint_every", "activation_checkpointing")
# Options added after run ids were first issued are left out while at their default, so the runs
# already in a store keep their ids.
TRAIN_IN_ID_UNLESS = {"attention": "explicit"}


class PlanError(ValueError):
    """An option that does not fit the protocol (unknown arm, framework or seed)."""


@dataclass(frozen=True)
class Inputs:
    """What this machine supplies: where the data, the weights and the official code are."""
    data_root: str | None = None
    weights: str | None = None
    official: str | None = None
    official_python: str | None = None
    smoke: bool = False


@dataclass(frozen=True)
class PlannedRun:
    protocol: str
    arm: str
    framework: str
    seed: dict[str, int]  # {"seed": s} or {axis: s, ...}
    spec: RunSpec | None  # None when an input is missing (see `missing`)
    run_id: str | None
    missing: str | None = None

    @property
    def seed_label(self) -> str:
        return " ".join(f"{axis} {value}" for axis, value in self.seed.items())

    @property
    def label(self) -> str:
        return f"{self.arm} / {self.framework} / {self.seed_label}"


def seeds_of(seed: dict[str, int]) -> Seeds:
    """One seed drives every source (Seeds.from_seed); separate axes vary one source each, an
    axis left out staying at 0. Separate axes all equal to s give the same Seeds as seed s."""
    return _seeds(tuple(sorted(seed.items())))


@functools.lru_cache(maxsize=100_000)
def _seeds(items: tuple) -> Seeds:
    seed = dict(items)
    if "seed" in seed:
        return Seeds.from_seed(seed["seed"])
    return Seeds(**{axis: derive_seed(seed.get(axis, 0), axis)
                    for axis in SEED_AXES})


@functools.lru_cache(maxsize=1024)
def _as_dict(config) -> dict:
    """asdict of a frozen (hashable) config, computed once per distinct config."""
    return dataclasses.asdict(config)


def extended_seeds(protocol: Protocol, count: int) -> dict[str, tuple[int, ...]]:
    """The seed rule continued to `count` seeds (sequential stages beyond the protocol's list):
    one list of seeds goes on with the integers after its largest; a grid of separate axes is
    not extended (its first `count` combinations are taken, in grid order)."""
    axes = dict(protocol.seeds)
    if "seed" in axes and len(axes["seed"]) < count:
        seeds = list(axes["seed"])
        nxt = max(seeds) + 1
        while len(seeds) < count:
            seeds.append(nxt)
            nxt += 1
        axes["seed"] = tuple(seeds)
    return axes


def seed_grid(protocol: Protocol, only: list[int] | None = None,
              count: int | None = None) -> list[dict[str, int]]:
    """The seeds of the matrix in the seed rule's order; with `count`, the first `count` of the
    rule continued beyond the protocol's list (`extended_seeds`)."""
    axes = protocol.seeds if count is None else extended_seeds(protocol, count)
    if only is not None:
        values = {v for values in axes.values() for v in values}
        unknown = sorted(set(only) - values)
        if unknown:
            raise PlanError(f"--seeds {unknown}: not among the protocol's seeds "
                            f"{sorted(values)}")
        axes = {axis: tuple(v for v in values if v in only) for axis, values in axes.items()}
    names = list(axes)
    grid = [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(axes[n] for n in names))]
    return grid if count is None else grid[:count]


@dataclass
class Fingerprints:
    """Data and weights fingerprints, computed once per process per input."""
    data: dict[tuple[str, str, tuple | None], str] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    official: dict[str, Any] = field(default_factory=dict)

    # (dataset, root) -> (classes the labels span: highest label + 1, class names the folder
    # lists or None), noted whenever the folder's splits are read
    classes: dict[tuple[str, str], tuple[int, int | None]] = field(default_factory=dict)

    def _read(self, dataset: str, root: str) -> dict:
        from transfg.data.readers import dataset_spec, read_split

        splits = {s: read_split(dataset, root, s) for s in ("train", "test")}
        names = dataset_spec(dataset).class_names(Path(root))
        labels = [x.label for samples in splits.values() for x in samples]
        self.classes[dataset, root] = (max(labels, default=-1) + 1,
                                       None if names is None else len(names))
        return splits

    def of_data(self, dataset: str, root: str, subset: dict | None) -> str:
        key = (dataset, root, tuple(sorted((subset or {}).items())))
        if key not in self.data:
            from transfg.data.fingerprint import fingerprint

            splits = {s: samples[:(subset or {}).get(s)]
                      for s, samples in self._read(dataset, root).items()}
            self.data[key] = fingerprint(root, splits)["sha256"]
        return self.data[key]

    def of_classes(self, dataset: str, root: str) -> tuple[int, int | None]:
        """(highest label + 1, the number of class names the folder lists, or None)."""
        if (dataset, root) not in self.classes:
            self._read(dataset, root)
        return self.classes[dataset, root]

    def of_weights(self, path: str) -> str:
        path = str(Path(path).resolve())
        if path not in self.weights:
            from transfg.data.fingerprint import file_sha256

            self.weights[path] = file_sha256(Path(path))
        return self.weights[path]

    def official_identity(self, checkout: str):
        """transfg.official.Identity of the checkout: its commit when clean, else its content."""
        if checkout not in self.official:
            from transfg.official import identity

            self.official[checkout] = identity(checkout)
        return self.official[checkout]

    def of_official(self, checkout: str) -> str:
        return self.official_identity(checkout).value


FINGERPRINTS = Fingerprints()


def run_id(spec: RunSpec, fingerprints: Fingerprints = FINGERPRINTS) -> str:
    # spec.to_dict() without the fields outside the id, built from cached parts (fast at 10k runs)
    content = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)
               if f.name not in NOT_IN_ID}
    content["model"] = _as_dict(spec.model)
    content["train"] = {k: v for k, v in _as_dict(spec.train).items()
                        if k not in TRAIN_NOT_IN_ID
                        and not (k in TRAIN_IN_ID_UNLESS and TRAIN_IN_ID_UNLESS[k] == v)}
    content["seeds"] = dataclasses.asdict(spec.seeds)
    content["data_fingerprint"] = fingerprints.of_data(spec.dataset, spec.data_root, spec.subset)
    # the weights file counts by its content, not its place (the key stays, as ids were issued)
    content["weights"] = None
    content["weights_sha256"] = fingerprints.of_weights(spec.weights) if spec.weights else None
    if spec.framework == "official":
        assert spec.official_checkout is not None  # RunSpec.validate requires it for official
        content["official_commit"] = fingerprints.of_official(spec.official_checkout)
    text = json.dumps({"id_version": ID_VERSION, "spec": content}, sort_keys=True)
    return f"r{ID_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def data_root(protocol: Protocol, inputs: Inputs) -> str | None:
    root = inputs.data_root or protocol.data_root
    if root == "bundled":
        from transfg.data.bundled import ROOT

        return str(ROOT)
    if root is not None and not Path(root).is_absolute():  # relative to the protocol file
        root = str((protocol.path.parent / root).resolve())
    return root


def smoke_train(train: TrainConfig, protocol: Protocol) -> TrainConfig:
    steps = protocol.smoke.steps
    return dataclasses.replace(train, steps=steps, warmup_steps=min(train.warmup_steps,
                                                                     steps // 10),
                               eval_every=min(train.eval_every, steps),
                               checkpoint_every=min(train.checkpoint_every, steps))


NO_INPUTS = Inputs()  # a module-level default: ruff 0.6 to 0.17.0 flag a call there (B008)


def plan(protocol: Protocol, inputs: Inputs = NO_INPUTS, arms: list[str] | None = None,
         frameworks: list[str] | None = None, seeds: list[int] | None = None,
         fingerprints: Fingerprints = FINGERPRINTS, max_seeds: int | None = None
         ) -> list[PlannedRun]:
    """Every run of the protocol (optionally a subset), in arm, framework, seed order; with
    `max_seeds`, the first max_seeds seeds of its seed rule (a sequential design's horizon),
    which may go beyond its list."""
    for option, chosen, allowed in (("--arms", arms, list(protocol.arms)),
                                    ("--frameworks", frameworks, list(protocol.frameworks))):
        unknown = sorted(set(chosen or []) - set(allowed))
        if unknown:
            raise PlanError(f"{option} {', '.join(unknown)}: not in {protocol.path}; "
                            f"allowed: {', '.join(allowed)}")
    root = data_root(protocol, inputs)
    official = inputs.official if "official" in protocol.frameworks and \
        (not frameworks or "official" in frameworks) else None
    if official and not (Path(official) / "train.py").is_file():
        raise PlanError(f"--official {official}: no train.py there; allowed: a checkout of "
                        "github.com/TACJu/TransFG (its folder)")
    runs = []
    for arm_name, arm in protocol.arms.items():
        if arms and arm_name not in arms:
            continue
        train = smoke_train(arm.train, protocol) if inputs.smoke else arm.train
        subset = {"train": protocol.smoke.train, "test": protocol.smoke.test} \
            if inputs.smoke else None
        for framework in protocol.frameworks:
            if frameworks and framework not in frameworks:
                continue
            for seed in seed_grid(protocol, seeds, max_seeds):
                missing = None
                if root is None:
                    missing = f"needs --data-root (a folder holding {protocol.dataset})"
                elif protocol.weights and not inputs.weights:
                    missing = f"needs --weights (the protocol expects {protocol.weights})"
                elif framework == "official" and not inputs.official:
                    missing = "needs --official (a checkout of github.com/TACJu/TransFG)"
                if missing or root is None:
                    runs.append(PlannedRun(protocol.name, arm_name, framework, seed, None, None,
                                           missing))
                    continue
                spec = RunSpec(
                    # the protocol's framework and part_layer_init names are validated there
                    cast(Any, framework), arm.model, train, protocol.dataset, root,
                    seeds_of(seed), weights=str(Path(inputs.weights).resolve())
                    if protocol.weights and inputs.weights else None,
                    part_layer_init=cast(Any, arm.part_layer_init), devices=protocol.devices,
                    subset=subset,
                    official_checkout=inputs.official if framework == "official" else None,
                    official_python=inputs.official_python if framework == "official" else None,
                    notes={"protocol": protocol.name, "arm": arm_name, "seed": seed},
                ).validate()
                runs.append(PlannedRun(protocol.name, arm_name, framework, seed, spec,
                                       run_id(spec, fingerprints)))
    if root is not None and any(run.spec is not None for run in runs):  # read for the run ids
        check_folder_classes(protocol, root, fingerprints,
                             [name for name in protocol.arms if not arms or name in arms])
    return runs


def check_folder_classes(protocol: Protocol, root: str, fingerprints: Fingerprints,
                         arms: list[str]) -> None:
    """The dataset folder against each arm's class count: no label and no listed class beyond
    the model's head (a folder may hold fewer: a subset). PlanError naming both numbers."""
    spanned, listed = fingerprints.of_classes(protocol.dataset, root)
    problems = []
    for name in arms:
        head = protocol.arms[name].model.num_classes
        if spanned > head:
            problems.append(f"arms.{name}: model.num_classes = {head}, but the folder {root} "
                            f"has labels up to {spanned - 1} ({spanned} classes)")
        elif listed is not None and listed > head:
            problems.append(f"arms.{name}: model.num_classes = {head}, but the folder {root} "
                            f"lists {listed} classes")
    if problems:
        raise PlanError("\n".join(f"{protocol.path}: {problem}; allowed: a folder of "
                                   f"{protocol.dataset} with at most model.num_classes classes"
                                   for problem in problems))
