"""The fast Part Selection Module (a chain of vector-matrix products) picks the same patches as
the official code's literal product of full T x T attention maps."""

import numpy as np
import torch

import transfg.jittor  # noqa: F401

import jittor as jt  # isort: skip
from transfg.config import vit_b16
from transfg.jittor import model as jm
from transfg.torch import model as tm

TOKENS = vit_b16().num_tokens  # 1370: 448 px, overlap, slide step 12


def attention_maps(rng, n_maps=11, batch=1, heads=4, tokens=TOKENS, sharpness=3.0):
    """Softmax rows of random scores: (batch, heads, tokens, tokens) per layer."""
    maps = []
    for _ in range(n_maps):
        scores = rng.normal(size=(batch, heads, tokens, tokens)).astype(np.float32) * sharpness
        e = np.exp(scores - scores.max(-1, keepdims=True))
        maps.append(e / e.sum(-1, keepdims=True))
    return maps


def oracle(maps):
    """CLS row of A_{n-1} ... A_0 in float64, with its top-1 and top-2 values."""
    product = maps[0].astype(np.float64)
    for m in maps[1:]:
        product = m.astype(np.float64) @ product
    row = product[:, :, 0, 1:]
    top2 = np.sort(row, axis=-1)[..., -2:]
    return row.argmax(-1), top2


def test_fast_equals_literal_at_1370_tokens_in_both_frameworks():
    maps = attention_maps(np.random.default_rng(0))
    expected, top2 = oracle(maps)
    # The test is only meaningful if float32 rounding cannot flip the winner.
    assert ((top2[..., 1] - top2[..., 0]) / top2[..., 1]).min() > 1e-4
    t_maps = [torch.from_numpy(m) for m in maps]
    np.testing.assert_array_equal(tm.PartAttention()(t_maps).numpy(), expected)
    np.testing.assert_array_equal(tm.literal_part_selection(t_maps).numpy(), expected)
    j_maps = [jt.array(m) for m in maps]
    np.testing.assert_array_equal(jm.PartAttention()(j_maps).numpy(), expected)


def test_jittor_literal_product_at_1370_tokens():
    maps = attention_maps(np.random.default_rng(1), heads=2)
    expected, _ = oracle(maps)
    np.testing.assert_array_equal(jm.literal_part_selection([jt.array(m) for m in maps]).numpy(),
                                  expected)


def test_selection_follows_the_rollout_not_the_last_map():
    """A known answer: the last map's CLS row attends to token 5, but every token of the first
    map attends to token 9, so the rolled-out CLS attention (and the PSM) picks patch 9 - 1 = 8."""
    tokens, heads = 20, 3
    uniform = np.full((1, heads, tokens, tokens), 1.0 / tokens, dtype=np.float32)
    last = uniform.copy()
    last[..., 0, :] = 0.01 / (tokens - 1)
    last[..., 0, 5] = 0.99
    first = np.full_like(uniform, 0.001)
    first[..., 9] = 1.0 - 0.001 * (tokens - 1)
    maps = [first, uniform, last]
    assert (tm.PartAttention()([torch.from_numpy(m) for m in maps]).numpy() == 8).all()
    assert (jm.PartAttention()([jt.array(m) for m in maps]).numpy() == 8).all()
    # Without the rollout (the last map alone) the answer would be patch 4.
    assert (tm.PartAttention()([torch.from_numpy(last)]).numpy() == 4).all()


def test_no_gradient_flows_through_the_selection():
    maps = [torch.rand(1, 2, 6, 6, requires_grad=True) for _ in range(3)]
    assert not tm.PartAttention()(maps).requires_grad


def fused_pair(config, seed=0):
    """The same weights twice: explicit attention (the official math) and fused attention."""
    torch.manual_seed(seed)
    explicit = tm.VisionTransformer(config)
    fused = tm.VisionTransformer(config)
    fused.load_state_dict(explicit.state_dict())
    tm.use_fused_attention(fused)
    return explicit, fused


def test_fused_attention_is_the_same_model_with_the_same_part_selection():
    """Fused attention (scaled_dot_product_attention, maps formed without gradient when the PSM
    reads them): the same logits, picks, maps and gradients as the explicit math, up to float32
    rounding; its maps carry no graph."""
    from transfg.config import tiny
    explicit, fused = fused_pair(tiny(image_size=96, hidden_size=64, num_heads=4))
    x = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    grads = []
    for model in (explicit, fused):
        logits, out = model(x)
        logits.square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
        if model is explicit:
            reference = logits.detach(), out
    logits_e, out_e = reference
    torch.testing.assert_close(logits, logits_e, rtol=1e-5, atol=1e-5)
    assert torch.equal(out["part_inx"], out_e["part_inx"])
    maps = [tm.materialize(m) for m in out["attn_weights"]]
    assert all(isinstance(m, tm.DeferredMap) for m in out["attn_weights"])
    assert all(not m.requires_grad and m.grad_fn is None for m in maps)
    for a, b in zip(maps, out_e["attn_weights"], strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["attn_weights"][-1].cls_row(), maps[-1][:, :, :1])
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_fused_attention_under_autocast_picks_the_same_parts():
    """Under bf16 autocast the deferred maps are formed in the autocast precision, as the
    explicit path's are, so the picks are the explicit path's."""
    from transfg.config import tiny
    explicit, fused = fused_pair(tiny(image_size=96, hidden_size=64, num_heads=4), seed=2)
    x = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        _, out_e = explicit(x)
        _, out_f = fused(x)
        assert tm.materialize(out_f["attn_weights"][0]).dtype == out_e["attn_weights"][0].dtype
    assert torch.equal(out_f["part_inx"], out_e["part_inx"])


def test_vit_with_fused_attention_skips_maps_nobody_reads():
    from transfg.config import tiny
    _, fused = fused_pair(tiny(variant="vit"))
    fused.transformer.encoder.return_attention = False
    _, out = fused(torch.randn(2, 3, 64, 64))
    assert out["attn_weights"] == [None] * 4


def test_fused_attention_with_activation_checkpointing_keeps_picks_and_gradients():
    """The two memory options together: recomputed blocks hand the PSM deferred maps too."""
    from transfg.config import tiny
    explicit, fused = fused_pair(tiny(image_size=96, hidden_size=64, num_heads=4), seed=5)
    fused.transformer.encoder.checkpointing = True
    calls = []
    fused.transformer.encoder.layer[0].register_forward_pre_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(6))
    outputs = []
    for model in (explicit, fused):
        logits, out = model(x)
        logits.square().sum().backward()
        outputs.append((out["part_inx"], {n: p.grad for n, p in model.named_parameters()}))
    assert len(calls) == 2  # the block ran again in the backward pass (stopping early)
    assert all(isinstance(m, tm.DeferredMap) for m in out["attn_weights"])
    assert torch.equal(outputs[0][0], outputs[1][0])
    for name, grad in outputs[0][1].items():  # gradients up to ~5 here: atol 1e-5 is 2e-6 of it
        torch.testing.assert_close(outputs[1][1][name], grad, rtol=1e-4, atol=1e-5, msg=name)
