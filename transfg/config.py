"""The model configuration: one frozen dataclass shared by the Jittor and PyTorch models.

Defaults are the official code's (docs/official-code.md); `vit_b16()` is the paper's backbone and
`tiny()` shrinks everything for tests and smoke runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Split = Literal["overlap", "non-overlap"]
Variant = Literal["transfg", "vit"]
PosembResize = Literal["bilinear-align-corners"]

SPLITS = ("overlap", "non-overlap")
VARIANTS = ("transfg", "vit")
POSEMB_RESIZE_MODES = ("bilinear-align-corners",)


@dataclass(frozen=True)
class ModelConfig:
    variant: Variant = "transfg"  # "vit": the plain ViT baseline (12 blocks, encoder_norm, head)
    image_size: int = 448  # the paper's input (304 for iNat2017)
    num_classes: int = 200  # CUB-200-2011
    split: Split = "overlap"  # patch embedding: stride = slide_step, or stride = patch_size
    slide_step: int = 12  # overlap stride, as the paper
    patch_size: int = 16
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_heads: int = 12
    num_layers: int = 12  # TransFG: 11 plain blocks + part_layer; ViT: 12 blocks
    dropout_rate: float = 0.1  # after the embeddings and inside the MLP
    attention_dropout_rate: float = 0.0  # on the attention probabilities and the out projection
    layer_norm_eps: float = 1e-6
    # The pretrained 14 x 14 grid is resized to this model's grid in this mode; recorded, never a
    # library default (the official code: scipy.ndimage.zoom(order=1) = bilinear, corners aligned).
    posemb_resize: PosembResize = "bilinear-align-corners"
    # Losses (docs/official-code.md, "Losses").
    smoothing: float = 0.0  # label smoothing; 0 = plain cross-entropy, as the official default
    # The contrastive loss on the CLS feature: on in the official TransFG; the paper's ViT baseline
    # is trained without it (the Jittor reproduction's "ViT" kept it), so say which you mean.
    contrastive: bool = True
    alpha: float = 0.4  # contrastive margin for negative pairs (the official code hard-codes 0.4)

    def __post_init__(self) -> None:
        errors = list(self._errors())
        if errors:
            raise ValueError("invalid ModelConfig: " + "; ".join(errors))

    def _errors(self):
        if self.variant not in VARIANTS:
            yield f"variant={self.variant!r}, allowed: {', '.join(VARIANTS)}"
        if self.split not in SPLITS:
            yield f"split={self.split!r}, allowed: {', '.join(SPLITS)}"
        if self.posemb_resize not in POSEMB_RESIZE_MODES:
            yield f"posemb_resize={self.posemb_resize!r}, allowed: {', '.join(POSEMB_RESIZE_MODES)}"
        for name in ("image_size", "num_classes", "slide_step", "patch_size", "hidden_size",
                     "mlp_dim", "num_heads", "num_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                yield f"{name}={getattr(self, name)!r}, allowed: a positive integer"
        if self.image_size < self.patch_size:
            yield f"image_size={self.image_size} is smaller than patch_size={self.patch_size}"
        if self.hidden_size % self.num_heads:
            yield f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
        if self.variant == "transfg" and self.num_layers < 2:
            yield f"num_layers={self.num_layers}: TransFG needs at least 2 (blocks + part_layer)"
        for name in ("dropout_rate", "attention_dropout_rate", "smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                yield f"{name}={getattr(self, name)!r}, allowed: 0 <= value < 1"
        if not 0.0 <= self.alpha <= 2.0:
            yield f"alpha={self.alpha!r}, allowed: 0 <= alpha <= 2 (a cosine margin)"

    @property
    def stride(self) -> int:
        """Patch-embedding stride in input pixels."""
        return self.slide_step if self.split == "overlap" else self.patch_size

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per side (rows, cols): (H - 16) // step + 1 overlap, H // 16 non-overlap."""
        if self.split == "overlap":
            side = (self.image_size - self.patch_size) // self.slide_step + 1
        else:
            side = self.image_size // self.patch_size
        return side, side

    @property
    def num_tokens(self) -> int:
        """Patches plus the CLS token (1370 at 448 px overlap, 785 non-overlap)."""
        rows, cols = self.grid
        return rows * cols + 1

    def patch_box(self, index: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in input pixels of patch `index` (row-major, CLS excluded),
        as the Part Selection Module's `part_inx` numbers patches."""
        rows, cols = self.grid
        if not 0 <= index < rows * cols:
            raise IndexError(f"patch index {index} outside the {rows} x {cols} grid")
        top, left = index // cols * self.stride, index % cols * self.stride
        return left, top, left + self.patch_size, top + self.patch_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(known))}")
        return cls(**data)


def vit_b16(**changes: Any) -> ModelConfig:
    """ViT-B/16 (Dosovitskiy et al. 2021, Table 1: hidden 768, MLP 3072, 12 heads, 12 layers)."""
    return ModelConfig(**changes)


def tiny(**changes: Any) -> ModelConfig:
    """A model small enough for CPU tests: 64 px input, 4 layers of width 32, 10 classes.

    Overlap (stride 12) gives a 5 x 5 grid (26 tokens); non-overlap a 4 x 4 grid (17 tokens).
    """
    base = dict(image_size=64, num_classes=10, hidden_size=32, mlp_dim=64, num_heads=4,
                num_layers=4, dropout_rate=0.0)
    return ModelConfig(**{**base, **changes})
