"""What the Part Selection Module picks: a checkpoint's top-5 prediction for an image, the patches
its heads select boxed on the user's original image, and the CLS attention rollout as a heatmap.

The image goes through exactly the evaluation transform of the run (`make_transforms`: resize,
center crop, normalisation), so the prediction here equals the one the evaluation recorded for
the same image and checkpoint. Patch i of the network's input sits at (row x stride,
col x stride), 16 px wide (`ModelConfig.patch_box`); it is mapped back through the crop offset
and the resize onto the original image.

Untrusted input: images are checked before decoding (size in bytes, pixel count: a
decompression bomb is refused from its header) and checkpoints are plain npz read without pickle.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from transfg.config import ModelConfig
from transfg.data.readers import DATASETS, dataset_spec
from transfg.data.transforms import EvalTransform, center_offsets
from transfg.run_files import SPEC
from transfg.scores import softmax_top
from transfg.weights import load_checkpoint

MAX_PIXELS = 40_000_000  # refuse larger images from their header, before decoding
MAX_BYTES = 20 * 1024 * 1024


class ExplainError(ValueError):
    """Bad input (image, checkpoint, dataset): the message says which and why."""


@dataclass
class Bundle:
    """A loaded checkpoint ready to explain images."""
    model: Any  # transfg.torch.model.VisionTransformer in eval mode (torch imported lazily)
    config: ModelConfig
    transform: EvalTransform
    class_names: list[str] | None
    checkpoint: str
    dataset: str | None
    data_root: str | None  # the dataset's folder, from the run folder unless given


@dataclass
class Explanation:
    top5: list[dict]  # {class, name, score}
    boxes: list[tuple[float, float, float, float]]  # per head, on the original image
    patches: list[int]  # the selected patch index per head
    heatmap: np.ndarray  # (rows, cols) CLS rollout over the patches, max 1
    size: tuple[int, int]  # original (width, height)
    crop_box: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        return {"top5": self.top5, "boxes": [list(map(float, b)) for b in self.boxes],
                "patches": self.patches, "size": list(self.size),
                "crop_box": list(map(float, self.crop_box))}


def run_spec(checkpoint: Path) -> dict | None:
    """The spec of the run a checkpoint belongs to (RUN_DIR/checkpoints/last.npz)."""
    spec = checkpoint.resolve().parent.parent / SPEC
    try:
        return json.loads(spec.read_text())
    except (OSError, ValueError):
        return None


def load(checkpoint: str | Path, dataset: str | None = None, data_root: str | None = None
         ) -> Bundle:
    """The checkpoint (either framework's: both write the same npz) as a PyTorch model."""

    from transfg.data.pipeline import make_transforms
    from transfg.torch.model import VisionTransformer
    from transfg.torch.weights import load_state

    path = Path(checkpoint)
    try:
        state, config, _ = load_checkpoint(path)
    except FileNotFoundError:
        raise ExplainError(f"{path}: no such checkpoint") from None
    except (ValueError, OSError, KeyError) as error:
        raise ExplainError(f"{path}: not a TransFG checkpoint ({error})") from None
    spec = run_spec(path) or {}
    dataset = dataset or spec.get("dataset")
    data_root = data_root or spec.get("data_root")
    if dataset is None:
        raise ExplainError(f"{path}: not inside a run folder; give --dataset "
                           f"({', '.join(DATASETS)}) so the evaluation transform is known")
    if dataset not in DATASETS:
        raise ExplainError(f"--dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    _, transform = make_transforms(dataset_spec(dataset), config)
    model = VisionTransformer(config)
    try:
        load_state(model, state, str(path))
    except (ValueError, KeyError) as error:
        raise ExplainError(f"{path}: does not fit its model ({error})") from None
    model.eval()
    names = None
    if data_root:
        try:
            names = dataset_spec(dataset).class_names(Path(data_root))
        except Exception:  # names are a nicety; a moved dataset must not stop the explanation
            names = None
    if names is not None and len(names) != config.num_classes:
        raise ExplainError(f"{path}: the checkpoint has {config.num_classes} classes, the "
                           f"{dataset} dataset at {data_root} has {len(names)}")
    return Bundle(model, config, transform, names, str(path), dataset, data_root)


def open_image(data: bytes | str | Path, max_bytes: int = MAX_BYTES,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an uploaded or local image as RGB, refusing non-images, oversized files and
    decompression bombs (checked from the header, before any pixel is decoded)."""
    if isinstance(data, str | Path):
        try:
            size = Path(data).stat().st_size
        except OSError as error:
            raise ExplainError(f"{data}: cannot be read ({error.strerror})") from None
        if size > max_bytes:
            raise ExplainError(f"{data}: {size} bytes, above the {max_bytes}-byte limit")
        data = Path(data).read_bytes()
    if len(data) > max_bytes:
        raise ExplainError(f"the file has {len(data)} bytes, above the {max_bytes}-byte limit")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ExplainError(f"the image is {width} x {height} pixels, above the "
                                   f"{max_pixels}-pixel limit (a decompression bomb?)")
            image.load()
            return image.convert("RGB")
    except ExplainError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ExplainError(f"not an image this program can read ({error})") from None


def rollout(attn_weights: list[np.ndarray]) -> np.ndarray:
    """(B, H, T-1): the CLS row of A_{n-1} ... A_0 over the patches, per head: what the Part
    Selection Module takes its argmax of (for the ViT variant, over all blocks)."""
    row = attn_weights[-1][:, :, :1, :]  # (B, H, 1, T)
    for weights in reversed(attn_weights[:-1]):
        row = row @ weights  # (B, H, 1, T)
    return row[:, :, 0, 1:]


def input_box_to_original(box: tuple[int, int, int, int], transform: EvalTransform,
                          width: int, height: int) -> tuple[float, float, float, float]:
    """A box in the network's input (the center crop of the resized image) -> original pixels."""
    top, left = center_offsets(transform.resize, transform.resize, transform.crop)
    sx, sy = width / transform.resize, height / transform.resize
    x0, y0, x1, y1 = box
    return (x0 + left) * sx, (y0 + top) * sy, (x1 + left) * sx, (y1 + top) * sy


def explain(bundle: Bundle, image: Image.Image) -> Explanation:
    import torch

    x = torch.from_numpy(bundle.transform(image)[None])
    with torch.no_grad():  # per thread: the demo serves each request on its own thread
        logits, out = bundle.model(x)
    classes, scores = softmax_top(logits.double().numpy())
    top5 = [{"class": int(c), "score": float(p),
             "name": bundle.class_names[c] if bundle.class_names and c < len(
                 bundle.class_names) else f"class {int(c)}"}
            for c, p in zip(classes[0], scores[0], strict=True)]
    attn = [w.numpy() for w in out["attn_weights"]]
    heads = rollout(attn)[0]  # (H, T-1)
    if "part_inx" in out:
        patches = [int(i) for i in out["part_inx"][0]]
    else:  # the ViT baseline has no selection: the rollout's argmax per head, for comparison
        patches = [int(i) for i in heads.argmax(-1)]
    width, height = image.size
    boxes = [input_box_to_original(bundle.config.patch_box(i), bundle.transform, width, height)
             for i in patches]
    rows, cols = bundle.config.grid
    heat = heads.mean(0).reshape(rows, cols)
    heat = heat / heat.max() if heat.max() > 0 else heat
    return Explanation(top5, boxes, patches, heat, (width, height),
                       bundle.transform.crop_box(width, height))


def scaled(explanation: Explanation, factor: float) -> Explanation:
    """The same explanation for the image resized by `factor` (to draw on a larger copy)."""
    def scale(box):
        return tuple(v * factor for v in box)
    width, height = explanation.size
    return dataclasses.replace(explanation, boxes=[scale(b) for b in explanation.boxes],
                               crop_box=scale(explanation.crop_box),
                               size=(round(width * factor), round(height * factor)))


def draw_boxes(image: Image.Image, explanation: Explanation) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = max(1, round(min(image.size) / 200))
    for box in explanation.boxes:
        draw.rectangle(box, outline=(230, 0, 0), width=line)
    draw.rectangle(explanation.crop_box, outline=(255, 255, 255), width=1)
    return out


def draw_heatmap(image: Image.Image, explanation: Explanation) -> Image.Image:
    """The rollout over the network's view, stretched onto the cropped region, blended red."""
    left, top, right, bottom = (round(v) for v in explanation.crop_box)
    heat = Image.fromarray((255 * explanation.heatmap).astype(np.uint8))
    heat = heat.resize((max(right - left, 1), max(bottom - top, 1)), Image.Resampling.BILINEAR)
    red = Image.new("RGB", heat.size, (255, 0, 0))
    region = image.crop((left, top, right, bottom))
    blended = Image.composite(red, region, heat.point(lambda v: int(v * 0.6)))
    out = image.copy()
    out.paste(blended, (left, top))
    return out
