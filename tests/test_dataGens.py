"""dataGens.py: attribute-noise vectors, attribute sources, spec parsing, batches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HALF_RES, need

import dataset
import synth_faces
from attributes import ATTRIBUTES, INDEX, SpecError, format_spec, parse_spec
from dataGens import (
    AttributeSampler,
    DiscriminatorBatches,
    GeneratorBatches,
    attribute_noise,
    mismatched,
)


@pytest.fixture(scope="module")
def data_rows() -> np.ndarray:
    return synth_faces.sample_attributes(5000, seed=4)


def test_original_design_vector_is_40_bits_and_one_float():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (100, 40)).astype(np.uint8)
    vectors = attribute_noise(bits, 1, rng)
    assert vectors.shape == (100, 41) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[:, :40], bits)
    assert (vectors[:, 40] >= 0).all() and (vectors[:, 40] < 1).all()
    assert len(np.unique(vectors[:, 40])) == 100


def test_longer_noise_is_standard_normal():
    vectors = attribute_noise(np.zeros((4000, 40)), 64, np.random.default_rng(0))
    noise = vectors[:, 40:]
    assert vectors.shape == (4000, 104)
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 1) < 0.01


def test_uniform_source_draws_fair_independent_bits():
    rows = AttributeSampler("uniform").sample(20_000, np.random.default_rng(1))
    assert rows.shape == (20_000, 40) and set(np.unique(rows)) == {0.0, 1.0}
    assert np.abs(rows.mean(0) - 0.5).max() < 0.02
    correlation = np.corrcoef(rows.T)[np.triu_indices(40, 1)]
    assert np.abs(correlation).max() < 0.05


def test_dataset_source_matches_the_data_frequencies_and_correlations(data_rows):
    rows = AttributeSampler("dataset", data_rows).sample(20_000, np.random.default_rng(2))
    assert np.abs(rows.mean(0) - data_rows.mean(0)).max() < 0.02
    male, lipstick = INDEX["Male"], INDEX["Wearing_Lipstick"]
    assert rows[rows[:, male] == 1, lipstick].mean() < 0.05  # the joint, not the marginals
    assert {tuple(r) for r in rows.astype(np.uint8)[:500]} <= {tuple(r) for r in data_rows}


def test_spec_source_forces_the_request_and_draws_the_rest_conditionally(data_rows):
    sampler = AttributeSampler("spec", data_rows, "Male, -Smiling, Eyeglasses")
    rows = sampler.sample(2000, np.random.default_rng(3))
    assert (rows[:, INDEX["Male"]] == 1).all() and (rows[:, INDEX["Smiling"]] == 0).all()
    assert (rows[:, INDEX["Eyeglasses"]] == 1).all()
    assert rows[:, INDEX["Wearing_Lipstick"]].mean() < 0.05  # conditioned on Male
    assert sampler.supported


def test_a_strength_sets_the_value_and_leaves_the_choice_of_other_attributes_open(data_rows):
    sampler = AttributeSampler("spec", data_rows, "Smiling=0.4, Male")
    rows = sampler.sample(2000, np.random.default_rng(4))
    assert (rows[:, INDEX["Smiling"]] == np.float32(0.4)).all()
    assert (rows[:, INDEX["Male"]] == 1).all()
    # Smiling=0.4 neither picks smiling nor unsmiling faces for the other attributes:
    # their mouths are open about as often as men's in the data are.
    men = data_rows[data_rows[:, INDEX["Male"]] == 1]
    mouth = INDEX["Mouth_Slightly_Open"]
    assert abs(rows[:, mouth].mean() - men[:, mouth].mean()) < 0.05


def test_spec_the_data_never_shows_still_forces_the_bits(data_rows):
    sampler = AttributeSampler("spec", data_rows, "Bald, Blond_Hair")
    assert not sampler.supported
    rows = sampler.sample(50, np.random.default_rng(0))
    assert (rows[:, INDEX["Bald"]] == 1).all() and (rows[:, INDEX["Blond_Hair"]] == 1).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Smiling,Eyeglasses,-Male", {"Smiling": True, "Eyeglasses": True, "Male": False}),
        ("smiling; EYEGLASSES ; not male", {"Smiling": True, "Eyeglasses": True, "Male": False}),
        ("mouth slightly open, !young", {"Mouth_Slightly_Open": True, "Young": False}),
        ("Smiling Eyeglasses", {"Smiling": True, "Eyeglasses": True}),
        ("No_Beard, female", {"No_Beard": True, "Male": False}),
        ("Smiling=0.7, Eyeglasses, -Male", {"Smiling": 0.7, "Eyeglasses": 1, "Male": 0}),
        ("smile = 0.25; young=1.5", {"Smiling": 0.25, "Young": 1.5}),
        ("woman=0.7", {"Male": 0.3}),
        ("Smiling Eyeglasses=0.5", {"Smiling": 1, "Eyeglasses": 0.5}),
        ("", {}),
    ],
)
def test_spec_parsing_tolerates_case_and_separators(text, expected):
    assert parse_spec(text) == expected
    assert parse_spec(format_spec(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Eyeglass", "unknown attribute 'Eyeglass'. Did you mean Eyeglasses?"),
        ("Smiling, -Smiling", "Smiling is asked both on and off"),
        ("male, woman", "Male is asked both on and off"),
        ("Sparkly", "unknown attribute 'Sparkly'"),
        ("-Smiling=0.3", "give a sign or a strength, not both"),
        ("Smiling=2", "strength must be from 0 .off. to 1.5"),
        ("Smiling=-0.1", "strength must be from 0 .off. to 1.5"),
        ("Smiling=lots", "strength must be a number"),
        ("woman=1.2", "woman means Male off; give a strength from 0 to 1"),
        ("Smiling=0.5, smile=0.7", "Smiling is asked at two strengths, 0.5 and 0.7"),
    ],
)
def test_spec_errors_say_what_is_wrong(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_mismatched_attributes_differ_from_the_true_ones(data_rows):
    rows = data_rows[:32].astype(np.float32)
    wrong = mismatched(rows, np.random.default_rng(0))
    assert sorted(map(tuple, wrong)) == sorted(map(tuple, rows))  # same rows, other images
    assert (wrong != rows).any(axis=1).mean() > 0.9


class FakeGenerator:
    """Stands in for a Keras generator: a constant image per call."""

    def __init__(self, size: int):
        self.size = size

    def predict_on_batch(self, inputs):
        return np.full((len(inputs), self.size, self.size, 3), -0.5, np.float32)


def test_discriminator_batches_hold_real_fake_and_mismatched(tmp_path):
    cache = dataset.build_cache(need(HALF_RES), 32, tmp_path / "cache", progress=False)
    real = dataset.CelebaBatches(cache, batch_size=16, seed=0, flip=False)
    sampler = AttributeSampler("dataset", cache.attributes)
    batches = DiscriminatorBatches(real, FakeGenerator(32), sampler, noise_dim=8, seed=0)
    (images, attrs, wrong), targets, weights = batches[2]
    assert images.shape == (32, 32, 32, 3) and attrs.shape == wrong.shape == (32, 40)
    np.testing.assert_array_equal(images[:16], real[2][0])
    np.testing.assert_array_equal(attrs[:16], real[2][1])
    assert (images[16:] == -0.5).all()
    np.testing.assert_array_equal(targets["face"][:, 0], [1] * 16 + [0] * 16)
    # the first 8 real images (two groups of 4) are also scored with wrong attributes
    assert (targets["mismatch"] == 0).all()
    np.testing.assert_array_equal(weights["mismatch"], [1] * 8 + [0] * 24)
    assert (wrong[:8] != attrs[:8]).any(axis=1).all()
    np.testing.assert_array_equal(wrong[8:], attrs[8:])
    # the attribute head learns the true attributes of real images only, once per pair
    np.testing.assert_array_equal(weights["attributes"], [2] * 8 + [1] * 8 + [0] * 16)
    np.testing.assert_array_equal(targets["attributes"], attrs)
    assert (weights["face"] == 1).all()
    (_, again_attrs, again_wrong), _, _ = batches[2]
    np.testing.assert_array_equal(attrs, again_attrs)  # deterministic from the seed
    np.testing.assert_array_equal(wrong, again_wrong)


def test_generator_batches_are_attribute_noise_with_face_targets(data_rows):
    sampler = AttributeSampler("dataset", data_rows)
    batches = GeneratorBatches(sampler, batch_size=32, steps=5, noise_dim=16, seed=1)
    inputs, targets = batches[4]
    assert len(batches) == 5 and inputs.shape == (32, 56) and (targets["face"] == 1).all()
    np.testing.assert_array_equal(targets["attributes"], inputs[:, :40])
    assert set(np.unique(inputs[:, :40])) <= {0.0, 1.0}
    np.testing.assert_array_equal(inputs, batches[4][0])
    batches.on_epoch_end()
    assert not np.array_equal(inputs, batches[4][0])


def test_attribute_names_are_the_official_forty():
    assert len(ATTRIBUTES) == 40 and ATTRIBUTES[20] == "Male" and ATTRIBUTES[-1] == "Young"
