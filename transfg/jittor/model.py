"""TransFG and the ViT baseline in Jittor (the implementation under audit).

Read beside `transfg/torch/model.py`: the same classes, attributes and state-dict keys, differing
only where the frameworks do: `execute` for `forward`, `detach()` for `no_grad` (never
`stop_grad()`, which jittor applies in place and would cut the gradient through attention), and
jittor's argmax returning (index, value). Semantics: docs/official-code.md, "Model".
"""

from __future__ import annotations

import math

import jittor as jt
from jittor import nn

from transfg.config import ModelConfig


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
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

    def heads(self, x: jt.Var) -> jt.Var:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).permute(0, 2, 1, 3)  # (B, H, T, hd)

    def execute(self, x: jt.Var) -> tuple[jt.Var, jt.Var]:
        B, T, D = x.shape
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        scores = q @ k.permute(0, 1, 3, 2) / math.sqrt(self.head_dim)  # (B, H, T, T)
        probs = nn.softmax(scores, dim=-1)  # returned before dropout, as the official code
        context = self.attn_dropout(probs) @ v  # (B, H, T, hd)
        context = context.permute(0, 2, 1, 3).reshape(B, T, D)
        return self.proj_dropout(self.out(context)), probs


class Mlp(nn.Module):
    def __init__(self, config: ModelConfig):
        self.fc1 = nn.Linear(config.hidden_size, config.mlp_dim)
        self.fc2 = nn.Linear(config.mlp_dim, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout_rate)

    def execute(self, x: jt.Var) -> jt.Var:
        x = self.dropout(nn.gelu(self.fc1(x)))  # exact (erf) GELU
        return self.dropout(self.fc2(x))


class Block(nn.Module):
    """Pre-norm transformer block; returns its attention probabilities (B, H, T, T)."""

    def __init__(self, config: ModelConfig):
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = Mlp(config)
        self.attn = Attention(config)

    def execute(self, x: jt.Var) -> tuple[jt.Var, jt.Var]:
        h, weights = self.attn(self.attention_norm(x))
        x = x + h
        x = x + self.ffn(self.ffn_norm(x))
        return x, weights


class Embeddings(nn.Module):
    """Patches (stride = slide_step when overlapping, else the patch size) + CLS + positions."""

    def __init__(self, config: ModelConfig):
        d = config.hidden_size
        self.patch_embeddings = nn.Conv2d(3, d, kernel_size=config.patch_size, stride=config.stride)
        self.position_embeddings = jt.zeros((1, config.num_tokens, d))
        self.cls_token = jt.zeros((1, 1, d))
        self.dropout = nn.Dropout(config.dropout_rate)

    def execute(self, x: jt.Var) -> jt.Var:
        B = x.shape[0]
        x = self.patch_embeddings(x).flatten(2).permute(0, 2, 1)  # (B, rows*cols, D), row-major
        cls = self.cls_token.broadcast((B, 1, self.cls_token.shape[-1]))
        x = jt.concat([cls, x], dim=1)  # (B, T, D)
        return self.dropout(x + self.position_embeddings)


class PartAttention(nn.Module):
    """The Part Selection Module, as a chain of vector-matrix products from the last map's CLS
    row (see the PyTorch file for why this equals the official full product's CLS row)."""

    def execute(self, attn_weights: list[jt.Var]) -> jt.Var:
        row = attn_weights[-1][:, :, :1, :].detach()  # (B, H, 1, T)
        for weights in reversed(attn_weights[:-1]):
            row = row @ weights.detach()  # (B, H, 1, T)
        index, _ = jt.argmax(row[:, :, 0, 1:], dim=-1)  # (B, H): patch index, CLS excluded
        return index


def literal_part_selection(attn_weights: list[jt.Var]) -> jt.Var:
    """The official code's full T x T product: a test and benchmark oracle, not used in training."""
    last_map = attn_weights[0]
    for weights in attn_weights[1:]:
        last_map = weights @ last_map  # (B, H, T, T)
    index, _ = jt.argmax(last_map[:, :, 0, 1:], dim=-1)
    return index


def run_blocks(blocks, hidden_states: jt.Var) -> tuple[jt.Var, list[jt.Var]]:
    """Run the blocks in order; return the output and each block's attention probabilities."""
    attn_weights = []
    for block in blocks:
        hidden_states, weights = block(hidden_states)
        attn_weights.append(weights)
    return hidden_states, attn_weights


class Encoder(nn.Module):
    """TransFG: L-1 blocks, then the selected parts (with CLS) through part_layer and part_norm."""

    def __init__(self, config: ModelConfig):
        self.layer = nn.ModuleList([Block(config) for _ in range(config.num_layers - 1)])
        self.part_select = PartAttention()
        self.part_layer = Block(config)
        self.part_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def execute(self, hidden_states: jt.Var) -> tuple[jt.Var, dict]:
        hidden_states, attn_weights = run_blocks(self.layer, hidden_states)
        part_inx = self.part_select(attn_weights)  # (B, K)
        B, K = part_inx.shape
        index = (part_inx + 1).unsqueeze(-1).broadcast((B, K, hidden_states.shape[-1]))
        parts = hidden_states.gather(1, index)  # (B, K, D), from block L-1, not normalised
        concat = jt.concat([hidden_states[:, :1], parts], dim=1)  # (B, 1+K, D)
        part_states, _ = self.part_layer(concat)
        part_encoded = self.part_norm(part_states)
        return part_encoded, {"attn_weights": attn_weights, "part_inx": part_inx}


class ViTEncoder(nn.Module):
    """The ViT baseline: L blocks and the final encoder_norm."""

    def __init__(self, config: ModelConfig):
        self.layer = nn.ModuleList([Block(config) for _ in range(config.num_layers)])
        self.encoder_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def execute(self, hidden_states: jt.Var) -> tuple[jt.Var, dict]:
        hidden_states, attn_weights = run_blocks(self.layer, hidden_states)
        return self.encoder_norm(hidden_states), {"attn_weights": attn_weights}


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config) if config.variant == "transfg" else ViTEncoder(config)

    def execute(self, x: jt.Var) -> tuple[jt.Var, dict]:
        return self.encoder(self.embeddings(x))


class VisionTransformer(nn.Module):
    """TransFG (`part_head`) or the ViT baseline (`head`); returns (logits, out) exactly as the
    PyTorch model (see its docstring for the keys of `out`)."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self.transformer = Transformer(config)
        if config.variant == "transfg":
            self.part_head = nn.Linear(config.hidden_size, config.num_classes)
        else:
            self.head = nn.Linear(config.hidden_size, config.num_classes)

    def execute(self, x: jt.Var) -> tuple[jt.Var, dict]:
        encoded, out = self.transformer(x)
        out["cls_feature"] = encoded[:, 0]
        head = self.part_head if self.config.variant == "transfg" else self.head
        return head(out["cls_feature"]), out
