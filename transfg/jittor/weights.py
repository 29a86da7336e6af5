"""Numpy state dicts (transfg.weights) into and out of the Jittor model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from transfg.weights import State, check_state

from .model import VisionTransformer


def load_state(model: VisionTransformer, state: Mapping[str, np.ndarray],
               source: str = "state") -> None:
    """Copy every parameter from `state`; raises naming each missing or mis-shaped entry."""
    check_state(state, model.config, source)
    for name, param in model.named_parameters():
        param.assign(np.asarray(state[name], dtype=np.float32))


def export_state(model: VisionTransformer) -> State:
    return {name: param.numpy().astype(np.float32, copy=True)
            for name, param in model.named_parameters()}
