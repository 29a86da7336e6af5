"""The official transform chains against ours: for each dataset, the torchvision chains that the
official `utils/data_utils.py: get_loader` builds (called as train.py calls it, on tiny copies of
the datasets in their real layouts) and our EvalTransform / TrainTransform, on the same images.

    python bench/official_transforms.py --out FOLDER [--seeds 50] [--official CHECKOUT]

Needs the real torchvision (the GPU machine's image has it; it cannot be imported beside the CPU
build of torch the project pins), and prints "skipped: torchvision not importable" and exits 0
where it is missing; the official checkout comes from --official, TRANSFG_OFFICIAL, or
../shared/reference/TACJu-TransFG beside this checkout (skipped, also with status 0, where none
is there). One line per dataset and chain; official-transforms.json and .md in --out; exit
status 1 on a mismatch.

- Eval chains (Resize, CenterCrop, ToTensor, Normalize) must give our output to float32 rounding.
- Train chains get the same random decisions as ours: our Generator's draws are recorded (crop
  top, crop left, flip, then AutoAugment's sub-policy and, per operation, whether it applies and
  its sign) and the official code's own random calls are answered from that record, in call
  order, by monkeypatching them (`replaying`): torch.randint (RandomCrop's top, then left),
  torch.rand (RandomHorizontalFlip), and utils/autoaugment.py's random.randint (sub-policy),
  random.random (apply or not) and random.choice([-1, 1]) (sign: +1 where our draw is below
  0.5, as transforms.py decides). A call of another kind, with other bounds, or one draw too many
  or too few is a mismatch of its own. Pixels must then agree to float32 rounding.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
from PIL import Image

# the datasets' tiny layouts: tests/dataset_layouts.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import write_results
from dataset_layouts import WRITERS

from transfg.data.readers import dataset_spec
from transfg.data.transforms import IMAGENET_POLICY, EvalTransform, TrainTransform
from transfg.official import DATASET_NAMES
from transfg.official_compat import importable, install

VARIABLE = "TRANSFG_OFFICIAL"
BESIDE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "TACJu-TransFG"
TOLERANCE = 1e-6  # a few float32 steps at the normalised values' size (|x| < 2.7)


# ----------------------------------------------------------------- one record of random draws

@dataclass(frozen=True)
class Draw:
    kind: str  # "integers" (value in [low, high)) or "random" (value in [0, 1))
    value: int | float
    low: int = 0
    high: int = 0


class RecordingGenerator:
    """A numpy Generator for transforms.py that keeps every draw made of it, in order; the values
    are the Generator's own, so our transforms give exactly what they give in training."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.draws: list[Draw] = []

    def integers(self, low: int, high: int | None = None) -> int:
        low, high = (0, low) if high is None else (low, high)
        value = int(self.rng.integers(low, high))
        self.draws.append(Draw("integers", value, low, high))
        return value

    def random(self) -> float:
        value = float(self.rng.random())
        self.draws.append(Draw("random", value))
        return value


class ReplayError(AssertionError):
    """The official code asked for a draw that ours did not make (kind, bounds or count)."""


class Replay:
    """The official code's random calls, answered from our draws in the order it makes them."""

    def __init__(self, draws: list[Draw]):
        self.draws, self.used = draws, 0

    def _next(self, asked: str, kind: str, low: int = 0, high: int = 0) -> int | float:
        if self.used == len(self.draws):
            raise ReplayError(f"the official code asked for {asked} after all {len(self.draws)} "
                              "of our draws were used")
        draw = self.draws[self.used]
        if draw.kind != kind or (kind == "integers" and (draw.low, draw.high) != (low, high)):
            raise ReplayError(f"draw {self.used + 1}: the official code asked for {asked}, "
                              f"ours was {draw}")
        self.used += 1
        return draw.value

    # torch, as torchvision's RandomCrop.get_params and RandomHorizontalFlip call it
    def torch_randint(self, low, high, size, **kwargs):
        import torch

        return torch.tensor([self._next(f"torch.randint({low}, {high})", "integers", low, high)])

    def torch_rand(self, *size, **kwargs):
        import torch

        # float64 keeps our value exactly, so `< p` decides as ours did
        return torch.tensor([self._next("torch.rand(1)", "random")], dtype=torch.float64)

    # Python's random, as utils/autoaugment.py calls it
    def randint(self, a: int, b: int) -> int:
        return self._next(f"random.randint({a}, {b})", "integers", a, b + 1)

    def random(self) -> float:
        return self._next("random.random()", "random")

    def choice(self, options):
        if list(options) != [-1, 1]:
            raise ReplayError(f"random.choice({options!r}): only signs are replayed")
        return 1 if self._next("random.choice([-1, 1])", "random") < 0.5 else -1

    def finish(self) -> None:
        if self.used != len(self.draws):
            raise ReplayError(f"the official code used {self.used} of our {len(self.draws)} "
                              f"draws; the next unused: {self.draws[self.used]}")


@contextlib.contextmanager
def replaying(draws: list[Draw], autoaugment: ModuleType) -> Iterator[Replay]:
    """Within: torch.randint, torch.rand and `autoaugment`'s `random` answer from `draws`; on a
    clean exit every draw must have been used."""
    import torch

    replay = Replay(draws)
    saved = torch.randint, torch.rand, autoaugment.random
    torch.randint, torch.rand, autoaugment.random = (replay.torch_randint, replay.torch_rand,
                                                     replay)
    try:
        yield replay
    finally:
        torch.randint, torch.rand, autoaugment.random = saved
    replay.finish()


# --------------------------------------------------------------------------- the comparison

def official_loaders(data_utils: ModuleType, name: str, root: Path) -> tuple:
    """(train loader, test loader) from the official get_loader, called as train.py calls it on
    one process, for our dataset `name` laid out at `root`."""
    args = SimpleNamespace(dataset=DATASET_NAMES[name], data_root=str(root), local_rank=-1,
                           train_batch_size=1, eval_batch_size=1)
    # iNat2017 prints "Files already downloaded"; the loaders ask for 4 workers, which torch
    # warns about on small machines, but they are never iterated.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        return data_utils.get_loader(args)


def official_chains(data_utils: ModuleType, folder: Path) -> dict[str, dict[str, Callable]]:
    """{dataset: {"train": chain, "test": chain}}: the transforms that the official get_loader
    gives each dataset, built on tiny layouts of them in `folder`."""
    chains = {}
    for name in DATASET_NAMES:
        WRITERS[name](folder / name)
        train, test = official_loaders(data_utils, name, folder / name)
        chains[name] = {"train": train.dataset.transform, "test": test.dataset.transform}
    return chains


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth random RGB image (a photo's statistics rather than noise)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(
        size, Image.Resampling.BICUBIC)


def photos() -> list[Image.Image]:
    return [photo((500, 375), 0), photo((375, 500), 1)]  # landscape and portrait


@dataclass
class Check:
    dataset: str
    chain: str  # "eval" or "train"
    samples: int = 0
    max_abs_diff: float = 0.0
    problems: list[str] = field(default_factory=list)
    sub_policies: set[int] = field(default_factory=set)  # AutoAugment's, where the chain has it

    @property
    def ok(self) -> bool:
        return self.samples > 0 and not self.problems and self.max_abs_diff <= TOLERANCE

    def add(self, official, ours: np.ndarray) -> None:
        official = np.asarray(official)
        self.samples += 1
        if official.shape != ours.shape:
            self.problems.append(f"shape {official.shape} (official) vs {ours.shape} (ours)")
        else:
            self.max_abs_diff = max(self.max_abs_diff, float(np.abs(official - ours).max()))

    def line(self) -> str:
        policies = (f", AutoAugment sub-policies {len(self.sub_policies)}/{len(IMAGENET_POLICY)}"
                    if self.sub_policies else "")
        first = f"; {self.problems[0]}" if self.problems else ""
        return (f"{self.dataset:<9} {self.chain:<5} {self.samples:>3} samples{policies}: "
                f"max |diff| {self.max_abs_diff:.1e}  {'ok' if self.ok else 'MISMATCH'}{first}")

    def row(self) -> str:
        return (f"| {self.dataset} | {self.chain} | {self.samples} | {self.max_abs_diff:.1e} | "
                f"{'ok' if self.ok else 'MISMATCH'} |")

    def as_json(self) -> dict:
        return {"dataset": self.dataset, "chain": self.chain, "samples": self.samples,
                "max_abs_diff": self.max_abs_diff, "ok": self.ok, "problems": self.problems,
                "autoaugment_sub_policies": sorted(self.sub_policies)}


def compare(chains: dict[str, dict[str, Callable]], autoaugment: ModuleType,
            images: list[Image.Image], seeds: Iterable[int]) -> list[Check]:
    """Two checks per dataset: its eval chain on every image, and its train chain on every image
    for every seed, with the draws replayed."""
    checks = []
    for name, chain in chains.items():
        spec = dataset_spec(name)
        ours_eval = EvalTransform(spec.resize, spec.crop)
        ours_train = TrainTransform(spec.resize, spec.crop, spec.autoaugment)
        evaluation, train = Check(name, "eval"), Check(name, "train")
        for image in images:
            evaluation.add(chain["test"](image), ours_eval(image))
        for k, image in enumerate(images):
            for seed in seeds:
                rng = RecordingGenerator([seed, k])
                ours = ours_train(image, rng)
                try:
                    with replaying(rng.draws, autoaugment):
                        official = chain["train"](image)
                except Exception as error:  # a crash or a replay mismatch: this sample's result
                    train.problems.append(f"seed {seed}, image {k}: {type(error).__name__}: "
                                          f"{error}")
                    continue
                train.add(official, ours)
                if spec.autoaugment:  # draws: crop top, crop left, flip, sub-policy, ...
                    train.sub_policies.add(int(rng.draws[3].value))
        checks += [evaluation, train]
    return checks


# ------------------------------------------------------------------------------------ main

def skipped(out: Path | None, why: str) -> int:
    print(f"skipped: {why}")
    if out is not None:
        write_results("official-transforms", {"status": "skipped", "reason": why},
                      f"skipped: {why}", folder=out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for official-transforms.json and .md")
    parser.add_argument("--seeds", type=int, default=50,
                        help="train-chain draws per image (default 50)")
    parser.add_argument("--official", type=Path, help=f"the official checkout (default: "
                                                      f"${VARIABLE}, else {BESIDE})")
    args = parser.parse_args()
    why = importable("torchvision")
    if why is not None:
        return skipped(args.out, f"torchvision not importable ({why}); the official chains "
                                 "need the real torchvision")
    folder = args.official or (Path(os.environ[VARIABLE]) if os.environ.get(VARIABLE) else BESIDE)
    if args.official and not (folder / "utils" / "data_utils.py").is_file():
        parser.error(f"--official {folder}: no utils/data_utils.py there")
    if not (folder / "utils" / "data_utils.py").is_file():
        return skipped(args.out, f"the official TransFG code is not at {folder} (give "
                                 f"--official or set {VARIABLE})")
    deviations = install()  # stand-ins only for what is missing; torchvision is the real one
    sys.path.insert(0, str(folder))
    data_utils = importlib.import_module("utils.data_utils")
    autoaugment = importlib.import_module("utils.autoaugment")
    import torchvision

    with tempfile.TemporaryDirectory() as layouts:
        chains = official_chains(data_utils, Path(layouts))
    checks = compare(chains, autoaugment, photos(), range(args.seeds))
    for check in checks:
        print(check.line())
    ok = all(check.ok for check in checks)
    if args.out is not None:
        table = "\n".join(["| dataset | chain | samples | max abs diff | ok |",
                           "|---|---|---|---|---|", *(check.row() for check in checks)])
        write_results("official-transforms", {
            "status": "ok" if ok else "mismatch", "torchvision": torchvision.__version__,
            "official_checkout": str(folder), "deviations": deviations, "seeds": args.seeds,
            "tolerance": TOLERANCE, "checks": [c.as_json() for c in checks]}, table,
            folder=args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
