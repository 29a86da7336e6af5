"""The official transforms in PIL + numpy, shared by both frameworks.

Train: resize (R, R) bilinear -> random crop C -> horizontal flip (p 0.5) -> [AutoAugment, ImageNet
policy] -> to float in [0, 1] -> normalise with ImageNet mean/std. Eval: resize (R, R) -> center
crop C -> the same normalisation. The paper's sizes are R=600, C=448 (iNat2017: 400, 304); each
dataset's spec carries them, tiny configs pass their own.

Every random decision is drawn from the numpy Generator passed in, in a fixed order (crop top,
crop left, flip, then AutoAugment's sub-policy, and per operation whether it applies and its sign),
so that the same Generator state gives the same image in any process or framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FILL = (128, 128, 128)  # AutoAugment's fill colour for pixels moved in from outside


class ImageError(ValueError):
    """An image file that cannot be decoded; the message names the file, `reason` says why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def decode(path: str | Path) -> tuple[Image.Image, str]:
    """(the image converted to RGB, its mode as stored): decoded fully, so a truncated file fails
    here. Grayscale, CMYK, palette and RGBA copies occur in users' datasets."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB"), image.mode
    except FileNotFoundError:
        raise ImageError(path, "missing image file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(path, f"cannot decode image ({error})") from None


def load_rgb(path: str | Path) -> Image.Image:
    """The image as RGB; raises ImageError naming the file for anything undecodable."""
    return decode(path)[0]


def resize(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling.BILINEAR)


def crop(image: Image.Image, top: int, left: int, size: int) -> Image.Image:
    return image.crop((left, top, left + size, top + size))


def center_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of a centred size x size window, rounded as torchvision's CenterCrop does."""
    return round((height - size) / 2.0), round((width - size) / 2.0)


def normalize(image: Image.Image) -> np.ndarray:
    """(3, H, W) float32: pixel / 255, minus mean, divided by std (ToTensor + Normalize)."""
    x = np.asarray(image, dtype=np.float32) / np.float32(255)
    return ((x - MEAN) / STD).transpose(2, 0, 1).copy()


# ------------------------------------------------------------------------------ AutoAugment

def _enhance(kind):
    return lambda image, m, sign: kind(image).enhance(1 + m * sign)


def _rotate(image: Image.Image, degrees: float, sign: int) -> Image.Image:
    """Counter-clockwise by `degrees` (the policy applies no random sign here), grey fill."""
    rotated = image.convert("RGBA").rotate(degrees)
    grey = Image.new("RGBA", rotated.size, (*FILL, 128))
    return Image.composite(rotated, grey, rotated).convert(image.mode)


def _shear_x(image: Image.Image, m: float, sign: int) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, (1, m * sign, 0, 0, 1, 0),
                           Image.Resampling.BICUBIC, fillcolor=FILL)


# operation: (function(image, magnitude, sign), magnitudes by index 0..9, draws a random sign)
OPERATIONS = {
    "shearX": (_shear_x, np.linspace(0, 0.3, 10), True),
    "rotate": (_rotate, np.linspace(0, 30, 10), False),
    "color": (_enhance(ImageEnhance.Color), np.linspace(0.0, 0.9, 10), True),
    "contrast": (_enhance(ImageEnhance.Contrast), np.linspace(0.0, 0.9, 10), True),
    "sharpness": (_enhance(ImageEnhance.Sharpness), np.linspace(0.0, 0.9, 10), True),
    "posterize": (lambda image, m, sign: ImageOps.posterize(image, int(m)),
                  np.round(np.linspace(8, 4, 10)).astype(int), False),
    "solarize": (lambda image, m, sign: ImageOps.solarize(image, m), np.linspace(256, 0, 10),
                 False),
    "autocontrast": (lambda image, m, sign: ImageOps.autocontrast(image), [0] * 10, False),
    "equalize": (lambda image, m, sign: ImageOps.equalize(image), [0] * 10, False),
    "invert": (lambda image, m, sign: ImageOps.invert(image), [0] * 10, False),
}

# The ImageNet policy (Cubuk et al., "AutoAugment", CVPR 2019, appendix) as the official TransFG
# code lists it: 24 sub-policies of two operations, (probability, operation, magnitude index
# 0..9), each drawn with probability 1/24. DeepVoltaire's AutoAugment, which the official code
# copies, has a 25th that repeats the third; TransFG's copy leaves it out.
IMAGENET_POLICY = [
    ((0.4, "posterize", 8), (0.6, "rotate", 9)),
    ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)),
    ((0.6, "posterize", 7), (0.6, "posterize", 6)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)),
    ((0.4, "equalize", 4), (0.8, "rotate", 8)),
    ((0.6, "solarize", 3), (0.6, "equalize", 7)),
    ((0.8, "posterize", 5), (1.0, "equalize", 2)),
    ((0.2, "rotate", 3), (0.6, "solarize", 8)),
    ((0.6, "equalize", 8), (0.4, "posterize", 6)),
    ((0.8, "rotate", 8), (0.4, "color", 0)),
    ((0.4, "rotate", 9), (0.6, "equalize", 2)),
    ((0.0, "equalize", 7), (0.8, "equalize", 8)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)),
    ((0.8, "rotate", 8), (1.0, "color", 2)),
    ((0.8, "color", 8), (0.8, "solarize", 7)),
    ((0.4, "sharpness", 7), (0.6, "invert", 8)),
    ((0.6, "shearX", 5), (1.0, "equalize", 9)),
    ((0.4, "color", 0), (0.6, "equalize", 3)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)),
    ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)),
]


def autoaugment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random sub-policy of the ImageNet policy; each of its two operations applies with its
    probability, signed operations with a random sign."""
    for probability, name, index in IMAGENET_POLICY[rng.integers(len(IMAGENET_POLICY))]:
        if rng.random() < probability:
            function, magnitudes, signed = OPERATIONS[name]
            sign = (1 if rng.random() < 0.5 else -1) if signed else 1
            image = function(image, magnitudes[index], sign)
    return image


# ------------------------------------------------------------------------------- pipelines

@dataclass(frozen=True)
class TrainTransform:
    resize: int = 600
    crop: int = 448
    autoaugment: bool = False

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        if self.crop > self.resize:
            raise ValueError(f"crop {self.crop} is larger than resize {self.resize}")
        image = resize(image, self.resize)
        top = int(rng.integers(0, self.resize - self.crop + 1))
        left = int(rng.integers(0, self.resize - self.crop + 1))
        image = crop(image, top, left, self.crop)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.autoaugment:
            image = autoaugment(image, rng)
        return normalize(image)


@dataclass(frozen=True)
class EvalTransform:
    resize: int = 600
    crop: int = 448

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> np.ndarray:
        image = resize(image, self.resize)
        return normalize(crop(image, *center_offsets(self.resize, self.resize, self.crop),
                              self.crop))

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The region (left, top, right, bottom) of an original width x height image that the
        network sees, in original pixels: the demo maps patch boxes back through it."""
        top, left = center_offsets(self.resize, self.resize, self.crop)
        sx, sy = width / self.resize, height / self.resize
        return left * sx, top * sy, (left + self.crop) * sx, (top + self.crop) * sy


def resize_for(crop_size: int) -> int:
    """The resize that keeps the paper's 600/448 ratio for another crop size (tiny configs)."""
    return round(crop_size * 600 / 448)
