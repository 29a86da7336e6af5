"""Weights as one framework-neutral numpy state dict: shapes, initialisation, Google's ViT npz,
position-embedding resampling, and whole-model checkpoints that cannot run code on load.

A state dict maps the models' parameter names (the same in `transfg/torch/` and
`transfg/jittor/`) to float32 arrays. Each framework's `weights.py` loads one into a model and
exports a model back, so a model moves between frameworks with identical weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from transfg.config import ModelConfig
from transfg.run_files import write_atomic

log = logging.getLogger("transfg")

State = dict[str, np.ndarray]
PartLayerInit = Literal["random", "pretrained"]
CHECKPOINT_FORMAT = "transfg-checkpoint/1"


# ---------------------------------------------------------------------------- shapes and init

def block_shapes(prefix: str, config: ModelConfig) -> dict[str, tuple[int, ...]]:
    d, m = config.hidden_size, config.mlp_dim
    shapes: dict[str, tuple[int, ...]] = {
        f"{prefix}.{norm}.{p}": (d,) for norm in ("attention_norm", "ffn_norm")
        for p in ("weight", "bias")}
    shapes |= {f"{prefix}.ffn.fc1.weight": (m, d), f"{prefix}.ffn.fc1.bias": (m,),
               f"{prefix}.ffn.fc2.weight": (d, m), f"{prefix}.ffn.fc2.bias": (d,)}
    for name in ("query", "key", "value", "out"):
        shapes |= {f"{prefix}.attn.{name}.weight": (d, d), f"{prefix}.attn.{name}.bias": (d,)}
    return shapes


def state_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model `config` describes, with its shape."""
    d, p, c = config.hidden_size, config.patch_size, config.num_classes
    shapes = {
        "transformer.embeddings.position_embeddings": (1, config.num_tokens, d),
        "transformer.embeddings.cls_token": (1, 1, d),
        "transformer.embeddings.patch_embeddings.weight": (d, 3, p, p),
        "transformer.embeddings.patch_embeddings.bias": (d,),
    }
    transfg = config.variant == "transfg"
    for i in range(config.num_layers - 1 if transfg else config.num_layers):
        shapes |= block_shapes(f"transformer.encoder.layer.{i}", config)
    if transfg:
        shapes |= block_shapes("transformer.encoder.part_layer", config)
        shapes |= {"transformer.encoder.part_norm.weight": (d,),
                   "transformer.encoder.part_norm.bias": (d,),
                   "part_head.weight": (c, d), "part_head.bias": (c,)}
    else:
        shapes |= {"transformer.encoder.encoder_norm.weight": (d,),
                   "transformer.encoder.encoder_norm.bias": (d,),
                   "head.weight": (c, d), "head.bias": (c,)}
    return shapes


def _fan_in(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:])


def init_state(config: ModelConfig, rng: np.random.Generator) -> State:
    """The official code's initialisation, drawn in numpy so that one rng gives one model in both
    frameworks: LayerNorm 1 / 0; MLP weights xavier-uniform, MLP biases normal(std 1e-6);
    CLS token and position embeddings 0; every other Linear and the patch Conv2d PyTorch's default
    (weight and bias uniform in +-1/sqrt(fan_in)). Parameters are drawn in sorted-name order."""
    state = {}
    shapes = state_shapes(config)
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith(("cls_token", "position_embeddings")):
            value = np.zeros(shape)
        elif "_norm." in name:
            value = np.ones(shape) if name.endswith("weight") else np.zeros(shape)
        elif ".ffn." in name and name.endswith("weight"):
            bound = math.sqrt(6.0 / (shape[0] + shape[1]))  # xavier-uniform
            value = rng.uniform(-bound, bound, shape)
        elif ".ffn." in name:
            value = rng.normal(0.0, 1e-6, shape)
        else:
            weight_shape = shapes[name.rsplit(".", 1)[0] + ".weight"]
            bound = 1.0 / math.sqrt(_fan_in(weight_shape))
            value = rng.uniform(-bound, bound, shape)
        state[name] = value.astype(np.float32)
    return state


def check_state(state: Mapping[str, np.ndarray], config: ModelConfig, source: str) -> None:
    """Raise one ValueError naming every missing, unexpected or mis-shaped entry."""
    expected = state_shapes(config)
    problems = [f"missing {name} {shape}" for name, shape in expected.items() if name not in state]
    problems += [f"unexpected {name}" for name in state if name not in expected]
    for name, shape in expected.items():
        if name in state and tuple(state[name].shape) != shape:
            got = tuple(state[name].shape)
            problems.append(f"{name} has shape {got}, this model needs {shape}")
    if problems:
        hint = ""
        if any("position_embeddings has shape" in p for p in problems):
            hint = (f" (position embeddings fix the token count: this model has "
                    f"{config.num_tokens} tokens for image_size={config.image_size}, "
                    f"split={config.split}; the weights were made for another size or split)")
        raise ValueError(f"{source} does not fit {config.variant} model: "
                         + "; ".join(problems) + hint)


# ---------------------------------------------------------------------- position embeddings

def resize_pos_grid(grid: np.ndarray, new_shape: tuple[int, int],
                    mode: str = "bilinear-align-corners") -> np.ndarray:
    """Resample a (rows, cols, D) grid of position embeddings to (new_rows, new_cols, D).

    bilinear-align-corners: output pixel i sits at input coordinate i * (n_in - 1) / (n_out - 1),
    so the corners map onto the corners; this is what scipy.ndimage.zoom(order=1) computes and what
    the official code calls. Computed in float64 and separably (rows, then columns).
    """
    if mode != "bilinear-align-corners":
        raise ValueError(f"position-embedding resize mode {mode!r}; "
                         "allowed: bilinear-align-corners")
    out = np.asarray(grid, dtype=np.float64)
    for axis, n_out in enumerate(new_shape):
        out = _linear_resample(out, axis, n_out)
    return out


def _linear_resample(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    n_in = x.shape[axis]
    if n_out == n_in:
        return x
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(int), 0, max(n_in - 2, 0))
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, lo, axis=axis) * (1 - frac) + np.take(x, hi, axis=axis) * frac


def resize_pos_embedding(posemb: np.ndarray, config: ModelConfig) -> np.ndarray:
    """(1, 1 + n*n, D) -> (1, config.num_tokens, D); the CLS embedding is kept as it is."""
    cls, grid = posemb[:, :1], posemb[0, 1:]
    side = math.isqrt(grid.shape[0])
    if side * side != grid.shape[0]:
        raise ValueError(f"pretrained position embeddings hold {grid.shape[0]} patches, "
                         "not a square grid")
    new_grid = config.grid
    if (side, side) == new_grid:
        return posemb.astype(np.float32)
    log.info("resizing position embeddings %sx%s -> %sx%s (%s)", side, side, *new_grid,
             config.posemb_resize)
    grid = resize_pos_grid(grid.reshape(side, side, -1), new_grid, config.posemb_resize)
    grid = grid.reshape(1, new_grid[0] * new_grid[1], -1)
    return np.concatenate([cls, grid], axis=1).astype(np.float32)


# -------------------------------------------------------------------- Google's ViT-B_16.npz

def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, refusing pickled objects (which could run code)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable .npz of plain arrays ({error})") from None


def _google_block(npz: Mapping, block: int, prefix: str, config: ModelConfig) -> State:
    """One encoder block: kernels (in, out) -> Linear weights (out, in); biases flattened."""
    root = f"Transformer/encoderblock_{block}"
    attn = f"{root}/MultiHeadDotProductAttention_1"
    d = config.hidden_size
    out = {}
    for name in ("query", "key", "value", "out"):
        # query/key/value kernels are (D, heads, hd), out's is (heads, hd, D): both view as D x D.
        out[f"{prefix}.attn.{name}.weight"] = npz[f"{attn}/{name}/kernel"].reshape(d, d).T
        out[f"{prefix}.attn.{name}.bias"] = npz[f"{attn}/{name}/bias"].reshape(-1)
    for i, fc in ((0, "fc1"), (1, "fc2")):
        out[f"{prefix}.ffn.{fc}.weight"] = npz[f"{root}/MlpBlock_3/Dense_{i}/kernel"].T
        out[f"{prefix}.ffn.{fc}.bias"] = npz[f"{root}/MlpBlock_3/Dense_{i}/bias"]
    for ln, norm in (("LayerNorm_0", "attention_norm"), ("LayerNorm_2", "ffn_norm")):
        out[f"{prefix}.{norm}.weight"] = npz[f"{root}/{ln}/scale"]
        out[f"{prefix}.{norm}.bias"] = npz[f"{root}/{ln}/bias"]
    return out


def google_keys(config: ModelConfig, part_layer_init: PartLayerInit = "random") -> list[str]:
    """The npz keys that building `config` from Google's checkpoint reads."""
    keys = ["embedding/kernel", "embedding/bias", "cls",
            "Transformer/posembed_input/pos_embedding",
            "Transformer/encoder_norm/scale", "Transformer/encoder_norm/bias"]
    n = config.num_layers - 1 if config.variant == "transfg" else config.num_layers
    if config.variant == "transfg" and part_layer_init == "pretrained":
        n += 1
    attn_names = [f"MultiHeadDotProductAttention_1/{x}/{y}"
                  for x in ("query", "key", "value", "out") for y in ("kernel", "bias")]
    other = [f"MlpBlock_3/Dense_{i}/{y}" for i in (0, 1) for y in ("kernel", "bias")]
    other += [f"{ln}/{y}" for ln in ("LayerNorm_0", "LayerNorm_2") for y in ("scale", "bias")]
    for block in range(n):
        keys += [f"Transformer/encoderblock_{block}/{name}" for name in attn_names + other]
    return keys


def from_google(npz: Mapping[str, np.ndarray], config: ModelConfig, rng: np.random.Generator,
                part_layer_init: PartLayerInit = "random", source: str = "npz") -> State:
    """Build a state dict from Google's ViT checkpoint, as the official TransFG code does.

    1. Start from `init_state(config, rng)` (what stays random keeps the official init).
    2. Patch embedding (kernel HWIO -> OIHW), CLS token, position embeddings resized to the grid.
    3. Blocks 0..L-2 (TransFG) or 0..L-1 (ViT) from encoderblock_{n}.
    4. TransFG: part_norm from encoder_norm; part_layer stays random (the official code) unless
       part_layer_init="pretrained" loads it from the last block (a deviation the audit tests);
       part_head keeps its random init. ViT: encoder_norm from encoder_norm; head random.
    `head/*` and `pre_logits/*` in the npz are never used.
    """
    if part_layer_init not in ("random", "pretrained"):
        raise ValueError(f"part_layer_init={part_layer_init!r}; allowed: random, pretrained")
    missing = [key for key in google_keys(config, part_layer_init) if key not in npz]
    if missing:
        shown = ", ".join(missing[:8])
        if len(missing) > 8:
            shown += f" and {len(missing) - 8} more"
        raise KeyError(f"{source}: missing {len(missing)} key(s) needed for a "
                       f"{config.num_layers}-layer {config.variant} model: {shown}")
    p, d, m = config.patch_size, config.hidden_size, config.mlp_dim
    for key, shape in (("embedding/kernel", (p, p, 3, d)),
                       ("Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel", (d, m))):
        if npz[key].shape != shape:
            raise ValueError(f"{source}: {key} has shape {npz[key].shape}, this model needs "
                             f"{shape} (patch_size={p}, hidden_size={d}, mlp_dim={m})")
    state = init_state(config, rng)
    state["transformer.embeddings.patch_embeddings.weight"] = \
        npz["embedding/kernel"].transpose(3, 2, 0, 1)  # (P, P, 3, D) -> (D, 3, P, P)
    state["transformer.embeddings.patch_embeddings.bias"] = npz["embedding/bias"]
    state["transformer.embeddings.cls_token"] = npz["cls"]
    posemb = npz["Transformer/posembed_input/pos_embedding"]
    if posemb.ndim != 3 or posemb.shape[0] != 1:
        raise ValueError(f"{source}: Transformer/posembed_input/pos_embedding has shape "
                         f"{posemb.shape}, expected (1, 1 + n*n, hidden)")
    state["transformer.embeddings.position_embeddings"] = resize_pos_embedding(posemb, config)
    transfg = config.variant == "transfg"
    for block in range(config.num_layers - 1 if transfg else config.num_layers):
        state |= _google_block(npz, block, f"transformer.encoder.layer.{block}", config)
    norm = "part_norm" if transfg else "encoder_norm"
    state[f"transformer.encoder.{norm}.weight"] = npz["Transformer/encoder_norm/scale"]
    state[f"transformer.encoder.{norm}.bias"] = npz["Transformer/encoder_norm/bias"]
    if transfg and part_layer_init == "pretrained":
        state |= _google_block(npz, config.num_layers - 1, "transformer.encoder.part_layer", config)
        log.info("part_layer loaded from encoderblock_%d (deviation from the official code)",
                 config.num_layers - 1)
    state = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}
    check_state(state, config, source)
    return state


def load_google_npz(path: str | os.PathLike, config: ModelConfig, rng: np.random.Generator,
                    part_layer_init: PartLayerInit = "random") -> State:
    return from_google(read_npz(path), config, rng, part_layer_init, source=str(path))


# ------------------------------------------------------------------------------ checkpoints

def save_checkpoint(path: str | Path, state: Mapping[str, np.ndarray], config: ModelConfig,
                    meta: Mapping | None = None,
                    optimizer: Mapping[str, np.ndarray] | None = None) -> None:
    """Write the model as .npz (plain arrays, no pickle) with a JSON header, atomically: a temporary
    file in the same folder, fsync, rename. A reader never sees a partial file. Training
    checkpoints add the optimizer's arrays under `optimizer/` (read back by `read_optimizer`)."""
    check_state(state, config, "the state to save")
    header = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "meta": dict(meta or {})}
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in state.items()}
    arrays |= {f"optimizer/{name}": np.asarray(value) for name, value in (optimizer or {}).items()}
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    write_atomic(path, lambda f: np.savez(f, **arrays), mode="wb")


def load_checkpoint(path: str | os.PathLike, config: ModelConfig | None = None
                    ) -> tuple[State, ModelConfig, dict]:
    """(state, config, meta) from `save_checkpoint`'s file; no pickle is ever loaded. With `config`,
    the checkpoint must fit that model (e.g. the same image size and number of classes)."""
    arrays = {k: v for k, v in read_npz(path).items() if not k.startswith("optimizer/")}
    raw = arrays.pop("__header__", None)
    try:
        header = json.loads(bytes(raw).decode()) if raw is not None else None
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a TransFG checkpoint (no {CHECKPOINT_FORMAT} header)")
    saved = ModelConfig.from_dict(header["config"])
    check_state(arrays, config or saved, str(path))
    return arrays, saved, header.get("meta", {})


def read_optimizer(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The optimizer arrays a training checkpoint holds (empty for a model-only checkpoint)."""
    return {k.removeprefix("optimizer/"): v for k, v in read_npz(path).items()
            if k.startswith("optimizer/")}
