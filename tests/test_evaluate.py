"""evaluate.py: the scores, the flip test, diversity and the classifier."""

from __future__ import annotations

import numpy as np
import pytest

import dataset
import evaluate
from attributes import INDEX
from quiet_keras import keras


def test_balanced_accuracy_does_not_reward_the_majority_class():
    wanted = np.zeros((100, 40), np.uint8)
    wanted[:5] = 1  # every attribute rare: 5 %
    always_off = np.zeros_like(wanted)
    scores = evaluate.attribute_scores(always_off, wanted)
    np.testing.assert_allclose(scores["accuracy"], 0.95)
    np.testing.assert_allclose(scores["balanced"], 0.5)
    perfect = evaluate.attribute_scores(wanted, wanted)
    np.testing.assert_allclose(perfect["balanced"], 1.0)


def test_balanced_accuracy_with_one_class_present_is_its_recall():
    wanted = np.zeros((10, 40), np.uint8)
    predicted = np.zeros_like(wanted)
    predicted[:3] = 1
    np.testing.assert_allclose(evaluate.attribute_scores(predicted, wanted)["balanced"], 0.7)


def test_pairwise_distance_is_zero_for_copies_and_matches_a_direct_loop():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (6, 8, 8, 3))
    assert evaluate.mean_pairwise_distance(np.repeat(images[:1], 5, axis=0)) == pytest.approx(
        0, abs=1e-6
    )
    direct = np.mean(
        [np.sqrt(np.mean((images[i] - images[j]) ** 2)) for i in range(6) for j in range(i + 1, 6)]
    )
    assert evaluate.mean_pairwise_distance(images) == pytest.approx(direct, rel=1e-9)


class IgnoresAttributes:
    """A generator stub whose image depends on the noise only."""

    def predict(self, inputs, batch_size=None, verbose=0):
        noise = np.asarray(inputs)[:, 40:41]
        return np.broadcast_to(noise[:, :, None, None], (len(inputs), 4, 4, 3)).copy()


class RandomClassifier:
    """A classifier stub that reads a fixed pseudo-random function of the image."""

    def predict(self, images, batch_size=None, verbose=0):
        seed = (np.abs(np.asarray(images)).sum(axis=(1, 2, 3)) * 1e4).astype(np.int64)
        return np.stack([np.random.default_rng(s).random(40) for s in seed])


def test_flip_test_of_a_generator_that_ignores_attributes_is_near_zero():
    rows = np.random.default_rng(1).integers(0, 2, (500, 40)).astype(np.uint8)
    rates = evaluate.flip_rates(
        IgnoresAttributes(), RandomClassifier(), rows, noise_dim=4, count=200
    )
    assert rates.shape == (40,) and rates.max() == 0  # same image, same prediction


def test_control_accuracy_of_an_attribute_blind_generator_is_near_chance():
    rows = np.random.default_rng(2).integers(0, 2, (500, 40)).astype(np.uint8)
    scores = evaluate.control_accuracy(
        IgnoresAttributes(), RandomClassifier(), rows, noise_dim=4, count=1000
    )
    assert abs(scores["balanced"].mean() - 0.5) < 0.05


def test_held_out_split_without_test_partition_is_a_disjoint_fraction(synth_root, tmp_path):
    cache = dataset.build_cache(synth_root, 32, tmp_path / "cache", progress=False)
    cache.partition[:] = 0  # as in the shared real subset: everything in train
    train, held_out = evaluate.evaluation_split(cache)
    assert len(held_out) == 40 and len(train) == 360
    assert not set(train) & set(held_out)


def test_classifier_learns_a_rendered_attribute(synth_root, tmp_path):
    cache = dataset.build_cache(synth_root, 32, tmp_path / "cache", progress=False)
    model = evaluate.train_classifier(cache, epochs=8, batch_size=32, verbose=0)
    scores = evaluate.real_ceiling(model, cache)
    assert scores["balanced"][INDEX["Male"]] > 0.85
    assert scores["balanced"][INDEX["Blond_Hair"]] > 0.85
    assert evaluate.classifier_path(cache).is_file()
    loaded = evaluate.load_or_train_classifier(cache)
    assert isinstance(loaded, keras.Model)
    assert loaded.get_layer("features").output.shape[-1] == 256
