"""TransFG's losses in PyTorch (docs/official-code.md, "Losses"); the Jittor file mirrors this
one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transfg.config import ModelConfig


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0):
    """Mean cross-entropy; with smoothing s: (1 - s) * nll + s * mean over classes of -log p."""
    logp = F.log_softmax(logits, dim=-1)  # (B, C)
    nll = -logp.gather(1, labels[:, None])[:, 0]
    if smoothing == 0:
        return nll.mean()
    return ((1 - smoothing) * nll + smoothing * -logp.mean(dim=-1)).mean()


def con_loss(features: torch.Tensor, labels: torch.Tensor, alpha: float = 0.4) -> torch.Tensor:
    """Contrastive loss over all ordered pairs of the batch, the diagonal included, / B^2.

    Same label: 1 - cos; different labels: max(cos - alpha, 0). Nothing is gathered across devices.
    """
    B = features.shape[0]
    features = F.normalize(features, dim=-1)
    cos = features @ features.t()  # (B, B)
    same = (labels[:, None] == labels[None, :]).to(cos.dtype)
    loss = ((1 - cos) * same).sum() + ((cos - alpha).clamp(min=0) * (1 - same)).sum()
    return loss / (B * B)


def transfg_loss(logits, cls_feature, labels, config: ModelConfig) -> dict[str, torch.Tensor]:
    """{'loss': total, 'ce': classification, 'contrastive': con_loss or 0}, each weight 1."""
    ce = classification_loss(logits, labels, config.smoothing)
    if config.contrastive:
        contrastive = con_loss(cls_feature, labels, config.alpha)
    else:
        contrastive = torch.zeros((), dtype=ce.dtype, device=ce.device)
    return {"loss": ce + contrastive, "ce": ce, "contrastive": contrastive}
