"""models.py: shapes, attribute conditioning, the minibatch spread, freezing on weights,
the shared-feature discriminator step and the losses train_step reports."""

from __future__ import annotations

import numpy as np
import pytest

import dataGens
import models
from quiet_keras import keras


@pytest.mark.parametrize("size", [32, 64, 128])
def test_models_fit_each_image_size(size):
    generator = models.build_generator(size, noise_dim=8, width=8)
    discriminator = models.build_discriminator(size, width=8)
    z = np.random.default_rng(0).random((4, 48), dtype=np.float32)
    images = np.asarray(generator.predict_on_batch(z))
    assert images.shape == (4, size, size, 3)
    assert images.min() >= -1 and images.max() <= 1
    outputs = discriminator.predict_on_batch([images, z[:, :40]])
    assert np.asarray(outputs["face"]).shape == (4, 1)
    assert np.asarray(outputs["attributes"]).shape == (4, 40)


def test_discriminator_score_depends_on_the_attributes():
    discriminator = models.build_discriminator(32, width=8)
    rng = np.random.default_rng(1)
    image = np.repeat(rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32), 4, axis=0)
    attrs = np.stack([np.zeros(40), np.ones(40)] * 2).astype(np.float32)
    logits = np.asarray(discriminator.predict_on_batch([image, attrs])["face"])
    assert abs(logits[0, 0] - logits[1, 0]) > 1e-3
    assert logits[0, 0] == pytest.approx(logits[2, 0])


def test_minibatch_spread_channel_sees_identical_images():
    layer = models.MinibatchStdDev()
    rng = np.random.default_rng(2)
    same = np.repeat(rng.normal(size=(1, 4, 4, 3)), 4, axis=0)
    varied = rng.normal(size=(4, 4, 4, 3))
    out = np.asarray(layer(np.concatenate([same, varied]).astype(np.float32)))
    assert out.shape == (8, 4, 4, 4)
    assert out[:4, ..., 3].max() < 1e-3  # a collapsed group has no spread
    assert out[4:, ..., 3].min() > 0.5  # unit-variance images do
    np.testing.assert_allclose(out[..., :3], np.concatenate([same, varied]), rtol=1e-6)


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


def changed(before, after) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


def small_models():
    generator = models.build_generator(32, noise_dim=8, width=8)
    discriminator = models.build_discriminator(32, width=8)
    d_trainer = models.build_d_trainer(discriminator)
    gan = models.build_gan(generator, discriminator)
    models.compile_models(generator, discriminator, d_trainer, gan, lr_d=1e-3, lr_g=1e-3, beta1=0.5)
    return generator, discriminator, d_trainer, gan


def small_batches(rng, n: int = 8):
    """The real half of a D batch (half its rows with wrong attributes), generated
    images with their attributes, and a G batch."""
    attrs = rng.integers(0, 2, (n, 40)).astype(np.float32)
    images = rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)
    wrong = np.concatenate([1 - attrs[: n // 2], attrs[n // 2 :]])
    mismatch = (np.arange(n) < n // 2).astype(np.float32)
    fakes = rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)
    asked = rng.integers(0, 2, (n, 40)).astype(np.float32)
    g_batch = (
        np.concatenate([asked, rng.standard_normal((n, 8), dtype=np.float32)], 1),
        {"face": np.ones((n, 1), np.float32), "attributes": asked},
    )
    return (images, attrs, wrong, mismatch), (fakes, asked), g_batch


def test_freezing_trains_only_the_right_network_on_each_step():
    generator, discriminator, d_trainer, gan = small_models()
    d_real, (fakes, asked), g_batch = small_batches(np.random.default_rng(0))
    inputs, targets, sample_weights = dataGens.discriminator_batch(d_real, fakes, asked)
    for _ in range(3):  # the first call traces each train function; later ones reuse it
        d0, g0 = weights(discriminator), weights(generator)
        models.set_trainable(discriminator, True)
        d_trainer.train_on_batch(inputs, targets, sample_weight=sample_weights)
        d1, g1 = weights(discriminator), weights(generator)
        assert changed(d0, d1), "the discriminator step did not train D"
        assert not changed(g0, g1), "the discriminator step changed G"
        models.set_trainable(discriminator, False)
        gan.train_on_batch(*g_batch)
        d2, g2 = weights(discriminator), weights(generator)
        assert not changed(d1, d2), "the stacked step changed the frozen D"
        assert changed(g1, g2), "the stacked step did not train G"
    models.train_step(discriminator, d_trainer, gan, (inputs, targets, sample_weights), g_batch)
    assert discriminator.trainable  # left trainable for the next D step and for saving


def test_d_trainer_scores_are_the_discriminators():
    _, discriminator, d_trainer, _ = small_models()
    (images, attrs, wrong, _), _, _ = small_batches(np.random.default_rng(4))
    out = d_trainer.predict_on_batch([images, attrs, wrong])
    right = discriminator.predict_on_batch([images, attrs])
    wrongly = discriminator.predict_on_batch([images, wrong])
    np.testing.assert_allclose(out["face"], right["face"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["attributes"], right["attributes"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["mismatch"], wrongly["face"], rtol=1e-5, atol=1e-6)


def test_d_trainer_moves_d_as_separate_wrong_attribute_images_did():
    """One step through d_trainer changes D's weights as the old layout did, where the
    m wrong-attribute pairs were m more real images through D: the same gradient, times
    (2n + m) / 2n, since each loss is a mean over the batch's rows (plain SGD, so the
    weight change is the gradient)."""
    _, discriminator, d_trainer, _ = small_models()
    d_real, (fakes, asked), _ = small_batches(np.random.default_rng(6))
    images, attrs, wrong, mismatch = d_real
    n, m = len(images), int(mismatch.sum())
    start = discriminator.get_weights()

    models.compile_d_trainer(d_trainer, keras.optimizers.SGD(0.01))
    inputs, targets, sample_weights = dataGens.discriminator_batch(d_real, fakes, asked)
    d_trainer.train_on_batch(inputs, targets, sample_weight=sample_weights)
    shared = [a - b for a, b in zip(discriminator.get_weights(), start)]

    discriminator.set_weights(start)
    discriminator.compile(keras.optimizers.SGD(0.01), models.losses("bce"))
    old_inputs = [
        np.concatenate([images, fakes, images[:m]]),
        np.concatenate([attrs, asked, wrong[:m]]),
    ]
    old_targets = {
        "face": np.concatenate([np.ones(n), np.zeros(n + m)])[:, None].astype(np.float32),
        "attributes": np.concatenate([attrs, asked, attrs[:m]]),
    }
    is_real = np.concatenate([np.ones(n), np.zeros(n), np.ones(m)]).astype(np.float32)
    old_weights = {"face": np.ones(2 * n + m, np.float32), "attributes": is_real}
    discriminator.train_on_batch(old_inputs, old_targets, sample_weight=old_weights)
    separate = [a - b for a, b in zip(discriminator.get_weights(), start)]

    for got, want in zip(shared, separate):
        np.testing.assert_allclose(got, want * (2 * n + m) / (2 * n), rtol=1e-3, atol=1e-7)


def bce(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))


def test_train_step_reports_per_pair_means():
    """d_loss/d_acc over every pair D was scored on (real, generated, wrong attributes),
    d_attr over the real faces' pairs, from D's weights before its step."""
    _, discriminator, d_trainer, gan = small_models()
    d_real, (fakes, asked), g_batch = small_batches(np.random.default_rng(5))
    d_batch = dataGens.discriminator_batch(d_real, fakes, asked)
    before = discriminator.get_weights()
    losses = models.train_step(discriminator, d_trainer, gan, d_batch, g_batch)
    discriminator.set_weights(before)
    images, attrs, wrong, mismatch = d_real
    both = np.concatenate([images, fakes])
    scored = discriminator.predict_on_batch([both, np.concatenate([attrs, asked])])
    misscored = discriminator.predict_on_batch([both, np.concatenate([wrong, asked])])
    n, m = len(images), int(mismatch.sum())
    logits = np.concatenate([scored["face"][:, 0], misscored["face"][:m, 0]])
    targets = np.concatenate([np.ones(n), np.zeros(n + m)])
    assert losses["d_loss"] == pytest.approx(bce(logits, targets).mean(), rel=1e-4)
    assert losses["d_acc"] == pytest.approx(((logits > 0) == targets).mean())
    per_image = bce(scored["attributes"][:n], attrs).mean(axis=1)
    d_attr = np.average(per_image, weights=1 + mismatch)  # once per pair it is in
    assert losses["d_attr"] == pytest.approx(d_attr, rel=1e-4)
