"""augment.py: DiffAugment's operations against direct numpy versions, and its policy."""

from __future__ import annotations

import numpy as np
import pytest

import augment
from cli import UsageError


def images_and_draws(seed: int, count: int = 6, side: int = 16):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (count, side, side, 3)).astype(np.float32)
    return images, augment.draw(count, rng)


def test_translation_is_a_zero_filled_whole_pixel_shift_of_up_to_an_eighth():
    images, params = images_and_draws(0)
    shifted = np.asarray(augment.apply(images, params, "translation"))
    reach = 2  # 16 / 8
    for image, out, (u_y, u_x) in zip(images, shifted, params[:, 3:5]):
        dy, dx = int(u_y * (2 * reach + 1)) - reach, int(u_x * (2 * reach + 1)) - reach
        padded = np.pad(image, [(reach, reach), (reach, reach), (0, 0)])
        expected = padded[reach + dy : reach + dy + 16, reach + dx : reach + dx + 16]
        np.testing.assert_array_equal(out, expected)


def test_cutout_zeroes_a_square_of_half_the_side_centred_anywhere_as_the_reference():
    images, params = images_and_draws(1, count=50)
    cut = np.asarray(augment.apply(images, params, "cutout"))
    for image, out, (u_y, u_x) in zip(images, cut, params[:, 5:7]):
        # The reference: centre drawn from 0 .. side + (1 - size % 2) - 1, size 8 of 16.
        top, left = int(u_y * 17) - 4, int(u_x * 17) - 4
        expected = image.copy()
        expected[max(top, 0) : top + 8, max(left, 0) : left + 8] = 0
        np.testing.assert_array_equal(out, expected)


def test_color_follows_the_reference_formulas():
    images, params = images_and_draws(2)
    out = np.asarray(augment.apply(images, params, "color"))
    b, s, c = (params[:, k, None, None, None] for k in range(3))
    x = images + (b - 0.5)
    mean = x.mean(axis=3, keepdims=True)
    x = (x - mean) * (s * 2) + mean
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) * (c + 0.5) + mean, rtol=1e-5, atol=1e-5)


def test_no_policy_leaves_the_images_alone_and_draws_are_per_image():
    images, params = images_and_draws(3)
    np.testing.assert_array_equal(np.asarray(augment.apply(images, params, "")), images)
    uniforms, gates = params[:, : augment.UNIFORMS], params[:, augment.UNIFORMS :]
    assert params.shape == (6, augment.PARAMETERS) and 0 <= uniforms.min() < uniforms.max() < 1
    assert gates.shape == (6, len(augment.OPERATIONS)) and (gates == 1).all()


@pytest.mark.parametrize("probability", [0.25, 0.6])
def test_each_operation_applies_to_each_image_with_the_probability(probability):
    """ADA's gating: per image and operation, independently; an image whose gates are
    all 0 is seen as it is, and the uniforms are those drawn at probability 1."""
    images, _ = images_and_draws(4, count=4000, side=8)
    params = augment.draw(4000, np.random.default_rng(4))
    gated = augment.draw(4000, np.random.default_rng(4), probability)
    np.testing.assert_array_equal(gated[:, : augment.UNIFORMS], params[:, : augment.UNIFORMS])
    gates = gated[:, augment.UNIFORMS :]
    assert set(np.unique(gates)) == {0.0, 1.0}
    # 4,000 draws: the rate within 4 standard deviations, and no link between operations.
    assert np.abs(gates.mean(axis=0) - probability).max() < 4 * np.sqrt(probability / 4000)
    both = (gates[:, 1] * gates[:, 2]).mean()
    assert abs(both - probability**2) < 4 * np.sqrt(probability**2 / 4000)
    out = np.asarray(augment.apply(images, gated, "translation,cutout"))
    for k, name in ((1, "translation"), (2, "cutout")):
        alone = np.asarray(augment.apply(images, params, name))
        only = (gates[:, k] == 1) & (gates[:, 3 - k] == 0)
        np.testing.assert_array_equal(out[only], alone[only])
    untouched = gates[:, 1:].sum(axis=1) == 0
    assert untouched.any()
    np.testing.assert_array_equal(out[untouched], images[untouched])


def test_policy_is_canonical_and_an_unknown_operation_is_named():
    assert augment.parse_policy("cutout, color") == "color,cutout"
    assert augment.parse_policy("none") == augment.parse_policy("") == ""
    with pytest.raises(UsageError, match="unknown operation flip; use a comma-separated"):
        augment.parse_policy("color,flip")
