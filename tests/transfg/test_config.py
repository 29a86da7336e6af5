import pytest

from transfg.config import ModelConfig, tiny, vit_b16


def test_paper_token_counts():
    assert vit_b16().grid == (37, 37) and vit_b16().num_tokens == 1370
    assert vit_b16(split="non-overlap").num_tokens == 785
    assert vit_b16(image_size=304).grid == (25, 25)  # iNat2017's 304 px, overlap
    assert vit_b16().stride == 12 and vit_b16(split="non-overlap").stride == 16


def test_config_is_frozen_and_round_trips():
    config = tiny(variant="vit", alpha=0.2)
    with pytest.raises(AttributeError):
        config.alpha = 0.6
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("change", "message"), [
    ({"split": "overlapping"}, "split='overlapping', allowed: overlap, non-overlap"),
    ({"variant": "vit-b"}, "variant='vit-b', allowed: transfg, vit"),
    ({"hidden_size": 30}, "hidden_size=30 is not divisible by num_heads=4"),
    ({"alpha": -0.1}, "alpha=-0.1, allowed"),
    ({"smoothing": 1.0}, "smoothing=1.0, allowed: 0 <= value < 1"),
    ({"posemb_resize": "bicubic"}, "posemb_resize='bicubic', allowed: bilinear-align-corners"),
    ({"image_size": 8}, "image_size=8 is smaller than patch_size=16"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny(**change)


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="unknown ModelConfig field.*slide_stpe"):
        ModelConfig.from_dict({**tiny().to_dict(), "slide_stpe": 12})
