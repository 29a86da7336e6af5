"""The FLOP count used for MFU equals PyTorch's own count of the model's matrix products."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from flops import forward_flops, peak_flops, train_step_flops

from transfg.config import tiny
from transfg.torch.model import VisionTransformer


@pytest.mark.parametrize("variant,split", [("vit", "overlap"), ("transfg", "overlap"),
                                           ("transfg", "non-overlap")])
def test_forward_flops_match_torchs_flop_counter(variant, split):
    config = tiny(variant=variant, split=split)
    model = VisionTransformer(config).eval()
    x = torch.from_numpy(np.zeros((2, 3, config.image_size, config.image_size), np.float32))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    differentiable, psm = forward_flops(config)
    assert counter.get_total_flops() == 2 * (differentiable + psm)  # batch of 2


def test_training_step_and_peaks():
    config = tiny()
    differentiable, psm = forward_flops(config)
    assert train_step_flops(config, 4) == 4 * (3 * differentiable + psm)
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert peak_flops(None, "bf16") is None
