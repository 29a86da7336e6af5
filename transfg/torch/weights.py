"""Numpy state dicts (transfg.weights) into and out of the PyTorch model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from transfg.weights import State, check_state

from .model import VisionTransformer


def load_state(model: VisionTransformer, state: Mapping[str, np.ndarray],
               source: str = "state") -> None:
    """Copy every parameter from `state`; raises naming each missing or mis-shaped entry."""
    check_state(state, model.config, source)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.from_numpy(np.asarray(state[name], dtype=np.float32)))


def export_state(model: VisionTransformer) -> State:
    return {name: param.detach().cpu().float().numpy().copy()
            for name, param in model.named_parameters()}
