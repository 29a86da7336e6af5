"""The bundled default data set: the UCI handwritten digits, installed with the project.

1797 real 8 x 8 grayscale scans of handwritten digits (E. Alpaydin, C. Kaynak, "Optical
Recognition of Handwritten Digits", UCI Machine Learning Repository, 1998, CC BY 4.0; the copy
scikit-learn ships as `load_digits`). They are stored losslessly as PNGs in CUB-200-2011's layout
(`transfg/data/digits/`), so the audit's default protocol runs anywhere, with no download, through
the same reader as CUB. Split: every third image (original index divisible by 3) is a test image:
1198 train, 599 test, 10 classes.

Regenerate (needs scikit-learn, which the project itself does not depend on):
    python -m transfg.data.bundled
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).parent / "digits"


def write_digits(images: np.ndarray, targets: np.ndarray, root: Path = ROOT) -> None:
    """images (N, 8, 8) with values 0..16, targets (N,) 0..9 -> CUB layout under `root`."""
    lines: dict[str, list[str]] = {
        "images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    for i, (image, target) in enumerate(zip(images, targets, strict=True)):
        image_id, relative = i + 1, f"{target}/{i:04d}.png"
        path = root / "images" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.round(np.asarray(image, dtype=np.float64) * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(path, optimize=True)
        lines["images.txt"].append(f"{image_id} {relative}")
        lines["image_class_labels.txt"].append(f"{image_id} {target + 1}")
        lines["train_test_split.txt"].append(f"{image_id} {int(i % 3 != 0)}")
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")
    (root / "classes.txt").write_text("".join(f"{d + 1} digit {d}\n" for d in range(10)))


if __name__ == "__main__":
    from sklearn.datasets import load_digits

    digits = load_digits()
    write_digits(digits.images, digits.target)
    print(f"wrote {len(digits.target)} images to {ROOT}")
