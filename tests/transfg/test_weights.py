"""Google's ViT npz -> one numpy state dict -> either framework; position-embedding resampling;
checkpoints that cannot run code on load; errors that name what is wrong."""

import math

import numpy as np
import pytest
import torch
from google_npz import google_checkpoint
from scipy import ndimage

import transfg.jittor  # noqa: F401
from transfg.config import tiny, vit_b16
from transfg.jittor import model as jm
from transfg.jittor import weights as jw
from transfg.torch import model as tm
from transfg.torch import weights as tw
from transfg.weights import (
    from_google,
    init_state,
    load_checkpoint,
    load_google_npz,
    read_npz,
    resize_pos_grid,
    save_checkpoint,
)


def tiny_google(rng, config):
    return google_checkpoint(rng, config.hidden_size, config.mlp_dim, config.num_heads,
                             config.num_layers, config.patch_size, grid=3, classes=7)


@pytest.fixture(scope="module")
def vit_b16_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "ViT-B_16.npz"
    np.savez(path, **google_checkpoint(np.random.default_rng(0)))
    return path


def test_full_vit_b16_npz_builds_448_overlap_transfg_in_both_frameworks(vit_b16_file):
    config = vit_b16()
    state = load_google_npz(vit_b16_file, config, np.random.default_rng(1))
    assert config.num_tokens == 1370
    assert state["transformer.embeddings.position_embeddings"].shape == (1, 1370, 768)
    torch_model = tm.VisionTransformer(config)
    tw.load_state(torch_model, state)
    jittor_model = jm.VisionTransformer(config)
    jw.load_state(jittor_model, state)
    for name, value in jw.export_state(jittor_model).items():
        np.testing.assert_array_equal(value, state[name])
    np.testing.assert_array_equal(
        torch_model.transformer.encoder.layer[10].ffn.fc2.weight.detach().numpy(),
        read_npz(vit_b16_file)["Transformer/encoderblock_10/MlpBlock_3/Dense_1/kernel"].T)


def test_full_vit_b16_npz_builds_the_vit_baseline(vit_b16_file):
    config = vit_b16(variant="vit", split="non-overlap")
    state = load_google_npz(vit_b16_file, config, np.random.default_rng(1))
    assert state["transformer.embeddings.position_embeddings"].shape == (1, 785, 768)
    assert "transformer.encoder.layer.11.attn.query.weight" in state
    tw.load_state(tm.VisionTransformer(config), state)


@pytest.mark.parametrize("new", [37, 28, 5, 20])
def test_position_embedding_resize_equals_scipy_zoom_order_1(new):
    grid = np.random.default_rng(new).normal(size=(14, 14, 16))
    expected = ndimage.zoom(grid, (new / 14, new / 14, 1), order=1)
    assert expected.shape == (new, new, 16)
    np.testing.assert_allclose(resize_pos_grid(grid, (new, new)), expected, rtol=0, atol=1e-6)


def test_resized_position_embeddings_keep_the_cls_embedding():
    config = tiny()  # 5 x 5 grid from a 3 x 3 one
    npz = tiny_google(np.random.default_rng(2), config)
    state = from_google(npz, config, np.random.default_rng(3))
    pos = npz["Transformer/posembed_input/pos_embedding"]
    got = state["transformer.embeddings.position_embeddings"]
    np.testing.assert_array_equal(got[:, 0], pos[:, 0])
    zoomed = ndimage.zoom(pos[0, 1:].reshape(3, 3, -1), (5 / 3, 5 / 3, 1), order=1)
    np.testing.assert_allclose(got[0, 1:], zoomed.reshape(25, -1), atol=1e-6)


def test_kernel_transforms_compute_what_googles_layers_compute():
    """Each converted Linear/Conv computes the same function as the original kernel in Flax's
    layout: DenseGeneral over (in, heads, hd) and (heads, hd, out), Dense (in, out), Conv HWIO."""
    config = tiny()
    rng = np.random.default_rng(4)
    npz = tiny_google(rng, config)
    state = from_google(npz, config, rng)
    x = rng.normal(size=(5, config.hidden_size))
    root = "Transformer/encoderblock_2/MultiHeadDotProductAttention_1"
    layer = "transformer.encoder.layer.2.attn"
    q = x @ state[f"{layer}.query.weight"].T + state[f"{layer}.query.bias"]
    flax_q = np.einsum("td,dhk->thk", x, npz[f"{root}/query/kernel"]) + npz[f"{root}/query/bias"]
    np.testing.assert_allclose(q, flax_q.reshape(5, -1), atol=1e-5)
    ctx = rng.normal(size=(5, config.num_heads, config.head_dim))
    out = ctx.reshape(5, -1) @ state[f"{layer}.out.weight"].T + state[f"{layer}.out.bias"]
    flax_out = np.einsum("thk,hkd->td", ctx, npz[f"{root}/out/kernel"]) + npz[f"{root}/out/bias"]
    np.testing.assert_allclose(out, flax_out, atol=1e-5)
    dense = npz["Transformer/encoderblock_2/MlpBlock_3/Dense_0/kernel"]
    np.testing.assert_allclose(x @ state["transformer.encoder.layer.2.ffn.fc1.weight"].T,
                               x @ dense, atol=1e-5)
    image = rng.normal(size=(1, 3, 16, 16)).astype(np.float32)  # exactly one patch
    model = tm.VisionTransformer(config.replace(image_size=16))
    conv = model.transformer.embeddings.patch_embeddings
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(state["transformer.embeddings.patch_embeddings.weight"]))
        conv.bias.zero_()
        got = conv(torch.from_numpy(image)).numpy().reshape(-1)
    hwio = np.einsum("hwi,hwio->o", image[0].transpose(1, 2, 0), npz["embedding/kernel"])
    np.testing.assert_allclose(got, hwio, atol=1e-4)


def test_official_initialisation_and_the_part_layer_deviation():
    config = tiny()
    npz = tiny_google(np.random.default_rng(5), config)
    last = config.num_layers - 1
    official = from_google(npz, config, np.random.default_rng(6))
    fresh = init_state(config, np.random.default_rng(6))
    np.testing.assert_array_equal(official["transformer.encoder.part_norm.weight"],
                                  npz["Transformer/encoder_norm/scale"])
    for name in ("transformer.encoder.part_layer.attn.query.weight", "part_head.weight"):
        np.testing.assert_array_equal(official[name], fresh[name])  # random, the official init
    deviation = from_google(npz, config, np.random.default_rng(6), part_layer_init="pretrained")
    np.testing.assert_array_equal(
        deviation["transformer.encoder.part_layer.ffn.fc1.weight"],
        npz[f"Transformer/encoderblock_{last}/MlpBlock_3/Dense_0/kernel"].T)


def test_init_draws_the_official_distributions():
    state = init_state(vit_b16(), np.random.default_rng(7))
    fc1 = state["transformer.encoder.layer.0.ffn.fc1.weight"]
    assert abs(fc1.max() - math.sqrt(6 / (768 + 3072))) < 1e-3  # xavier-uniform bound
    assert np.abs(state["transformer.encoder.layer.0.ffn.fc1.bias"]).max() < 1e-5  # N(0, 1e-6)
    head = state["part_head.weight"]
    assert abs(np.abs(head).max() - 1 / math.sqrt(768)) < 1e-3  # PyTorch's default Linear
    assert not state["transformer.embeddings.position_embeddings"].any()
    again = init_state(vit_b16(), np.random.default_rng(7))
    np.testing.assert_array_equal(again["part_head.weight"], head)  # the rng is the only source


def test_missing_key_is_named(tmp_path):
    config = tiny()
    npz = tiny_google(np.random.default_rng(8), config)
    del npz["Transformer/encoderblock_1/MlpBlock_3/Dense_1/bias"]
    path = tmp_path / "broken.npz"
    np.savez(path, **npz)
    with pytest.raises(KeyError, match=r"broken\.npz.*encoderblock_1/MlpBlock_3/Dense_1/bias"):
        load_google_npz(path, config, np.random.default_rng(0))


def test_wrong_width_is_named():
    config = tiny()
    npz = tiny_google(np.random.default_rng(9), config.replace(hidden_size=48, num_heads=4))
    with pytest.raises(ValueError, match=r"embedding/kernel has shape \(16, 16, 3, 48\).*"
                                         r"needs \(16, 16, 3, 32\)"):
        from_google(npz, config, np.random.default_rng(0))


def test_checkpoint_round_trip_without_pickle(tmp_path):
    config = tiny(variant="vit")
    state = init_state(config, np.random.default_rng(10))
    path = tmp_path / "model.npz"
    save_checkpoint(path, state, config, meta={"step": 5, "framework": "jittor"})
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind
    loaded, saved_config, meta = load_checkpoint(path)
    assert saved_config == config and meta == {"step": 5, "framework": "jittor"}
    for name, value in state.items():
        np.testing.assert_array_equal(loaded[name], value)
    with np.load(path, allow_pickle=False) as raw:  # plain arrays only
        assert "head.weight" in raw.files


def test_checkpoint_for_another_image_size_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    config = tiny()
    save_checkpoint(path, init_state(config, np.random.default_rng(0)), config)
    with pytest.raises(ValueError, match=r"position_embeddings has shape \(1, 26, 32\).*"
                                         r"needs \(1, 17, 32\).*image_size=64, split=non-overlap"):
        load_checkpoint(path, config.replace(split="non-overlap"))
    with pytest.raises(ValueError, match=r"part_head\.weight has shape \(10, 32\).*\(5, 32\)"):
        load_checkpoint(path, config.replace(num_classes=5))


def test_pickles_and_non_checkpoints_are_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, evil=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match=r"pickled\.npz: not a readable \.npz of plain arrays"):
        load_checkpoint(pickled)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.npz: not a readable"):
        load_checkpoint(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a TransFG checkpoint"):
        load_checkpoint(plain)
