"""TransFG and the ViT baseline in PyTorch (the reference implementation).

Class and attribute names follow the official code (github TACJu/TransFG, modeling.py), so the
state-dict keys are the same in both frameworks and `transfg/jittor/model.py` reads line for line
like this file. Semantics: docs/official-code.md, "Model". Shapes: B batch, T tokens (patches +
CLS), D hidden, H heads, K = H selected parts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from transfg.config import ModelConfig

EVERY_QUERY = slice(None)


class DeferredMap:
    """One block's attention probabilities softmax(q k^T / sqrt(hd)) (B, H, T, T), formed only
    when read and without gradient: what fused attention hands the Part Selection Module.

    It keeps q and k, which fused attention's backward pass keeps anyway, instead of the T x T
    map: the PSM forms one map at a time (and for the last block only the CLS row), so the
    eleven maps of 448 px overlap (1370 tokens) are never held together."""

    def __init__(self, q: torch.Tensor, k: torch.Tensor):
        self.q, self.k = q.detach(), k.detach()

    def probabilities(self, queries: slice = EVERY_QUERY) -> torch.Tensor:
        """At most two maps alive at once (the scores, divided in place, and the softmax)."""
        with torch.no_grad():
            scores = self.q[:, :, queries] @ self.k.transpose(-1, -2)
            return scores.div_(math.sqrt(self.q.shape[-1])).softmax(dim=-1)

    def cls_row(self) -> torch.Tensor:
        return self.probabilities(slice(0, 1))  # (B, H, 1, T)


def materialize(weights: torch.Tensor | DeferredMap) -> torch.Tensor:
    """A block's attention probabilities as a tensor, whichever attention produced them."""
    return weights.probabilities() if isinstance(weights, DeferredMap) else weights


class Attention(nn.Module):
    """Multi-head self-attention; returns (output, probabilities or None).

    Two ways to the same result, chosen by `fused` (TrainConfig.attention):
    - explicit (default, the official code's math): the probabilities (B, H, T, T) are formed,
      kept by autograd for the backward pass, and returned before dropout;
    - fused: PyTorch's scaled_dot_product_attention (flash or memory-efficient kernels, which
      keep no T x T map for the backward pass); the probabilities come back as a DeferredMap
      (formed without gradient when the Part Selection Module reads them; it needs no gradient
      through them), or None when `need_weights` is off.
    Memory notes: on the CPU, fused attention with attention dropout > 0 falls back to PyTorch's
    math kernel, which does keep the map (the official rate, and ours, is 0); with activation
    checkpointing each DeferredMap keeps its block's q and k (2 x B x T x D) until the forward
    pass ends, where checkpointing alone would have recomputed them.
    """

    fused = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        d = config.hidden_size
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        # The official code uses the attention rate for the output projection too (both 0.0).
        self.attn_dropout = nn.Dropout(config.attention_dropout_rate)
        self.proj_dropout = nn.Dropout(config.attention_dropout_rate)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def forward(self, x: torch.Tensor, need_weights: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | DeferredMap | None]:
        B, T, D = x.shape
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        if self.fused:
            dropout = self.attn_dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
            probs: DeferredMap | torch.Tensor | None = DeferredMap(q, k) if need_weights else None
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, T, T)
            probs = scores.softmax(dim=-1)  # returned before dropout, as the official code
            context = self.attn_dropout(probs) @ v  # (B, H, T, hd)
        context = context.transpose(1, 2).reshape(B, T, D)
        return self.proj_dropout(self.out(context)), probs


class Mlp(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.mlp_dim)
        self.fc2 = nn.Linear(config.mlp_dim, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.gelu(self.fc1(x)))  # exact (erf) GELU
        return self.dropout(self.fc2(x))


class Block(nn.Module):
    """Pre-norm transformer block; returns its attention probabilities (B, H, T, T)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = Mlp(config)
        self.attn = Attention(config)

    def forward(self, x: torch.Tensor, need_weights: bool = True) -> tuple[torch.Tensor, object]:
        h, weights = self.attn(self.attention_norm(x), need_weights)
        x = x + h
        x = x + self.ffn(self.ffn_norm(x))
        return x, weights


class Embeddings(nn.Module):
    """Patches (stride = slide_step when overlapping, else the patch size) + CLS + positions."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.hidden_size
        self.patch_embeddings = nn.Conv2d(3, d, kernel_size=config.patch_size, stride=config.stride)
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_tokens, d))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x = self.patch_embeddings(x).flatten(2).transpose(1, 2)  # (B, rows*cols, D), row-major
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, T, D)
        return self.dropout(x + self.position_embeddings)


class PartAttention(nn.Module):
    """The Part Selection Module: per head, the patch that the rolled-out CLS attention favours.

    The official code forms the full product A_{n-1} @ ... @ A_0 (each (B, H, T, T)) and keeps only
    its CLS row. That row is e_0^T A_{n-1} ... A_0, so it is computed here as a chain of
    vector-matrix products from the last map's CLS row: O(n T^2) instead of O(n T^3).
    No identity term, no head averaging, no gradient (argmax).
    """

    def forward(self, attn_weights: list[torch.Tensor | DeferredMap]) -> torch.Tensor:
        with torch.no_grad():
            last = attn_weights[-1]
            row = last.cls_row() if isinstance(last, DeferredMap) else last[:, :, :1, :]
            for weights in reversed(attn_weights[:-1]):
                row = row @ materialize(weights)  # (B, H, 1, T)
            return row[:, :, 0, 1:].argmax(dim=-1)  # (B, H): patch index, CLS excluded


def literal_part_selection(attn_weights: list[torch.Tensor]) -> torch.Tensor:
    """The official code's full T x T product: a test and benchmark oracle, not used in training."""
    last_map = attn_weights[0]
    for weights in attn_weights[1:]:
        last_map = weights @ last_map  # (B, H, T, T)
    return last_map[:, :, 0, 1:].argmax(dim=-1)


def run_blocks(blocks, hidden_states: torch.Tensor, checkpointing: bool = False,
               need_weights: bool = True) -> tuple[torch.Tensor, list]:
    """Run the blocks in order; return the output and each block's attention probabilities
    (from fused attention: DeferredMaps, or None when `need_weights` is off).

    With `checkpointing` (while training), each block keeps only its input and recomputes its
    activations in the backward pass (the same numbers: dropout's random state is replayed):
    less memory for a second forward pass of the blocks."""
    attn_weights = []
    for block in blocks:
        if checkpointing and torch.is_grad_enabled():
            hidden_states, weights = torch.utils.checkpoint.checkpoint(
                block, hidden_states, need_weights, use_reentrant=False)
        else:
            hidden_states, weights = block(hidden_states, need_weights)
        attn_weights.append(weights)
    return hidden_states, attn_weights


class Encoder(nn.Module):
    """TransFG: L-1 blocks, then the selected parts (with CLS) through part_layer and part_norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layer = nn.ModuleList(Block(config) for _ in range(config.num_layers - 1))
        self.part_select = PartAttention()
        self.part_layer = Block(config)
        self.part_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.checkpointing = False  # a training option (TrainConfig.activation_checkpointing)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, dict]:
        hidden_states, attn_weights = run_blocks(self.layer, hidden_states, self.checkpointing)
        part_inx = self.part_select(attn_weights)  # (B, K)
        index = (part_inx + 1).unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])  # skip CLS
        parts = hidden_states.gather(1, index)  # (B, K, D), from block L-1, not normalised
        concat = torch.cat([hidden_states[:, :1], parts], dim=1)  # (B, 1+K, D)
        part_states, _ = self.part_layer(concat, need_weights=False)
        part_encoded = self.part_norm(part_states)
        return part_encoded, {"attn_weights": attn_weights, "part_inx": part_inx}


class ViTEncoder(nn.Module):
    """The ViT baseline: L blocks and the final encoder_norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layer = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.encoder_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.checkpointing = False  # a training option (TrainConfig.activation_checkpointing)
        # Off in the training engine (nothing reads the maps): fused attention then skips them.
        self.return_attention = True

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, dict]:
        hidden_states, attn_weights = run_blocks(self.layer, hidden_states, self.checkpointing,
                                                 self.return_attention)
        return self.encoder_norm(hidden_states), {"attn_weights": attn_weights}


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config) if config.variant == "transfg" else ViTEncoder(config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.encoder(self.embeddings(x))


def use_fused_attention(model: nn.Module, fused: bool = True) -> None:
    """Switch every attention layer of `model` to fused (or back to explicit) attention."""
    for module in model.modules():
        if isinstance(module, Attention):
            module.fused = fused


class VisionTransformer(nn.Module):
    """TransFG (`part_head` on the part_layer CLS token) or the ViT baseline (`head`).

    forward(x) -> (logits (B, classes), out) with out holding:
      cls_feature (B, D): the normalised CLS token, input of the head and the contrastive loss;
      attn_weights: per encoder block, its (B, H, T, T) probabilities (for rollout heatmaps);
        with fused attention a DeferredMap (`materialize` turns either into a tensor), or None
        for a ViT with return_attention off;
      part_inx (B, K), TransFG only: the patch each head selects, row-major in config.grid;
        config.patch_box(i) gives its pixels in the input (for drawing boxes).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        if config.variant == "transfg":
            self.part_head = nn.Linear(config.hidden_size, config.num_classes)
        else:
            self.head = nn.Linear(config.hidden_size, config.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        encoded, out = self.transformer(x)
        out["cls_feature"] = encoded[:, 0]
        head = self.part_head if self.config.variant == "transfg" else self.head
        return head(out["cls_feature"]), out
