"""Jittor and PyTorch compute the same TransFG, and both match a plain-numpy forward pass written
from docs/official-code.md. Tiny configs, float32, the same weights and inputs in all three."""

import numpy as np
import pytest
import reference_numpy as ref
import torch

import transfg.jittor  # noqa: F401  (prepares jittor before it is imported)

import jittor as jt  # isort: skip
from transfg.config import tiny
from transfg.jittor import losses as jl
from transfg.jittor import model as jm
from transfg.jittor import weights as jw
from transfg.torch import losses as tl
from transfg.torch import model as tm
from transfg.torch import weights as tw
from transfg.weights import init_state

CASES = [(v, s) for v in ("transfg", "vit") for s in ("overlap", "non-overlap")]
LABELS = np.array([1, 3, 1, 5])  # one repeated label: positive and negative pairs both occur


def lively_state(config, rng):
    """The official init, with sharper attention (query and key weights x4) and non-zero CLS and
    position embeddings, so that the Part Selection Module's argmax has clear winners."""
    state = init_state(config, rng)
    for name, value in state.items():
        if name.endswith(("cls_token", "position_embeddings")):
            state[name] = rng.normal(0, 0.5, value.shape).astype(np.float32)
        elif name.endswith(("attn.query.weight", "attn.key.weight")):
            state[name] = value * 4
    return state


def rel_err(a, b):
    """Largest absolute difference relative to the largest magnitude of the reference `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


class Pair:
    """The same model, weights and batch in both frameworks (train mode, dropout 0)."""

    def __init__(self, variant, split, **config_changes):
        self.config = tiny(variant=variant, split=split, **config_changes)
        rng = np.random.default_rng(0)
        self.state = lively_state(self.config, rng)
        size = self.config.image_size
        self.images = rng.normal(size=(len(LABELS), 3, size, size)).astype(np.float32)
        self.torch = tm.VisionTransformer(self.config)
        tw.load_state(self.torch, self.state)
        self.jittor = jm.VisionTransformer(self.config)
        jw.load_state(self.jittor, self.state)

    def torch_loss(self, smoothing=0.0):
        logits, out = self.torch(torch.from_numpy(self.images))
        config = self.config.replace(smoothing=smoothing)
        return logits, out, tl.transfg_loss(logits, out["cls_feature"],
                                            torch.from_numpy(LABELS), config)

    def jittor_loss(self, smoothing=0.0):
        logits, out = self.jittor(jt.array(self.images))
        config = self.config.replace(smoothing=smoothing)
        return logits, out, jl.transfg_loss(logits, out["cls_feature"], jt.array(LABELS), config)

    def reference(self):
        c = self.config
        return ref.forward(self.images, self.state, variant=c.variant, heads=c.num_heads,
                           layers=c.num_layers, patch_size=c.patch_size, stride=c.stride)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(c))
def pair(request):
    return Pair(*request.param)


def test_logits_and_selected_parts_agree(pair):
    t_logits, t_out, _ = pair.torch_loss()
    j_logits, j_out, _ = pair.jittor_loss()
    r_logits, r_feature, r_selected = pair.reference()
    assert rel_err(t_logits.detach().numpy(), r_logits) < 1e-4
    assert rel_err(j_logits.numpy(), r_logits) < 1e-4
    assert rel_err(j_logits.numpy(), t_logits.detach().numpy()) < 1e-4
    assert rel_err(j_out["cls_feature"].numpy(), r_feature) < 1e-4
    if pair.config.variant == "transfg":
        # The fast chain in both frameworks picks what the literal product picks in float64.
        np.testing.assert_array_equal(t_out["part_inx"].numpy(), r_selected)
        np.testing.assert_array_equal(j_out["part_inx"].numpy(), r_selected)
        assert t_out["part_inx"].shape == (len(LABELS), pair.config.num_heads)
    else:
        assert "part_inx" not in t_out and "part_inx" not in j_out


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_losses_agree(pair, smoothing):
    _, _, t_loss = pair.torch_loss(smoothing)
    _, _, j_loss = pair.jittor_loss(smoothing)
    r_logits, r_feature, _ = pair.reference()
    r_ce, r_con = ref.losses(r_logits, r_feature, LABELS, smoothing=smoothing, alpha=0.4)
    for name, expected in (("ce", r_ce), ("contrastive", r_con), ("loss", r_ce + r_con)):
        assert abs(float(t_loss[name].item()) - expected) < 1e-5, name
        assert abs(float(j_loss[name].item()) - expected) < 1e-5, name


def test_contrastive_loss_alpha_is_a_parameter():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, 8)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    for alpha in (0.0, 0.2, 0.4, 0.6):
        _, expected = ref.losses(np.zeros((6, 3)), features, labels, alpha=alpha)
        got_t = tl.con_loss(torch.from_numpy(features), torch.from_numpy(labels), alpha).item()
        got_j = jl.con_loss(jt.array(features), jt.array(labels), alpha).item()
        assert abs(got_t - expected) < 1e-6 and abs(got_j - expected) < 1e-6
    values = [ref.losses(np.zeros((6, 3)), features, labels, alpha=a)[1] for a in (0.0, 0.6)]
    assert values[0] > values[1]  # a larger margin forgives more negative similarity


def test_gradients_agree(pair):
    _, _, t_loss = pair.torch_loss()
    pair.torch.zero_grad()
    t_loss["loss"].backward()
    t_grads = {name: p.grad.numpy() for name, p in pair.torch.named_parameters()}
    _, _, j_loss = pair.jittor_loss()
    names, params = zip(*pair.jittor.named_parameters(), strict=True)
    j_grads = dict(zip(names, (g.numpy() for g in jt.grad(j_loss["loss"], list(params))),
                       strict=True))
    assert set(j_grads) == set(t_grads)
    for name, expected in t_grads.items():
        # atol: key biases have exactly zero gradient (softmax ignores a per-row constant), so
        # both frameworks return rounding noise there (about 1e-8).
        np.testing.assert_allclose(j_grads[name], expected, rtol=0,
                                   atol=1e-4 * np.abs(expected).max() + 1e-6, err_msg=name)
    assert np.abs(t_grads["transformer.embeddings.patch_embeddings.weight"]).max() > 1e-3


def test_sgd_momentum_steps_agree():
    """Two steps, so that the second uses the momentum buffer; lr large enough to move weights."""
    pair = Pair("transfg", "overlap")
    t_opt = torch.optim.SGD(pair.torch.parameters(), lr=0.05, momentum=0.9)
    j_opt = jt.optim.SGD(pair.jittor.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        t_opt.zero_grad()
        pair.torch_loss()[2]["loss"].backward()
        t_opt.step()
        j_opt.step(pair.jittor_loss()[2]["loss"])
    t_state, j_state = tw.export_state(pair.torch), jw.export_state(pair.jittor)
    moved = 0
    for name, value in t_state.items():
        np.testing.assert_allclose(j_state[name], value, rtol=0, atol=1e-5, err_msg=name)
        moved += not np.allclose(value, pair.state[name])
    assert moved > len(t_state) // 2


def test_weights_move_between_frameworks_unchanged():
    pair = Pair("transfg", "non-overlap")
    from_jittor = jw.export_state(pair.jittor)
    model = tm.VisionTransformer(pair.config)
    tw.load_state(model, from_jittor)
    back = tw.export_state(model)
    for name, value in pair.state.items():
        np.testing.assert_array_equal(back[name], value)
