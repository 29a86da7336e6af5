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
    with pytest.raises(ValueError, match=r"unknown ModelConfig field.*slide_stpe"):
        ModelConfig.from_dict({**tiny().to_dict(), "slide_stpe": 12})


def test_patch_boxes_in_input_pixels():
    overlap = vit_b16()  # 37 x 37 patches, stride 12
    assert overlap.patch_box(0) == (0, 0, 16, 16)
    assert overlap.patch_box(38) == (12, 12, 28, 28)  # row 1, col 1
    assert overlap.patch_box(1368) == (432, 432, 448, 448)  # the last patch ends at the border
    non_overlap = vit_b16(split="non-overlap")  # 28 x 28, stride 16
    assert non_overlap.patch_box(29) == (16, 16, 32, 32)
    with pytest.raises(IndexError, match="outside the 28 x 28 grid"):
        non_overlap.patch_box(784)
