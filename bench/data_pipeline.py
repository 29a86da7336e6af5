"""Training-pipeline throughput per worker, beside a plain-PIL loop doing the same operations.

Generates photo-like 500 x 375 JPEGs (CUB's typical size), then times, interleaved in one run:
- pipeline: our TrainView (decode -> RGB -> resize 600 bilinear -> random crop 448 -> flip
  [-> AutoAugment] -> normalise), one process = one loader worker;
- plain PIL: the same operations written as a bare loop with Python's `random` (with
  --autoaugment both call the same AutoAugment function: the comparison is of the pipeline's
  own overhead, seeding and indexing, not of PIL's operations).
Prints images/s for both, their ratio, and how many loader workers one GPU needs at a given
training speed (images/s per GPU; pass yours with --gpu-images-per-s).

    .venv/bin/python bench/data_pipeline.py [--images 48] [--repeats 3] [--autoaugment]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path

import numpy as np
from common import RESULTS, median_seconds, write_results
from PIL import Image

from transfg.data import transforms
from transfg.data.pipeline import TrainView
from transfg.data.readers import Sample
from transfg.data.transforms import MEAN, STD, TrainTransform

# Published training speeds of TransFG at 448 px overlap, per GPU (images/s):
# the paper, 10k steps of 4 GPUs x 16 images in 5.38 h; the Jittor reproduction report,
# 10k steps of batch 4 on one GPU in 2.17 h.
PUBLISHED_GPU_RATES = {"paper (4 GPUs x 16, 5.38 h)": 10_000 * 64 / (5.38 * 3600) / 4,
                       "Jittor report (1 GPU x 4, 2.17 h)": 10_000 * 4 / (2.17 * 3600)}


AUGMENT_RNG = np.random.default_rng(0)


def make_jpegs(folder: Path, n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        small = rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC).save(path, quality=90)
        samples.append(Sample(path, i % 10))
    return samples


def plain_pil(samples: list[Sample], autoaugment: bool) -> None:
    for sample in samples:
        with Image.open(sample.path) as image:
            image = image.convert("RGB").resize((600, 600), Image.Resampling.BILINEAR)
        top, left = random.randint(0, 152), random.randint(0, 152)
        image = image.crop((left, top, left + 448, top + 448))
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if autoaugment:
            image = transforms.autoaugment(image, AUGMENT_RNG)
        x = np.asarray(image, dtype=np.float32) / np.float32(255)
        ((x - MEAN) / STD).transpose(2, 0, 1).copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--autoaugment", action="store_true")
    parser.add_argument("--gpu-images-per-s", type=float, action="append", default=[],
                        help="a training speed to size the workers for (repeatable)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        samples = make_jpegs(Path(folder), args.images)
        transform = TrainTransform(600, 448, autoaugment=args.autoaugment)
        epoch = iter(range(1_000_000))

        def pipeline():
            view = TrainView(samples, transform, epoch=next(epoch), order_seed=0, augment_seed=0,
                             batch=1)
            for i in range(len(view)):
                view[i]

        seconds = median_seconds({"plain_pil": lambda: plain_pil(samples, args.autoaugment),
                                  "pipeline": pipeline}, warmup=1, repeats=args.repeats)
    rates = {name: args.images / s for name, s in seconds.items()}
    targets = dict(PUBLISHED_GPU_RATES)
    targets |= {f"given ({r:g} img/s)": r for r in args.gpu_images_per_s}
    workers = {name: math.ceil(rate / rates["pipeline"]) for name, rate in targets.items()}
    aa = " + AutoAugment" if args.autoaugment else ""
    table = "\n".join([
        f"{args.images} JPEGs of 500 x 375 -> resize 600 -> crop 448 -> flip{aa} -> normalise;"
        f" one process; median of {args.repeats} passes\n",
        "| loop | images/s per worker |", "|---|---|",
        *(f"| {name} | {rate:.1f} |" for name, rate in rates.items()),
        f"| ratio pipeline / plain PIL | {rates['pipeline'] / rates['plain_pil']:.2f} |",
        "", "| GPU training speed | img/s per GPU | loader workers needed |", "|---|---|---|",
        *(f"| {name} | {targets[name]:.1f} | {n} |" for name, n in workers.items())])
    print(table)
    name = "data-pipeline" + ("-autoaugment" if args.autoaugment else "")
    path = write_results(name, {"images": args.images, "rates": rates,
                                "gpu_rates": targets, "workers_needed": workers}, table,
                         args.results)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
