"""The quality levers on weights: spectral normalisation, attribute-conditioned batch
normalisation, augmentation in both steps, and the generator average."""

from __future__ import annotations

import numpy as np
import pytest
from test_models import changed, small_batches, weights

import augment
import averaging
import dataGens
import models
from dataGens import AttributeSampler, attribute_noise
from quiet_keras import keras

POLICY = "color,translation,cutout"


def lever_models():
    generator = models.build_generator(32, noise_dim=8, width=8, cond_bn=True)
    discriminator = models.build_discriminator(32, width=8, spectral_norm=True)
    d_trainer = models.build_d_trainer(discriminator, POLICY)
    gan = models.build_gan(generator, discriminator, POLICY)
    models.compile_models(generator, discriminator, d_trainer, gan, 1e-3, 1e-4, 0.5)
    return generator, discriminator, d_trainer, gan


def lever_batches(rng, n: int = 8):
    d_real, (fakes, asked), (g_inputs, g_targets) = small_batches(rng, n)
    d_batch = dataGens.discriminator_batch(d_real, fakes, asked, augment.draw(2 * n, rng))
    return d_batch, ((g_inputs, augment.draw(n, rng)), g_targets)


def spectral_layers(discriminator):
    return [
        layer
        for layer in discriminator.layers
        if isinstance(layer, keras.layers.SpectralNormalization)
    ]


def test_with_every_lever_each_step_trains_its_network_and_g_leaves_d_as_it_was():
    generator, discriminator, d_trainer, gan = lever_models()
    rng = np.random.default_rng(0)
    (inputs, targets, sample_weights), g_batch = lever_batches(rng)
    plain = [discriminator.get_layer(n) for n in ("projection", "attribute_head")]
    for _ in range(3):
        d0, g0 = weights(discriminator), weights(generator)
        models.set_trainable(discriminator, True)
        d_trainer.train_on_batch(inputs, targets, sample_weight=sample_weights)
        d1, g1 = weights(discriminator), weights(generator)
        assert changed(d0, d1) and not changed(g0, g1)
        p1 = [w for layer in plain for w in weights(layer)]
        models.set_trainable(discriminator, False)
        gan.train_on_batch(*g_batch)
        d2, g2 = weights(discriminator), weights(generator)
        assert changed(g1, g2), "the stacked step did not train G"
        assert not changed(p1, [w for layer in plain for w in weights(layer)])
        # Keras' SpectralNormalization goes on with its power iteration (vector_u) in G's
        # step and, on TensorFlow, divides D's kernels by the new estimate of their
        # largest singular value: a rescaling, and no other change.
        names = [v.path for v in discriminator.weights]
        for name, before, after in zip(names, d1, d2):
            if not name.endswith("vector_u"):
                scale = (after * before).sum() / max((before * before).sum(), 1e-12)
                np.testing.assert_allclose(after, scale * before, rtol=1e-4, atol=1e-6)
    for layer in spectral_layers(discriminator):
        kernel = np.asarray(layer.kernel).reshape(-1, layer.kernel.shape[-1])
        assert np.linalg.svd(kernel, compute_uv=False)[0] == pytest.approx(1, abs=0.15)


def test_d_trainer_scores_augmented_images_as_the_discriminator_would():
    _, discriminator, d_trainer, _ = lever_models()
    rng = np.random.default_rng(1)
    ((images, attrs, wrong, params), _, _), _ = lever_batches(rng)
    out = d_trainer.predict_on_batch([images, attrs, wrong, params])
    seen = np.asarray(augment.apply(images, params, POLICY))
    right = discriminator.predict_on_batch([seen, attrs])
    np.testing.assert_allclose(out["face"], right["face"], rtol=1e-4, atol=1e-5)
    other = d_trainer.predict_on_batch([images, attrs, wrong, augment.draw(len(images), rng)])
    assert not np.allclose(out["face"], other["face"])  # the draws are in play


def test_conditioned_normalisation_trains_saves_and_loads(tmp_path):
    generator, discriminator, d_trainer, gan = lever_models()
    modulation = [x for x in generator.layers if isinstance(x, models.AttributeModulation)]
    assert len(modulation) == 3  # one per batch normalisation at 32x32
    before = weights(modulation[0])
    models.train_step(discriminator, d_trainer, gan, *lever_batches(np.random.default_rng(2)))
    assert changed(before, weights(modulation[0]))
    generator.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras", compile=False)
    z = np.random.default_rng(3).random((4, 48), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict_on_batch(z), generator.predict_on_batch(z), atol=1e-6)


def test_the_average_follows_the_update_formula_and_its_half_life_ramps_up():
    assert averaging.beta(64, 64, 10) < 1e-5  # at first the average is G itself
    assert averaging.beta(64, 10**7, 10) == pytest.approx(0.5 ** (64 / 10_000))
    generator = models.build_generator(32, noise_dim=8, width=8)
    average = averaging.GeneratorAverage(generator)
    start = weights(average.model)
    for variable in generator.trainable_variables:
        variable.assign(variable + 1.0)
    average.update(generator, 0.75)
    trained = {id(v) for v in average.model.trainable_variables}
    for variable, old, new in zip(average.model.weights, start, weights(average.model)):
        expected = old + 0.25 if id(variable) in trained else old
        np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-6)


def test_recalibration_gives_the_average_its_own_batch_statistics():
    generator = models.build_generator(32, noise_dim=8, width=8)
    average = averaging.GeneratorAverage(generator)
    for variable in average.model.trainable_variables:  # weights unlike G's
        variable.assign(variable * 1.5)
    rows = np.random.default_rng(4).integers(0, 2, (64, 40))
    average.recalibrate(rows, 16, 8)
    norm = next(x for x in average.model.layers if isinstance(x, keras.layers.BatchNormalization))
    before_norm = keras.Model(average.model.inputs, norm.input)
    rng, sampler = np.random.default_rng([0, 5]), AttributeSampler("dataset", rows)
    means = [
        np.asarray(before_norm(attribute_noise(sampler.sample(16, rng), 8, rng))).mean((0, 1, 2))
        for _ in range(averaging.CALIBRATION_BATCHES)
    ]
    np.testing.assert_allclose(norm.moving_mean, np.mean(means, axis=0), rtol=1e-4, atol=1e-5)
    assert norm.momentum == 0.8  # restored


def mode_seeking_gan(weight: float):
    keras.utils.set_random_seed(5)
    generator = models.build_generator(32, noise_dim=8, width=8)
    discriminator = models.build_discriminator(32, width=8)
    gan = models.build_gan(generator, discriminator, "", weight)
    models.compile_models(
        generator, discriminator, models.build_d_trainer(discriminator), gan, 1e-3, 1e-3, 0.5
    )
    return generator, gan


def test_mode_seeking_batches_pair_the_same_attributes_with_other_noise():
    sampler = AttributeSampler("dataset", np.random.default_rng(0).integers(0, 2, (50, 40)))
    batches = dataGens.GeneratorBatches(sampler, 8, 3, noise_dim=8, mode_seeking=True)
    inputs, targets = batches[1]
    np.testing.assert_array_equal(inputs[:4, :40], inputs[4:, :40])
    np.testing.assert_array_equal(targets["attributes"], inputs[:, :40])
    assert np.abs(inputs[:4, 40:] - inputs[4:, 40:]).min() > 0
    assert targets["mode_seeking"].shape == (8, 1)


def test_mode_seeking_refuses_an_odd_batch_it_cannot_pair():
    sampler = AttributeSampler("dataset", np.random.default_rng(0).integers(0, 2, (50, 40)))
    with pytest.raises(ValueError, match="batch_size 7 is odd"):
        dataGens.GeneratorBatches(sampler, 7, 3, noise_dim=8, mode_seeking=True)
    assert len(dataGens.GeneratorBatches(sampler, 7, 3, noise_dim=8)[0][0]) == 7


def test_the_mode_seeking_term_is_the_noise_gap_over_the_image_gap():
    _, gan = mode_seeking_gan(2.0)
    layer = gan.get_layer("mode_seeking")
    rng = np.random.default_rng(6)
    images = rng.uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
    z = rng.normal(size=(6, 48)).astype(np.float32)
    term = np.asarray(layer([images, z]))[:, 0]
    image_gap = np.abs(images[:3] - images[3:]).mean(axis=(1, 2, 3))
    noise_gap = np.abs(z[:3, 40:] - z[3:, 40:]).mean(axis=1)
    expected = 2.0 / (image_gap / noise_gap + 1e-5)
    np.testing.assert_allclose(term, np.concatenate([expected, expected]), rtol=1e-5)


def test_mode_seeking_pushes_the_faces_of_one_attribute_vector_apart():
    sampler = AttributeSampler("dataset", np.random.default_rng(1).integers(0, 2, (50, 40)))
    batches = dataGens.GeneratorBatches(sampler, 16, 4, noise_dim=8, mode_seeking=True)
    gaps = {}
    for weight in (0.0, 1.0):
        generator, gan = mode_seeking_gan(weight)
        for step in range(4):
            inputs, targets = batches[step]
            if not weight:
                targets = {k: v for k, v in targets.items() if k != "mode_seeking"}
            gan.train_on_batch(inputs, targets)
        # Batch statistics, as in training: four steps barely move BN's moving averages.
        faces = np.asarray(generator(batches[0][0], training=True))
        gaps[weight] = np.abs(faces[:8] - faces[8:]).mean()
    assert gaps[1.0] > 1.3 * gaps[0.0]


def test_without_attributes_neither_network_sees_them_and_their_losses_count_nothing(tmp_path):
    """--attributes none: G's faces and D's scores are the same whatever attributes
    they are given, the attribute head is left as it was by both steps, and it all
    survives a save (the conditioned networks, the control, do see them)."""
    rng = np.random.default_rng(4)
    generator = models.build_generator(32, noise_dim=8, width=8, cond_bn=True, conditional=False)
    discriminator = models.build_discriminator(32, width=8, conditional=False)
    d_trainer = models.build_d_trainer(discriminator)
    gan = models.build_gan(generator, discriminator)
    models.compile_models(generator, discriminator, d_trainer, gan, 1e-3, 1e-3, 0.5, "bce", False)
    d_real, (fakes, asked), g_batch = small_batches(rng)
    head = discriminator.get_layer("attribute_head")
    before = weights(head)
    for _ in range(2):
        d0 = weights(discriminator)
        models.train_step(
            discriminator,
            d_trainer,
            gan,
            dataGens.discriminator_batch(d_real, fakes, asked),
            g_batch,
        )
        assert changed(d0, weights(discriminator))
    assert not changed(before, weights(head))
    generator.save(tmp_path / "g.keras")
    discriminator.save(tmp_path / "d.keras")
    loaded_g = keras.models.load_model(tmp_path / "g.keras", compile=False)
    loaded_d = keras.models.load_model(tmp_path / "d.keras", compile=False)
    noise = rng.standard_normal((4, 8), dtype=np.float32)
    images = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    one, other = (rng.integers(0, 2, (4, 40)).astype(np.float32) for _ in range(2))
    for g, d in ((generator, discriminator), (loaded_g, loaded_d)):
        faces = [g.predict_on_batch(np.concatenate([a, noise], 1)) for a in (one, other)]
        np.testing.assert_array_equal(*faces)
        scores = [d.predict_on_batch([images, a])["face"] for a in (one, other)]
        np.testing.assert_array_equal(*scores)
    seeing_g, seeing_d, _, _ = lever_models()
    faces = [seeing_g.predict_on_batch(np.concatenate([a, noise], 1)) for a in (one, other)]
    assert not np.allclose(*faces)
    assert not np.allclose(*[seeing_d.predict_on_batch([images, a])["face"] for a in (one, other)])


def test_the_attribute_weight_scales_the_attribute_heads_step_and_adds_linearly_in_gs():
    """--attr-weight W: with plain SGD, D's attribute head (trained by its loss alone)
    moves W times as far as at W = 1, and G's step is its face step plus W times its
    attribute step, so the three steps at W = 0, 1, 2 are evenly spaced."""
    rng = np.random.default_rng(8)
    d_real, (fakes, asked), g_batch = small_batches(rng)
    d_batch = dataGens.discriminator_batch(d_real, fakes, asked)
    head_steps, g_steps = {}, {}
    keras.utils.set_random_seed(8)
    generator = models.build_generator(32, noise_dim=8, width=8)
    discriminator = models.build_discriminator(32, width=8)
    d_trainer = models.build_d_trainer(discriminator)
    gan = models.build_gan(generator, discriminator)
    head = discriminator.get_layer("attribute_head")
    g_start, d_start = weights(generator), weights(discriminator)
    for weight in (0.0, 1.0, 2.0):
        generator.set_weights(g_start)
        discriminator.set_weights(d_start)
        models.compile_d_trainer(d_trainer, keras.optimizers.SGD(0.1), attr_weight=weight)
        models.compile_gan(gan, keras.optimizers.SGD(0.1), discriminator, attr_weight=weight)
        h0 = weights(head)
        d_trainer.train_on_batch(d_batch[0], d_batch[1], sample_weight=d_batch[2])
        head_steps[weight] = [a - b for a, b in zip(weights(head), h0)]
        discriminator.set_weights(d_start)
        g0 = [np.array(w) for w in generator.trainable_weights]
        models.set_trainable(discriminator, False)
        gan.train_on_batch(*g_batch)
        models.set_trainable(discriminator, True)
        g_steps[weight] = [np.array(w) - b for w, b in zip(generator.trainable_weights, g0)]
    assert not any(np.any(step) for step in head_steps[0.0])
    for at_two, at_one in zip(head_steps[2.0], head_steps[1.0]):
        np.testing.assert_allclose(at_two, 2 * at_one, rtol=1e-4, atol=1e-8)
    assert changed(g_steps[0.0], g_steps[1.0])
    for zero, one, two in zip(g_steps[0.0], g_steps[1.0], g_steps[2.0]):
        np.testing.assert_allclose(two - one, one - zero, rtol=1e-3, atol=1e-6)
