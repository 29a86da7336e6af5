"""TransFG's losses in Jittor; mirrors `transfg/torch/losses.py` line for line."""

from __future__ import annotations

import jittor as jt
from jittor import nn

from transfg.config import ModelConfig


def classification_loss(logits: jt.Var, labels: jt.Var, smoothing: float = 0.0) -> jt.Var:
    """Mean cross-entropy; with smoothing s: (1 - s) * nll + s * mean over classes of -log p."""
    logp = nn.log_softmax(logits, dim=-1)  # (B, C)
    nll = -logp.gather(1, labels.unsqueeze(1))[:, 0]
    if smoothing == 0:
        return nll.mean()
    return ((1 - smoothing) * nll + smoothing * -logp.mean(dim=-1)).mean()


def con_loss(features: jt.Var, labels: jt.Var, alpha: float = 0.4) -> jt.Var:
    """Contrastive loss over all ordered pairs of the batch, the diagonal included, / B^2.

    Same label: 1 - cos; different labels: max(cos - alpha, 0). Nothing is gathered across devices.
    """
    B = features.shape[0]
    norm = jt.norm(features, p=2, dim=-1, keepdims=True).maximum(1e-12)  # as F.normalize
    features = features / norm
    cos = features @ features.transpose(1, 0)  # (B, B)
    same = (labels.unsqueeze(1) == labels.unsqueeze(0)).float32()
    loss = ((1 - cos) * same).sum() + ((cos - alpha).maximum(0.0) * (1 - same)).sum()
    return loss / (B * B)


def transfg_loss(logits, cls_feature, labels, config: ModelConfig) -> dict[str, jt.Var]:
    """{'loss': total, 'ce': classification, 'contrastive': con_loss or 0}, each weight 1."""
    ce = classification_loss(logits, labels, config.smoothing)
    if config.contrastive:
        contrastive = con_loss(cls_feature, labels, config.alpha)
    else:
        contrastive = jt.zeros(())
    return {"loss": ce + contrastive, "ce": ce, "contrastive": contrastive}
