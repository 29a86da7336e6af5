"""The transforms match the official definitions, checked against independent PIL + numpy
references; every random decision comes from the Generator passed in."""

import numpy as np
import pytest
from PIL import Image

from transfg.data import transforms as T


def photo(size=(500, 375), seed=0):
    """A smooth random RGB image (a JPEG-like photo rather than noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def reference_eval(image, resize, crop):
    """Resize (bilinear) -> center crop -> /255 -> normalise, in float64, written out by hand."""
    image = image.resize((resize, resize), Image.Resampling.BILINEAR)
    offset = round((resize - crop) / 2)
    image = image.crop((offset, offset, offset + crop, offset + crop))
    x = np.asarray(image, dtype=np.float64) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return x.transpose(2, 0, 1)


@pytest.mark.parametrize(("resize", "crop"), [(600, 448), (400, 304), (86, 64), (43, 32)])
def test_eval_transform_equals_a_pil_reference(resize, crop):
    image = photo()
    got = T.EvalTransform(resize, crop)(image)
    assert got.dtype == np.float32 and got.shape == (3, crop, crop)
    np.testing.assert_allclose(got, reference_eval(image, resize, crop), rtol=0, atol=1e-6)


def test_train_transform_draws_crop_then_flip_from_the_generator():
    image = photo()
    transform = T.TrainTransform(600, 448)
    for seed in range(6):
        got = transform(image, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        top, left = rng.integers(0, 153), rng.integers(0, 153)
        expected = image.resize((600, 600), Image.Resampling.BILINEAR).crop((left, top, left + 448,
                                                                  top + 448))
        if rng.random() < 0.5:
            expected = expected.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x = (np.asarray(expected, dtype=np.float64) / 255 - T.MEAN) / T.STD
        np.testing.assert_allclose(got, x.transpose(2, 0, 1), atol=1e-6)


def test_same_generator_state_same_image_with_autoaugment():
    transform = T.TrainTransform(86, 64, autoaugment=True)
    image = photo((120, 90))
    outputs = [transform(image, np.random.default_rng([7, 1, 3])) for _ in range(3)]
    assert all(np.array_equal(outputs[0], o) for o in outputs[1:])
    other = transform(image, np.random.default_rng([7, 1, 4]))
    assert not np.array_equal(outputs[0], other)


def test_imagenet_policy_table():
    assert len(T.IMAGENET_POLICY) == 24  # the official list (test_official_data.py)
    assert all(name in T.OPERATIONS for pair in T.IMAGENET_POLICY for _, name, _ in pair)
    assert list(T.OPERATIONS["posterize"][1]) == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert T.OPERATIONS["solarize"][1][0] == 256 and T.OPERATIONS["solarize"][1][-1] == 0
    assert T.OPERATIONS["rotate"][1][9] == 30 and not T.OPERATIONS["rotate"][2]  # no sign


@pytest.mark.parametrize("name", sorted(T.OPERATIONS))
def test_every_operation_keeps_size_and_mode(name):
    function, magnitudes, _ = T.OPERATIONS[name]
    image = photo((64, 64))
    for sign in (1, -1):
        out = function(image, magnitudes[9], sign)
        assert out.size == (64, 64) and out.mode == "RGB"


def test_rotation_fills_with_grey_and_shear_moves_pixels():
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    rotated = np.asarray(T.OPERATIONS["rotate"][0](white, 30.0, 1))
    assert tuple(rotated[0, 0]) == (128, 128, 128) and tuple(rotated[32, 32]) == (255, 255, 255)
    sheared = np.asarray(T.OPERATIONS["shearX"][0](white, 0.3, 1))
    assert tuple(sheared[63, 63]) == (128, 128, 128)  # samples x = 63 + 0.3 * 63: outside


def test_autoaugment_uses_every_sub_policy_over_many_draws():
    n = len(T.IMAGENET_POLICY)
    chosen = {int(np.random.default_rng(i).integers(n)) for i in range(400)}
    assert chosen == set(range(n))


def test_crop_box_maps_the_network_input_back_onto_the_original():
    # 500 x 375 -> 600 x 600 -> centre 448: x from 76 to 524 of 600 (x 500/600), y x 375/600.
    left, top, right, bottom = T.EvalTransform(600, 448).crop_box(500, 375)
    assert (left, right) == pytest.approx((76 * 500 / 600, 524 * 500 / 600))
    assert (top, bottom) == pytest.approx((76 * 375 / 600, 524 * 375 / 600))
